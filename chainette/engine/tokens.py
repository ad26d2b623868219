"""Counting a prompt's tokens without generating anything, behind one small interface.

A :class:`TokenCounter` has a ``label`` (shown next to the count), ``exact`` (the model's own
tokenizer, or an estimate) and ``count(messages) -> int``. :func:`counter_for` picks the best
one for an engine:

* ``openai`` backend: ``tiktoken`` when it is installed and knows the model (``pip install
  'chainette[tokens]'``), counting the chat format's per-message overhead too;
* ``vllm_api`` / ``local`` (llama.cpp) with a server already running: its ``/tokenize``
  endpoint (vLLM takes the chat messages; llama.cpp gets them through ``/apply-template``).
  No completion is requested and nothing is generated;
* otherwise :class:`EstimateCounter`, about 4 characters per token, labelled as an estimate.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from typing import Any, Protocol, runtime_checkable

from chainette.errors import DefinitionError

Messages = list[dict[str, Any]]

_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o")
_CL100K_PREFIXES = ("gpt-4", "gpt-3.5", "gpt-35")


@runtime_checkable
class TokenCounter(Protocol):
    label: str
    exact: bool

    def count(self, messages: Messages) -> int: ...


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return json.dumps(content, ensure_ascii=False) if content is not None else ""


class EstimateCounter:
    """About ``chars_per_token`` characters per token, plus a few tokens per message."""

    exact = False

    def __init__(self, chars_per_token: float = 4.0, *, why: str = "") -> None:
        self.chars_per_token = chars_per_token
        self.label = f"estimate (~{chars_per_token:g} characters/token{'; ' + why if why else ''})"

    def count(self, messages: Messages) -> int:
        return 3 + sum(4 + math.ceil(len(_text(m.get("content"))) / self.chars_per_token) for m in messages)


class TiktokenCounter:
    """OpenAI's tokenizer (``tiktoken``), with the chat format's overhead (3 tokens per message
    and 3 to prime the reply, as OpenAI documents it)."""

    exact = True

    def __init__(self, encoding: Any) -> None:
        self.encoding = encoding
        self.label = f"tiktoken {getattr(encoding, 'name', '')}".strip()

    def count(self, messages: Messages) -> int:
        enc = self.encoding.encode
        n = 3
        for m in messages:
            n += 3 + len(enc(_text(m.get("content")))) + len(enc(str(m.get("role", ""))))
        return n


def tiktoken_counter(model: str) -> TiktokenCounter | None:
    """A counter for an OpenAI ``model`` when ``tiktoken`` is installed and can load its encoding."""
    try:
        import tiktoken
    except ImportError:
        return None
    try:
        try:
            return TiktokenCounter(tiktoken.encoding_for_model(model))
        except KeyError:
            if model.startswith(_O200K_PREFIXES):
                return TiktokenCounter(tiktoken.get_encoding("o200k_base"))
            if model.startswith(_CL100K_PREFIXES):
                return TiktokenCounter(tiktoken.get_encoding("cl100k_base"))
            return None
    except Exception:  # the encoding file could not be loaded (offline, no cache): estimate instead
        return None


def server_root(endpoint: str) -> str:
    """``http://host:8000/v1`` -> ``http://host:8000`` (the tokenize endpoints are at the root)."""
    url = endpoint.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


class ServerTokenizer:
    """A running vLLM or llama.cpp server's own tokenizer (``POST /tokenize``; nothing generated)."""

    exact = True

    def __init__(self, endpoint: str, model: str = "", *, api_key: str | None = None, timeout: float = 5.0) -> None:
        self.root = server_root(endpoint)
        self.model = model
        self.api_key = api_key
        self.timeout = timeout
        self.kind: str | None = None  # "vllm" or "llama.cpp" once one form answered
        self.label = f"server tokenizer ({self.root}/tokenize)"

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(self.root + path, data=json.dumps(body).encode(), headers=headers, method="POST")
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 - the engine's own URL
            return json.loads(resp.read())

    def _vllm(self, messages: Messages) -> int:
        body: dict[str, Any] = {"messages": messages, "add_generation_prompt": True}
        if self.model:
            body["model"] = self.model
        data = self._post("/tokenize", body)
        if isinstance(data, dict) and isinstance(data.get("count"), int):
            return data["count"]
        raise ValueError("no 'count' in the reply")

    def _llamacpp(self, messages: Messages) -> int:
        prompt = self._post("/apply-template", {"messages": messages})
        if not isinstance(prompt, dict) or not isinstance(prompt.get("prompt"), str):
            raise ValueError("no 'prompt' in the reply")
        data = self._post("/tokenize", {"content": prompt["prompt"], "add_special": True})
        if isinstance(data, dict) and isinstance(data.get("tokens"), list):
            return len(data["tokens"])
        raise ValueError("no 'tokens' in the reply")

    def count(self, messages: Messages) -> int:
        forms = {"vllm": self._vllm, "llama.cpp": self._llamacpp}
        order = [self.kind] if self.kind else list(forms)
        last: Exception | None = None
        for kind in order:
            try:
                n = forms[kind](messages)
            except (OSError, ValueError, urllib.error.URLError) as exc:
                last = exc
                continue
            if self.kind is None:
                self.kind = kind
                self.label = f"{kind} server tokenizer"
            return n
        raise OSError(f"the server at {self.root} did not tokenize: {last}")

    def probe(self) -> bool:
        """Whether the server tokenizes (one tiny request)."""
        try:
            self.count([{"role": "user", "content": "hi"}])
            return True
        except OSError:
            return False


TOKENIZERS: dict[str, str] = {"openai": "tiktoken", "vllm_api": "server+model", "local": "server"}
"""backend name -> where its exact token counts come from: ``tiktoken``, ``server`` (the running
server's ``/tokenize``) or ``server+model`` (the same, naming the model); a backend not listed
is estimated. :func:`register_tokenizer` adds one."""


def register_tokenizer(backend: str, kind: str) -> None:
    """Count ``backend``'s prompts with ``kind`` (see :data:`TOKENIZERS`)."""
    if kind not in ("tiktoken", "server", "server+model"):
        raise DefinitionError(f"unknown tokenizer kind {kind!r}: use tiktoken, server or server+model")
    TOKENIZERS[backend] = kind


def counter_for(cfg: Any, endpoint: str | None = None) -> TokenCounter:
    """The best counter for an engine config (see the module docstring); ``endpoint`` is where
    its server is running, if it is (default: the config's own endpoint)."""
    if cfg is None:
        return EstimateCounter(why="engine object")
    kind = TOKENIZERS.get(getattr(cfg, "backend", ""))
    model = getattr(cfg, "model", "") or ""
    if kind == "tiktoken":
        found = tiktoken_counter(model)
        if found is not None:
            return found
        return EstimateCounter(why="tiktoken not installed or model unknown to it")
    if kind in ("server", "server+model"):
        url = endpoint or getattr(cfg, "endpoint", None)
        if url:
            try:
                key = cfg.resolved_api_key()
            except Exception:
                key = None
            tok = ServerTokenizer(url, model if kind == "server+model" else "", api_key=key)
            if tok.probe():
                return tok
            return EstimateCounter(why="the server's tokenize endpoint did not answer")
        return EstimateCounter(why="no running server to ask")
    return EstimateCounter()
