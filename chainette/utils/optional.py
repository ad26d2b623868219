"""Optional dependencies: import one, or say which extra brings it.

``require("pyarrow.parquet", extra="parquet", feature="reading Parquet files")`` returns the
module, or raises :class:`~chainette.errors.ConfigError` with the ``pip install
'chainette[parquet]'`` line that fixes it. The extras are listed in the README.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from chainette.errors import ConfigError


def require(module: str, *, extra: str, feature: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        package = (exc.name or module).split(".")[0]
        raise ConfigError(f"{feature} needs the '{package}' package: pip install 'chainette[{extra}]'") from None
