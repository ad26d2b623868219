"""Chainette's error tree. Every error Chainette raises derives from ``ChainetteError``.

```
ChainetteError
├── ConfigError              bad engine config, unknown engine, bad YAML, bad module:attr
│   ├── UnknownEngineError
│   ├── DefinitionError      a chain or an option built with a bad value (empty id, no steps); also a ValueError
│   └── DefinitionTypeError  a chain built from the wrong kind of object (output model not a BaseModel); also a TypeError
├── ChainValidationError     every problem of a chain at once (``.problems``)
├── InputError               a bad input row or unreadable input file (file, line, field)
├── ResumeError              resuming a run whose chain or inputs changed
├── EngineError              anything that went wrong talking to an LLM server
│   ├── EngineConnectionError   connection refused / reset, DNS, TLS, server gone
│   │   ├── ServerDisconnectedError  the server closed the connection before a byte of reply
│   │   └── HTTPProtocolError   a reply that is not well-formed HTTP/1.x
│   ├── EngineTimeoutError      request exceeded its timeout
│   ├── EngineHTTPError         non-2xx reply (``.status``, ``.retry_after``)
│   │   └── RateLimitError      HTTP 429
│   ├── EngineStoppedError      a systemic fault (auth, quota, schema...): the run stops, resumable
│   ├── TruncatedCompletionError   the reply hit max_tokens (finish_reason ``length``)
│   ├── RefusalError            the model refused (OpenAI ``refusal``)
│   ├── EmptyCompletionError    the reply had no content
│   └── MalformedResponseError  a 2xx reply that is not the documented JSON shape
├── OutputValidationError    the reply was not valid JSON or did not fit the schema
├── ServerStartError         a managed server failed to start (``.log_tail``)
├── ModelError               a local GGUF model that cannot be had (``.model``); also a FileNotFoundError
│   └── ModelDownloadError      fetching it failed: index unreachable, checksum mismatch, interrupted
└── ApplyError               an apply function raised (``.original``) or returned something that is not a list
```

Errors carry context (``node_id``, ``row_id``, ``engine``) so that an error record
written to ``errors/`` says where it happened. Foreign exceptions are translated at
the edge with ``raise ... from exc``; the two foreign errors users most often cause are
worded here, once: :func:`describe_validation_error` (Pydantic) and
:func:`describe_yaml_error` (PyYAML). A failure inside a run does not raise: it becomes
an :class:`ErrorRecord` (:meth:`ErrorRecord.from_exception`) and the other rows go on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class ChainetteError(Exception):
    """Root of every error Chainette raises."""

    def __init__(
        self,
        message: str,
        *,
        node_id: str | None = None,
        row_id: str | None = None,
        engine: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.node_id = node_id
        self.row_id = row_id
        self.engine = engine


class ConfigError(ChainetteError):
    """A configuration problem the user must fix (the message says how)."""


class UnknownEngineError(ConfigError):
    """A step names an engine that is not registered."""


class DefinitionError(ConfigError, ValueError):
    """A chain, one of its parts or an option built with a bad value (a step without an id,
    a chain with no steps, ``max_branches=0``). Also a ``ValueError``: it used to be one."""


class DefinitionTypeError(ConfigError, TypeError):
    """A chain built from the wrong kind of object (an output model that is not a Pydantic
    ``BaseModel``, ``connect()`` given something that is not a node). Also a ``TypeError``."""


@dataclass(frozen=True)
class Problem:
    """One problem found by chain validation.

    ``severity`` is ``"error"`` (the chain cannot run: ``Chain.problems()``) or ``"warning"``
    (it runs, but maybe not as meant: ``Chain.warnings()``, printed by ``chainette inspect``).
    """

    where: str
    message: str
    severity: str = "error"

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


class ChainWarning(UserWarning):
    """A chain that runs, but maybe not as meant (e.g. a schema the engine enforces only in
    part); issued by ``Chain.validate()`` and printed by ``chainette inspect`` / ``run``."""


class ChainValidationError(ChainetteError):
    """A chain failed validation; ``problems`` lists every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"chain has {len(self.problems)} problem(s):\n{lines}")


class InputError(ChainetteError):
    """An input file or row that cannot be used."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        where = ""
        if path is not None:
            where = f"{path}"
            if line is not None:
                where += f":{line}"
            if field:
                where += f" field '{field}'"
            where += ": "
        super().__init__(where + message)
        self.path = path
        self.line = line
        self.field = field


class ResumeError(ChainetteError):
    """A run cannot be resumed as asked."""


class EngineError(ChainetteError):
    """Anything that went wrong while talking to an LLM server."""

    retryable: bool = False
    stop: EngineStoppedError | None = None
    """set when this error stopped its engine for the run (a systemic fault): the run stops"""
    attempts: int
    """the HTTP attempts made, when the engine that raised it counted them (unset otherwise:
    read it with ``getattr(exc, "attempts", default)``)"""


class EngineConnectionError(EngineError):
    """The server could not be reached (refused, reset, DNS, gone); retried."""

    retryable = True


class ServerDisconnectedError(EngineConnectionError):
    """The server closed the connection before any byte of its reply."""


class HTTPProtocolError(EngineConnectionError):
    """The server's reply is not a well-formed HTTP/1.x response (the connection is dropped)."""


class EngineTimeoutError(EngineError):
    """No reply within the engine's ``timeout``; retried."""

    retryable = True


class EngineHTTPError(EngineError):
    """A non-2xx HTTP reply."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        retry_after: float | None = None,
        engine: str | None = None,
        code: str | None = None,
        param: str | None = None,
        should_retry: bool | None = None,
    ) -> None:
        super().__init__(message, engine=engine)
        self.status = status
        self.retry_after = retry_after
        self.code = code  # the provider's error code (e.g. OpenAI ``insufficient_quota``)
        self.param = param  # the request field the provider blames (e.g. ``response_format``)
        self.should_retry = should_retry  # the server's ``x-should-retry`` header, when sent
        self.retryable = status >= 500 or status in (408, 409, 429)
        if should_retry is not None:
            self.retryable = should_retry
        if code == "insufficient_quota":
            self.retryable = False  # waiting does not refill a quota


class RateLimitError(EngineHTTPError):
    """HTTP 429: the server asks us to slow down."""


class RefusalError(EngineError):
    """The model refused to answer."""


class EngineStoppedError(EngineError):
    """An engine hit a systemic fault (``kind``: auth, quota, schema, no-retry, redirect, unreachable);
    the run sends it nothing more and stops, resumable."""

    def __init__(self, message: str, *, kind: str, engine: str | None = None) -> None:
        super().__init__(message, engine=engine)
        self.kind = kind
        self.stop = self


class TruncatedCompletionError(EngineError):
    """The reply stopped at the token limit (``finish_reason``/``done_reason`` ``length``).

    Not retried: the same request at the same settings stops at the same place."""

    thinking_only: bool
    """set by the HTTP engines: whether the reply had reasoning but no content (unset otherwise)"""


class EmptyCompletionError(EngineError):
    """The server answered without any content."""

    retryable = True


class MalformedResponseError(EngineError):
    """The server answered 2xx with a body that is not the documented JSON shape."""

    retryable = True


class OutputValidationError(ChainetteError):
    """The model's reply was not valid JSON or did not fit the output schema."""


class ServerStartError(ChainetteError):
    """A managed server did not become ready."""

    def __init__(self, message: str, *, log_tail: str = "", engine: str | None = None) -> None:
        full = message if not log_tail else f"{message}\n--- server log (tail) ---\n{log_tail}"
        super().__init__(full, engine=engine)
        self.log_tail = log_tail


class ModelError(ChainetteError, FileNotFoundError):
    """A local engine's model is not a file, not a reachable ``hf://`` file, nor a named model
    that could be fetched. A ``FileNotFoundError`` too, so callers that only knew that still work."""

    def __init__(self, message: str, *, model: str | None = None, engine: str | None = None) -> None:
        super().__init__(message, engine=engine)
        self.model = model

    def __str__(self) -> str:
        return self.message


class ModelDownloadError(ModelError):
    """Fetching a model failed (index unreachable, checksum mismatch, interrupted download);
    nothing partial was kept."""


class ApplyError(ChainetteError):
    """An apply function raised (``original`` and ``__cause__`` hold its exception), or
    returned something that is not a list.

    Its error record is filed under the name of the apply's own exception
    (``"error_type": "ValueError"``), the name the user's code raised; an apply that broke
    the return contract is filed as ``ApplyError``.
    """

    def __init__(
        self,
        message: str,
        *,
        original: BaseException | None = None,
        node_id: str | None = None,
        row_id: str | None = None,
    ) -> None:
        super().__init__(message, node_id=node_id, row_id=row_id)
        self.original = original

    @classmethod
    def wrap(cls, exc: BaseException, *, node_id: str | None = None, row_id: str | None = None) -> ApplyError:
        """``exc``, raised by the apply ``node_id`` on row ``row_id``, as an ``ApplyError`` caused by it."""
        err = cls(str(exc) or type(exc).__name__, original=exc, node_id=node_id, row_id=row_id)
        err.__cause__ = exc
        return err

    @property
    def error_type(self) -> str:
        """The name an error record files this under (see the class docstring)."""
        return type(self.original).__name__ if self.original is not None else type(self).__name__


@dataclass
class ErrorRecord:
    """What is written to ``errors/*.jsonl`` for a row that failed at a step."""

    row_id: str
    step_id: str
    error_type: str
    message: str
    attempts: int = 1
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_exception(cls, exc: BaseException, *, row_id: str, step_id: str, attempts: int = 1) -> ErrorRecord:
        """The record of ``exc`` failing row ``row_id`` at ``step_id``: ``error_type`` is the
        exception's class name (an :class:`ApplyError` gives its apply's exception's name)."""
        error_type = exc.error_type if isinstance(exc, ApplyError) else type(exc).__name__
        return cls(
            row_id=row_id, step_id=step_id, error_type=error_type, message=str(exc) or error_type, attempts=attempts
        )

    def to_dict(self) -> dict:
        d = {
            "row_id": self.row_id,
            "step_id": self.step_id,
            "error_type": self.error_type,
            "message": self.message,
            "attempts": self.attempts,
        }
        d.update(self.extra)
        return d


# -- wording foreign errors -------------------------------------------------------------------
def describe_validation_error(exc: Any, *, limit: int | None = 5, known_fields: Any = None) -> str:
    """One line for a Pydantic ``ValidationError``: ``field.path: message`` per problem, joined
    by ``"; "``; a problem of the whole object has no path. At most ``limit`` problems, then
    ``"... N more"``. An unknown field reads ``unknown field 'x'``, naming the valid ones
    when ``known_fields`` is given. (Duck-typed: no Pydantic import here.)
    """
    errors = exc.errors(include_url=False)
    shown = errors if limit is None else errors[:limit]
    parts = []
    listed = False
    for err in shown:
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            valid = f" (valid fields: {', '.join(known_fields)})" if known_fields and not listed else ""
            listed = listed or bool(valid)
            parts.append(f"unknown field '{loc}'{valid}")
            continue
        if err["type"] == "value_error" and msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]  # a validator's own message, as it wrote it
        parts.append(f"{loc}: {msg}" if loc else msg)
    if len(errors) > len(shown):
        parts.append(f"... {len(errors) - len(shown)} more")
    return "; ".join(parts)


def describe_yaml_error(exc: Any, source: Any) -> str:
    """``source:line:column: invalid YAML: problem`` for a PyYAML ``YAMLError`` (line and column
    1-based, left out when PyYAML does not know them)."""
    mark = getattr(exc, "problem_mark", None)
    where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc)
    return f"{source}{where}: invalid YAML: {problem}"
