"""The item cache: shared across runs and run directories, bypassed with --no-cache, and
content-addressed so that editing one step's prompt re-requests only that step's rows and
the rows downstream. Requests are counted at the mock server's request log."""

from __future__ import annotations

import importlib.util
import json

import anyio

from chainette.core.context import build_context
from chainette.engine.registry import EngineConfig

from .conftest import assert_accounted, messages_hash, run_records

ROWS = 30


def _label_hashes(chain_path) -> set[str]:
    spec = importlib.util.spec_from_file_location(f"cache_chain_{id(chain_path)}", chain_path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    out = set()
    for i in range(ROWS):
        item = mod.Item(text=f"item number {i}")
        out.add(messages_hash(mod.label.render_messages(build_context(str(i), item, {"chain_input": item}))))
    return out


def test_cache_is_shared_bypassed_and_invalidated_per_step(workspace):
    ws = workspace(rows=ROWS)
    srv = ws.server

    def run(name: str, *extra: str) -> list[dict]:
        before = len(srv.requests())
        res = ws.run(ws.dir / name, "--quiet", *extra)
        assert res.returncode == 0, res.stderr
        assert_accounted(ws.dir / name, ROWS)
        return srv.requests()[before:]

    assert len(run("a")) == 2 * ROWS
    assert run("b") == []  # another run directory, same cache: nothing sent
    assert run_records(ws.dir / "b") == run_records(ws.dir / "a")
    meta = json.loads((ws.dir / "b" / "metadata.json").read_text())
    assert meta["steps"]["label"]["cached"] == ROWS and meta["steps"]["summary"]["cached"] == ROWS
    assert len(run("c", "--no-cache")) == 2 * ROWS  # bypassed

    labels = _label_hashes(ws.chain)
    ws.chain.write_text(ws.chain.read_text().replace("'Summarise ", "'Summarise briefly "))
    sent = run("d")
    assert len(sent) == ROWS and not {r["hash"] for r in sent} & labels  # only the edited step
    assert run_records(ws.dir / "d")["label"] == run_records(ws.dir / "a")["label"]

    ws.chain.write_text(ws.chain.read_text().replace("'Classify: ", "'Classify this: "))
    sent = run("e")
    assert len(sent) == 2 * ROWS  # the edited step and everything downstream of it


def test_cache_is_shared_between_cli_and_python_api(workspace):
    ws = workspace(rows=ROWS)
    res = ws.run(ws.dir / "cli", "--quiet")
    assert res.returncode == 0, res.stderr
    spec = importlib.util.spec_from_file_location("cache_chain_api", ws.chain)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    cfg = EngineConfig(name="mock", backend="vllm_api", endpoint=ws.server.url, model="mock", max_retries=1, timeout=5)
    before = len(ws.server.requests())
    rows = [json.loads(line) for line in ws.inputs.read_text().splitlines()]

    async def go():
        with anyio.fail_after(30):
            return await mod.chain.run_async(rows, ws.dir / "api", engines={"mock": cfg})

    result = anyio.run(go)
    assert not result.interrupted
    assert ws.server.requests()[before:] == []
    assert run_records(ws.dir / "api") == run_records(ws.dir / "cli")
