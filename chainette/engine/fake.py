"""``FakeEngine``: a deterministic, schema-valid engine for tests and dry runs.

Register it like any engine (``register_engine(name="fake", backend="fake")``) or pass
an instance to ``Chain.run(..., engines={"name": FakeEngine()})``. Output values are
derived from a hash of the request, so the same request always gets the same reply.
"""

from __future__ import annotations

import json
import random
from collections.abc import Awaitable, Callable
from typing import Any, Union

import anyio
from pydantic import BaseModel

from chainette.engine.protocol import Completion, CompletionRequest, Usage
from chainette.errors import EngineHTTPError
from chainette.utils.canonical import canonical_hash

Handler = Callable[[CompletionRequest], Union[Any, Awaitable[Any]]]


class FakeEngine:
    """An in-process engine that fills the output schema deterministically.

    Args:
        name: engine name used in error records.
        latency: seconds to sleep per request (simulates a server).
        failure_rate: fraction of requests (chosen deterministically per request)
            that raise an HTTP 500 error.
        handler: optional ``fn(request) -> dict | BaseModel | str`` (sync or async)
            that produces the reply instead of the schema filler.
        max_in_flight: concurrency bound, like a real engine.
    """

    def __init__(
        self,
        name: str = "fake",
        *,
        latency: float = 0.0,
        failure_rate: float = 0.0,
        handler: Handler | None = None,
        max_in_flight: int = 256,
        seed: int = 0,
    ) -> None:
        self.name = name
        self.latency = latency
        self.failure_rate = failure_rate
        self.handler = handler
        self.max_in_flight = max_in_flight
        self.seed = seed
        self.calls = 0
        self.events: Any = None  # a run sets its bus here, as on every engine; the fake publishes nothing
        self._limiter = anyio.CapacityLimiter(max_in_flight)

    @classmethod
    def from_config(cls, cfg: Any, endpoint: str | None = None) -> FakeEngine:
        """The engine of a registered ``backend: fake`` config (``endpoint`` is not used)."""
        return cls(name=cfg.name, max_in_flight=cfg.max_in_flight)

    async def complete(self, request: CompletionRequest) -> Completion:
        """Answer ``request``: the handler's reply, or the output schema filled deterministically."""
        async with self._limiter:
            self.calls += 1
            digest = _digest(request, self.seed)
            if self.latency:
                await anyio.sleep(self.latency)
            if self.failure_rate and (int(digest[:8], 16) / 0xFFFFFFFF) < self.failure_rate:
                raise EngineHTTPError("fake failure (HTTP 500)", status=500, engine=self.name)
            if self.handler is not None:
                out = self.handler(request)
                if hasattr(out, "__await__"):
                    out = await out  # type: ignore[misc]
            elif request.json_schema is not None:
                out = fill_schema(request.json_schema, digest)
            else:
                out = f"fake reply {digest[:8]}"
            text = _to_text(out)
            prompt_tokens = sum(len(m.get("content", "")) for m in request.messages) // 4
            return Completion(
                text=text,
                usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=max(1, len(text) // 4)),
                latency_s=self.latency,
                model="fake",
            )

    async def prepare(self) -> None:
        """Nothing to learn: the fake answers in-process."""

    async def aclose(self) -> None:
        """Nothing to release."""
        return None


def _to_text(out: Any) -> str:
    if isinstance(out, str):
        return out
    if isinstance(out, BaseModel):
        return out.model_dump_json()
    return json.dumps(out)


def _digest(request: CompletionRequest, seed: int) -> str:
    return canonical_hash([seed, request.messages], length=32)


def fill_schema(schema: dict[str, Any], digest: str) -> Any:
    """Return a value valid for ``schema`` (a Pydantic JSON schema), derived from ``digest``."""
    rng = random.Random(digest)
    return _fill(schema, schema.get("$defs", {}), rng, depth=0)


def _fill(schema: dict[str, Any], defs: dict[str, Any], rng: random.Random, depth: int) -> Any:
    if "$ref" in schema:
        return _fill(defs[schema["$ref"].rsplit("/", 1)[-1]], defs, rng, depth)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return rng.choice(schema["enum"])
    if "default" in schema and depth > 0 and rng.random() < 0.1:
        return schema["default"]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return _fill(options[0], defs, rng, depth)
    if "allOf" in schema:
        return _fill(schema["allOf"][0], defs, rng, depth)
    typ = schema.get("type", "string")
    if isinstance(typ, list):
        typ = next((t for t in typ if t != "null"), "null")
    if typ == "object":
        props = schema.get("properties", {})
        return {k: _fill(v, defs, rng, depth + 1) for k, v in props.items()}
    if typ == "array":
        n = max(schema.get("minItems", 1), 1)
        n = min(n, schema.get("maxItems", n))
        return [_fill(schema.get("items", {}), defs, rng, depth + 1) for _ in range(n)]
    if typ == "integer":
        lo = schema.get("minimum", schema.get("exclusiveMinimum", -1) + 1 if "exclusiveMinimum" in schema else 0)
        hi = schema.get("maximum", lo + 100)
        return rng.randint(int(lo), int(hi))
    if typ == "number":
        lo = schema.get("minimum", 0.0)
        hi = schema.get("maximum", lo + 1.0)
        return round(rng.uniform(lo, hi), 4)
    if typ == "boolean":
        return rng.random() < 0.5
    if typ == "null":
        return None
    length = max(schema.get("minLength", 0), 6)
    if "maxLength" in schema:
        length = min(length, schema["maxLength"])
    alphabet = "abcdefghijklmnopqrstuvwxyz"
    return "".join(rng.choice(alphabet) for _ in range(length))
