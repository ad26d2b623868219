"""``RunWriter``: a StreamWriter that also builds a ``datasets.DatasetDict`` (one split per step)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from chainette.io.stream_writer import StreamWriter
from chainette.utils.ids import snake_case

if TYPE_CHECKING:
    from chainette.core.result import RunResult


class RunWriter(StreamWriter):
    """Stream to the run directory, then save ``<output_dir>/datasets`` as a DatasetDict."""

    def __init__(self, output_dir: str | Path, **kwargs: Any) -> None:
        super().__init__(output_dir, **kwargs)
        self.datasets: Any = None

    def close(self, result: "RunResult") -> None:
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
        self.datasets.save_to_disk(str(self.output_dir / "datasets"))
        result.datasets = self.datasets
