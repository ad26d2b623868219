"""What the run report shows, read from a run directory with bounded work.

Everything read here is either small (``metadata.json``, ``graph.json``, ``metrics.json``,
the journal) or read in bounded amounts: at most ``SAMPLE_SCAN_LINES`` lines of each step
folder for the sample browser (a scan stops past the last sampled row once each one is
found, else ``QUIET_LINES`` lines after the last one found), and one streaming pass over the
error records (a regular expression per line, JSON parsing only for the few examples kept).
A run directory of a million rows therefore gives a report of the same size as one of a
thousand.

Only committed data is shown: for a run that is still going, or whose process was killed,
each folder is read up to the sizes recorded in the journal (what a resume keeps).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chainette.io.journal import ERRORS, FLATTENED, JOURNAL_DIR, JOURNAL_FILE
from chainette.io.metrics import load_metrics
from chainette.utils.histogram import (
    LATENCY_BUCKETS,
    TOKEN_BUCKETS,
    from_sparse,
    merge,
    percentiles,
    token_value,
)

SAMPLE_ROWS = 200
"""input rows shown in the sample browser (the first ones committed)"""
EXTRA_ERROR_ROWS = 30
"""rows added to the sample because they are an error group's example"""
SAMPLE_SCAN_LINES = 20_000
"""lines read at most from each folder to find the sampled rows' values"""
QUIET_LINES = 2_000
"""a folder's scan for the sampled rows stops after this many lines without one (rows are
committed close to input order, and a fan-out's children are written together)"""
MAX_CHILDREN = 8
"""records kept per sampled row and step (a fan-out writes several)"""
ERROR_SCAN_LINES = 5_000_000
"""error records grouped at most (the per-step table counts them all from the journal)"""
ERROR_EXAMPLES = 3
MAX_ERROR_GROUPS = 50
TEXT_LIMIT = 600
"""characters kept of a long text value in the sample browser"""
SAMPLE_BYTES = 1_500_000
"""the sample browser's data stops growing past this many bytes of JSON"""
INPUT_STEP = "chain_input"
DATA_KINDS = ("step", "apply", "batch")
"""graph node types that write a folder of records"""

_ERROR_KEYS = re.compile(rb'"step_id":\s*"((?:[^"\\]|\\.)*)",\s*"error_type":\s*"((?:[^"\\]|\\.)*)"')
_ROW_ID = re.compile(rb'^\{"row_id":\s*"((?:[^"\\]|\\.)*)"')


@dataclass
class StepRow:
    """One line of the per-step table."""

    id: str
    kind: str
    engine: str | None = None
    rows_in: int | None = None
    rows_out: int = 0
    errors: int = 0
    cached: int = 0
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None
    priced: bool = True
    """False when the step's engine has no known price (cost unknown, not zero)"""
    latency: list[int] = field(default_factory=lambda: [0] * LATENCY_BUCKETS)
    out_tokens: list[int] = field(default_factory=lambda: [0] * TOKEN_BUCKETS)
    latency_s: float = 0.0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def latency_pcts(self) -> list[float | None]:
        return percentiles(self.latency, (0.5, 0.95, 0.99))

    @property
    def out_tokens_p50(self) -> float | None:
        return percentiles(self.out_tokens, (0.5,), value=token_value)[0]


@dataclass
class ErrorGroup:
    step_id: str
    error_type: str
    count: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ReportData:
    run_dir: Path
    metadata: dict[str, Any]
    graph: dict[str, Any]
    journal: dict[str, Any] | None
    metrics: dict[str, Any] | None
    steps: list[StepRow]
    sessions: list[dict[str, Any]]
    error_groups: list[ErrorGroup]
    errors_scanned: int
    errors_truncated: bool
    sample: dict[str, Any]

    @property
    def status(self) -> str:
        """``completed``, ``interrupted``, ``running`` (or killed: no process closed it)."""
        status = str(self.metadata.get("status") or "")
        if not status:
            status = "completed" if (self.journal or {}).get("completed") else "running"
        return status


# -- loading -----------------------------------------------------------------------------------
def load_report_data(run_dir: str | Path) -> ReportData:
    """Read everything the report shows from ``run_dir`` (bounded; see the module docstring)."""
    run_dir = Path(run_dir)
    metadata = _read_json(run_dir / "metadata.json") or {}
    graph = _read_json(run_dir / "graph.json") or {}
    journal = _read_json(run_dir / JOURNAL_DIR / JOURNAL_FILE)
    metrics = load_metrics(run_dir)
    sessions = list(metrics["sessions"]) if metrics else []
    steps = _step_rows(metadata, graph, journal, sessions)
    limits = _committed_limits(journal)
    folders = [s.id for s in steps]
    first_ids = _first_row_ids(run_dir, folders, limits)
    error_first = _first_error_ids(run_dir, limits)
    candidates = sorted(set(first_ids) | set(error_first), key=_id_order)[:SAMPLE_ROWS]
    groups, scanned, truncated, row_errors, extra = _scan_errors(run_dir, limits, set(candidates))
    sample_ids = candidates + [r for r in extra if r not in set(candidates)][:EXTRA_ERROR_ROWS]
    sample = _sample(run_dir, folders, limits, sample_ids, row_errors)
    return ReportData(run_dir, metadata, graph, journal, metrics, steps, sessions, groups, scanned, truncated, sample)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def data_nodes(graph: dict[str, Any]) -> list[dict[str, Any]]:
    """The graph's nodes that write records (steps, applies, batch nodes), in run order."""
    nodes = {n.get("id"): n for n in graph.get("nodes", []) if isinstance(n, dict)}
    order = [i for i in graph.get("order", []) if i in nodes] or list(nodes)
    return [nodes[i] for i in order if nodes[i].get("type") in DATA_KINDS]


def _step_rows(
    metadata: dict[str, Any], graph: dict[str, Any], journal: dict[str, Any] | None, sessions: list[dict[str, Any]]
) -> list[StepRow]:
    counts = (journal or {}).get("counts") or {}
    meta_steps = metadata.get("steps") or {}
    cost = metadata.get("cost") or {}
    cost_steps = cost.get("steps") or {}
    rows: list[StepRow] = []
    ids: list[str] = []
    kinds: dict[str, str] = {}
    step_engine: dict[str, str | None] = {}
    for node in data_nodes(graph):
        ids.append(node["id"])
        kinds[node["id"]] = node.get("type", "step")
        step_engine[node["id"]] = node.get("engine")
    for sid in [*meta_steps, *counts]:
        if sid not in kinds and sid != INPUT_STEP:
            ids.append(sid)
            kinds[sid] = "step"
    for sid in ids:
        row = StepRow(sid, kinds[sid], engine=step_engine.get(sid))
        c = counts.get(sid) or meta_steps.get(sid) or {}
        row.rows_out = int(c.get("outputs", 0))
        row.errors = int(c.get("errors", 0))
        totals = [s.get("totals", {}).get(sid) for s in sessions]
        totals = [t for t in totals if isinstance(t, dict)]
        if totals:
            row.rows_in = sum(int(t.get("done", 0)) + int(t.get("errors", 0)) for t in totals)
            for key in ("cached", "requests", "prompt_tokens", "completion_tokens"):
                setattr(row, key, sum(int(t.get(key, 0)) for t in totals))
            row.latency_s = sum(float(t.get("latency_s", 0.0)) for t in totals)
            costs = [t.get("cost") for t in totals if "cost" in t]
            if costs:
                known = [float(x) for x in costs if x is not None]
                unknown = any(
                    x is None
                    for t, x in zip(totals, costs, strict=False)
                    if int(t.get("prompt_tokens", 0)) + int(t.get("completion_tokens", 0))
                )
                row.cost = None if unknown else sum(known)
                row.priced = not unknown
            elif sid in cost_steps:
                row.cost, row.priced = _meta_cost(cost_steps[sid])
        else:  # a run directory made before metrics.json: what metadata.json says of the last session
            m = meta_steps.get(sid) or {}
            cs = cost_steps.get(sid) or {}
            row.cached = int(m.get("cached", cs.get("cache_hits", 0)) or 0)
            row.requests = int(cs.get("requests", 0) or 0)
            row.prompt_tokens = int(m.get("prompt_tokens", cs.get("prompt_tokens", 0)) or 0)
            row.completion_tokens = int(m.get("completion_tokens", cs.get("completion_tokens", 0)) or 0)
            if sid in cost_steps:
                row.cost, row.priced = _meta_cost(cs)
        if kinds[sid] == "step":  # one record per row in: what was committed, exactly
            row.rows_in = row.rows_out + row.errors
        else:
            row.cost, row.priced = None, True
        for s in sessions:
            merge(row.latency, from_sparse((s.get("latency") or {}).get(sid) or [], LATENCY_BUCKETS))
            merge(row.out_tokens, from_sparse((s.get("completion_tokens") or {}).get(sid) or [], TOKEN_BUCKETS))
        if row.engine is None and kinds[sid] == "step":
            row.engine = (cost_steps.get(sid) or {}).get("engine")
        rows.append(row)
    return rows


def _meta_cost(entry: dict[str, Any]) -> tuple[float | None, bool]:
    cost = entry.get("cost")
    if cost is None:
        return None, not (entry.get("tokens") or entry.get("prompt_tokens") or entry.get("completion_tokens"))
    return float(cost), True


# -- reading folders (committed lines only) -------------------------------------------------
def _committed_limits(journal: dict[str, Any] | None) -> dict[str, tuple[int, int]]:
    """Per folder, ``(file index, bytes)`` of its last committed file, for a run not completed
    (lines past them were written after the last commit and a resume drops them)."""
    if not journal or journal.get("completed"):
        return {}
    out = {}
    for name, state in (journal.get("files") or {}).items():
        try:
            out[name] = (int(state["index"]), int(state["size"]))
        except (KeyError, TypeError, ValueError):
            continue
    return out


def _iter_lines(folder: Path, limit: tuple[int, int] | None) -> Iterator[bytes]:
    """Raw JSONL lines of ``folder`` in order, committed ones only when ``limit`` is given."""
    if not folder.is_dir():
        return
    files = sorted((p for p in folder.glob("*.jsonl") if p.stem.isdigit()), key=lambda p: int(p.stem))
    for p in files:
        index = int(p.stem)
        size = None
        if limit is not None:
            if index > limit[0]:
                return
            if index == limit[0]:
                size = limit[1]
        with open(p, "rb") as f:
            read = 0
            for line in f:
                read += len(line)
                if size is not None and read > size:
                    return
                if line.strip():
                    yield line


def _iter_records(folder: Path, limit: tuple[int, int] | None) -> Iterator[tuple[str | None, Any]]:
    """``(row_id, record-or-raw-line)`` of a folder: JSONL lines stay raw (parsed only when
    needed); Parquet and CSV files (a finished run's other formats) come parsed."""
    if not folder.is_dir():
        return
    if any(p.suffix in (".parquet", ".csv") for p in folder.iterdir() if p.stem.isdigit()):
        from chainette.io.stream_writer import read_records

        for rec in read_records(folder):
            yield (str(rec.get("row_id")) if rec.get("row_id") is not None else None), rec
        return
    for line in _iter_lines(folder, limit):
        m = _ROW_ID.match(line)
        if m is not None:
            yield _unescape(m.group(1)), line
        else:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            yield (str(rec.get("row_id")) if isinstance(rec, dict) and rec.get("row_id") is not None else None), rec


def _unescape(raw: bytes) -> str:
    if b"\\" not in raw:
        return raw.decode("utf-8", "replace")
    try:
        return json.loads(b'"' + raw + b'"')
    except ValueError:
        return raw.decode("utf-8", "replace")


def top_id(row_id: str) -> str:
    """The input row an id belongs to (``"12.0.3"`` -> ``"12"``: fan-out children)."""
    return row_id.split(".", 1)[0]


def _id_order(row_id: str) -> tuple[int, int, str]:
    return (0, int(row_id), "") if row_id.isdigit() else (1, 0, row_id)


def _first_row_ids(run_dir: Path, folders: list[str], limits: dict[str, tuple[int, int]]) -> list[str]:
    """The first ``SAMPLE_ROWS`` input row ids of the first folder with records."""
    for name in folders:
        seen: dict[str, None] = {}
        for k, (row_id, _) in enumerate(_iter_records(run_dir / name, limits.get(name))):
            if row_id is not None:
                seen.setdefault(top_id(row_id))
            if len(seen) >= SAMPLE_ROWS or k >= SAMPLE_SCAN_LINES:
                break
        if seen:
            return list(seen)
    return []


def _first_error_ids(run_dir: Path, limits: dict[str, tuple[int, int]]) -> list[str]:
    seen: dict[str, None] = {}
    for k, (row_id, _) in enumerate(_iter_records(run_dir / ERRORS, limits.get(ERRORS))):
        if row_id is not None:
            seen.setdefault(top_id(row_id))
        if len(seen) >= SAMPLE_ROWS or k >= SAMPLE_SCAN_LINES:
            break
    return list(seen)


def _scan_errors(
    run_dir: Path, limits: dict[str, tuple[int, int]], wanted: set[str]
) -> tuple[list[ErrorGroup], int, bool, dict[str, list[dict[str, Any]]], list[str]]:
    """Group error records by (step, error type) with a few examples each; collect the
    errors of the ``wanted`` rows; return also the example rows not in ``wanted``."""
    groups: dict[tuple[str, str], ErrorGroup] = {}
    row_errors: dict[str, list[dict[str, Any]]] = {}
    extra: list[str] = []
    extra_set: set[str] = set()
    scanned = 0
    truncated = False
    for line in _iter_lines(run_dir / ERRORS, limits.get(ERRORS)):
        if scanned >= ERROR_SCAN_LINES:
            truncated = True
            break
        scanned += 1
        m = _ERROR_KEYS.search(line)
        rec: dict[str, Any] | None = None
        if m is not None:
            key = (_unescape(m.group(1)), _unescape(m.group(2)))
        else:
            rec = _parse(line)
            if rec is None:
                continue
            key = (str(rec.get("step_id", "?")), str(rec.get("error_type", "?")))
        group = groups.get(key)
        if group is None:
            group = groups[key] = ErrorGroup(*key)
        group.count += 1
        row = _ROW_ID.match(line)
        tid = top_id(_unescape(row.group(1))) if row is not None else None
        example = len(group.examples) < ERROR_EXAMPLES
        if example or tid is None or tid in wanted or tid in extra_set:
            rec = rec or _parse(line)
            if rec is None:
                continue
            tid = top_id(str(rec.get("row_id", "")))
            rec = {k: _clip(v) for k, v in rec.items()}
            if example:
                group.examples.append(rec)
                if tid not in wanted and tid not in extra_set and len(extra) < EXTRA_ERROR_ROWS:
                    extra.append(tid)
                    extra_set.add(tid)
            if tid in wanted or tid in extra_set:
                row_errors.setdefault(tid, []).append(rec)
    ordered = sorted(groups.values(), key=lambda g: (-g.count, g.step_id, g.error_type))
    return ordered, scanned, truncated, row_errors, extra


def _parse(line: bytes | dict[str, Any]) -> dict[str, Any] | None:
    if isinstance(line, dict):
        return line
    try:
        rec = json.loads(line)
    except ValueError:
        return None
    return rec if isinstance(rec, dict) else None


# -- the sample browser's data ----------------------------------------------------------------
def _sample(
    run_dir: Path,
    folders: list[str],
    limits: dict[str, tuple[int, int]],
    ids: list[str],
    row_errors: dict[str, list[dict[str, Any]]],
) -> dict[str, Any]:
    """``{"steps": [...], "rows": [{"id", "input", "values": {step: [records]}, "errors": [...]}]}``
    for the sampled rows, values clipped, the whole kept under ``SAMPLE_BYTES``."""
    wanted = set(ids)
    values: dict[str, dict[str, list[dict[str, Any]]]] = {i: {} for i in ids}
    inputs: dict[str, dict[str, Any]] = {}
    for name in [*folders, FLATTENED]:
        quiet = 0
        unseen = set(wanted)
        for k, (row_id, raw) in enumerate(_iter_records(run_dir / name, limits.get(name))):
            if k >= SAMPLE_SCAN_LINES or quiet >= QUIET_LINES:
                break
            tid = top_id(row_id) if row_id is not None else None
            if tid not in wanted:
                if not unseen:  # every sampled row found, and its records are written together
                    break
                quiet += 1
                continue
            quiet = 0
            unseen.discard(tid)
            if name == FLATTENED:
                if tid in inputs:
                    continue
                rec = _parse(raw)
                if rec is not None:
                    prefix = INPUT_STEP + "."
                    inputs[tid] = {k2[len(prefix) :]: _clip(v) for k2, v in rec.items() if k2.startswith(prefix)}
                continue
            kept = values[tid].setdefault(name, [])
            if len(kept) < MAX_CHILDREN:
                rec = _parse(raw)
                if rec is not None:
                    kept.append({k2: _clip(v) for k2, v in rec.items()})
    rows: list[dict[str, Any]] = []
    size = 0
    for i in ids:
        row = {"id": i, "input": inputs.get(i), "values": values[i], "errors": row_errors.get(i, [])}
        size += len(json.dumps(row, ensure_ascii=False, default=str))
        if size > SAMPLE_BYTES and rows:
            break
        rows.append(row)
    return {"steps": folders, "rows": rows, "limit": SAMPLE_ROWS}


def _clip(value: Any, depth: int = 0) -> Any:
    """A value made small for the page: long texts cut, long lists and deep nesting shortened."""
    if isinstance(value, str):
        if len(value) > TEXT_LIMIT:
            return value[:TEXT_LIMIT] + f"… [{len(value) - TEXT_LIMIT:,} more characters]"
        return value
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    if depth >= 6:
        return _clip(json.dumps(value, ensure_ascii=False, default=str), depth)
    if isinstance(value, dict):
        items = list(value.items())
        out = {str(k): _clip(v, depth + 1) for k, v in items[:50]}
        if len(items) > 50:
            out["…"] = f"{len(items) - 50} more keys"
        return out
    if isinstance(value, (list, tuple)):
        out_list = [_clip(v, depth + 1) for v in value[:20]]
        if len(value) > 20:
            out_list.append(f"… {len(value) - 20} more items")
        return out_list
    return _clip(str(value), depth)
