"""The error tree: every error Chainette raises to a user is a ``ChainetteError``.

* no module raises a bare builtin (``ValueError``, ``TypeError``, ``KeyError``,
  ``RuntimeError``, ``Exception``) outside the justified places in ``ALLOWED``;
* the tree drawn in ``chainette/errors.py``'s docstring names every error class, and the
  public door exports them all;
* the classes that replaced bare builtins still are those builtins (old ``except`` clauses work);
* an apply function that fails raises ``ApplyError`` (its record keeps the apply's exception name);
* the one formatter of Pydantic and YAML errors, and the one canonical hash.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

import chainette
from chainette import errors

ROOT = Path(chainette.__file__).parent
BUILTINS = {"ValueError", "TypeError", "KeyError", "RuntimeError", "Exception"}
PYDANTIC_VALIDATORS = {"field_validator", "model_validator", "validator", "root_validator"}

# (module, function): why a bare builtin is right there
ALLOWED: dict[tuple[str, str], str] = {
    (
        "chainette.engine.registry",
        "_merge_spec_env",
    ): "a helper of EngineConfig's model_validator: its ValueError becomes a pydantic ValidationError, "
    "which register_engine / engine_configs translate into a ConfigError naming the engine",
    (
        "chainette.engine.tokens",
        "_vllm",
    ): "an unexpected tokenizer reply; ServerTokenizer.count catches it (with OSError) and tries the "
    "next tokenizer form, so it never reaches a user",
    ("chainette.engine.tokens", "_llamacpp"): "as _vllm",
    ("chainette.engine.registry", "_check_replicas"): "as _merge_spec_env (an EngineConfig validator helper)",
    ("chainette.engine.registry", "_merge_endpoints"): "as _merge_spec_env (an EngineConfig validator helper)",
}


def _decorator_names(fn: ast.AST) -> set[str]:
    names = set()
    for dec in getattr(fn, "decorator_list", []):
        target = dec.func if isinstance(dec, ast.Call) else dec
        names.add(target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", ""))
    return names


def _bare_raises(path: Path) -> list[tuple[str, int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[str, int, str]] = []

    def visit(node: ast.AST, func: str, in_validator: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                # pydantic turns a ValueError raised in a validator into a ValidationError, which
                # the caller translates (EngineConfig -> ConfigError); a validator must raise it
                visit(child, child.name, bool(_decorator_names(child) & PYDANTIC_VALIDATORS))
                continue
            if isinstance(child, ast.Raise) and child.exc is not None:
                exc = child.exc.func if isinstance(child.exc, ast.Call) else child.exc
                name = getattr(exc, "id", None)
                if name in BUILTINS and not in_validator:
                    found.append((func, child.lineno, name))
            visit(child, func, in_validator)

    visit(tree, "<module>", False)
    return found


def _module(path: Path) -> str:
    return ".".join(path.relative_to(ROOT.parent).with_suffix("").parts)


def test_no_bare_builtin_raises():
    bad = []
    for path in sorted(ROOT.rglob("*.py")):
        for func, line, name in _bare_raises(path):
            if (_module(path), func) not in ALLOWED:
                bad.append(f"{path.relative_to(ROOT.parent)}:{line} in {func}(): raise {name}")
    assert not bad, "raise a chainette.errors class instead (see the tree in chainette/errors.py):\n" + "\n".join(bad)


# exception classes defined outside the tree: why each is not a ChainetteError
FOREIGN_CLASSES: dict[str, str] = {
    "chainette.engine.backends.strict_schema.StrictSchemaError": "raised only by to_strict_schema(), a helper off the run path (the openai backend asks "
    "cached_strict_verdict(), which does not raise); a ValueError for its callers",
}


def test_every_exception_class_is_in_the_tree():
    bad = []
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ClassDef) or node.name.startswith("_"):
                continue  # a private class is a control-flow signal caught in its own module
            bases = {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases}
            if (
                bases & (BUILTINS | {"BaseException", "OSError", "LookupError", "ArithmeticError"})
                and path.name != "errors.py"
                and f"{_module(path)}.{node.name}" not in FOREIGN_CLASSES
            ):
                bad.append(f"{path.relative_to(ROOT.parent)}:{node.lineno}: class {node.name}")
    assert not bad, "define error classes in chainette/errors.py, under ChainetteError:\n" + "\n".join(bad)


def test_the_allowlist_is_still_needed():
    used = {(_module(p), func) for p in ROOT.rglob("*.py") for func, _, _ in _bare_raises(p)}
    assert set(ALLOWED) <= used, f"stale ALLOWED entries: {set(ALLOWED) - used}"


# -- the tree and the public door ---------------------------------------------------------------
def _all_error_classes() -> set[type]:
    for info in pkgutil.walk_packages(chainette.__path__, "chainette."):
        if info.name.endswith("__main__"):
            continue
        importlib.import_module(info.name)
    out: set[type] = set()
    todo = [errors.ChainetteError]
    while todo:
        cls = todo.pop()
        out.add(cls)
        todo.extend(cls.__subclasses__())
    return out


def _drawn_tree() -> dict[str, str | None]:
    """{class name: its parent's name} as drawn in the docstring of chainette/errors.py."""
    parents: dict[str, str | None] = {}
    stack: list[str] = []
    for line in errors.__doc__.split("```")[1].strip("\n").splitlines():
        start = next(i for i, ch in enumerate(line) if ch.isalpha())
        depth = start // 4
        name = line[start:].split()[0]
        del stack[depth:]
        parents[name] = stack[-1] if stack else None
        stack.append(name)
    return parents


def test_every_error_class_is_in_errors_py_drawn_in_the_tree_and_exported():
    drawn = _drawn_tree()
    classes = _all_error_classes()
    assert set(drawn) == {c.__name__ for c in classes}
    for cls in classes:
        assert cls.__module__ == "chainette.errors", f"{cls.__name__} belongs in chainette/errors.py"
        parent = next((b for b in cls.__bases__ if issubclass(b, errors.ChainetteError)), None)
        assert drawn[cls.__name__] == (parent.__name__ if parent else None), (
            f"{cls.__name__} drawn under the wrong parent"
        )
        assert getattr(chainette, cls.__name__) is cls, f"chainette.{cls.__name__} is not exported"


def test_the_fake_engine_handler_types_are_exported():
    from chainette.engine import protocol

    for name in ("CompletionRequest", "Completion", "Usage", "Engine"):
        assert getattr(chainette, name) is getattr(protocol, name)


@pytest.mark.parametrize(
    "make, builtin",
    [
        (lambda: chainette.Step(id="a", output_model=int), TypeError),  # type: ignore[arg-type]
        (lambda: chainette.ApplyNode("not callable"), TypeError),  # type: ignore[arg-type]
        (lambda: chainette.Chain(name="empty", steps=[]), ValueError),
        (lambda: chainette.Chain(name="both"), ValueError),
        (lambda: chainette.Branch("", steps=[]), ValueError),
        (lambda: chainette.Chain(name="c", steps=[object()]), TypeError),
    ],
)
def test_definition_errors_are_chainette_errors_and_still_the_old_builtins(make, builtin):
    with pytest.raises(errors.ConfigError) as info:
        make()
    assert isinstance(info.value, builtin)


def test_dag_and_dsl_errors():
    from chainette.dag import to_rich_tree
    from chainette.dsl import step

    with pytest.raises(errors.DefinitionError, match="max_branches"):
        to_rich_tree([], max_branches=0)
    with pytest.raises(errors.DefinitionTypeError):
        step("bad").output(int)  # type: ignore[arg-type]


# -- ApplyError -----------------------------------------------------------------------------------
class Num(BaseModel):
    n: int


def _failing_chain(fn):
    return chainette.Chain(name="c", steps=[chainette.apply(fn, id="boom", input_model=Num)])


def test_an_apply_that_raises_is_an_apply_error_recorded_under_its_own_exception_name(monkeypatch):
    from chainette.run import row_runner

    seen: list[BaseException] = []
    real_fail = row_runner._fail

    def spy(row, node_id, exc, state, attempts=1):
        seen.append(exc)
        real_fail(row, node_id, exc, state, attempts)

    monkeypatch.setattr(row_runner, "_fail", spy)

    def boom(x: Num) -> list[Num]:
        raise ValueError(f"no {x.n}")

    result = _failing_chain(boom).run([{"n": 1}, {"n": 2}])
    assert len(seen) == 2 and all(isinstance(e, errors.ApplyError) for e in seen)
    first = min(seen, key=lambda e: e.row_id)
    assert first.node_id == "boom" and first.row_id == "0"
    assert isinstance(first.original, ValueError) and first.__cause__ is first.original
    recs = sorted(result.errors, key=lambda r: r["row_id"])
    assert [r["error_type"] for r in recs] == ["ValueError", "ValueError"]  # the documented name
    assert recs[0]["message"] == "no 1" and recs[0]["step_id"] == "boom"


def test_an_apply_that_breaks_the_return_contract_is_recorded_as_apply_error():
    result = _failing_chain(lambda x: 42).run([{"n": 1}])
    (rec,) = result.errors
    assert rec["error_type"] == "ApplyError" and "must return a list" in rec["message"]


def test_error_record_from_exception():
    wrapped = errors.ApplyError.wrap(KeyError("k"), node_id="a", row_id="3")
    rec = errors.ErrorRecord.from_exception(wrapped, row_id="3", step_id="a").to_dict()
    assert rec["error_type"] == "KeyError" and rec["message"] == "'k'"
    rec = errors.ErrorRecord.from_exception(
        errors.RateLimitError("slow", status=429), row_id="1", step_id="s", attempts=4
    ).to_dict()
    assert rec == {"row_id": "1", "step_id": "s", "error_type": "RateLimitError", "message": "slow", "attempts": 4}


# -- one formatter per foreign error ------------------------------------------------------------
class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    size: int


def _validation_error(data) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        Strict.model_validate(data)
    return info.value


def test_describe_validation_error():
    exc = _validation_error({"size": "big", "colour": 1, "shade": 2})
    text = errors.describe_validation_error(exc, known_fields=Strict.model_fields)
    assert text.startswith("name: Field required; size: Input should be a valid integer")
    assert "unknown field 'colour' (valid fields: name, size)" in text
    assert text.count("valid fields") == 1 and "unknown field 'shade'" in text
    assert errors.describe_validation_error(exc, limit=1) == "name: Field required; ... 3 more"
    assert errors.describe_validation_error(_validation_error([1])).startswith("Input should be")


def test_describe_validation_error_keeps_a_validators_own_words():
    from pydantic import field_validator

    class M(BaseModel):
        x: int

        @field_validator("x")
        @classmethod
        def _pos(cls, v: int) -> int:
            if v < 0:
                raise ValueError("x must be positive")
            return v

    with pytest.raises(ValidationError) as info:
        M(x=-1)
    assert errors.describe_validation_error(info.value) == "x: x must be positive"


def test_describe_yaml_error(tmp_path):
    import yaml

    with pytest.raises(yaml.YAMLError) as info:
        yaml.safe_load("a: [1, 2\nb: 3\n")
    text = errors.describe_yaml_error(info.value, tmp_path / "x.yml")
    assert text.startswith(f"{tmp_path / 'x.yml'}:") and ": invalid YAML: " in text
    line, col = text[len(str(tmp_path / "x.yml")) + 1 :].split(":")[:2]
    assert line.isdigit() and col.isdigit()
    assert errors.describe_yaml_error(yaml.YAMLError("odd"), "f.yml") == "f.yml: invalid YAML: odd"


@pytest.mark.parametrize("loader", ["engines", "chain"])
def test_both_yaml_loaders_word_yaml_errors_alike(tmp_path, loader):
    from chainette.engine.registry import load_engines_file
    from chainette.yaml_loader import load_chain

    bad = tmp_path / "bad.yml"
    bad.write_text("engines:\n  - name: [x\n")
    with pytest.raises(errors.ConfigError) as info:
        (load_engines_file if loader == "engines" else load_chain)(bad)
    assert str(info.value).startswith(f"{bad}:3:1: invalid YAML: ")


# -- one canonical hash -------------------------------------------------------------------------
def test_canonical_hash():
    from chainette.utils.canonical import canonical_hash, canonical_hasher, canonical_json

    assert canonical_json({"b": 1, "a": "é"}) == '{"a":"é","b":1}'.encode()
    assert canonical_json(Num(n=1)) == b'{"n":1}'
    assert canonical_hash({"a": 1, "b": 2}) == canonical_hash({"b": 2, "a": 1})
    assert canonical_hash("a", "b") != canonical_hash(["a", "b"])
    base = canonical_hasher({"v": "x"})
    h = base.copy()
    h.update(canonical_json([1]))
    assert h.hexdigest() == canonical_hash({"v": "x"}, [1])
    assert len(canonical_hash(1, length=16)) == 16


def test_the_item_cache_keys_did_not_change(tmp_path):
    """Keys written by earlier versions still hit (same CACHE_VERSION, same bytes hashed)."""
    from chainette.core.sampling import SamplingParams
    from chainette.engine.protocol import CompletionRequest
    from chainette.io.item_cache import CACHE_VERSION, ItemCache

    assert CACHE_VERSION == "chainette-item-v2"
    request = CompletionRequest(
        messages=[{"role": "user", "content": "héllo ✓ 日本"}],
        json_schema={"type": "object", "properties": {"é": {"type": "string"}}},
        sampling=SamplingParams(temperature=0.3, seed=4),
    )
    cache = ItemCache(tmp_path / "items.sqlite")
    try:
        key = cache.key(request, {"model": "m", "backend": "openai", "endpoint": "chat"})
    finally:
        cache.close()
    assert key == "9e1bfd10f8fd768ff3bc1cea72c0a46bc1e722d189059a8b6bbb93f1a520dd9d"


def test_no_other_hash_of_json():
    """Hashes of JSON go through chainette.utils.canonical (file checksums are not JSON)."""
    bad = []
    for path in ROOT.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if path.name != "canonical.py" and "sort_keys=True" in text and ("hashlib" in text):
            bad.append(str(path.relative_to(ROOT.parent)))
    assert not bad, f"hash canonical JSON with chainette.utils.canonical: {bad}"
