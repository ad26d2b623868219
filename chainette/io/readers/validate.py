"""From raw rows to a chain's input rows: validation and ``--on-bad-input`` (fail or skip).

Every problem an :class:`~chainette.io.readers.source.InputSource` reports, and every row that
does not fit the chain's input model, either raises :class:`~chainette.errors.InputError`
naming the file, line (or row) and field (``on_bad="fail"``), or is written to the
:class:`~chainette.io.readers.skip_log.SkipLog` and skipped (``on_bad="skip"``). A skipped row
is yielded as :data:`chainette.core.row.SKIPPED`, so later rows keep row ids equal to their
position in the input; the skip record names that ``row_id``. An input with no rows at all is
a problem too (nothing is ever silently empty).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Literal

from chainette.errors import InputError, describe_validation_error
from chainette.io.readers.skip_log import SkipLog
from chainette.io.readers.source import InputSource, RawRow

__all__ = ["OnBad", "validate_rows"]

OnBad = Literal["fail", "skip"]

_ROW_HINT = (
    ". Fix the input, or pass --on-bad-input skip to skip bad rows "
    "(they are listed in <output_dir>/skipped_inputs.jsonl)"
)
_FILE_HINT = (
    ". Fix the input, or pass --on-bad-input skip to go on without what cannot be read "
    "(it is recorded in <output_dir>/skipped_inputs.jsonl)"
)
_EMPTY_HINT = (
    ". Check the -i path and the file, or pass --on-bad-input skip to run on no rows anyway "
    "(recorded in <output_dir>/skipped_inputs.jsonl)"
)


def _describe_validation(exc: Any) -> tuple[str | None, str]:
    """The first invalid field (for the error's location) and the whole description."""
    errors = exc.errors(include_url=False)
    first_field = ".".join(str(p) for p in errors[0]["loc"]) if errors and errors[0]["loc"] else None
    return first_field, describe_validation_error(exc)


def _required_keys(model: Any) -> list[tuple[str, ...]]:
    """For each required field of ``model``, the column names that can fill it."""
    out = []
    for name, info in getattr(model, "model_fields", {}).items():
        if not info.is_required():
            continue
        names = {name}
        for alias in (info.alias, info.validation_alias):
            if isinstance(alias, str):
                names.add(alias)
            elif alias is not None:  # AliasChoices / AliasPath: too flexible to check up front
                names = set()
                break
        if names:
            out.append(tuple(sorted(names)))
    return out


def _missing_columns(source: InputSource, model: Any) -> str | None:
    """Name the model's required fields that no column of the file can fill (known schemas only)."""
    if model is None or source.file_columns is None:
        return None
    have = set(source.file_columns)
    if source.columns:
        have &= set(source.columns)
    missing = [names[0] for names in _required_keys(model) if not have & set(names)]
    if not missing:
        return None
    return (
        f"column(s) {', '.join(missing)} required by {model.__name__} are not in the input "
        f"(it has {', '.join(source.file_columns) or 'no columns'}"
        f"{'; --columns keeps ' + ', '.join(source.columns) if source.columns else ''}); "
        f"rename the column(s), or make the field(s) optional in {model.__name__}"
    )


def _error(source: InputSource, raw: RawRow, message: str, fld: str | None, hint: str | None = None) -> InputError:
    unit = raw.unit or source.unit
    hint = hint or (_FILE_HINT if raw.positions == 0 else _ROW_HINT)
    span = f" (the record spans lines {raw.line}-{raw.end_line})" if raw.end_line else ""
    if unit == "line" or raw.line is None:
        return InputError(f"{message}{span}{hint}", path=source.display, line=raw.line, field=fld)
    err = InputError(f"row {raw.line}: {message}{hint}", path=source.display, field=fld)
    err.line = raw.line
    return err


def validate_rows(
    source: InputSource,
    model: Any = None,
    *,
    on_bad: OnBad = "fail",
    skip_log: SkipLog | None = None,
    on_row: Callable[[], None] | None = None,
) -> Iterator[Any]:
    """Yield validated rows (model instances, or dicts when ``model`` is ``None``), lazily.

    A skipped row is yielded as :data:`chainette.core.row.SKIPPED` so that row ids stay equal
    to positions in the input.

    A malformed or invalid row, or a problem with the file, raises :class:`InputError`
    (``on_bad="fail"``) naming the file, line and field, or is recorded in ``skip_log`` and
    skipped (``on_bad="skip"``).
    """
    from pydantic import ValidationError

    from chainette.core.row import SKIPPED

    position = 0
    seen = False
    for raw in source:
        if not seen:
            seen = True
            missing = _missing_columns(source, model) if on_bad == "fail" else None
            if missing:
                raise InputError(missing, path=source.display)
        if on_row is not None and raw.positions:
            on_row()
        fld: str | None = None
        if raw.data is None:
            message = raw.error or "malformed row"
        elif model is None:
            position += 1
            yield raw.data
            continue
        else:
            try:
                row = model.model_validate(raw.data)
            except ValidationError as exc:
                fld, message = _describe_validation(exc)
                message = f"does not match {model.__name__}: {message}"
            else:
                position += 1
                yield row
                continue
        if on_bad == "fail":
            raise _error(source, raw, message, fld)
        record: dict[str, Any] = {
            "source": source.display,
            "line": raw.line,
            "unit": raw.unit or source.unit,
            "row_id": str(position) if raw.positions else None,
            "field": fld,
            "error": message,
        }
        if raw.end_line:
            record["end_line"] = raw.end_line
        if skip_log is not None:
            skip_log.add(record)
        for _ in range(raw.positions):
            position += 1
            yield SKIPPED  # keeps the following rows' ids equal to their position in the input
    if not seen:
        raw = RawRow(None, None, source.empty_detail, positions=0)
        if on_bad == "fail":
            raise _error(source, raw, source.empty_detail, None, _EMPTY_HINT)
        if skip_log is not None:
            skip_log.add(
                {
                    "source": source.display,
                    "line": None,
                    "unit": source.unit,
                    "row_id": None,
                    "field": None,
                    "error": source.empty_detail,
                }
            )
