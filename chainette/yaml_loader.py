"""YAML chains: ``load_chain("chain.yml")`` -> :class:`~chainette.core.chain.Chain`.

The file is read with ``yaml.safe_load`` and validated against ``yaml_schema.json``
(JSON Schema 2020-12) before anything is imported. Every problem is reported at once
with its YAML path (``steps[2].steps[0].engine: ...``) and what was expected.

```yaml
name: Translation Pipeline
input_model: models:Question          # optional; default: the first step's input_model
engines:                              # optional; same fields as engines.yml
  - {name: fake, backend: fake}
steps:
  - type: step
    id: translate
    engine: fake
    output_model: models:Translated   # 'module:attr', 'path/to/file.py:attr', or a --symbols name
    system_prompt: Translate to French
    user_prompt: "{{text}}"
    sampling: {temperature: 0}
  - type: apply
    function: models:keep_long
  - [                                  # a YAML list = branches run in parallel
      {type: join, name: fr, alias: fr, steps: [...]},
      {type: branch, name: audit, steps: [...]},
    ]
  - type: parallel                     # the same, spelled out
    branches: [...]
```

Python objects are resolved only from explicit ``module:attr`` / ``file.py:attr``
references (file paths relative to the YAML file) or the ``symbols`` modules passed in.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable

from chainette.errors import ConfigError

__all__ = ["chain_from_dict", "load_chain", "schema", "validate_document"]


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    """The JSON Schema YAML chains are validated against."""
    return json.loads((Path(__file__).with_name("yaml_schema.json")).read_text(encoding="utf-8"))


def _fmt_path(parts: Iterable[Any]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def _explain(error: Any) -> str:
    v = error.validator
    inst = error.instance
    if v == "required":
        missing = [r for r in error.validator_value if isinstance(inst, dict) and r not in inst]
        return f"missing required field '{missing[0] if missing else error.message}'"
    if v == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(k for k in inst if k not in allowed) if isinstance(inst, dict) else []
        return f"unknown field {', '.join(repr(e) for e in extra)}; expected one of: {', '.join(allowed)}"
    if v == "type":
        return f"expected {error.validator_value}, got {type(inst).__name__} {inst!r}"
    if v in ("enum",):
        return f"expected one of {', '.join(map(str, error.validator_value))}, got {inst!r}"
    if v == "const":
        return f"expected {error.validator_value!r}, got {inst!r}"
    if v == "pattern":
        return f"expected a Python identifier (letters, digits, _), got {inst!r}"
    if v in ("minItems", "minLength"):
        return "must not be empty"
    if v in ("minimum", "maximum"):
        return f"{inst!r} is out of range ({v} {error.validator_value})"
    return error.message


def validate_document(data: Any, *, source: str = "<yaml>") -> None:
    """Raise :class:`ConfigError` listing every schema violation of ``data`` (or return)."""
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: (list(map(str, e.absolute_path)), e.validator))
    if not errors:
        return
    seen: set[str] = set()
    lines: list[str] = []
    for err in errors:
        # 'if/then' wrappers repeat the concrete error; keep the most specific one
        if err.validator in ("if", "then", "allOf") and err.context:
            continue
        line = f"{_fmt_path(err.absolute_path)}: {_explain(err)}"
        if line not in seen:
            seen.add(line)
            lines.append(line)
    lines = lines[:20] or [f"{_fmt_path(errors[0].absolute_path)}: {errors[0].message}"]
    raise ConfigError(f"{source}: invalid chain definition:\n" + "\n".join(f"  - {line}" for line in lines))


def load_chain(
    path: str | Path,
    *,
    symbols: Iterable[str | ModuleType] = (),
    register_engines: bool = True,
    check_engines: bool = False,
) -> Any:
    """Read, validate and build the chain defined in the YAML file at ``path``."""
    import yaml

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: YAML chain file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{p}: is a directory, expected a YAML chain file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not a UTF-8 text file") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{p}{where}: invalid YAML: {problem}") from None
    return chain_from_dict(
        data, source=str(p), base_dir=p.parent, symbols=symbols,
        register_engines=register_engines, check_engines=check_engines,
    )


class _Builder:
    def __init__(self, source: str, base_dir: Path | None, symbols: list[Any]) -> None:
        self.source = source
        self.base_dir = base_dir
        self.symbols = symbols
        self.step_paths: list[tuple[str, Any]] = []  # (yaml path, Step)

    def resolve(self, ref: str, where: str, what: str, check: Any = None) -> Any:
        from chainette.utils.symbols import resolve_symbol

        try:
            obj = resolve_symbol(ref, symbols=self.symbols, base_dir=self.base_dir, what=what)
        except ConfigError as exc:
            raise ConfigError(f"{self.source}: {where}: {exc.message}") from exc
        if check is not None:
            problem = check(obj)
            if problem:
                raise ConfigError(f"{self.source}: {where}: '{ref}' {problem}")
        return obj

    def model(self, ref: str, where: str) -> Any:
        from pydantic import BaseModel

        def check(obj: Any) -> str | None:
            if isinstance(obj, type) and issubclass(obj, BaseModel):
                return None
            return f"is {type(obj).__name__}, expected a pydantic BaseModel subclass"

        return self.resolve(ref, where, "model", check)

    def items(self, raw: list[Any], where: str) -> list[Any]:
        from chainette.core.branch import Parallel

        out: list[Any] = []
        for i, entry in enumerate(raw):
            path = f"{where}[{i}]"
            if isinstance(entry, list):
                out.append(self._construct(path, lambda: Parallel(
                    [self.node(b, f"{path}[{j}]") for j, b in enumerate(entry)])))
            else:
                out.append(self.node(entry, path))
        return out

    def _construct(self, where: str, fn: Any) -> Any:
        try:
            return fn()
        except ConfigError:
            raise
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{self.source}: {where}: {exc}") from None

    def node(self, d: dict[str, Any], where: str) -> Any:
        kind = d["type"]
        if kind == "step":
            from chainette.core.step import Step

            kwargs: dict[str, Any] = {"output_model": self.model(d["output_model"], f"{where}.output_model")}
            if "input_model" in d:
                kwargs["input_model"] = self.model(d["input_model"], f"{where}.input_model")
            if "engine" in d:
                kwargs["engine_name"] = d["engine"]
            for key in ("name", "system_prompt", "user_prompt", "output_format_instruction",
                        "max_validation_retries", "emoji", "sampling"):
                if key in d:
                    kwargs[key] = d[key]
            step = self._construct(where, lambda: Step(d["id"], **kwargs))
            self.step_paths.append((where, step))
            return step
        if kind == "apply":
            from chainette.core.apply import ApplyNode

            fn = self.resolve(d["function"], f"{where}.function", "function",
                              lambda o: None if callable(o) else f"is {type(o).__name__}, expected a function")
            kwargs = {k: d[k] for k in ("id", "name", "blocking", "emoji") if k in d}
            for key in ("input_model", "output_model"):
                if key in d:
                    kwargs[key] = self.model(d[key], f"{where}.{key}")
            return self._construct(where, lambda: ApplyNode(fn, **kwargs))
        if kind in ("branch", "join"):
            from chainette.core.branch import Branch, JoinBranch

            steps = self.items(d["steps"], f"{where}.steps")
            alias = d.get("alias") if kind == "join" else d.get("join")
            common = {k: d[k] for k in ("id", "emoji") if k in d}
            if alias:
                return self._construct(where, lambda: JoinBranch(d["name"], steps, alias, **common))
            return self._construct(where, lambda: Branch(d["name"], steps, **common))
        if kind == "parallel":
            from chainette.core.branch import Parallel

            branches = [self.node(b, f"{where}.branches[{j}]") for j, b in enumerate(d["branches"])]
            return self._construct(where, lambda: Parallel(branches))
        raise ConfigError(f"{self.source}: {where}.type: unknown node type {kind!r}")  # pragma: no cover


def _first_node(items: list[Any]) -> Any:
    first = items[0]
    if getattr(first, "kind", "") == "parallel":
        return None
    if getattr(first, "kind", "") in ("branch", "join_branch"):
        return _first_node(first.steps)
    return first


def chain_from_dict(
    data: Any,
    *,
    source: str = "<yaml>",
    base_dir: str | Path | None = None,
    symbols: Iterable[str | ModuleType] = (),
    register_engines: bool = True,
    check_engines: bool = False,
) -> Any:
    """Build a chain from an already parsed YAML document (validated first)."""
    from chainette.core.chain import Chain
    from chainette.engine.registry import engine_configs, has_engine, register_engine

    if data is None:
        raise ConfigError(f"{source}: the file is empty; a chain needs 'name:' and 'steps:'")
    validate_document(data, source=source)
    builder = _Builder(source, Path(base_dir) if base_dir is not None else None, list(symbols))

    engines = engine_configs(data.get("engines") or [], source=source)
    if register_engines:
        for cfg in engines:
            register_engine(cfg)

    items = builder.items(data["steps"], "steps")
    if "input_model" in data:
        model = builder.model(data["input_model"], "input_model")
        first = _first_node(items)
        if first is None:
            raise ConfigError(f"{source}: input_model: a chain starting with parallel branches needs "
                              "input_model on the first node of each branch")
        if first.input_model is None:
            first.input_model = model
        elif first.input_model is not model:
            raise ConfigError(f"{source}: input_model: conflicts with {first.id}'s input_model "
                              f"{first.input_model.__name__}")

    if check_engines:
        known = {cfg.name for cfg in engines}
        bad = [(where, step) for where, step in builder.step_paths
               if step.engine_name not in known and not has_engine(step.engine_name)]
        if bad:
            lines = "\n".join(
                f"  - {where}.engine: unknown engine '{step.engine_name}'; expected a registered engine "
                "(define it under 'engines:' in this file or pass --engines engines.yml)"
                for where, step in bad
            )
            raise ConfigError(f"{source}: unknown engine(s):\n{lines}")

    kwargs = {k: data[k] for k in ("emoji", "batch_size") if k in data}
    chain = builder._construct("steps", lambda: Chain(name=data["name"], steps=items, **kwargs))
    chain.yaml_paths = {step.id: where for where, step in builder.step_paths}  # type: ignore[attr-defined]
    return chain
