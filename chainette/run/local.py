"""``LocalRunner``: runs a chain in this process (the default runner of ``Chain.run``)."""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chainette.run.async_executor import AsyncExecutor
from chainette.run.executor import Executor

if TYPE_CHECKING:
    from chainette.core.chain import Chain
    from chainette.core.result import RunResult

EXECUTOR_OPTIONS = ("batch_size", "engines", "events", "cache")
"""Options that configure the executor; every other option goes to its ``run``."""


def split_options(chain: Chain, options: dict[str, Any]) -> dict[str, Any]:
    """Take the executor's options out of ``options`` (the rest are the run's)."""
    out = {k: options.pop(k) for k in EXECUTOR_OPTIONS if k in options}
    out.setdefault("batch_size", chain.batch_size)
    return out


class LocalRunner:
    """One process, one event loop: the async executor over the chain's engines."""

    def run(
        self, chain: Chain, inputs: Iterable[Any], output_dir: str | Path | None = None, **options: Any
    ) -> RunResult:
        return Executor(chain, **split_options(chain, options)).run(inputs, output_dir, **options)

    async def run_async(
        self,
        chain: Chain,
        inputs: Iterable[Any] | AsyncIterable[Any],
        output_dir: str | Path | None = None,
        **options: Any,
    ) -> RunResult:
        return await AsyncExecutor(chain, **split_options(chain, options)).run(inputs, output_dir, **options)
