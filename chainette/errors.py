"""Chainette's error tree. Every error Chainette raises derives from ``ChainetteError``.

```
ChainetteError
├── ConfigError              bad engine config, unknown engine, bad YAML, bad module:attr
│   └── UnknownEngineError
├── ChainValidationError     every problem of a chain at once (``.problems``)
├── InputError               a bad input row or unreadable input file (file, line, field)
├── ResumeError              resuming a run whose chain or inputs changed
├── EngineError              anything that went wrong talking to an LLM server
│   ├── EngineConnectionError   connection refused / reset, DNS, server gone
│   ├── EngineTimeoutError      request exceeded its timeout
│   ├── EngineHTTPError         non-2xx reply (``.status``, ``.retry_after``)
│   │   └── RateLimitError      HTTP 429
│   ├── RefusalError            the model refused (OpenAI ``refusal``)
│   └── EmptyCompletionError    the reply had no content
├── OutputValidationError    the reply was not valid JSON or did not fit the schema
├── ServerStartError         a managed server failed to start (``.log_tail``)
├── ModelError               a local GGUF model that cannot be had (``.model``); also a FileNotFoundError
│   └── ModelDownloadError      fetching it failed: index unreachable, checksum mismatch, interrupted
└── ApplyError               an exception raised inside an apply function
```

Errors carry context (``node_id``, ``row_id``, ``engine``) so that an error record
written to ``errors/`` says where it happened. Foreign exceptions are translated at
the edge with ``raise ... from exc``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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


@dataclass(frozen=True)
class Problem:
    """One problem found by chain validation."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


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


class EngineConnectionError(EngineError):
    retryable = True


class EngineTimeoutError(EngineError):
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
    ) -> None:
        super().__init__(message, engine=engine)
        self.status = status
        self.retry_after = retry_after
        self.retryable = status >= 500 or status in (408, 409, 429)


class RateLimitError(EngineHTTPError):
    """HTTP 429: the server asks us to slow down."""


class RefusalError(EngineError):
    """The model refused to answer."""


class EmptyCompletionError(EngineError):
    """The server answered without any content."""

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
    """An apply function raised."""


@dataclass
class ErrorRecord:
    """What is written to ``errors/*.jsonl`` for a row that failed at a step."""

    row_id: str
    step_id: str
    error_type: str
    message: str
    attempts: int = 1
    extra: dict = field(default_factory=dict)

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
