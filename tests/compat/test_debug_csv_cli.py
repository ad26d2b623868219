"""Items 4, 6 and 7 of issue #13: debug mode (rendered messages and raw replies of the first
rows of each step, secrets masked), the original's CLI forms, and CSV output."""

from __future__ import annotations

import csv
import json
import warnings

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from chainette import Branch, Chain, FakeEngine, Step, register_engine
from chainette.engine.registry import unregister_engine
from chainette.events import EventBus
from chainette.run.debug import StepDebug, mask

SECRET = "sk-testsecret0123456789abcdef"


class Item(BaseModel):
    text: str


class Info(BaseModel):
    label: str
    tags: list[str]
    meta: dict


def _chain(prompt="Classify {{ text }}"):
    return Chain(
        "dbg",
        steps=[
            Step("label", input_model=Item, output_model=Info, engine_name="fake", user_prompt=prompt),
            [
                Branch(
                    "side",
                    [Step("side_info", output_model=Info, engine_name="fake", user_prompt="Again {{ label.label }}")],
                )
            ],
        ],
    )


def _engine():
    return FakeEngine(
        "fake",
        handler=lambda req: {
            "label": f"L{req.row_id} {SECRET}",
            "tags": ["a", "b"],
            "meta": {"k": 1, "nested": [1, 2]},
        },
    )


def test_debug_shows_messages_and_raw_replies_of_the_first_rows_of_each_step(capsys):
    bus = EventBus()
    seen: list[StepDebug] = []
    bus.subscribe(lambda e: seen.append(e) if isinstance(e, StepDebug) else None)
    _chain(prompt="Classify {{ text }} with key " + SECRET).run(
        [{"text": f"t{i}"} for i in range(6)], engines={"fake": _engine()}, events=bus, cache=False, debug=2
    )
    by_step: dict = {}
    for e in seen:
        by_step.setdefault(e.step_id, set()).add(e.row_id)
    assert {k: len(v) for k, v in by_step.items()} == {"label": 2, "side_info": 2}
    first = next(e for e in seen if e.step_id == "label")
    assert first.messages[-1]["role"] == "user" and first.messages[-1]["content"].startswith("Classify t")
    assert first.reply is not None and '"tags"' in first.reply  # the raw reply text, before parsing
    text = json.dumps([e.to_dict() for e in seen])
    assert SECRET not in text and "***" in text
    err = capsys.readouterr().err
    assert "debug: step 'label'" in err and "[raw reply]" in err and SECRET not in err


def test_mask_hides_registered_keys_env_secrets_and_key_shapes(monkeypatch):
    monkeypatch.setenv("SOME_SERVICE_TOKEN", "tok-1234567890")
    register_engine("masked", backend="openai", model="m", api_key="plainkeyvalue")
    try:
        from chainette.run.debug import _secret_values

        s = _secret_values()
        assert (
            mask("a plainkeyvalue b tok-1234567890 Bearer abcdefghijkl hf_" + "x" * 24, s)
            == "a *** b *** Bearer *** ***"
        )
    finally:
        unregister_engine("masked")


def test_cli_debug_prints_samples_and_keeps_tracebacks(tmp_path, monkeypatch):
    from chainette.cli import app

    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "dchain.py").write_text(
        "from pydantic import BaseModel\n"
        "from chainette import Chain, Step, register_engine\n"
        "register_engine('fake', backend='fake')\n"
        "class Item(BaseModel):\n    text: str\n"
        "class Label(BaseModel):\n    label: str\n"
        "chain = Chain('c', steps=[Step('label', input_model=Item, output_model=Label, engine_name='fake',"
        " user_prompt='Label {{ text }}')])\n"
    )
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps({"text": f"t{i}"}) + "\n" for i in range(5)))
    r = CliRunner().invoke(
        app,
        [
            "run",
            f"{tmp_path / 'dchain.py'}:chain",
            "-i",
            str(inp),
            "-o",
            str(tmp_path / "out"),
            "--debug",
            "--debug-rows",
            "1",
            "--no-cache",
            "--quiet",
        ],
    )
    assert r.exit_code == 0, r.output
    assert r.output.count("debug: step 'label'") == 1 and "Label t0" in r.output and "[raw reply]" in r.output


def test_the_original_positional_run_form(tmp_path, monkeypatch):
    from chainette.cli import app

    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "pchain.py").write_text(
        "from pydantic import BaseModel\n"
        "from chainette import Chain, Step, register_engine\n"
        "register_engine('fake', backend='fake')\n"
        "class Item(BaseModel):\n    text: str\n"
        "class Label(BaseModel):\n    label: str\n"
        "my_chain = Chain('c', steps=[Step('label', input_model=Item, output_model=Label, engine_name='fake',"
        " user_prompt='{{ text }}')])\n"
    )
    inp = tmp_path / "in.jsonl"
    inp.write_text('{"text": "a"}\n{"text": "b"}\n')
    out = tmp_path / "out"
    r = CliRunner().invoke(
        app, ["run", str(tmp_path / "pchain.py"), "my_chain", str(inp), str(out), "--quiet", "--no-cache"]
    )
    assert r.exit_code == 0, r.output
    assert "deprecated" in r.output and f"{tmp_path / 'pchain.py'}:my_chain -i {inp} -o {out}" in r.output.replace(
        "\n", ""
    )
    assert len((out / "label" / "000.jsonl").read_text().splitlines()) == 2
    r = CliRunner().invoke(app, ["run", f"{tmp_path / 'pchain.py'}:my_chain", "--quiet"])
    assert r.exit_code == 2 and "missing --input" in r.output


def test_csv_output_encodes_nested_values_as_json(tmp_path):
    out = tmp_path / "run"
    _chain().run([{"text": 'a,"b"\nc'}, {"text": "d"}], out, fmt="csv", engines={"fake": _engine()}, cache=False)
    with open(out / "flattened" / "000.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and rows[0]["chain_input.text"] == 'a,"b"\nc'
    assert json.loads(rows[0]["label.tags"]) == ["a", "b"]
    assert json.loads(rows[0]["label.meta"]) == {"k": 1, "nested": [1, 2]}
    assert (out / "label" / "000.csv").exists() and (out / "side_info" / "000.csv").exists()
    assert not list(out.glob("label/*.jsonl")) and not list(out.glob("flattened/*.jsonl"))  # converted
    from chainette.io.stream_writer import read_records

    assert [r["row_id"] for r in read_records(out / "label")] == ["0", "1"]


def test_cli_format_csv_and_the_datasets_writer_refuses_it(tmp_path, monkeypatch):
    from chainette.cli import app

    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "cchain.py").write_text(
        "from pydantic import BaseModel\n"
        "from chainette import Chain, Step, register_engine\n"
        "register_engine('fake', backend='fake')\n"
        "class Item(BaseModel):\n    text: str\n"
        "class Tags(BaseModel):\n    tags: list[str]\n"
        "chain = Chain('c', steps=[Step('tag', input_model=Item, output_model=Tags, engine_name='fake',"
        " user_prompt='{{ text }}')])\n"
    )
    inp = tmp_path / "in.jsonl"
    inp.write_text('{"text": "a"}\n')
    r = CliRunner().invoke(
        app,
        [
            "run",
            f"{tmp_path / 'cchain.py'}:chain",
            "-i",
            str(inp),
            "-o",
            str(tmp_path / "o"),
            "--format",
            "csv",
            "--quiet",
            "--no-cache",
        ],
    )
    assert r.exit_code == 0, r.output
    header, row = (tmp_path / "o" / "flattened" / "000.csv").read_text().splitlines()
    assert header == "row_id,chain_input.text,tag.tags" and isinstance(
        json.loads(row.split(",", 2)[2].strip('"').replace('""', '"')), list
    )
    r = CliRunner().invoke(
        app,
        [
            "run",
            f"{tmp_path / 'cchain.py'}:chain",
            "-i",
            str(inp),
            "-o",
            str(tmp_path / "o2"),
            "--format",
            "csv",
            "--writer",
            "datasets",
            "--quiet",
        ],
    )
    assert r.exit_code == 1 and "jsonl or parquet" in r.output


def test_original_top_level_names_warn():
    import chainette

    with pytest.warns(DeprecationWarning, match="ApplyNode"):
        assert chainette.Apply is chainette.ApplyNode
    with pytest.warns(DeprecationWarning):
        assert chainette.render("hi {{ x }}", {"x": 1}) == "hi 1"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert chainette.snake_case("MyStep") == "my_step" and chainette.new_run_id()
