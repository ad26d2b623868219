"""``RunWriter``: a StreamWriter that also builds a ``datasets.DatasetDict`` (one split per step)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from chainette.io.stream_writer import StreamWriter
from chainette.utils.ids import snake_case
from chainette.utils.paths import confined

if TYPE_CHECKING:
    from chainette.core.result import RunResult


class RunWriter(StreamWriter):
    """Stream to the run directory, then save ``<output_dir>/datasets`` as a DatasetDict."""

    def __init__(self, output_dir: str | Path, **kwargs: Any) -> None:
        super().__init__(output_dir, **kwargs)
        if self.fmt == "csv":
            from chainette.errors import ConfigError

            raise ConfigError(
                "the datasets writer keeps each field's type: use format jsonl or parquet with it (CSV cells are text)"
            )
        self.datasets: Any = None

    def finalize(self, result: RunResult | None = None) -> Any:
        """Finish the run directory and return the ``DatasetDict`` (the writer contract)."""
        self.close(result)
        return self.datasets

    def close(self, result: RunResult | None = None) -> None:
        if result is None:
            from chainette.io.record_writer import result_placeholder

            result = result_placeholder(self._run, self.output_dir)
        super().close(result)
        try:
            from datasets import Dataset, DatasetDict
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("RunWriter needs the 'datasets' package: pip install 'chainette[datasets]'") from exc
        splits = {}
        for step_id in self.step_dirs():
            rows = list(self.iter_records(step_id))
            if rows:
                splits[snake_case(step_id)] = Dataset.from_list(rows)
        self.datasets = DatasetDict(splits)
        self.datasets.save_to_disk(str(confined(self.output_dir, "datasets")))
        result.datasets = self.datasets
