"""``BaseHTTPClient``: what every HTTP backend shares.

One :class:`~chainette.engine.http1.HTTPPool` of keep-alive connections per engine object,
bound lazily to the running event loop (a new loop gets a new pool); an :class:`AdaptiveLimiter` that bounds
in-flight requests for every step and branch using the engine; optional RPM/TPM
buckets; retries with back-off; timing, usage and ``<think>`` splitting. Backends
only say how to build a body (:meth:`body_extra`) and read a reply (:meth:`parse`),
which wire name each sampling field has (:attr:`sampling_names`; ``None`` = the server
cannot honour it, reported by :meth:`sampling_problems` at validation) and how a base
URL is normalised (:meth:`normalize_endpoint`, applied on every construction path).

The request body is assembled from cached bytes: ``{"model":..,"messages":`` + the
serialised messages + a tail cached per (schema, sampling) object pair, so the
schema is serialised once per step, not once per request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote, urlsplit, urlunsplit

from chainette._version import __version__
from chainette.engine.health import EngineHealth
from chainette.engine.http1 import HTTPPool, Response
from chainette.engine.http1.pool import close_pool, header_block, parse_origin
from chainette.engine.limiter import AdaptiveLimiter, TokenBucket
from chainette.engine.protocol import Completion, CompletionRequest, SamplingParams, Usage
from chainette.engine.retry import RetryPolicy, parse_retry_after
from chainette.errors import (
    ConfigError,
    EngineConnectionError,
    EngineError,
    EngineHTTPError,
    EngineTimeoutError,
    MalformedResponseError,
    RateLimitError,
    TruncatedCompletionError,
)
from chainette.events import EngineRetry, EventBus
from chainette.events import bus as global_bus

if TYPE_CHECKING:
    from chainette.engine.registry import EngineConfig

try:  # orjson is ~5x faster; fall back to the stdlib
    import orjson as _orjson

    def dumps(obj: Any) -> bytes:
        return _orjson.dumps(obj)

    loads: Callable[[str | bytes], Any] = _orjson.loads
except ImportError:  # pragma: no cover - depends on the environment
    import json as _json

    def dumps(obj: Any) -> bytes:
        return _json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()

    loads = _json.loads


def split_think(text: str) -> tuple[str, str | None]:
    """Split ``<think>...</think>`` off ``text``: returns ``(content, reasoning)``.

    Handles a missing opening tag (templates that put ``<think>`` in the prompt).
    """
    end = text.find("</think>")
    if end < 0:
        return text, None
    start = text.find("<think>")
    head = text[start + 7 : end] if 0 <= start < end else text[:end]
    return text[end + 8 :].strip(), head.strip() or None


OPENAI_SAMPLING: Mapping[str, str | None] = {
    "temperature": "temperature",
    "top_p": "top_p",
    "max_tokens": "max_tokens",
    "stop": "stop",
    "seed": "seed",
    "top_k": None,
    "min_p": None,
    "repetition_penalty": None,
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
    "logit_bias": "logit_bias",
}
"""OpenAI Chat Completions names; ``None``: the API has no such parameter."""


class BaseHTTPClient:
    """Shared machinery of the HTTP engines; subclasses set ``path`` and implement two hooks."""

    backend: ClassVar[str] = ""
    path: ClassVar[str] = "/chat/completions"
    sampling_names: ClassVar[Mapping[str, str | None]] = OPENAI_SAMPLING
    """SamplingParams field -> body key; ``None`` when the server cannot honour the field."""
    unsupported_hint: ClassVar[str] = ""
    reasoning_efforts: ClassVar[frozenset[str]] = frozenset()
    """The ``reasoning_effort`` values this wire accepts (empty: none)."""

    def __init__(
        self,
        cfg: EngineConfig,
        endpoint: str | None = None,
        *,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.max_in_flight = cfg.max_in_flight
        base = self.normalize_endpoint((endpoint or cfg.resolved_endpoint() or "").strip())
        if not base:
            raise ConfigError(
                f"engine '{cfg.name}' has no endpoint: set `endpoint:` or let EngineBroker.start(cfg) start its server",
                engine=cfg.name,
            )
        try:
            parse_origin(base)
        except ConfigError as exc:
            raise ConfigError(f"engine '{cfg.name}': endpoint: {exc}", engine=cfg.name) from None
        self.endpoint = base
        parts = urlsplit(base)  # a query (``?api-version=...``) stays at the end of the URL
        path = parts.path.rstrip("/") + self.path
        self.url = urlunsplit(parts._replace(path=path))
        safe = "/%:@!$&'()*+,;=-._~"
        self._target = quote(path, safe=safe) + (f"?{quote(parts.query, safe=safe + '?')}" if parts.query else "")
        self.model = self.request_model()
        self.policy = policy or RetryPolicy(max_retries=cfg.max_retries)
        self.limiter = AdaptiveLimiter(cfg.max_in_flight)
        self.rpm = TokenBucket(cfg.requests_per_minute) if cfg.requests_per_minute else None
        self.tpm = TokenBucket(cfg.tokens_per_minute) if cfg.tokens_per_minute else None
        self._secret = cfg.resolved_api_key() or ""
        self._headers = {"User-Agent": f"chainette/{__version__}", **self.headers(self._secret)}
        try:
            header_block(self._headers)
        except ConfigError as exc:  # e.g. a key pasted with its line break
            raise ConfigError(f"engine '{cfg.name}': {exc}", engine=cfg.name) from None
        self._head = b'{"model":' + dumps(self.model) + b',"messages":'
        self._tails: dict[tuple[int, int, str], tuple[Any, Any, bytes]] = {}
        self._pool: HTTPPool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.requests = 0
        self.retries = 0
        self.health = EngineHealth(cfg.name, key_hint=_key_hint(cfg))
        self.events: EventBus = global_bus
        """where retries are published (a run sets its own bus on the engines it creates)"""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, model={self.model!r}, endpoint={self.endpoint!r})"

    # -- hooks -------------------------------------------------------------
    @classmethod
    def normalize_endpoint(cls, url: str) -> str:
        """The base URL requests are built from (``{base}{path}``).

        Trailing slashes and a pasted ``/chat/completions`` are removed; OpenAI-compatible
        servers we know always serve ``/v1`` get it when the URL has no path at all.
        """
        url = url.rstrip("/")
        if url.endswith("/chat/completions"):
            url = url[: -len("/chat/completions")].rstrip("/")
        return url

    def request_model(self) -> str:
        """The ``model`` value sent in every request."""
        return self.cfg.model

    def headers(self, api_key: str) -> dict[str, str]:
        h = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            h["Authorization"] = f"Bearer {api_key}"
        return h

    def body_extra(self, request: CompletionRequest) -> dict[str, Any]:
        """Everything in the body except ``model`` and ``messages`` (schema, sampling)."""
        raise NotImplementedError

    @property
    def max_tokens_key(self) -> str:
        """The body key of ``SamplingParams.max_tokens``."""
        return self.sampling_names.get("max_tokens") or "max_tokens"

    def sampling_body(self, sampling: SamplingParams) -> dict[str, Any]:
        """The set sampling fields under this wire's names (``extra`` not included)."""
        out: dict[str, Any] = {}
        for name, value in sampling.set_fields().items():
            key = self.max_tokens_key if name == "max_tokens" else self.sampling_names.get(name)
            if key is None:
                raise ConfigError(self._unsupported(name), engine=self.name)
            if name == "stop":
                if not value:
                    continue
                value = list(value)
            elif name == "logit_bias":
                value = dict(value)
            out[key] = value
        return out

    def sampling_problems(self, sampling: SamplingParams) -> list[str]:
        """One message per set sampling field this wire cannot honour (checked at validation)."""
        return [
            self._unsupported(name)
            for name in sampling.set_fields()
            if name != "max_tokens" and self.sampling_names.get(name) is None
        ]

    def _unsupported(self, name: str) -> str:
        return (
            f"engine '{self.name}' (backend {self.backend}) cannot honour sampling field "
            f"'{name}'{self.unsupported_hint.format(field=name)}"
        )

    def config_problems(self) -> list[str]:
        """Problems of the engine's own settings for this wire (checked at validation)."""
        effort = getattr(self.cfg, "reasoning_effort", None)
        if effort is not None and effort not in self.reasoning_efforts:
            accepted = ", ".join(sorted(self.reasoning_efforts)) or "none: remove it"
            return [
                f"engine '{self.name}' (backend {self.backend}): reasoning_effort '{effort}' "
                f"is not accepted by this server (accepted: {accepted})"
            ]
        return []

    def schema_warnings(self, schema: dict[str, Any] | None, model_name: str = "output") -> list[str]:
        """How this wire weakens the enforcement of ``schema`` (empty: fully enforced)."""
        return []

    def schema_problems(self, schema: dict[str, Any] | None, model_name: str = "output") -> list[str]:
        """Why this wire refuses ``schema`` (empty: it can send it)."""
        return []

    def parse(self, data: Any) -> Completion:
        """Turn the decoded reply into a :class:`Completion` (latency is filled in later).

        The default reads an OpenAI-style ``chat.completion`` (OpenAI, vLLM, llama.cpp)."""
        return parse_chat_completion(data, self.name)

    # -- body ----------------------------------------------------------------
    def encode(self, request: CompletionRequest) -> bytes:
        """The request body as bytes (schema/sampling part cached per object pair)."""
        schema, sampling = request.json_schema, request.sampling
        key = (id(schema), id(sampling), request.schema_name)
        hit = self._tails.get(key)
        if hit is None or hit[0] is not schema or hit[1] is not sampling:
            extra = dumps(self.body_extra(request))
            tail = b"}" if extra == b"{}" else b"," + extra[1:]
            if len(self._tails) > 512:
                self._tails.clear()
            hit = self._tails[key] = (schema, sampling, tail)
        return self._head + dumps(request.messages) + hit[2]

    # -- transport -------------------------------------------------------------
    def _bind_loop(self) -> HTTPPool:
        loop = asyncio.get_running_loop()
        if self._pool is None or self._loop is not loop or self._pool.closed:
            if self._pool is not None and self._loop is not loop:
                # a previous run's loop: its connections are closed there, or dropped with it
                close_pool(self._pool, self._loop)
                self.limiter = AdaptiveLimiter(self.cfg.max_in_flight)
                self.health = EngineHealth(self.name, key_hint=_key_hint(self.cfg))  # a new run

                for b in (self.rpm, self.tpm):
                    if b is not None:
                        b._lock = None
            self._loop = loop
            self._pool = HTTPPool(self.url, headers=self._headers, max_idle=self.max_in_flight, keepalive_s=30.0)
        return self._pool

    async def _request(self, method: str, target: str, body: bytes | None = None) -> Response:
        """One exchange with the server; transport failures become engine errors."""
        pool = self._pool
        assert pool is not None
        try:
            return await pool.request(method, target, body, self.cfg.timeout)
        except asyncio.TimeoutError as exc:
            raise EngineTimeoutError(
                f"engine '{self.name}': no reply from {self.url} within {self.cfg.timeout:g}s", engine=self.name
            ) from exc
        except (OSError, EngineConnectionError) as exc:  # refused, reset, TLS, DNS, closed, a malformed reply
            raise EngineConnectionError(
                f"engine '{self.name}': cannot reach {self.url}: {self._redact(str(exc)) or type(exc).__name__}",
                engine=self.name,
            ) from exc

    async def _post(self, body: bytes) -> Any:
        resp = await self._request("POST", self._target, body)
        status, raw = resp.status, resp.body
        if status >= 300:
            self._raise_status(
                status,
                raw,
                resp.headers.get("retry-after"),
                resp.headers.get("x-should-retry"),
                resp.headers.get("location"),
            )
        try:
            return loads(raw)
        except ValueError:
            raise MalformedResponseError(
                f"engine '{self.name}': reply is not JSON: {self._redact(raw[:200].decode('utf-8', 'replace'))}",
                engine=self.name,
            ) from None

    def _raise_status(
        self,
        status: int,
        raw: bytes,
        retry_after: str | None,
        should_retry: str | None = None,
        location: str | None = None,
    ) -> None:
        if status < 400:  # redirects are not followed: the request (and its key) stays with this endpoint
            where = f" to {self._redact(location)}" if location else ""
            raise EngineHTTPError(
                f"engine '{self.name}': HTTP {status} from {self.url}: the server redirects{where}; "
                "set the engine's endpoint to the address it answers on",
                status=status,
                engine=self.name,
            )
        detail = raw[:500].decode("utf-8", "replace")
        code = param = None
        try:
            err = loads(raw).get("error")
            if isinstance(err, dict):  # OpenAI's documented error object: message, type, param, code
                detail = err.get("message", detail)
                code = err.get("code") or err.get("type")
                param = err.get("param")
            else:
                detail = err or detail
        except Exception:
            pass
        msg = f"engine '{self.name}': HTTP {status} from {self.url}: {self._redact(str(detail))[:500]}"
        wait = parse_retry_after(retry_after)
        cls = RateLimitError if status == 429 else EngineHTTPError
        flag = None if should_retry is None else should_retry.strip().lower() == "true"
        raise cls(
            msg,
            status=status,
            retry_after=wait,
            engine=self.name,
            code=code if isinstance(code, str) else None,
            param=param if isinstance(param, str) else None,
            should_retry=flag,
        )

    def _redact(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    # -- the seam ----------------------------------------------------------------
    async def prepare(self) -> None:
        """Learn what the server supports before a run's first request (default: nothing).

        A run calls it once on each engine it creates; a client used on its own skips it
        and uses its defaults."""

    async def complete(self, request: CompletionRequest) -> Completion:
        if self._loop is not asyncio.get_running_loop() or self._pool is None or self._pool.closed:
            self._bind_loop()
        health = self.health
        health.check()
        # until the engine first answers, one row at a time (its retries included): a wrong key
        # or a dead endpoint then costs a request or two, not one per in-flight slot
        probe = False if health.answered else await health.admit()
        try:
            return await self._attempts(request, health)
        finally:
            health.release_probe(probe)

    async def _attempts(self, request: CompletionRequest, health: EngineHealth) -> Completion:
        body = self.encode(request)
        estimate = 0
        if self.tpm is not None:
            estimate = len(body) // 4 + (request.sampling.max_tokens or 0)
        attempt = 0
        while True:
            attempt += 1
            if self.rpm is not None:
                await self.rpm.take(1)
            if self.tpm is not None:
                await self.tpm.take(estimate)
            limiter = self.limiter
            await limiter.acquire()
            t0 = time.perf_counter()
            try:
                health.check()
                self.requests += 1
                data = await self._post(body)
                completion = self.parse(data)
            except EngineError as exc:
                limiter.release()
                health.on_error(exc)
                if isinstance(exc, RateLimitError):
                    limiter.on_rate_limited()
                if health.stopped is not None:  # systemic: this error stops the engine for the run
                    exc.stop = health.stopped
                    raise
                if isinstance(exc, TruncatedCompletionError):
                    raise truncated(exc, request, self.name) from None
                if not self.policy.should_retry(exc, attempt):
                    exc.row_id = exc.row_id or request.row_id or None
                    exc.node_id = exc.node_id or request.step_id or None
                    exc.attempts = attempt  # the error record reports every HTTP attempt
                    raise
                delay = self.policy.delay(attempt, exc)
                self.retries += 1
                if self.events:
                    self.events.publish(
                        EngineRetry(engine=self.name, error_type=type(exc).__name__, attempt=attempt, delay_s=delay)
                    )
                await asyncio.sleep(delay)
                continue
            except BaseException:
                limiter.release()
                raise
            limiter.release()
            health.on_answer()
            limiter.on_success()
            if completion.finish_reason == "length" and request.json_schema is not None:
                raise truncated(TruncatedCompletionError("cut off"), request, self.name)  # JSON cut off: not retried
            completion.latency_s = time.perf_counter() - t0
            if self.tpm is not None:
                self.tpm.debit(completion.usage.total_tokens - estimate)
            return completion

    async def aclose(self) -> None:
        """Close the connections (waiting for their close if they belong to the running loop)."""
        pool, self._pool = self._pool, None
        if pool is None or pool.closed:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            await pool.aclose()
        else:
            close_pool(pool, self._loop)

    def close_sync(self) -> None:
        """Best-effort close outside a loop (e.g. ``EngineBroker.acquire`` exit)."""
        pool, self._pool = self._pool, None
        loop = self._loop
        if pool is None or pool.closed:
            return
        if loop is not None and not loop.is_closed() and not loop.is_running():
            loop.run_until_complete(pool.aclose())
        else:
            close_pool(pool, loop)


def merge_extra(body: dict[str, Any], extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """``SamplingParams.extra`` laid over ``body``: its keys are sent verbatim and win."""
    if extra:
        body.update(extra)
    return body


def add_v1_if_bare(url: str) -> str:
    """``http://host:8000`` -> ``http://host:8000/v1``; a URL with a path is left alone."""
    parts = urlsplit(url)
    if parts.scheme and parts.netloc and parts.path in ("", "/"):
        return urlunsplit((parts.scheme, parts.netloc, "/v1", parts.query, parts.fragment))
    return url


def check_finish(finish: str | None, content: str, reasoning: str | None, engine: str) -> None:
    """Raise :class:`TruncatedCompletionError` when the token limit left the reply empty (a reasoning
    model may spend it all thinking); a cut-off reply with content is judged by the caller."""
    if finish == "length" and not content.strip():
        err = TruncatedCompletionError(f"engine '{engine}': reply cut off at the token limit", engine=engine)
        err.thinking_only = bool(reasoning) and not content.strip()
        raise err


def truncated(exc: TruncatedCompletionError, request: CompletionRequest, engine: str) -> TruncatedCompletionError:
    """The truncation error for a row: names the step, the engine and ``max_tokens``; never retried."""
    limit = request.sampling.max_tokens
    budget = f"max_tokens={limit}" if limit else "the server's default max_tokens"
    cause = (
        " The model spent the whole budget reasoning before answering (a reasoning model):"
        " raise max_tokens well above its usual thinking length, or lower its reasoning effort."
        if getattr(exc, "thinking_only", False)
        else " Raise max_tokens in the step's SamplingParams, or ask for a shorter answer."
    )
    err = TruncatedCompletionError(
        f"step '{request.step_id or '?'}', engine '{engine}': the reply stopped at {budget} "
        f"(finish_reason 'length') before the JSON was complete; not retried, the same request stops "
        f"at the same place.{cause}",
        engine=engine,
    )
    err.row_id, err.node_id, err.attempts = request.row_id or None, request.step_id or None, 1
    return err


def parse_chat_completion(data: Any, engine: str) -> Completion:
    """Read an OpenAI-style ``chat.completion`` object (OpenAI, vLLM, llama.cpp)."""
    from chainette.errors import EmptyCompletionError, RefusalError

    try:
        choice = data["choices"][0]
        msg = choice["message"]
    except (KeyError, IndexError, TypeError):
        raise MalformedResponseError(f"engine '{engine}': reply has no choices[0].message", engine=engine) from None
    refusal = msg.get("refusal")
    if refusal:
        raise RefusalError(f"engine '{engine}': model refused: {refusal}", engine=engine)
    content = msg.get("content") or ""
    reasoning = msg.get("reasoning_content") or msg.get("reasoning")
    if "</think>" in content:
        content, inline = split_think(content)
        reasoning = reasoning or inline
    finish = choice.get("finish_reason")
    check_finish(finish, content, reasoning, engine)
    if not content.strip():
        raise EmptyCompletionError(f"engine '{engine}': empty reply (finish_reason={finish})", engine=engine)
    u = data.get("usage") or {}
    details = u.get("prompt_tokens_details") or {}  # OpenAI / vLLM: prompt-cache hits
    return Completion(
        text=content,
        reasoning=reasoning,
        usage=Usage(
            prompt_tokens=u.get("prompt_tokens") or 0,
            completion_tokens=u.get("completion_tokens") or 0,
            cached_prompt_tokens=(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0,
        ),
        model=data.get("model"),
        finish_reason=finish,
    )


def _key_hint(cfg: EngineConfig) -> str:
    """Where the engine's key comes from, by name only (never the value)."""
    if cfg.api_key is not None:
        return "the key set in the engine's api_key"
    from chainette.engine.backend_registry import backend_of

    env = cfg.api_key_env or backend_of(cfg).api_key_env
    return f"read from ${env}" if env else "no key is configured: set api_key_env"
