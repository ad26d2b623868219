"""Compatibility import path kept from the spec: the code lives in :mod:`chainette.run.async_executor`."""

from chainette.run.async_executor import AsyncExecutor

__all__ = ["AsyncExecutor"]
