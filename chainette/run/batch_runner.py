"""``BatchRunner`` (``chain.run(..., runner="batch")``): the local runner, every engine in batch mode.

Each engine of the chain that can run in batch mode (``backend: openai``, a managed
``vllm_api``) is switched to ``mode: batch`` for this run (see :mod:`chainette.run.batch_mode`
and docs/batch.md); engines that cannot, and engine instances passed in ``engines=``, run as
they are.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chainette.engine.registry import EngineConfig, get_engine_config, has_engine
from chainette.run.batch_mode import in_batch_mode
from chainette.run.local import LocalRunner

if TYPE_CHECKING:
    from chainette.core.chain import Chain
    from chainette.core.result import RunResult

__all__ = ["BatchRunner"]


class BatchRunner:
    """The local runner with every engine of the chain that can (openai, managed vllm_api) in
    batch mode; engine instances passed in ``engines=`` are kept as they are."""

    def _options(self, chain: Chain, options: dict[str, Any]) -> dict[str, Any]:
        engines = dict(options.get("engines") or {})
        for name in chain.engine_names():
            given = engines.get(name)
            if given is None and has_engine(name):
                given = get_engine_config(name)
            if isinstance(given, EngineConfig):
                engines[name] = in_batch_mode(given)
        return {**options, "engines": engines}

    def run(
        self, chain: Chain, inputs: Iterable[Any], output_dir: str | Path | None = None, **options: Any
    ) -> RunResult:
        return LocalRunner().run(chain, inputs, output_dir, **self._options(chain, options))

    async def run_async(
        self,
        chain: Chain,
        inputs: Iterable[Any] | AsyncIterable[Any],
        output_dir: str | Path | None = None,
        **options: Any,
    ) -> RunResult:
        return await LocalRunner().run_async(chain, inputs, output_dir, **self._options(chain, options))
