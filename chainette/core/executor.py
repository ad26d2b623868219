"""Compatibility import path kept from the spec: the code lives in :mod:`chainette.run.executor`."""

from chainette.run.executor import Executor

__all__ = ["Executor"]
