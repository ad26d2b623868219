"""Regressions found while writing the examples."""

from chainette import Branch, Chain, FakeEngine, Step, apply
from chainette.core.row import SKIPPED
from chainette.io.stream_writer import read_records
from tests.core.models import Answer, Number, Question, Summary


def test_lone_branch_in_steps_runs_validates_and_appears_in_graph():
    def inc(n: Number) -> list[Number]:
        return [Number(value=n.value + 1)]

    def dec(n: Number) -> list[Number]:
        return [Number(value=n.value - 1)]

    chain = Chain("r", steps=[apply(inc), Branch("b", [apply(dec)]).join("j")])
    result = chain.run([{"value": 1}], cache=False)
    assert result.errors == [] and result.flattened[0]["j.value"] == 1
    assert "dec" in [n["id"] for n in chain.graph.to_dict()["nodes"]]
    dsl = apply(inc) >> Branch("b2", [apply(dec, id="dec2")]).join("j2")
    assert Chain("dsl", steps=dsl).run([{"value": 5}], cache=False).flattened[0]["j2.value"] == 5


def test_apply_reads_its_input_model_from_the_parameter_annotation():
    def double(n: Number) -> list[Number]:
        return [Number(value=n.value * 2)]

    node = apply(double)
    assert node.input_model is Number
    result = Chain("a", steps=[node]).run([{"value": 4}, {"value": "x"}], cache=False)
    assert result.values("double") == [Number(value=8)]
    assert result.errors[0]["step_id"] == "chain_input"


def test_error_rate_counts_failed_rows_and_filters_write_nothing():
    def keep_odd(n: Number) -> list[Number]:
        return [n] if n.value % 2 else []

    def explode(n: Number) -> list[Number]:
        raise ValueError("no")

    group = [Branch("x", [apply(explode)]), Branch("y", [apply(explode, id="explode2")])]
    result = Chain("e", steps=[apply(keep_odd), group]).run([{"value": i} for i in range(4)], cache=False)
    assert result.error_count == 4  # two branches fail on each of the two odd rows
    assert result.failed_rows == 2 and result.error_rate == 0.5
    st = result.step_stats["keep_odd"]
    assert (st.reached, st.done, st.outputs) == (4, 4, 2)


def test_parquet_keeps_columns_missing_from_the_first_row(tmp_path):
    def maybe(a: Answer) -> list[Answer]:
        return [a]

    def handler(req):
        return {"answer": req.row_id, "confidence": 0.5}

    retry = Branch(
        "retry", [Step("again", input_model=Answer, output_model=Summary, engine_name="fake", user_prompt="{{answer}}")]
    ).join("retry")

    def only_odd(a: Answer) -> list[Answer]:
        return [a] if int(a.answer) % 2 else []

    chain = Chain(
        "pq",
        steps=[
            Step("qa", input_model=Question, output_model=Answer, engine_name="fake", user_prompt="{{text}}"),
            [Branch("retry", [apply(only_odd), retry.steps[0]]).join("retry")],
        ],
    )
    chain.run(
        [Question(text=str(i)) for i in range(4)],
        tmp_path,
        engines={"fake": FakeEngine(handler=lambda r: handler(r) if r.step_id == "qa" else {"summary": "s"})},
        cache=False,
        fmt="parquet",
    )
    flat = {r["row_id"]: r for r in read_records(tmp_path / "flattened")}
    assert flat["0"].get("retry") is None and flat["1"]["retry.summary"] == "s"


def test_skipped_inputs_keep_the_following_row_ids():
    chain = Chain(
        "s", steps=[Step("qa", input_model=Question, output_model=Answer, engine_name="fake", user_prompt="{{text}}")]
    )
    result = chain.run([Question(text="a"), SKIPPED, Question(text="c")], engines={"fake": FakeEngine()}, cache=False)
    assert [r.row_id for r in result["qa"]] == ["0", "2"] and result.rows_in == 3 and result.errors == []
