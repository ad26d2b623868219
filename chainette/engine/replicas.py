"""Several managed servers of one engine (``replicas: N``): one config per server.

Replica ``i`` of engine ``gen`` is engine ``gen-r<i>`` to the server pool (its own process, log
``servers/gen-r<i>.log``, port ``port + i`` when ``port`` is set) and gets the ``i``-th equal share
of ``gpu_ids`` (so ``tensor_parallel_size`` defaults to the share's size). The run then spreads
requests over their endpoints like an engine with ``endpoints`` (``engine/multi_endpoint.py``).

This is vLLM's "external load balancing" data-parallel layout (one server per data-parallel rank,
a router in front); ``extra_serve_flags: [--data-parallel-size, N]`` on a single managed engine is
its "internal load balancing" layout (one endpoint). docs/scale.md says which to use when.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chainette.engine.registry import EngineConfig


def replica_configs(cfg: EngineConfig) -> list[EngineConfig]:
    """The config of each replica of ``cfg`` (``[cfg]`` when it has one)."""
    n = getattr(cfg, "replicas", 1)
    if n <= 1:
        return [cfg]
    gpus = cfg.gpu_ids or []
    share = len(gpus) // n if gpus else 0
    return [
        cfg.model_copy(
            update={
                "name": f"{cfg.name}-r{i}",
                "replicas": 1,
                "gpu_ids": gpus[i * share : (i + 1) * share] if share else cfg.gpu_ids,
                "port": cfg.port + i if cfg.port else None,
            }
        )
        for i in range(n)
    ]
