import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

from chainette import Branch, Chain, FakeEngine, RunWriter, Step, apply
from chainette.engine.protocol import CompletionRequest
from chainette.io.stream_writer import read_records
from chainette.utils.events import BatchFinished, EventBus, ItemFailed, RunFinished, RunStarted, StepTotalItems
from tests.core.models import Answer, Number, Question, Summary, Translation

REPO = Path(__file__).resolve().parents[2]


def step(id, inp, out, prompt, engine="fake", **kw):
    return Step(id, input_model=inp, output_model=out, engine_name=engine, user_prompt=prompt, **kw)


def run(chain, inputs, engine=None, **kw):
    return chain.run(inputs, engines={"fake": engine or FakeEngine()}, cache=False, **kw)


def questions(n):
    return [Question(text=f"q{i}") for i in range(n)]


def test_in_memory_results_in_input_order():
    chain = Chain("one", steps=[step("qa", Question, Answer, "Q: {{text}}")])
    result = run(chain, questions(20))
    assert [r.row_id for r in result["qa"]] == [str(i) for i in range(20)]
    assert all(isinstance(v, Answer) for v in result.values("qa"))
    assert result.step_stats["qa"].done == 20 and result.error_count == 0
    assert len(result.flattened) == 20 and result.flattened[3]["chain_input.text"] == "q3"


def test_branches_with_joins_feed_a_later_step_matched_by_row_id():
    seen = []

    def handler(req: CompletionRequest):
        user = req.messages[-1]["content"]
        if req.step_id == "qa":
            return {"answer": user.upper(), "confidence": 0.5}
        if req.step_id in ("fr", "es"):
            return {"translated": f"{req.step_id}:{user}"}
        seen.append((req.row_id, user))
        return {"summary": user}

    eng = FakeEngine(handler=handler, latency=0.001)
    qa = step("qa", Question, Answer, "{{text}}")
    fr = Branch("fr_branch", [step("fr", Answer, Translation, "{{answer}}")]).join("french")
    es = Branch("es_branch", [step("es", Answer, Translation, "{{answer}}")]).join("spanish")
    agg = step("agg", Answer, Summary, "{{french.translated}}|{{spanish.translated}}|{{row_id}}")
    result = run(Chain("joins", steps=[qa, [fr, es], agg]), questions(30), eng)
    assert result.error_count == 0
    for row_id, text in seen:
        i = int(row_id)
        assert text == f"fr:Q{i}|es:Q{i}|{row_id}"
    flat = {r["row_id"]: r for r in result.flattened}
    assert flat["7"]["french.translated"] == "fr:Q7" and flat["7"]["spanish.translated"] == "es:Q7"
    assert list(flat["7"]) == [
        "row_id",
        "chain_input.text",
        "qa.answer",
        "qa.confidence",
        "french.translated",
        "spanish.translated",
        "agg.summary",
    ]


def test_branches_run_concurrently():
    active = {"now": 0, "max": 0}

    async def handler(req):
        active["now"] += 1
        active["max"] = max(active["max"], active["now"])
        await anyio.sleep(0.05)
        active["now"] -= 1
        return {"translated": "x"}

    a = Branch("a", [step("ta", Question, Translation, "{{text}}")])
    b = Branch("b", [step("tb", Question, Translation, "{{text}}")])
    result = run(Chain("par", steps=[[a, b]]), questions(1), FakeEngine(handler=handler))
    assert active["max"] == 2
    assert result.step_stats["ta"].done == 1 and result.step_stats["tb"].done == 1


def test_non_joined_branch_outputs_are_written_but_not_merged(tmp_path):
    qa = step("qa", Question, Answer, "{{text}}")
    side = Branch("side", [step("side_step", Answer, Translation, "{{answer}}")])
    result = run(Chain("side", steps=[qa, [side]]), questions(5), output_dir=tmp_path)
    assert len(list(read_records(tmp_path / "side_step"))) == 5
    flat = list(read_records(tmp_path / "flattened"))
    assert len(flat) == 5 and not any(k.startswith("side_step") for k in flat[0])
    assert result.output_dir == tmp_path


def test_chain_starting_with_branches_and_nested_branches():
    inner = Branch("inner", [step("deep", Answer, Translation, "{{answer}}")]).join("deep_alias")
    outer = Branch(
        "outer",
        [step("o1", Question, Answer, "{{text}}"), [inner], step("o2", Answer, Summary, "{{deep_alias.translated}}")],
    ).join("outer_alias")
    other = Branch("other", [step("x", Question, Answer, "{{text}}")])
    final = step("final", Question, Summary, "{{outer_alias.summary}} {{text}}")
    result = run(Chain("nested", steps=[[outer, other], final]), questions(6))
    assert result.error_count == 0
    assert {s: result.step_stats[s].done for s in ("o1", "deep", "o2", "x", "final")} == dict.fromkeys(
        ("o1", "deep", "o2", "x", "final"), 6
    )
    assert "outer_alias.summary" in result.flattened[0]


def test_fan_out_then_filter_gives_derived_ids_and_inherited_history():
    def explode(q: Question) -> list[Number]:
        i = int(q.text[1:])
        return [Number(value=i * 10 + k) for k in range(3)]

    def keep_even(n: Number) -> list[Number]:
        return [n] if n.value % 2 == 0 else []

    check = step("check", Number, Summary, "{{value}} from {{chain_input.text}} row {{row_id}}")
    result = run(Chain("fan", steps=[apply(explode), apply(keep_even), check]), questions(4))
    ids = [r.row_id for r in result["check"]]
    assert ids == ["0.0", "0.2", "1.0", "1.2", "2.0", "2.2", "3.0", "3.2"]
    assert [r.row_id for r in result["explode"]][:3] == ["0.0", "0.1", "0.2"]
    assert result.flattened[1]["keep_even.value"] == 2 and result.flattened[1]["chain_input.text"] == "q0"
    assert result.step_stats["keep_even"].done == 12


def test_failing_rows_become_error_records_and_the_rest_complete(tmp_path):
    def handler(req):
        if req.row_id == "3":
            from chainette.errors import EngineHTTPError

            raise EngineHTTPError("boom", status=500)
        return {"answer": "ok", "confidence": 1.0}

    def explode_on_5(a: Answer):
        raise ValueError("bad row") if False else None

    def boom(a: Answer) -> list[Answer]:
        if a.answer == "ok" and boom.calls == 5:
            boom.calls += 1
            raise ValueError("apply failed here")
        boom.calls += 1
        return [a]

    boom.calls = 0
    after = step("after", Answer, Summary, "{{answer}}")
    chain = Chain("errs", steps=[step("qa", Question, Answer, "{{text}}"), apply(boom), after])
    eng = FakeEngine(handler=lambda r: handler(r) if r.step_id == "qa" else {"summary": "s"})
    result = run(chain, questions(10), eng, output_dir=tmp_path)
    errors = list(read_records(tmp_path / "errors"))
    by_step = {e["step_id"]: e for e in errors}
    assert by_step["qa"]["row_id"] == "3" and by_step["qa"]["error_type"] == "EngineHTTPError"
    assert by_step["boom"]["error_type"] == "ValueError" and "apply failed here" in by_step["boom"]["message"]
    assert set(by_step["qa"]) >= {"row_id", "step_id", "error_type", "message", "attempts"}
    assert len(list(read_records(tmp_path / "after"))) == 8
    assert result.step_stats["after"].reached == 8


def test_invalid_json_is_re_asked_then_becomes_an_error_record():
    calls = {}

    def handler(req):
        n = calls[req.row_id] = calls.get(req.row_id, 0) + 1
        if req.row_id == "0":
            return "not json at all"
        if req.row_id == "1" and n == 1:
            return '{"answer": 5}'
        return '```json\n{"answer": "x", "confidence": 0.1}\n```'

    chain = Chain("retry", steps=[step("qa", Question, Answer, "{{text}}", max_validation_retries=2)])
    result = run(chain, questions(3), FakeEngine(handler=handler))
    assert calls == {"0": 3, "1": 2, "2": 1}
    assert [r.row_id for r in result["qa"]] == ["1", "2"]
    err = result.errors[0]
    assert err["row_id"] == "0" and err["error_type"] == "OutputValidationError" and err["attempts"] == 3


def test_in_flight_limit_is_shared_across_steps_and_branches():
    active = {"now": 0, "max": 0}

    async def handler(req):
        active["now"] += 1
        active["max"] = max(active["max"], active["now"])
        await anyio.sleep(0.002)
        active["now"] -= 1
        return {"translated": "t"} if req.step_id != "qa" else {"answer": "a", "confidence": 0.0}

    eng = FakeEngine(handler=handler, max_in_flight=7)
    b1 = Branch("b1", [step("t1", Answer, Translation, "{{answer}}")])
    b2 = Branch("b2", [step("t2", Answer, Translation, "{{answer}}")])
    result = run(Chain("lim", steps=[step("qa", Question, Answer, "{{text}}"), [b1, b2]]), questions(60), eng)
    assert result.error_count == 0
    assert active["max"] == 7


def test_stream_writer_layout_rolling_and_metadata(tmp_path):
    chain = Chain("roll", steps=[step("qa", Question, Answer, "{{text}}")])
    run(chain, questions(25), output_dir=tmp_path, max_lines_per_file=10)
    files = sorted(p.name for p in (tmp_path / "qa").iterdir())
    assert files == ["000.jsonl", "001.jsonl", "002.jsonl"]
    assert sorted(p.name for p in (tmp_path / "flattened").iterdir()) == files
    lines = (tmp_path / "qa" / "000.jsonl").read_text().splitlines()
    assert len(lines) == 10 and set(json.loads(lines[0])) == {"row_id", "answer", "confidence"}
    meta = json.loads((tmp_path / "metadata.json").read_text())
    assert meta["status"] == "completed" and meta["rows_in"] == 25
    assert meta["steps"]["qa"]["outputs"] == 25 and meta["steps"]["qa"]["errors"] == 0
    assert meta["chain_name"] == "roll" and "pydantic" in meta["versions"] and meta["ended_at"]
    graph = json.loads((tmp_path / "graph.json").read_text())
    assert graph["nodes"][0]["id"] == "qa"


def test_recorded_versions_are_the_installed_packages_own(tmp_path):
    import platform
    from importlib import metadata

    from chainette.io.stream_writer import _VERSIONED, package_versions

    chain = Chain("ver", steps=[step("qa", Question, Answer, "{{text}}")])
    run(chain, questions(2), output_dir=tmp_path)
    recorded = json.loads((tmp_path / "metadata.json").read_text())["versions"]
    expected = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            expected[name] = metadata.version(name)  # the standard library's full metadata parser
        except metadata.PackageNotFoundError:
            pass
    assert recorded == expected
    package_versions()["pydantic"] = "changed by a caller"
    assert package_versions() == expected, "each caller gets its own copy of the looked-up versions"


def test_existing_run_directory_is_protected(tmp_path):
    from chainette.errors import ConfigError

    chain = Chain("p", steps=[step("qa", Question, Answer, "{{text}}")])
    run(chain, questions(2), output_dir=tmp_path)
    with pytest.raises(ConfigError, match="already holds a run"):
        run(chain, questions(2), output_dir=tmp_path)
    run(chain, questions(3), output_dir=tmp_path, force=True)
    assert len(list(read_records(tmp_path / "qa"))) == 3


def test_parquet_round_trip(tmp_path):
    chain = Chain("pq", steps=[step("qa", Question, Answer, "{{text}}")])
    run(chain, questions(12), output_dir=tmp_path, fmt="parquet", max_lines_per_file=5)
    assert sorted(p.name for p in (tmp_path / "qa").iterdir()) == ["000.parquet", "001.parquet", "002.parquet"]
    rows = list(read_records(tmp_path / "qa"))
    assert len(rows) == 12
    assert {r["row_id"] for r in rows} == {str(i) for i in range(12)}
    assert all(isinstance(Answer.model_validate({k: v for k, v in r.items() if k != "row_id"}), Answer) for r in rows)
    flat = list(read_records(tmp_path / "flattened"))
    assert flat[0]["chain_input.text"].startswith("q")


def test_run_writer_returns_and_saves_a_datasetdict(tmp_path):
    chain = Chain("ds", steps=[step("qa", Question, Answer, "{{text}}"), step("sum", Answer, Summary, "{{answer}}")])
    result = run(chain, questions(4), writer=RunWriter(tmp_path))
    assert set(result.datasets) == {"qa", "sum"}
    assert result.datasets["qa"].num_rows == 4
    from datasets import load_from_disk

    assert load_from_disk(str(tmp_path / "datasets"))["sum"].num_rows == 4


def test_run_iter_and_run_async_stream_results():
    from chainette import AsyncExecutor, Executor

    chain = Chain("it", steps=[step("qa", Question, Answer, "{{text}}")])
    batches = list(Executor(chain, engines={"fake": FakeEngine()}, cache=False, batch_size=8).run_iter(questions(40)))
    assert sum(len(b) for b in batches) == 40 and len(batches) >= 2
    assert sorted(r.index for b in batches for r in b) == list(range(40))

    async def go():
        return await chain.run_async(questions(5), engines={"fake": FakeEngine()}, cache=False)

    assert len(anyio.run(go).flattened) == 5

    async def go_iter():
        n = 0
        async for batch in AsyncExecutor(chain, engines={"fake": FakeEngine()}, cache=False).run_iter(questions(9)):
            n += len(batch)
        return n

    assert anyio.run(go_iter) == 9


def test_events_are_published():
    bus = EventBus()
    events = []
    bus.subscribe(events.append)

    def handler(req):
        if req.row_id == "1":
            from chainette.errors import EngineHTTPError

            raise EngineHTTPError("nope", status=500)
        return {"answer": "a", "confidence": 1}

    chain = Chain("ev", steps=[step("qa", Question, Answer, "{{text}}")])
    chain.run(questions(5), engines={"fake": FakeEngine(handler=handler)}, cache=False, events=bus, total=5)
    kinds = [type(e) for e in events]
    assert kinds[0] is RunStarted and kinds[-1] is RunFinished
    assert any(isinstance(e, ItemFailed) and e.row_id == "1" for e in events)
    finished = [e for e in events if isinstance(e, BatchFinished) and e.step_id == "qa"]
    assert sum(e.count for e in finished) == 5 and sum(e.errors for e in finished) == 1
    assert max(e.total for e in events if isinstance(e, StepTotalItems)) == 5


def test_dict_inputs_are_validated_and_bad_rows_recorded():
    chain = Chain("in", steps=[step("qa", Question, Answer, "{{text}}")])
    result = run(chain, [{"text": "a"}, {"txt": "b"}, {"text": "c"}])
    assert [r.row_id for r in result["qa"]] == ["0", "2"]
    assert result.errors[0]["step_id"] == "chain_input" and "text" in result.errors[0]["message"]


def test_flattened_output_identical_under_different_hash_seeds(tmp_path):
    script = textwrap.dedent("""
        import sys
        from chainette import Branch, Chain, FakeEngine, Step, apply
        from tests.core.models import Answer, Question, Summary, Translation
        def s(i, a, b, p): return Step(i, input_model=a, output_model=b, engine_name="fake", user_prompt=p)
        def fan(a): return [a, a]
        chain = Chain("det", steps=[s("qa", Question, Answer, "{{text}}"),
            [Branch("fr", [s("fr_s", Answer, Translation, "fr {{answer}}")]).join("fr"),
             Branch("es", [s("es_s", Answer, Translation, "es {{answer}}")]).join("es")],
            apply(fan), s("sum", Answer, Summary, "{{fr.translated}} {{es.translated}}")])
        chain.run([Question(text=f"q{i}") for i in range(50)], sys.argv[1], engines={"fake": FakeEngine()}, cache=False)
    """)
    outs = []
    for seed in ("1", "12345"):
        out = tmp_path / f"run{seed}"
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run([sys.executable, "-c", script, str(out)], cwd=REPO, env=env, check=True)
        outs.append((out / "flattened" / "000.jsonl").read_bytes())
    assert outs[0] == outs[1] and outs[0].count(b"\n") == 100
