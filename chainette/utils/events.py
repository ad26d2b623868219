"""Compatibility import path kept from the spec: the code lives in :mod:`chainette.events`."""

from chainette.events import (
    BatchFinished,
    EngineRetry,
    Event,
    EventBus,
    ItemFailed,
    RunFinished,
    RunStarted,
    ServerReady,
    ServerStarting,
    ServerStopped,
    StepTotalItems,
    bus,
)

__all__ = [
    "Event",
    "RunStarted",
    "StepTotalItems",
    "BatchFinished",
    "ItemFailed",
    "EngineRetry",
    "ServerStarting",
    "ServerReady",
    "ServerStopped",
    "RunFinished",
    "EventBus",
    "bus",
]
