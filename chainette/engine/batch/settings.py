"""``BatchSettings``: the ``batch:`` mapping of an engine in batch mode (``mode: batch``).

Defaults follow OpenAI's documented Batch API limits: an input file holds up to 50,000
requests and up to 200 MB, and ``completion_window`` is ``24h`` (the only value accepted).
A file is sent when it reaches ``max_requests`` or ``max_bytes``, or ``linger_s`` seconds
after its first request, whichever comes first. Polling starts at ``poll_initial_s`` and
backs off by ``poll_factor`` up to ``poll_max_s``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_REQUESTS_PER_FILE = 50_000
"""OpenAI Batch API: requests per input file."""
MAX_BYTES_PER_FILE = 200 * 1000 * 1000
"""OpenAI Batch API: bytes per input file (200 MB)."""
DEFAULT_MAX_BYTES = 190 * 1000 * 1000
"""Bytes per file we write by default: below the limit whatever MB means to the provider."""
BATCH_MAX_IN_FLIGHT = 10_000
"""``max_in_flight`` of an engine in batch mode when the config does not set it: the rows a run
keeps in flight (about 1.5x this) fill files of about this many requests. Raise it (up to
50,000) for fuller files; each row in flight holds memory and a worker of the run."""


class BatchSettings(BaseModel):
    """How an engine in batch mode groups, sends and waits for its requests."""

    model_config = ConfigDict(extra="forbid")

    max_requests: int = Field(default=MAX_REQUESTS_PER_FILE, ge=1)
    """requests per input file (OpenAI: at most 50,000)"""
    max_bytes: int = Field(default=DEFAULT_MAX_BYTES, ge=1024)
    """bytes per input file (OpenAI: at most 200 MB)"""
    linger_s: float = Field(default=10.0, ge=0)
    """send a file this long after its first request even if it is not full"""
    poll_initial_s: float = Field(default=10.0, gt=0)
    poll_max_s: float = Field(default=300.0, gt=0)
    poll_factor: float = Field(default=1.5, ge=1.0)
    completion_window: Literal["24h"] = "24h"
    reask: Literal["batch", "online"] = "batch"
    """where a re-ask of an invalid reply goes: a follow-up batch, or an online request
    (``online`` needs an endpoint that answers Chat Completions; a vLLM engine run offline
    always re-asks in a batch)"""
    requeue: int = Field(default=1, ge=0)
    """how many times a request left unfinished (expired, cancelled or failed batch, 5xx line)
    is put into a new batch before it becomes an error record"""
    max_live_batches: int | None = Field(default=None, ge=1)
    """batches of this engine submitted and not finished at once (``None``: no limit)"""
    discount: float | None = Field(default=None, gt=0, le=1)
    """batch price / online price (default: the price table's figure for the host, 0.5 for
    api.openai.com; 1 elsewhere)"""
