"""The writers, by the spec's import path (``from chainette.io.writer import RunWriter``).

* :class:`MemoryWriter` keeps everything in memory (``Chain.run`` without ``output_dir``).
* :class:`StreamWriter` streams to a run directory (the default with ``output_dir``).
* :class:`RunWriter` is a StreamWriter that also returns and saves a ``datasets.DatasetDict``
  with one split per step.
* :class:`Writer` is the interface they implement, :class:`RunInfo` what they are told.
"""

from chainette.io.base_writer import MemoryWriter, RunInfo, Writer
from chainette.io.run_writer import RunWriter
from chainette.io.stream_writer import StreamWriter

__all__ = ["MemoryWriter", "RunInfo", "RunWriter", "StreamWriter", "Writer"]
