"""What actually answers an engine's requests: the identity the item cache keys on.

The model *name* is not enough: two servers can serve different weights under one name,
and their answers must never be shared. So the identity is:

* a managed server (``vllm serve``, the embedded llama.cpp server): the backend and the
  weights it loads (a path or a repository id) — not its port, so a restart on another
  port still reuses the cache;
* a hosted API (OpenAI's own): the backend, the model and the API host;
* any other endpoint: the backend, the model, the endpoint's scheme, host and port, and
  what the server says it serves under that name when it says so (vLLM's ``root`` in
  ``/v1/models``, Ollama's model ``digest``).

The probe is one short GET per engine per run, made when the engine is created; a server
that does not answer it is identified by its address alone.
"""

from __future__ import annotations

import json
import urllib.request
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from chainette.engine.backend_registry import backend_of

if TYPE_CHECKING:
    from chainette.engine.registry import EngineConfig

HOSTED_APIS = ("api.openai.com",)
"""Hosts whose model names are global: the name and host identify the weights."""
PROBE_TIMEOUT = 2.0


def answering_identity(cfg: EngineConfig, endpoint: str | None) -> dict[str, Any]:
    """The item-cache identity of ``cfg`` served at ``endpoint`` (may make one short GET)."""
    spec = backend_of(cfg)
    ident: dict[str, Any] = {"backend": cfg.backend, "model": cfg.model}
    if spec.is_managed(cfg):
        ident["weights"] = spec.managed_server().weights(cfg)
        return ident
    base = (endpoint or cfg.resolved_endpoint() or "").rstrip("/")
    parts = urlsplit(base)
    ident["host"] = f"{parts.scheme}://{parts.netloc}"
    if parts.hostname not in HOSTED_APIS:
        served = reported_weights(cfg, base)
        if served:
            ident["served"] = served
    return ident


def reported_weights(cfg: EngineConfig, base: str) -> str | None:
    """What the server at ``base`` reports serving under ``cfg.model``, or ``None``.

    Asks the OpenAI-compatible model list first (vLLM fills ``root`` with the weights), then
    Ollama's tag list (each model's ``digest``)."""
    key = cfg.resolved_api_key()
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    root = base[: -len("/v1")] if base.endswith("/v1") else base
    for m in (_get_json(root + "/v1/models", headers) or {}).get("data") or []:
        if isinstance(m, dict) and m.get("id") == cfg.model and m.get("root"):
            return str(m["root"])
    for m in (_get_json(root + "/api/tags", headers) or {}).get("models") or []:
        if isinstance(m, dict) and cfg.model in (m.get("name"), m.get("model")) and m.get("digest"):
            return str(m["digest"])
    return None


def _get_json(url: str, headers: dict[str, str]) -> Any:
    try:
        req = urllib.request.Request(url, headers=headers)
        with urllib.request.urlopen(req, timeout=PROBE_TIMEOUT) as resp:  # noqa: S310 - the engine's own endpoint
            return json.loads(resp.read(1 << 20))
    except Exception:  # unreachable, not JSON, no such route: identified by address alone
        return None
