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
Loading a YAML chain imports those modules, so it may import only from the YAML file's own
directory, the ``symbols`` modules and the modules in ``allow_imports`` (``--allow-import``);
see :mod:`chainette.utils.import_policy` and docs/security.md.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

from chainette.errors import ConfigError, DefinitionError, DefinitionTypeError, describe_yaml_error

__all__ = ["chain_from_dict", "chain_to_dict", "dump_chain", "load_chain", "schema", "validate_document"]


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
        from chainette.core.names import NAME_RULE, name_problem

        return f"{inst!r} is not a valid name ({name_problem(inst) or 'bad format'}): {NAME_RULE}"
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
    symbols: Iterable[str | ModuleType | Mapping[str, Any]] | Mapping[str, Any] = (),
    register_engines: bool = True,
    check_engines: bool = False,
    allow_imports: Iterable[str | ModuleType] = (),
) -> Any:
    """Read, validate and build the chain defined in the YAML file at ``path``.

    ``symbols`` are where bare names are looked up: a mapping (``symbols=globals()``), modules
    or module names (``--symbols``), or a list of them. The chain may import from the file's
    directory, ``symbols`` and ``allow_imports`` only
    (module names, ``.py`` files or directories); any other import is a :class:`ConfigError`.
    """
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
        raise ConfigError(describe_yaml_error(exc, p)) from exc
    return chain_from_dict(
        data,
        source=str(p),
        base_dir=p.parent,
        symbols=symbols,
        register_engines=register_engines,
        check_engines=check_engines,
        allow_imports=allow_imports,
    )


def _split_symbols(symbols: Any) -> tuple[list[Mapping[str, Any]], list[Any]]:
    """``symbols`` as (namespaces: mappings such as ``globals()``, modules or module names)."""
    if isinstance(symbols, Mapping):
        return [symbols], []
    namespaces: list[Mapping[str, Any]] = []
    modules: list[Any] = []
    for entry in symbols or ():
        (namespaces if isinstance(entry, Mapping) else modules).append(entry)
    return namespaces, modules


_MISSING = object()
_PART = "a Step, ApplyNode, BatchNode or Branch, a list of branches, a Sequence (a >> b) or a Chain"


class _Builder:
    def __init__(
        self,
        source: str,
        base_dir: Path | None,
        symbols: list[Any],
        allow_imports: Iterable[str | ModuleType] = (),
        *,
        namespaces: Iterable[Mapping[str, Any]] = (),
    ) -> None:
        from chainette.utils.import_policy import ImportPolicy

        self.source = source
        self.base_dir = base_dir
        self.symbols = symbols
        self.namespaces = list(namespaces)
        self.imports = ImportPolicy(base_dir, symbols=symbols, allow_imports=allow_imports)
        self.step_paths: list[tuple[str, Any]] = []  # (yaml path, Step)

    def _lookup(self, ref: str, where: str, what: str) -> Any:
        """``ref`` (a bare name, maybe dotted) in the given namespaces, or ``_MISSING``."""
        if not self.namespaces or ":" in ref:
            return _MISSING
        head, _, rest = ref.strip().partition(".")
        for ns in self.namespaces:
            if head in ns:
                obj = ns[head]
                for part in rest.split(".") if rest else ():
                    if not hasattr(obj, part):
                        raise ConfigError(f"{self.source}: {where}: {what} '{ref}': '{head}' has no attribute '{part}'")
                    obj = getattr(obj, part)
                return obj
        if not self.symbols:  # nowhere else to look: say so here, with the names that exist
            import difflib

            names = sorted({n for ns in self.namespaces for n in ns if not str(n).startswith("_")})
            close = difflib.get_close_matches(head, names, n=3)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise ConfigError(
                f"{self.source}: {where}: {what} '{ref}' is not defined in the given symbols{hint} "
                "(define it in the module whose globals() you pass, or write 'module:attr')"
            )
        return _MISSING

    def resolve(self, ref: str, where: str, what: str, check: Any = None) -> Any:
        from chainette.utils.symbols import resolve_symbol

        obj = self._lookup(ref, where, what) if isinstance(ref, str) else _MISSING
        if obj is _MISSING:
            try:
                checked = self.imports.check(ref) if isinstance(ref, str) else ref
                obj = resolve_symbol(checked, symbols=self.symbols, base_dir=self.base_dir, what=what)
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
                out.append(
                    self._construct(
                        path,
                        lambda path=path, entry=entry: Parallel(
                            [self.branch_entry(b, f"{path}[{j}]") for j, b in enumerate(entry)]
                        ),
                    )
                )
            elif isinstance(entry, str):
                out.extend(self.symbol_items(entry, path))
            else:
                out.append(self.node(entry, path))
        return out

    def branch_entry(self, entry: Any, where: str) -> Any:
        """A member of a parallel group: a mapping, or a symbol naming a branch, a node or a Sequence."""
        if not isinstance(entry, str):
            return self.node(entry, where)
        from chainette.core.branch import Sequence
        from chainette.core.node import Node
        from chainette.core.validation import iter_steps

        obj = self.resolve(
            entry,
            where,
            "branch",
            lambda o: (
                None
                if isinstance(o, (Node, Sequence))
                else (
                    f"is {'a class' if isinstance(o, type) else type(o).__name__}, expected a Branch, a node or a Sequence"
                )
            ),
        )
        inner = (
            obj.steps
            if getattr(obj, "kind", "") in ("branch", "join_branch")
            else (list(obj) if isinstance(obj, Sequence) else [obj])
        )
        for step in iter_steps(inner):
            self.step_paths.append((where, step))
        return obj

    def symbol_items(self, ref: str, where: str) -> list[Any]:
        """The chain items a symbol names (the spec's form: ``steps: [qa_step, [fr, es]]``)."""
        from chainette.core.branch import Parallel, Sequence, normalize_items
        from chainette.core.chain import Chain
        from chainette.core.node import Node
        from chainette.core.validation import iter_steps

        def check(obj: Any) -> str | None:
            if isinstance(obj, (Node, Parallel, Sequence, Chain)):
                return None
            if isinstance(obj, (list, tuple)) and obj and all(isinstance(b, (Node, Sequence)) for b in obj):
                return None
            return f"is {'a class' if isinstance(obj, type) else type(obj).__name__}, expected {_PART}"

        obj = self.resolve(ref, where, "step", check)
        items = (
            list(obj.items)
            if isinstance(obj, Chain)
            else self._construct(
                where,
                lambda: normalize_items(
                    [obj] if isinstance(obj, (Node, Parallel)) else [list(obj)] if isinstance(obj, tuple) else obj
                ),
            )
        )
        for step in iter_steps(items):
            self.step_paths.append((where, step))
        return items

    def _construct(self, where: str, fn: Any) -> Any:
        try:
            return fn()
        except (DefinitionError, DefinitionTypeError) as exc:  # raised by the constructors: say where
            raise ConfigError(f"{self.source}: {where}: {exc}") from exc
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
            for key in (
                "name",
                "system_prompt",
                "user_prompt",
                "output_format_instruction",
                "max_validation_retries",
                "emoji",
                "sampling",
            ):
                if key in d:
                    kwargs[key] = d[key]
            step = self._construct(where, lambda: Step(d["id"], **kwargs))
            self.step_paths.append((where, step))
            return step
        if kind == "apply":
            from chainette.core.apply import ApplyNode

            fn = self.resolve(
                d["function"],
                f"{where}.function",
                "function",
                lambda o: None if callable(o) else f"is {type(o).__name__}, expected a function",
            )
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
    symbols: Iterable[str | ModuleType | Mapping[str, Any]] | Mapping[str, Any] = (),
    register_engines: bool = True,
    check_engines: bool = False,
    allow_imports: Iterable[str | ModuleType] = (),
) -> Any:
    """Build a chain from an already parsed YAML document (validated first).

    Imports are limited as in :func:`load_chain`; ``base_dir`` stands for the file's directory
    (without it, only ``symbols`` and ``allow_imports`` may be imported)."""
    from chainette.core.chain import Chain
    from chainette.engine.registry import engine_configs, has_engine, register_engine

    if data is None:
        raise ConfigError(f"{source}: the file is empty; a chain needs 'name:' and 'steps:'")
    validate_document(data, source=source)
    namespaces, modules = _split_symbols(symbols)
    builder = _Builder(
        source, Path(base_dir) if base_dir is not None else None, modules, allow_imports, namespaces=namespaces
    )

    engines = engine_configs(data.get("engines") or [], source=source)
    if register_engines:
        for cfg in engines:
            register_engine(cfg)

    items = builder.items(data["steps"], "steps")
    if "input_model" in data:
        model = builder.model(data["input_model"], "input_model")
        first = _first_node(items)
        if first is None:
            raise ConfigError(
                f"{source}: input_model: a chain starting with parallel branches needs "
                "input_model on the first node of each branch"
            )
        if first.input_model is None:
            first.input_model = model
        elif first.input_model is not model:
            raise ConfigError(
                f"{source}: input_model: conflicts with {first.id}'s input_model {first.input_model.__name__}"
            )

    if check_engines:
        known = {cfg.name for cfg in engines}
        bad = [
            (where, step)
            for where, step in builder.step_paths
            if step.engine_name not in known and not has_engine(step.engine_name)
        ]
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


# -- writing a chain back as YAML ----------------------------------------------------------------
def chain_to_dict(chain: Any, *, symbols: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The YAML document (as a dict) of ``chain``, which :func:`chain_from_dict` builds back.

    Nodes found in ``symbols`` (e.g. ``globals()``) are written by name, the spec's symbol
    form; the others are written out (``type: step`` ...), with models and functions as
    ``module:attr`` references. A node with no written form (a ``BatchNode``) must be in
    ``symbols``.
    """
    from pydantic import BaseModel

    from chainette.core.apply import ApplyNode
    from chainette.core.branch import Branch, JoinBranch, Parallel
    from chainette.core.step import Step

    names = {id(v): k for k, v in (symbols or {}).items() if not str(k).startswith("_")}

    def ref(obj: Any, what: str) -> str:
        if id(obj) in names:
            return names[id(obj)]
        module, qual = getattr(obj, "__module__", None), getattr(obj, "__qualname__", "")
        if not module or module == "__main__" or "<" in qual:
            raise ConfigError(
                f"cannot write {what} {qual or obj!r} as a reference: it is not importable "
                f"(defined in {module or '?'}); pass symbols=globals() to write it by name"
            )
        return f"{module}:{qual}"

    def node(n: Any) -> Any:
        if id(n) in names:
            return names[id(n)]
        if isinstance(n, Step):
            d: dict[str, Any] = {"type": "step", "id": n.id}
            if n.name != n.id:
                d["name"] = n.name
            d["engine"] = n.engine_name
            if n.input_model is not None:
                d["input_model"] = ref(n.input_model, "model")
            d["output_model"] = ref(n.output_model, "model")
            if n.user_system_prompt:
                d["system_prompt"] = n.user_system_prompt
            d["user_prompt"] = n.user_prompt
            if n.output_format_instruction is not None:
                d["output_format_instruction"] = n.output_format_instruction
            if n.max_validation_retries != 2:
                d["max_validation_retries"] = n.max_validation_retries
            if n.emoji:
                d["emoji"] = n.emoji
            sampling = n.sampling.model_dump(exclude_none=True)
            if sampling:
                d["sampling"] = sampling
            return d
        if isinstance(n, ApplyNode):
            d = {"type": "apply", "id": n.id, "function": ref(n.fn, "function")}
            if n.name != n.id:
                d["name"] = n.name
            for key in ("input_model", "output_model"):
                model = getattr(n, key)
                if isinstance(model, type) and issubclass(model, BaseModel):
                    d[key] = ref(model, "model")
            if n.blocking:
                d["blocking"] = True
            return d
        if isinstance(n, Branch):
            d = {"type": "join" if isinstance(n, JoinBranch) else "branch", "name": n.name}
            if n.id != n.name:
                d["id"] = n.id
            if isinstance(n, JoinBranch):
                d["alias"] = n.alias
            d["steps"] = items(n.steps)
            return d
        raise ConfigError(
            f"node '{getattr(n, 'id', n)}' ({type(n).__name__}) has no YAML form of its own: "
            "pass symbols=... containing it to write it by name"
        )

    def items(its: list[Any]) -> list[Any]:
        return [[node(b) for b in it.branches] if isinstance(it, Parallel) else node(it) for it in its]

    doc: dict[str, Any] = {"name": chain.name}
    if getattr(chain, "emoji", ""):
        doc["emoji"] = chain.emoji
    doc["batch_size"] = chain.batch_size
    doc["steps"] = items(chain.items)
    return doc


def dump_chain(chain: Any, path: str | Path | None = None, *, symbols: Mapping[str, Any] | None = None) -> str:
    """``chain`` as YAML text (see :func:`chain_to_dict`); also written to ``path`` if given."""
    import yaml

    text = yaml.safe_dump(chain_to_dict(chain, symbols=symbols), sort_keys=False, allow_unicode=True, width=100)
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text
