"""Issue #18: chain files and inputs from elsewhere. Ids are names, every file a run writes stays
in its run directory, templates render in a sandbox (unsafe ones are validation errors naming
the step), input values are data, the item cache is private, YAML imports are limited."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import jinja2
import pytest
from pydantic import BaseModel

from chainette import Branch, Chain, FakeEngine, Step, apply
from chainette.core.names import NAME_PATTERN, NAME_RULE, RUN_DIR_NAMES
from chainette.core.templates import compile_fast, row_renderer, unsafe_uses
from chainette.errors import ChainValidationError, ConfigError
from chainette.io.base_writer import RunInfo
from chainette.io.stream_writer import StreamWriter
from chainette.utils.paths import confined
from chainette.yaml_loader import load_chain, schema
from tests.core.models import Answer, Question

PAYLOAD = "{{ text.__class__.__mro__[1].__subclasses__() }}"


@pytest.fixture(autouse=True)
def _restore_engine_registry():
    """YAML chains here register engines ('fk'): leave the registry as it was."""
    from chainette.engine import registry

    saved = dict(registry._REGISTRY)
    yield
    registry._REGISTRY.clear()
    registry._REGISTRY.update(saved)


def _step(id: str = "s", prompt: str = "{{ text }}", **kw):
    return Step(id, input_model=Question, output_model=Answer, engine_name="fake", user_prompt=prompt, **kw)


# -- 1. ids are names -------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["../evil", "a/b", "a b", "1st", "", "not", "true", "self", "é", "x" * 65])
def test_step_id_must_be_a_name(bad):
    with pytest.raises(ConfigError) as exc:
        _step(bad)
    assert f"step id {bad!r} is not a valid name" in str(exc.value)
    assert NAME_RULE in str(exc.value)


def test_the_evil_id_names_itself_and_the_rule():
    with pytest.raises(ConfigError, match=re.escape("step id '../evil' is not a valid name (it contains '.', '/')")):
        Step("../evil", output_model=Answer)


def test_apply_branch_and_join_ids_and_aliases_are_names():
    with pytest.raises(ConfigError, match=re.escape("apply id '../evil'")):
        apply(lambda x: [x], id="../evil")
    with pytest.raises(ConfigError, match=re.escape("apply id '<lambda>'") + ".*pass id="):
        apply(lambda x: [x])
    with pytest.raises(ConfigError, match=re.escape("branch id 'French translation'") + ".*pass id="):
        Branch("French translation", [_step()])
    assert Branch("French translation", [_step()], id="fr").id == "fr"  # a display name is fine with an id
    with pytest.raises(ConfigError, match=re.escape("branch id '../b'")):
        Branch("b", [_step()], id="../b")
    with pytest.raises(ConfigError, match=re.escape("join alias '../fr'")):
        Branch("fr", [_step()]).join("../fr")
    with pytest.raises(ConfigError, match=re.escape("join alias 'if'")):
        _step().join("if")


def test_dsl_ids_are_checked_where_declared():
    from chainette import dsl

    with pytest.raises(ConfigError, match=re.escape("step id '../evil'")):
        dsl.step("../evil", Answer)
    with pytest.raises(ConfigError, match=re.escape("branch id 'a-b'")):
        dsl.branch("a-b", dsl.step("x", Answer))
    with pytest.raises(ConfigError, match=re.escape("join alias 'a.b'")):
        dsl.join(dsl.branch("ab", dsl.step("x", Answer)), "a.b")


def test_yaml_ids_are_checked_by_the_schema_with_their_yaml_path(tmp_path):
    (tmp_path / "c.yml").write_text(
        "name: c\nsteps:\n"
        "  - {type: step, id: ../evil, output_model: m:A}\n"
        "  - {type: apply, id: 'a b', function: m:f}\n"
        "  - - {type: branch, name: French translation, steps: [{type: step, id: x, output_model: m:A}]}\n"
        "    - {type: join, name: j, alias: 'not', steps: [{type: step, id: y, output_model: m:A}]}\n"
        "    - {type: branch, name: k, id: '../k', steps: [{type: step, id: z, output_model: m:A}]}\n"
    )
    with pytest.raises(ConfigError) as exc:
        load_chain(tmp_path / "c.yml")
    text = str(exc.value)
    assert "steps[0].id: '../evil' is not a valid name (it contains '.', '/')" in text
    assert "steps[1].id: 'a b' is not a valid name" in text
    assert "steps[2][0].name: 'French translation' is not a valid name" in text
    assert "steps[2][1].alias: 'not' is not a valid name (it is a template keyword)" in text
    assert "steps[2][2].id: '../k' is not a valid name" in text
    assert NAME_RULE in text


def test_yaml_schema_identifier_is_the_core_rule():
    assert schema()["$defs"]["identifier"]["pattern"] == NAME_PATTERN
    pattern = re.compile(NAME_PATTERN)
    from chainette.core.names import name_problem

    for value in ["ok", "_x", "a1", "X" * 64, "../evil", "1a", "not", "None", "x" * 65, "a-b", "self"]:
        assert bool(pattern.search(value)) == (name_problem(value) is None), value


def test_validation_rechecks_ids_and_refuses_run_directory_folders():
    s = _step("ok")
    s.id = "../evil"  # reassigned after construction
    problems = Chain("c", steps=[s]).problems(engines={"fake": FakeEngine()})
    assert any(p.where == "../evil" and "id '../evil' is not a valid name" in p.message for p in problems)
    for name in RUN_DIR_NAMES:
        with pytest.raises(ChainValidationError, match=f"{name}: '{name}' is a folder the run directory uses"):
            Chain("c", steps=[_step(name)]).validate(engines={"fake": FakeEngine()})


# -- 1b. writes confined to the run directory ---------------------------------------------------------
def test_confined_refuses_paths_that_escape(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    assert confined(run, "extract", "000.jsonl") == run / "extract" / "000.jsonl"
    for parts in (("..", "x"), ("../evil",), ("/etc/passwd",), ("a", "..", "..", "b")):
        with pytest.raises(ConfigError, match="outside the run directory"):
            confined(run, *parts)
    (run / "link").symlink_to(tmp_path)
    with pytest.raises(ConfigError, match="outside the run directory"):
        confined(run, "link", "x.jsonl")


def _info(step_ids):
    return RunInfo(
        run_id="r", chain_name="c", graph={"nodes": []}, engines=[], fingerprint={}, started_at="now", step_ids=step_ids
    )


def test_the_writer_never_writes_outside_the_run_directory(tmp_path):
    """Even if a bad id got past validation (a bug elsewhere), the writer refuses it."""
    from chainette.core.row import RowRecords

    out = tmp_path / "run"
    writer = StreamWriter(out)
    writer.open(_info(["../evil"]))
    rec = RowRecords(0, outputs=[("../evil", "0", {"x": 1}, None)])
    with pytest.raises(ConfigError, match="outside the run directory"):
        writer.write_rows([rec])
    assert not (tmp_path / "evil").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_symlink_planted_in_a_run_directory_is_not_followed(tmp_path):
    from chainette.core.row import RowRecords

    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "run"
    out.mkdir()
    (out / "extract").symlink_to(outside)
    writer = StreamWriter(out)
    writer.open(_info(["extract"]))
    with pytest.raises(ConfigError, match="outside the run directory"):
        writer.write_rows([RowRecords(0, outputs=[("extract", "0", {"x": 1}, None)])])
    assert list(outside.iterdir()) == []


def test_a_tampered_journal_cannot_truncate_files_elsewhere(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    out = tmp_path / "run"
    writer = StreamWriter(out)
    writer.open(_info(["a"]))
    journal = out / ".chainette" / "progress.json"
    data = json.loads(journal.read_text())
    data["files"] = {"..": {"index": 0, "lines": 0, "size": 0}}
    data["rewrite"] = ["../victim.txt"]
    journal.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="outside the run directory"):
        StreamWriter(out).open(_info(["a"]), resume=True)
    assert victim.read_text() == "keep me"


# -- 2. templates in a sandbox --------------------------------------------------------------------------
def test_the_template_payload_is_a_validation_error_naming_the_step():
    chain = Chain("c", steps=[_step("extract", PAYLOAD)])
    with pytest.raises(ChainValidationError) as exc:
        chain.validate(engines={"fake": FakeEngine()})
    assert "extract: user_prompt is unsafe: it uses .__class__, .__mro__, .__subclasses__" in str(exc.value)


def test_unsafe_system_prompt_is_reported_too():
    s = _step("s", "{{ text }}", system_prompt="{{ text|attr('__class__') }}")
    problems = Chain("c", steps=[s]).problems(engines={"fake": FakeEngine()})
    assert [str(p) for p in problems] == [
        "s: system_prompt is unsafe: it uses '__class__'; names starting with '_' reach Python internals "
        "and the template sandbox refuses them"
    ]


def test_yaml_template_payload_is_reported_with_the_step(tmp_path, clean_modules):
    (tmp_path / "models.py").write_text("from pydantic import BaseModel\n\nclass Q(BaseModel):\n    text: str\n")
    (tmp_path / "c.yml").write_text(
        "name: c\nengines: [{name: fk, backend: fake}]\nsteps:\n"
        f"  - {{type: step, id: leak, engine: fk, input_model: models:Q, output_model: models:Q, "
        f"user_prompt: '{PAYLOAD}'}}\n"
    )
    chain = load_chain(tmp_path / "c.yml")
    with pytest.raises(ChainValidationError, match=re.escape("leak: user_prompt is unsafe: it uses .__class__")):
        chain.validate()


@pytest.mark.parametrize(
    "source, found",
    [
        (PAYLOAD, [".__class__", ".__mro__", ".__subclasses__"]),
        ("{{ x['__globals__'] }}", ["['__globals__']"]),
        ("{{ xs|map(attribute='__class__')|list }}", ["'__class__'"]),
        ("{{ x.answer }} __init__ in plain text {{ y }}", []),
        ("{% for k in x %}{{ k.text }}{% endfor %}", []),
    ],
)
def test_unsafe_uses(source, found):
    assert unsafe_uses(source) == found


def test_the_sandbox_refuses_at_render_time_what_validation_cannot_see():
    render = row_renderer("{{ text[key] }}")  # the name comes from the data
    with pytest.raises(jinja2.exceptions.SecurityError):
        render("0", {"text": "hi", "key": "__class__"}, {})
    assert row_renderer(PAYLOAD) is not None
    with pytest.raises(jinja2.exceptions.SecurityError):
        row_renderer(PAYLOAD)("0", {"text": "hi"}, {})


def test_the_fast_path_applies_the_sandbox_rules():
    assert compile_fast("{{ text.__class__ }}") is None  # left to the sandbox
    assert compile_fast("{{ gen.gi_frame }}") is None
    assert compile_fast("{{ a.b.c }}") is not None
    code = (lambda: None).__code__
    with pytest.raises(jinja2.exceptions.SecurityError):
        row_renderer("{{ c.replace }}")("0", {"c": code}, {})
    with pytest.raises(jinja2.exceptions.SecurityError):
        row_renderer("{{ g.gi_frame }}")("0", {"g": (i for i in [])}, {})
    assert row_renderer("{{ a.answer }}")("0", None, {"a": Answer(answer="x", confidence=1)}) == "x"


def test_an_unsafe_access_at_run_time_is_an_error_record_not_a_crash():
    class KeyQ(BaseModel):
        text: str
        key: str

    s = Step("s", input_model=KeyQ, output_model=Answer, engine_name="fake", user_prompt="{{ text[key] }}")
    result = Chain("c", steps=[s]).run(
        [KeyQ(text="a", key="__class__"), KeyQ(text="b", key="upper")], engines={"fake": FakeEngine()}, cache=False
    )
    assert result.error_count == 1
    err = result.errors[0]
    assert err["step_id"] == "s" and "SecurityError" in err["message"]


@pytest.mark.parametrize("prompt", ["Q: {{ text }}", "Q: {{ text }}{% if true %}!{% endif %}"])
def test_input_values_are_data_never_templates(prompt):
    """A value that looks like a template is sent as typed, on the fast path and the jinja path."""
    seen = []

    def handler(req):
        seen.append(req.messages[-1]["content"])
        return {"answer": "ok", "confidence": 1}

    evil = ["{{ 7*7 }}", "{{ row_id.__class__ }}", "{% for x in range(3) %}x{% endfor %}", PAYLOAD]
    s = Step(
        "s",
        input_model=Question,
        output_model=Answer,
        engine_name="fake",
        user_prompt=prompt,
        output_format_instruction="",
    )
    result = Chain("c", steps=[s]).run(
        [Question(text=t) for t in evil], engines={"fake": FakeEngine(handler=handler)}, cache=False
    )
    assert result.error_count == 0
    suffix = "!" if "if" in prompt else ""
    assert sorted(seen) == sorted(f"Q: {t}{suffix}" for t in evil)


# -- 5. sensitive data at rest ----------------------------------------------------------------------------
def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_item_cache_is_private(tmp_path, monkeypatch):
    from chainette.engine.protocol import Completion, Usage
    from chainette.io.item_cache import ItemCache

    monkeypatch.setenv("CHAINETTE_CACHE_DIR", str(tmp_path / "cache"))
    old = os.umask(0o022)
    try:
        cache = ItemCache(flush_every=0)
        cache.put("k", Completion(text="secret reply", reasoning=None, usage=Usage(1, 1), model="m"))
        cache.close()
    finally:
        os.umask(old)
    assert _mode(tmp_path / "cache") == 0o700
    files = list((tmp_path / "cache").iterdir())
    assert files and all(_mode(f) == 0o600 for f in files), {f.name: oct(_mode(f)) for f in files}


def test_an_existing_world_readable_cache_is_made_private(tmp_path, monkeypatch):
    from chainette.io.item_cache import ItemCache

    monkeypatch.setenv("CHAINETTE_CACHE_DIR", str(tmp_path / "cache"))
    ItemCache().close()
    os.chmod(tmp_path / "cache", 0o755)
    for f in (tmp_path / "cache").iterdir():
        os.chmod(f, 0o644)
    ItemCache().close()
    assert _mode(tmp_path / "cache") == 0o700
    assert all(_mode(f) == 0o600 for f in (tmp_path / "cache").iterdir())


def test_cache_info_and_clear(tmp_path):
    from chainette.engine.protocol import Completion, Usage
    from chainette.io.item_cache import ItemCache, cache_info, clear_cache

    path = tmp_path / "c" / "items.sqlite"
    cache = ItemCache(path, flush_every=0)
    for k in ("a", "b"):
        cache.put(k, Completion(text="t", reasoning=None, usage=Usage(1, 1), model="m"))
    cache.close()
    info = cache_info(path)
    assert info["entries"] == 2 and info["size_bytes"] > 0 and info["exists"]
    cleared = clear_cache(path)
    assert str(path) in cleared["removed"] and not path.exists()
    assert cache_info(path) == {"path": str(path), "exists": False, "size_bytes": 0, "entries": 0}


@pytest.mark.parametrize("umask, want", [(0o022, 0o644), (0o077, 0o600)])
def test_run_directories_follow_the_umask(tmp_path, umask, want):
    old = os.umask(umask)
    try:
        Chain("c", steps=[_step("s")]).run(
            [Question(text="q")], tmp_path / "run", engines={"fake": FakeEngine()}, cache=False
        )
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert files and all(_mode(p) == want for p in files), {str(p): oct(_mode(p)) for p in files}


# -- 6. YAML imports ----------------------------------------------------------------------------------------
MODELS = "from pydantic import BaseModel\n\nclass Q(BaseModel):\n    text: str\n\ndef keep(x):\n    return [x]\n"


def _yaml(dir: Path, function: str, name: str = "c.yml") -> Path:
    p = dir / name
    p.write_text(
        "name: c\nsteps:\n"
        "  - {type: step, id: s, engine: fk, input_model: models:Q, output_model: models:Q}\n"
        f"  - {{type: apply, id: a, function: '{function}'}}\n"
    )
    return p


@pytest.fixture
def clean_modules():
    import sys

    path, modules = list(sys.path), set(sys.modules)
    yield
    sys.path[:] = path
    for name in set(sys.modules) - modules:
        if name in ("models", "pkg", "pkg.models") or name.startswith("_chainette_user_"):
            sys.modules.pop(name, None)


@pytest.fixture
def yaml_dir(tmp_path, monkeypatch, clean_modules):
    d = tmp_path / "chains"
    d.mkdir()
    (d / "models.py").write_text(MODELS)
    (d / "pkg").mkdir()
    (d / "pkg" / "__init__.py").write_text("")
    (d / "pkg" / "models.py").write_text(MODELS)
    monkeypatch.chdir(tmp_path)
    return d


def test_yaml_may_import_from_its_own_directory(yaml_dir):
    chain = load_chain(_yaml(yaml_dir, "models:keep"))
    assert [n.id for n in chain.items] == ["s", "a"]
    assert Path(chain.items[1].fn.__code__.co_filename) == yaml_dir / "models.py"
    load_chain(_yaml(yaml_dir, "models.py:keep", "p.yml"))
    load_chain(_yaml(yaml_dir, "pkg.models:keep", "q.yml"))
    (yaml_dir / "sub").mkdir()
    (yaml_dir / "sub" / "helpers.py").write_text(MODELS)
    load_chain(_yaml(yaml_dir, "sub/helpers.py:keep", "r.yml"))


def test_yaml_import_of_another_module_is_refused_naming_it_the_yaml_path_and_the_option(yaml_dir):
    p = _yaml(yaml_dir, "os:system")
    with pytest.raises(ConfigError) as exc:
        load_chain(p)
    text = str(exc.value)
    assert text.startswith(f"{p}: steps[1].function: import of module 'os' refused")
    assert "--allow-import os" in text and "allow_imports=['os']" in text
    assert load_chain(p, allow_imports=["os"]).items[1].fn is os.system  # allowed explicitly
    assert load_chain(p, symbols=["os"]).items[1].fn is os.system  # --symbols modules are allowed


def test_yaml_import_of_a_file_outside_its_directory_is_refused(yaml_dir):
    (yaml_dir.parent / "elsewhere.py").write_text(MODELS)
    p = _yaml(yaml_dir, "../elsewhere.py:keep")
    with pytest.raises(ConfigError, match=re.escape("steps[1].function: import of file '../elsewhere.py'")):
        load_chain(p)
    load_chain(p, allow_imports=[str(yaml_dir.parent / "elsewhere.py")])


def test_yaml_local_module_is_the_file_beside_it_even_if_another_is_imported(yaml_dir, monkeypatch):
    import importlib.util
    import sys

    other = yaml_dir.parent / "models.py"  # another 'models', imported before the chain is loaded
    other.write_text(MODELS)
    for name in ("models", "pkg"):
        spec = importlib.util.spec_from_file_location(name, other)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        monkeypatch.setitem(sys.modules, name, mod)
    chain = load_chain(_yaml(yaml_dir, "models:keep"))
    assert Path(chain.items[1].fn.__code__.co_filename) == yaml_dir / "models.py"
    with pytest.raises(ConfigError, match="module 'pkg' exists in the YAML file's directory"):
        load_chain(_yaml(yaml_dir, "pkg.models:keep", "q.yml"))  # a package: refused, not mixed up


def test_security_doc_states_the_trust_model():
    text = (Path(__file__).resolve().parents[2] / "docs" / "security.md").read_text()
    for phrase in (
        "are code",
        "--allow-import",
        "--symbols",
        "0700",
        "0600",
        "umask",
        "cache clear",
        "api_key_env",
        "Reporting a vulnerability",
    ):
        assert phrase in text, phrase
