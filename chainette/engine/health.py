"""``EngineHealth``: stop sending to an engine that cannot succeed (a circuit breaker).

Some failures are *systemic*: every later request to the same engine fails the same way,
so retrying or moving on to the next row only spends money and time. The health object
sees every attempt's outcome and trips on the first systemic one:

* authentication refused (HTTP 401 / 403);
* quota exhausted (HTTP 429 with ``insufficient_quota``);
* the server says not to retry (``x-should-retry: false``) on a client error;
* the endpoint redirects (HTTP 3xx: redirects are not followed, so every request gets one);
* the request's schema refused (HTTP 400 naming ``response_format`` / the schema);
* the endpoint unreachable: ``unreachable_streak`` connection failures in a row with no
  answer between them, spanning at least ``unreachable_seconds`` (2 s for an engine that
  never answered in this run, 30 s for one that did: a restarting server gets time).

Until the first answer arrives, requests go out one at a time (``probe``), so a wrong key
or a dead endpoint costs one request, not one per in-flight slot. Once tripped, every
attempt raises :class:`~chainette.errors.EngineStoppedError` before anything is sent.
"""

from __future__ import annotations

import asyncio
import time

from chainette.errors import (
    EngineConnectionError,
    EngineError,
    EngineHTTPError,
    EngineStoppedError,
    EngineTimeoutError,
)

UNREACHABLE_STREAK = 8
"""Connection failures in a row (attempts, retries included) that make an endpoint unreachable..."""
UNREACHABLE_SECONDS = (2.0, 30.0)
"""...provided they span at least this long: (never answered in this run, answered before)."""

SCHEMA_MARKERS = ("response_format", "json_schema", "schema")


class EngineHealth:
    """The systemic-fault state of one engine during one run."""

    def __init__(
        self,
        engine: str,
        *,
        unreachable_streak: int = UNREACHABLE_STREAK,
        unreachable_seconds: tuple[float, float] = UNREACHABLE_SECONDS,
        key_hint: str = "",
    ) -> None:
        self.engine = engine
        self.unreachable_streak = unreachable_streak
        self.unreachable_seconds = unreachable_seconds
        self.key_hint = key_hint
        self.stopped: EngineStoppedError | None = None
        self.answered = False
        self._streak = 0
        self._streak_since = 0.0
        self._probe: asyncio.Lock | None = None

    # -- before an attempt ---------------------------------------------------------
    def check(self) -> None:
        """Raise the stop error if the engine was stopped (nothing is sent then)."""
        if self.stopped is not None:
            raise self.stopped

    async def admit(self) -> bool:
        """Wait for the probe slot until the first answer; ``True`` when this request holds it."""
        self.check()
        if self.answered:
            return False
        if self._probe is None:
            self._probe = asyncio.Lock()
        await self._probe.acquire()
        if self.answered or self.stopped is not None:
            self._probe.release()
            self.check()
            return False
        return True

    def release_probe(self, held: bool) -> None:
        """Give the probe slot back (``held``: what :meth:`admit` returned)."""
        if held and self._probe is not None:
            self._probe.release()

    # -- after an attempt ----------------------------------------------------------
    def on_answer(self) -> None:
        """The server answered (any reply that is not a systemic refusal)."""
        self.answered = True
        self._streak = 0

    def on_error(self, exc: EngineError) -> None:
        """Classify a failed attempt; trip on a systemic fault."""
        if isinstance(exc, EngineConnectionError):
            now = time.monotonic()
            if self._streak == 0:
                self._streak_since = now
            self._streak += 1
            span = self.unreachable_seconds[1 if self.answered else 0]
            if self._streak >= self.unreachable_streak and now - self._streak_since >= span:
                self._trip(
                    "unreachable",
                    f"{self._streak} connection attempts in a row failed over "
                    f"{now - self._streak_since:.0f}s with no answer ({exc})",
                    "start the server or fix the engine's endpoint",
                )
            return
        if isinstance(exc, EngineTimeoutError):
            return  # slow is not absent: neither an answer nor a connection failure
        if not isinstance(exc, EngineHTTPError):
            self.on_answer()  # a reply came back (empty, malformed...): the server is there
            return
        reason = systemic_reason(exc)
        if reason is None:
            self.on_answer()
            return
        kind, hint = reason
        if kind == "auth" and self.key_hint:
            hint = f"{hint} ({self.key_hint})"
        self._trip(kind, str(exc), hint)

    def _trip(self, kind: str, detail: str, hint: str) -> None:
        if self.stopped is None:
            self.stopped = EngineStoppedError(
                f"engine '{self.engine}' stopped: {detail}; {hint}", kind=kind, engine=self.engine
            )


def systemic_reason(exc: EngineHTTPError) -> tuple[str, str] | None:
    """``(kind, how to fix)`` when an HTTP error will repeat for every request, else ``None``."""
    status, code = exc.status, (exc.code or "")
    if status in (401, 403):
        return "auth", "the server refused our credentials: check the API key"
    if status == 429 and code == "insufficient_quota":
        return "quota", "the account's quota is exhausted: add credit or raise the limit, then resume"
    if status == 400 and (
        exc.param in ("response_format", "text.format") or any(m in str(exc).lower() for m in SCHEMA_MARKERS)
    ):
        return "schema", "the server rejected the output schema: simplify the model or use a non-strict engine"
    if 300 <= status < 400:
        return "redirect", "set the engine's endpoint to the address the server redirects to"
    if exc.should_retry is False and 400 <= status < 500:
        return "no-retry", "the server asked not to retry this request"
    return None
