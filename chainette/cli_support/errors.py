"""Top-level error handling for the CLI: one clear message, no traceback, no secret.

``with user_errors(debug):`` turns Chainette errors and common OS errors into a single
red line on stderr and exit code 1; ``--debug`` (or ``CHAINETTE_DEBUG=1``) re-raises so
the traceback shows. Messages pass through :func:`redact`, which masks every registered
engine's API key and the values of well-known secret environment variables.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer

if sys.version_info < (3, 11):  # pragma: no cover - anyio installs the backport there
    from exceptiongroup import BaseExceptionGroup

EXIT_OK = 0
EXIT_USER_ERROR = 1
EXIT_ERROR_RATE = 3
EXIT_BUDGET = 4
"""``--max-cost`` / ``--max-tokens`` stopped the run (resumable: raise the cap and ``--resume``)."""
EXIT_STOPPED = 5
"""an engine's systemic fault or the error guard stopped the run (resumable)"""
EXIT_INTERRUPTED = 130

_SECRET_ENV_SUFFIXES = ("_API_KEY", "_TOKEN", "_SECRET", "_PASSWORD")


def _secrets() -> list[str]:
    values: set[str] = set()
    for key, value in os.environ.items():
        if key.upper().endswith(_SECRET_ENV_SUFFIXES) and len(value) >= 6:
            values.add(value)
    if "chainette.engine.registry" in sys.modules:
        from chainette.engine.registry import registered_engines

        for cfg in registered_engines():
            try:
                api_key = cfg.resolved_api_key()
            except Exception:  # pragma: no cover - defensive
                api_key = None
            if api_key and len(api_key) >= 4:
                values.add(api_key)
            values.update(v for v in cfg.extra_env.values() if len(v) >= 6)
    return sorted(values, key=len, reverse=True)


def redact(text: str) -> str:
    """Replace known secret values in ``text`` with ``***``."""
    for secret in _secrets():
        if secret in text:
            text = text.replace(secret, "***")
    return text


def _unwrap(exc: BaseException) -> BaseException:
    """The first leaf of (possibly nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _message(exc: BaseException) -> str | None:
    """A user-facing message for ``exc``, or ``None`` when it is a bug (show the traceback)."""
    from chainette.errors import ChainetteError

    if isinstance(exc, ChainetteError):
        return str(exc)
    if isinstance(exc, FileNotFoundError):
        return f"{exc.filename or exc}: no such file or directory; check the path"
    if isinstance(exc, PermissionError):
        return f"{exc.filename or exc}: permission denied; check the file permissions or choose another path"
    if isinstance(exc, IsADirectoryError):
        return f"{exc.filename or exc}: is a directory, expected a file"
    if isinstance(exc, NotADirectoryError):
        return f"{exc.filename or exc}: a parent of this path is a file, expected a directory"
    if isinstance(exc, OSError) and exc.errno == 28:
        return "no space left on device; free some disk space or choose another --output-dir"
    if isinstance(exc, ImportError):
        return f"{exc}; install the missing package (see the docs for the optional extras)"
    return None


def print_error(message: str) -> None:
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True, highlight=False, soft_wrap=True).print(f"[bold red]Error:[/] {escape(redact(message))}")


def is_debug(debug: bool = False) -> bool:
    return debug or os.environ.get("CHAINETTE_DEBUG", "") not in ("", "0", "false")


@contextmanager
def user_errors(debug: bool = False) -> Iterator[None]:
    """Print user errors as one line and exit 1; show tracebacks only with ``--debug``."""
    try:
        yield
    except (typer.Exit, typer.Abort, SystemExit):
        raise
    except KeyboardInterrupt:
        print_error("interrupted")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except BrokenPipeError:  # `chainette ... | head`: stop quietly
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        raise typer.Exit(EXIT_USER_ERROR) from None
    except BaseException as exc:
        leaf = _unwrap(exc)
        if isinstance(leaf, KeyboardInterrupt):
            print_error("interrupted")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        message = _message(leaf)
        if is_debug(debug):
            raise
        if message is None:
            message = f"unexpected {type(leaf).__name__}: {leaf} (run again with --debug for the traceback)"
        print_error(message)
        raise typer.Exit(EXIT_USER_ERROR) from None
