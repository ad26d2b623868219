"""The live display's counters and rendering; secret redaction in error messages."""

from __future__ import annotations

import io

from rich.console import Console

from chainette.cli_support.live import JsonLogs, RunProgress
from chainette.utils.events import BatchFinished, ItemFailed, RunFinished, RunStarted, StepTotalItems


def render(obj) -> str:
    buf = io.StringIO()
    Console(file=buf, width=120, color_system=None).print(obj)
    return buf.getvalue()


def test_progress_counts_and_renders():
    p = RunProgress()
    p(RunStarted("r1", "c", "out", 10, ["a", "b"]))
    p(StepTotalItems("a", 4))
    p(BatchFinished("a", 4, errors=1, prompt_tokens=100, completion_tokens=20))
    p(ItemFailed("a", "3", "OutputValidationError", "bad json"))
    st = p.steps["a"]
    assert (st.reached, st.finished, st.errors, st.prompt_tokens + st.completion_tokens) == (4, 4, 1, 120)
    text = render(p)
    assert "4/10" in text and "120" in text and "bad json" in text and "/s" in text
    p(RunFinished("r1", 1.0, 10, {}, "out"))
    assert "done" in render(p)


def test_json_logs_write_one_line_per_event():
    buf = io.StringIO()
    logs = JsonLogs(buf)
    logs(StepTotalItems("a", 3))
    logs(BatchFinished("a", 3))
    lines = buf.getvalue().splitlines()
    assert len(lines) == 2 and '"event": "StepTotalItems"' in lines[0]


def test_redact_masks_registered_keys_and_env(monkeypatch):
    from chainette.cli_support.errors import redact
    from chainette.engine.registry import register_engine

    register_engine(name="sec", backend="openai", model="m", api_key="sk-registered-key-123")
    monkeypatch.setenv("MY_SERVICE_API_KEY", "env-secret-456789")
    out = redact("failed with sk-registered-key-123 and env-secret-456789")
    assert out == "failed with *** and ***"
