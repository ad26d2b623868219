"""vLLM's OpenAI-compatible server (``vllm serve``).

Structured output (per the current vLLM docs, "Structured Outputs"): the extra body
field ``structured_outputs: {"json": <schema>}``. The legacy ``guided_json`` field was
deprecated and removed in v0.12.0; it is sent only to a release older than 0.10.2 (before
``structured_outputs`` existed). vLLM ignores body fields it does not know, so the wrong
choice would silently return unconstrained text: the version comes from
``cfg.server_version`` or, when that is not set, from the server's ``GET /version``,
asked once when a run creates the engine. A server that does not say gets OpenAI's
``response_format: {"type": "json_schema", ...}``, which every vLLM since 0.6 honours;
a client used outside a run, with no version configured, assumes the current form. Reasoning comes back
as ``message.reasoning`` (``reasoning_content`` before v0.11) when the server runs
with ``--reasoning-parser``.

Sampling: OpenAI's names plus vLLM's extra sampling parameters ``top_k``, ``min_p`` and
``repetition_penalty`` (top-level body fields of its chat request); ``reasoning_effort``
(low, medium, high) when the engine sets it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from chainette.engine.backends.base import OPENAI_SAMPLING, BaseHTTPClient, add_v1_if_bare, loads, merge_extra
from chainette.engine.protocol import CompletionRequest

STRUCTURED_OUTPUTS_SINCE = (0, 10, 2)
VLLM_SAMPLING = {**OPENAI_SAMPLING, "top_k": "top_k", "min_p": "min_p", "repetition_penalty": "repetition_penalty"}


def parse_version(text: str | None) -> tuple[int, ...] | None:
    """``"0.9.2"`` -> ``(0, 9, 2)``; ``None`` or unreadable -> ``None``."""
    if not text:
        return None
    parts = []
    for piece in text.lstrip("v").split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts) or None


def served_model_name(cfg: Any) -> str:
    """The model id the server answers to (``--served-model-name`` if given in extra flags)."""
    flags = list(cfg.extra_serve_flags or ())
    for i, flag in enumerate(flags):
        if flag.startswith("--served-model-name="):
            return flag.split("=", 1)[1].split()[0]
        if flag == "--served-model-name" and i + 1 < len(flags):
            return flags[i + 1]
    return cfg.model


class VLLMClient(BaseHTTPClient):
    """``POST {endpoint}/chat/completions`` on a vLLM server."""

    backend = "vllm_api"
    sampling_names = VLLM_SAMPLING
    reasoning_efforts = frozenset({"low", "medium", "high"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.server_version = parse_version(self.cfg.server_version)
        self.version_source = "config" if self.server_version is not None else "assumed current"

    async def prepare(self) -> None:
        """Ask the server its version (``GET /version``) when the engine does not configure it."""
        if self.version_source == "config":
            return
        self._bind_loop()
        root = self.endpoint[: -len("/v1")] if self.endpoint.endswith("/v1") else self.endpoint
        try:
            resp = await self._request("GET", (urlsplit(root).path or "") + "/version")
            data = loads(resp.body) if resp.status == 200 else {}
        except Exception:  # unreachable now: the requests themselves will say so
            data = {}
        reported = parse_version(data.get("version") if isinstance(data, dict) else None)
        if reported is not None:
            self.server_version, self.version_source = reported, "server"
        else:  # a server that does not say: the OpenAI form, honoured by every vLLM since 0.6
            self.version_source = "unknown"
        self._tails.clear()  # bodies built before may use another form

    def structured_output_field(self, schema: dict[str, Any], name: str) -> dict[str, Any]:
        """The body field that constrains the reply to ``schema`` on this server's version."""
        if self.version_source == "unknown":
            return {"response_format": {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}}
        if self.server_version is not None and self.server_version < STRUCTURED_OUTPUTS_SINCE:
            return {"guided_json": schema}
        return {"structured_outputs": {"json": schema}}

    @classmethod
    def normalize_endpoint(cls, url: str) -> str:
        return add_v1_if_bare(super().normalize_endpoint(url))

    def request_model(self) -> str:
        return served_model_name(self.cfg)

    def body_extra(self, request: CompletionRequest) -> dict[str, Any]:
        extra = self.sampling_body(request.sampling)
        effort = getattr(self.cfg, "reasoning_effort", None)
        if effort is not None:
            extra["reasoning_effort"] = effort
        if request.json_schema is not None:
            extra.update(self.structured_output_field(request.json_schema, request.schema_name or "output"))
        return merge_extra(extra, request.sampling.extra)
