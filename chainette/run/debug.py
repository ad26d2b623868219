"""Debug mode: the rendered messages and the raw reply of the first rows of each step.

``chain.run(..., debug=True)`` (the first 3 rows of each step; ``debug=5`` for 5) and
``chainette run --debug`` publish a :class:`StepDebug` event for every attempt of those rows:
the chat messages exactly as sent, the reply text exactly as received (before parsing and
validation), the reasoning if any, or the engine error. Secrets are masked in all of them
(``***``): every API key of the run's engines and of the registered engines, the values of
environment variables named ``*_API_KEY``, ``*_TOKEN``, ``*_SECRET`` or ``*_PASSWORD``, and
text shaped like a key (``sk-...``, ``hf_...``, ``Bearer ...``).

Without a subscriber of its own, ``chain.run(debug=...)`` prints the events as plain text on
stderr (:func:`print_sample`); the CLI prints them above its progress display.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, overload

from chainette.events import Event

__all__ = ["DEFAULT_DEBUG_ROWS", "DebugSampler", "StepDebug", "debug_rows", "format_sample", "mask", "print_sample"]

DEFAULT_DEBUG_ROWS = 3
_SECRET_ENV_SUFFIXES = ("_API_KEY", "_TOKEN", "_SECRET", "_PASSWORD")
_KEY_SHAPES = re.compile(
    r"(?P<keep>Bearer\s+|(?:api[_-]?key|token|secret|password)[\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9._\-]{8,}"
    r"|\bsk-[A-Za-z0-9_\-]{16,}|\bhf_[A-Za-z0-9]{20,}|\bAKIA[0-9A-Z]{16}\b",
    re.I,
)


@dataclass(slots=True)
class StepDebug(Event):
    """One attempt of one row at one step, as sent and as received (secrets masked)."""

    step_id: str
    row_id: str
    engine: str
    attempt: int
    messages: list[dict[str, str]] = field(default_factory=list)
    reply: str | None = None
    """the raw reply text (``None`` when the engine failed)"""
    reasoning: str | None = None
    error: str | None = None
    cached: bool = False
    """the reply came from the item cache"""


def debug_rows(debug: Any) -> int:
    """How many rows per step ``debug`` asks for: ``True`` -> 3, an int -> that, falsy -> 0."""
    if debug is True:
        return DEFAULT_DEBUG_ROWS
    if not debug:
        return 0
    if isinstance(debug, int) and debug > 0:
        return debug
    from chainette.errors import ConfigError

    raise ConfigError(f"debug must be True, False or a number of rows per step, got {debug!r}")


def _secret_values(extra: Iterable[str] = ()) -> list[str]:
    values = {v for v in extra if v and len(v) >= 4}
    for key, value in os.environ.items():
        if key.upper().endswith(_SECRET_ENV_SUFFIXES) and len(value) >= 6:
            values.add(value)
    if "chainette.engine.registry" in sys.modules:
        from chainette.engine.registry import registered_engines

        for cfg in registered_engines():
            try:
                api_key = cfg.resolved_api_key()
            except Exception:  # pragma: no cover - defensive: a key file that cannot be read
                api_key = None
            if api_key and len(api_key) >= 4:
                values.add(api_key)
            values.update(v for v in getattr(cfg, "extra_env", {}).values() if isinstance(v, str) and len(v) >= 6)
    return sorted(values, key=len, reverse=True)


@overload
def mask(text: str, secrets: Iterable[str] = ()) -> str: ...
@overload
def mask(text: None, secrets: Iterable[str] = ()) -> None: ...
@overload
def mask(text: str | None, secrets: Iterable[str] = ()) -> str | None: ...
def mask(text: str | None, secrets: Iterable[str] = ()) -> str | None:
    """``text`` with every known secret and anything shaped like a key replaced by ``***``."""
    if not text:
        return text
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, "***")
    return _KEY_SHAPES.sub(lambda m: (m.group("keep") or "") + "***", text)


class DebugSampler:
    """Picks the first ``rows`` rows reaching each step and publishes their attempts."""

    def __init__(self, rows: int, publish: Callable[[Event], Any], *, secrets: Iterable[str] = ()) -> None:
        self.rows = rows
        self.publish = publish
        self.secrets = _secret_values(secrets)
        self._picked: dict[str, set[str]] = {}

    def wants(self, step_id: str, row_id: str) -> bool:
        picked = self._picked.setdefault(step_id, set())
        if row_id in picked:
            return True
        if len(picked) < self.rows:
            picked.add(row_id)
            return True
        return False

    def sample(
        self,
        step: Any,
        row_id: str,
        messages: list[dict[str, str]],
        *,
        attempt: int,
        reply: str | None = None,
        reasoning: str | None = None,
        error: str | None = None,
        cached: bool = False,
    ) -> None:
        if not self.wants(step.id, row_id):
            return
        s = self.secrets
        self.publish(
            StepDebug(
                step_id=step.id,
                row_id=row_id,
                engine=getattr(step, "engine_name", ""),
                attempt=attempt,
                messages=[{k: (mask(v, s) if isinstance(v, str) else v) for k, v in m.items()} for m in messages],
                reply=mask(reply, s),
                reasoning=mask(reasoning, s),
                error=mask(error, s),
                cached=cached,
            )
        )


def format_sample(event: StepDebug, *, width: int = 100) -> str:
    """A plain-text block for one :class:`StepDebug` event."""
    head = f"── debug: step '{event.step_id}' · row {event.row_id} · engine {event.engine} · attempt {event.attempt}"
    if event.cached:
        head += " · from cache"
    lines = [head + " " + "─" * max(0, width - len(head) - 1)]
    for m in event.messages:
        lines.append(f"[{m.get('role', '?')}]")
        lines.append(str(m.get("content", "")))
    if event.error is not None:
        lines.append("[error]")
        lines.append(event.error)
    else:
        if event.reasoning:
            lines.append("[reasoning]")
            lines.append(event.reasoning)
        lines.append("[raw reply]")
        lines.append(event.reply if event.reply is not None else "")
    return "\n".join(lines)


def print_sample(event: Event) -> None:
    """Subscriber printing :class:`StepDebug` events to stderr (the default of ``debug=True``)."""
    if isinstance(event, StepDebug):
        print(format_sample(event), file=sys.stderr, flush=True)
