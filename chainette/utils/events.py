"""Compatibility import path kept from the spec: the code lives in :mod:`chainette.events`."""

from chainette.events import Event, RunStarted, StepTotalItems, BatchFinished, ItemFailed, EngineRetry, ServerStarting, ServerReady, ServerStopped, RunFinished, EventBus, bus

__all__ = ["Event", "RunStarted", "StepTotalItems", "BatchFinished", "ItemFailed", "EngineRetry", "ServerStarting", "ServerReady", "ServerStopped", "RunFinished", "EventBus", "bus"]
