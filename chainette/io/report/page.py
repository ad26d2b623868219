"""The report page: ``ReportData`` -> one self-contained HTML document (inline CSS, JS, SVG).

Nothing on the page is fetched: no external script, style sheet, font or image. Every value
from the run directory is escaped (HTML text) or embedded as JSON that cannot close its
``<script>`` element; the sample browser builds its DOM with ``textContent`` only.
"""

from __future__ import annotations

import json
import math
import time
from html import escape
from typing import Any

from chainette.io.report.charts import colour, fmt_latency, latency_histogram, line_chart
from chainette.io.report.dag_svg import dag_svg
from chainette.io.report.data import ReportData

STATUS_TEXT = {
    "completed": "completed",
    "interrupted": "interrupted (resumable)",
    "running": "running, or its process was killed",
}


def render(data: ReportData) -> str:
    """The whole page."""
    meta = data.metadata
    chain = str(meta.get("chain_name") or data.graph.get("name") or data.run_dir.name)
    body = [
        _header(data, chain),
        _section("dag", "Chain", _dag(data)),
        _section("steps", "Steps", _steps_table(data)),
        _section("charts", "Over the run", _charts(data)),
    ]
    if len(data.sessions) > 1 or data.status != "completed":
        body.append(_section("sessions", "Sessions", _sessions(data)))
    body.append(_section("errors", "Errors", _errors(data)))
    body.append(_section("samples", "Sample rows", _samples(data)))
    body.append(_footer(data))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(chain)} · Chainette run report</title><style>{CSS}</style></head>"
        f"<body><main>{''.join(body)}</main>"
        f'<script type="application/json" id="sample-data">{_json_for_script(data.sample)}</script>'
        f"<script>{JS}</script></body></html>\n"
    )


# -- pieces ------------------------------------------------------------------------------------
def _section(sid: str, title: str, content: str) -> str:
    return f'<section id="{sid}"><h2>{escape(title)}</h2>{content}</section>'


def _num(n: Any) -> str:
    if n is None:
        return "–"
    if isinstance(n, float) and not n.is_integer():
        return f"{n:,.1f}"
    return f"{int(n):,}"


def fmt_cost(cost: float | None, priced: bool = True) -> str:
    if cost is None:
        return "price unknown" if not priced else "–"
    if cost == 0:
        return "$0"
    if cost < 0.01:
        return f"${cost:.4f}"
    return f"${cost:,.2f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


def _session_seconds(s: dict[str, Any]) -> float:
    try:
        wall = float(s.get("ended_at", 0)) - float(s.get("started_at", 0))
    except (TypeError, ValueError):
        wall = 0.0
    return max(0.0, wall)


def run_seconds(data: ReportData) -> float | None:
    if data.sessions:
        return sum(_session_seconds(s) for s in data.sessions)
    seconds = data.metadata.get("seconds")
    return float(seconds) if isinstance(seconds, (int, float)) else None


def total_cost(data: ReportData) -> tuple[float | None, bool]:
    """The run's cost (all sessions) and whether every engine with tokens had a price."""
    cost = data.metadata.get("cost") or {}
    run_total = cost.get("run_total")
    if len(data.sessions) <= 1 or run_total:
        src = run_total or cost.get("total")
        if src:
            complete = bool(src.get("cost_complete", True))
            return (float(src["cost"]) if src.get("cost") is not None else None), complete
    known = [s.cost for s in data.steps if s.cost is not None]
    complete = all(s.priced for s in data.steps)
    if not known and not complete:
        return None, False
    return sum(known), complete


def _header(data: ReportData, chain: str) -> str:
    meta = data.metadata
    status = data.status
    steps = data.steps
    rows_in = max(int(meta.get("rows_in") or 0), int((data.journal or {}).get("rows_seen") or 0))
    final = steps[-1].rows_out if steps else 0
    errors = sum(s.errors for s in steps)
    tokens = sum(s.tokens for s in steps)
    seconds = run_seconds(data)
    cost, complete = total_cost(data)
    cost_text = fmt_cost(cost, True) + ("" if complete else " + price unknown")
    if cost is None:
        cost_text = "price unknown"
    rate = f"{rows_in / seconds:,.1f} rows/s" if seconds and rows_in else "–"
    cards = [
        ("Rows in", _num(rows_in)),
        ("Rows out (last step)", _num(final)),
        ("Errors", _num(errors)),
        ("Tokens", _num(tokens)),
        ("Cost", cost_text),
        ("Time", _duration(seconds)),
        ("Throughput", rate),
        ("Sessions", _num(max(1, len(data.sessions)))),
    ]
    notes = []
    if status == "interrupted":
        stopped = meta.get("stopped_by")
        why = f" (stopped by {stopped})" if stopped else ""
        notes.append(
            f"This run was interrupted{why}. Everything committed is shown; rerun the same command "
            "with <code>--resume</code> to continue it."
        )
    elif status == "running":
        last = data.sessions[-1].get("ended_at") if data.sessions else None
        when = f" as of {_utc(last)}" if last else ""
        notes.append(
            f"This run had not finished when this report was built{escape(when)}: it is still running "
            "or its process was killed. Only committed rows are shown; "
            "<code>chainette report RUN_DIR</code> rebuilds this page."
        )
    if len(data.sessions) > 1:
        notes.append(f"Resumed: {len(data.sessions)} sessions, shown back to back.")
    run_ids = [str(s.get("run_id")) for s in data.sessions if s.get("run_id")] or [str(meta.get("run_id", ""))]
    return (
        f'<header><div class="title"><h1>{escape(chain)}</h1>'
        f'<span class="status status-{escape(status)}" id="run-status">{escape(STATUS_TEXT.get(status, status))}</span></div>'
        f'<p class="muted">run {escape(run_ids[-1])} · started {escape(str(meta.get("started_at") or "–"))} · '
        f"{escape(str(data.run_dir))}</p>"
        + "".join(f'<p class="note">{n}</p>' for n in notes)
        + '<div class="cards">'
        + "".join(
            f'<div class="card"><div class="k">{escape(k)}</div><div class="v">{escape(v)}</div></div>'
            for k, v in cards
        )
        + "</div></header>"
    )


def _dag(data: ReportData) -> str:
    stats = {s.id: {"rows_out": s.rows_out, "errors": s.errors, "engine": s.engine} for s in data.steps}
    rows_in = data.metadata.get("rows_in")
    svg = dag_svg(data.graph, stats, rows_in=int(rows_in) if isinstance(rows_in, int) else None)
    return f'<figure id="fig-dag" class="dag-wrap">{svg}</figure>'


def _steps_table(data: ReportData) -> str:
    head = (
        "<tr><th>step</th><th>type</th><th>rows in</th><th>rows out</th><th>errors</th><th>cached</th>"
        "<th>requests</th><th>tokens in</th><th>tokens out</th><th>cost</th><th>latency p50</th>"
        "<th>p95</th><th>p99</th><th>out tokens / request p50</th></tr>"
    )
    rows = []
    for k, s in enumerate(data.steps):
        p50, p95, p99 = s.latency_pcts
        llm = s.kind == "step"
        mean = f"mean {fmt_latency(s.latency_s / s.requests)}" if s.requests else ""
        kind = (
            f"LLM · {s.engine}" if llm and s.engine else ("LLM" if llm else ("python" if s.kind == "apply" else s.kind))
        )
        err_cls = ' class="bad"' if s.errors else ""
        rows.append(
            f'<tr data-step="{escape(s.id)}"><td><i class="dot" style="background:{colour(k)}"></i>{escape(s.id)}</td>'
            f"<td>{escape(kind)}</td><td>{_num(s.rows_in)}</td><td>{_num(s.rows_out)}</td>"
            f"<td{err_cls}>{_num(s.errors)}</td><td>{_num(s.cached) if llm else '–'}</td>"
            f"<td>{_num(s.requests) if llm else '–'}</td>"
            f"<td>{_num(s.prompt_tokens) if llm else '–'}</td><td>{_num(s.completion_tokens) if llm else '–'}</td>"
            f"<td>{escape(fmt_cost(s.cost, s.priced)) if llm else '–'}</td>"
            f'<td title="{escape(mean)}">{fmt_latency(p50) if llm else "–"}</td>'
            f"<td>{fmt_latency(p95) if llm else '–'}</td><td>{fmt_latency(p99) if llm else '–'}</td>"
            f"<td>{_num(s.out_tokens_p50) if llm and s.out_tokens_p50 is not None else '–'}</td></tr>"
        )
    note = (
        '<p class="muted small">rows in: for an LLM step, rows committed with its output or an error; '
        "for a python step, rows that finished it in any session (rows redone after an interruption count "
        "again). rows out: records committed (a fan-out writes several per row, a filter none); latency: "
        "per request answered by the engine (item-cache hits excluded), from a histogram with ~9% "
        "wide buckets.</p>"
    )
    if not data.metrics:
        note += (
            '<p class="muted small">This run directory has no metrics.json (made by an older '
            "Chainette): latency, requests and the charts are not available.</p>"
        )
    return f'<div class="scroll"><table id="steps-table"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table></div>{note}'


def _timeline(data: ReportData) -> tuple[list[tuple[float, float, dict[str, Any]]], list[tuple[float, str]], float]:
    """Sessions placed back to back: ``[(offset, seconds, session)]``, markers, total length."""
    placed = []
    markers = []
    offset = 0.0
    for k, s in enumerate(data.sessions):
        w = float(s.get("window_s") or 1.0)
        windows = max(
            [len(s.get("rows") or [])]
            + [len(v) for st in (s.get("steps") or {}).values() for v in st.values() if isinstance(v, list)]
        )
        seconds = max(_session_seconds(s), 0.0) or windows * w
        if k:
            before = data.sessions[k - 1].get("status") or "ended"
            markers.append((offset, f"resumed (session {k} {before})"))
        placed.append((offset, seconds, s))
        offset += seconds
    return placed, markers, offset


def _rate_points(
    values: list[int],
    offset: float,
    seconds: float,
    w: float,
    denominators: list[int] | None = None,
    scale: float = 1.0,
) -> list[tuple[float, float]]:
    """Per window ``value / window length`` (or ``value / denominator`` when given, skipping
    windows where it is 0) at each window's middle."""
    n = max(len(values), min(int(math.ceil(seconds / w)) if w else 0, 100_000))
    pts = []
    for i in range(n):
        v = values[i] if i < len(values) else 0
        if denominators is not None:
            d = denominators[i] if i < len(denominators) else 0
            if d:
                pts.append((offset + (i + 0.5) * w, v * scale / d))
            continue
        pts.append((offset + min((i + 0.5) * w, max(seconds, 1e-3)), v / w))
    return pts


def _charts(data: ReportData) -> str:
    if not data.sessions:
        return '<p class="muted">No metrics.json in this run directory: no charts.</p>'
    placed, markers, end = _timeline(data)
    ids = [s.id for s in data.steps]
    llm = [s.id for s in data.steps if s.kind == "step"]
    throughput: list[tuple[str, list[list[tuple[float, float]]]]] = []
    committed: list[list[tuple[float, float]]] = []
    for offset, seconds, s in placed:
        committed.append(_rate_points(list(s.get("rows") or []), offset, seconds, float(s.get("window_s") or 1.0)))
    throughput.append(("rows committed", committed))
    latency = []
    tokens = []
    errors = []
    for sid in ids:
        seg_done, seg_lat, seg_tok, seg_err = [], [], [], []
        for offset, seconds, s in placed:
            st = (s.get("steps") or {}).get(sid) or {}
            w = float(s.get("window_s") or 1.0)
            done = [a + b for a, b in _zip_pad(st.get("done") or [], st.get("errors") or [])]
            seg_done.append(_rate_points(done, offset, seconds, w))
            seg_err.append(_rate_points(list(st.get("errors") or []), offset, seconds, w))
            seg_tok.append(_rate_points(list(st.get("tokens") or []), offset, seconds, w))
            seg_lat.append(
                _rate_points(
                    list(st.get("latency_ms") or []),
                    offset,
                    seconds,
                    w,
                    denominators=list(st.get("requests") or []),
                    scale=1.0,
                )
            )
        throughput.append((sid, seg_done))
        if sid in llm:
            latency.append((sid, seg_lat))
            tokens.append((sid, seg_tok))
        if any(y for seg in seg_err for _, y in seg):
            errors.append((sid, seg_err))
    # colours: step k keeps colour k in every chart (the table's dots); the committed line is grey
    out = [
        '<div class="charts">',
        _recolour(
            line_chart(
                "fig-throughput",
                "Throughput: rows finished per second, by step",
                throughput,
                y_label="rows / s",
                markers=markers,
                x_end=end,
            ),
            ["rows committed", *ids],
            ids,
        ),
        _recolour(
            line_chart(
                "fig-latency",
                "Latency: mean per request over time, by LLM step (ms)",
                latency,
                y_label="ms",
                markers=markers,
                x_end=end,
            ),
            llm,
            ids,
        ),
        _recolour(
            line_chart(
                "fig-tokens", "Tokens per second, by LLM step", tokens, y_label="tokens / s", markers=markers, x_end=end
            ),
            llm,
            ids,
        ),
    ]
    if errors:
        out.append(
            _recolour(
                line_chart(
                    "fig-errors", "Errors per second, by step", errors, y_label="errors / s", markers=markers, x_end=end
                ),
                [e[0] for e in errors],
                ids,
            )
        )
    out.append("</div>")
    hists = [
        latency_histogram(s.id, s.latency, s.latency_pcts, ids.index(s.id)) for s in data.steps if s.kind == "step"
    ]
    if hists:
        out.append(
            '<h3>Latency distribution per LLM step</h3><div class="hists" id="fig-latency-hist">'
            + "".join(hists)
            + "</div>"
        )
    return "".join(out)


def _recolour(svg: str, labels: list[str], ids: list[str]) -> str:
    """Give each series the colour of its step (``line_chart`` colours by position)."""
    from chainette.io.report.charts import PALETTE

    mapping = {}
    for pos, label in enumerate(labels):
        want = "#7a8494" if label not in ids else colour(ids.index(label))
        mapping[colour(pos)] = want
    if all(k == v for k, v in mapping.items()):
        return svg
    marker = {k: f"@@C{n}@@" for n, k in enumerate(PALETTE)}
    for old in mapping:
        svg = svg.replace(old, marker[old])
    for old, new in mapping.items():
        svg = svg.replace(marker[old], new)
    return svg


def _zip_pad(a: list[int], b: list[int]) -> list[tuple[int, int]]:
    n = max(len(a), len(b))
    return [(a[i] if i < len(a) else 0, b[i] if i < len(b) else 0) for i in range(n)]


def _utc(epoch: Any) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(epoch)))
    except (TypeError, ValueError, OverflowError):
        return "–"


def _sessions(data: ReportData) -> str:
    if not data.sessions:
        return '<p class="muted">No metrics.json: sessions are not known.</p>'
    rows = []
    for k, s in enumerate(data.sessions):
        done = sum(int(x) for x in s.get("rows") or [])
        rows.append(
            f"<tr><td>{k + 1}</td><td>{escape(str(s.get('run_id', '')))}</td><td>{_utc(s.get('started_at'))}</td>"
            f"<td>{_duration(_session_seconds(s))}</td><td>{_num(done)}</td>"
            f"<td>{escape(str(s.get('status', '')))}</td></tr>"
        )
    return (
        '<div class="scroll"><table id="sessions-table"><thead><tr><th>#</th><th>run id</th><th>started</th>'
        "<th>time</th><th>rows committed</th><th>status</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></div>"
    )


def _errors(data: ReportData) -> str:
    if not data.error_groups:
        return '<p class="muted" id="no-errors">No error records.</p>'
    total = sum(g.count for g in data.error_groups)
    parts = []
    for g in data.error_groups[:50]:
        examples = []
        for ex in g.examples:
            rid = str(ex.get("row_id", ""))
            attempts = ex.get("attempts")
            examples.append(
                f'<li><a class="row-link" href="#row={escape(rid, quote=True)}">row {escape(rid)}</a>'
                + (f' <span class="muted">after {escape(str(attempts))} attempt(s)</span>' if attempts else "")
                + f"<pre>{escape(str(ex.get('message', '')))}</pre></li>"
            )
        parts.append(
            f'<div class="error-group" data-step="{escape(g.step_id)}" data-type="{escape(g.error_type)}">'
            f'<div class="eg-head"><b>{escape(g.error_type)}</b> at <code>{escape(g.step_id)}</code>'
            f'<span class="count">{g.count:,} ({g.count / total:.1%})</span></div><ul>{"".join(examples)}</ul></div>'
        )
    more = len(data.error_groups) - 50
    tail = f'<p class="muted">{more} more groups not shown.</p>' if more > 0 else ""
    if data.errors_truncated:
        tail += (
            f'<p class="muted">Grouped the first {data.errors_scanned:,} error records; the step table counts '
            "them all.</p>"
        )
    return (
        f'<p class="muted">{total:,} error records in {len(data.error_groups)} group(s) by step and error type; '
        "full records in <code>errors/</code>.</p>" + "".join(parts) + tail
    )


def _samples(data: ReportData) -> str:
    n = len(data.sample.get("rows", []))
    return (
        f'<p class="muted">The first {n:,} rows committed (and rows that are an error example), with each '
        "step's values side by side. Search by row id; the full data is in the run directory.</p>"
        '<div class="sample-ui"><div class="sample-side"><input id="row-search" type="search" '
        'placeholder="row id, e.g. 42" autocomplete="off" aria-label="search by row id">'
        '<div class="muted small" id="sample-count"></div><div id="sample-list"></div></div>'
        '<div class="sample-main"><h3 id="sample-row-title">row <span id="sample-row-id"></span></h3>'
        '<div id="sample-grid"></div></div></div>'
    )


def _footer(data: ReportData) -> str:
    from chainette._version import __version__

    return (
        f'<footer class="muted small">Built by Chainette {escape(str(__version__))} on '
        f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())} from {escape(str(data.run_dir))} · "
        "rebuild with <code>chainette report RUN_DIR</code></footer>"
    )


def _json_for_script(value: Any) -> str:
    """JSON that is safe inside ``<script>``: no ``<``, ``>`` or ``&`` can end or confuse it."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


CSS = """
:root{--fg:#1f2933;--muted:#616e7c;--line:#e4e7eb;--bg:#f7f8fa;--card:#fff;--bad:#c62828;--ok:#2e7d32;--warn:#b26a00}
*{box-sizing:border-box}body{margin:0;background:var(--bg);color:var(--fg);
font:14px/1.45 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,Helvetica,Arial,sans-serif}
main{max-width:1240px;margin:0 auto;padding:20px 24px 40px}
h1{font-size:24px;margin:0}h2{font-size:18px;margin:0 0 12px}h3{font-size:15px;margin:18px 0 8px}
section,header{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:16px 18px;margin:0 0 16px}
.title{display:flex;align-items:center;gap:12px;flex-wrap:wrap}
.status{border-radius:999px;padding:2px 10px;font-weight:600;font-size:12px;border:1px solid}
.status-completed{color:var(--ok);border-color:var(--ok);background:#edf7ee}
.status-interrupted{color:var(--warn);border-color:var(--warn);background:#fff6e5}
.status-running{color:#2f6fd0;border-color:#2f6fd0;background:#eaf2fd}
.muted{color:var(--muted)}.small{font-size:12px}.note{background:#fff6e5;border-left:3px solid var(--warn);padding:6px 10px;margin:8px 0}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(140px,1fr));gap:10px;margin-top:12px}
.card{border:1px solid var(--line);border-radius:8px;padding:8px 10px}.card .k{color:var(--muted);font-size:12px}
.card .v{font-size:18px;font-weight:600}
.dag-wrap{margin:0;overflow-x:auto;text-align:center}.dag-wrap svg{max-width:100%;height:auto}
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{padding:6px 8px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}
th:first-child,td:first-child,th:nth-child(2),td:nth-child(2){text-align:left}th{font-size:12px;color:var(--muted);font-weight:600}
td.bad{color:var(--bad);font-weight:600}.dot{display:inline-block;width:9px;height:9px;border-radius:50%;margin-right:6px}
.charts{display:grid;gap:14px}figure.chart{margin:0}figcaption{font-weight:600;margin-bottom:4px}
.legend{display:flex;flex-wrap:wrap;gap:12px;font-size:12px;color:var(--muted)}
.legend i{display:inline-block;width:12px;height:3px;margin-right:5px;vertical-align:middle}
.hists{display:flex;flex-wrap:wrap;gap:14px}figure.hist{margin:0;border:1px solid var(--line);border-radius:8px;padding:6px}
.error-group{border:1px solid var(--line);border-left:4px solid var(--bad);border-radius:8px;padding:8px 12px;margin:8px 0}
.eg-head{display:flex;gap:8px;align-items:baseline}.eg-head .count{margin-left:auto;color:var(--bad);font-weight:600}
.error-group ul{margin:6px 0 0;padding-left:18px}
pre{white-space:pre-wrap;word-break:break-word;background:#f3f4f6;border-radius:6px;padding:6px 8px;margin:4px 0;font-size:12px;max-height:260px;overflow:auto}
code{background:#f3f4f6;border-radius:4px;padding:0 4px}
.sample-ui{display:grid;grid-template-columns:180px 1fr;gap:14px}
#row-search{width:100%;padding:6px 8px;border:1px solid var(--line);border-radius:6px;font:inherit}
#sample-list{max-height:520px;overflow:auto;display:flex;flex-wrap:wrap;gap:4px;margin-top:6px}
.row-pick{border:1px solid var(--line);background:#fff;border-radius:5px;padding:2px 7px;cursor:pointer;font:12px monospace}
.row-pick.has-error{border-color:var(--bad);color:var(--bad)}.row-pick.active{background:#2f6fd0;color:#fff;border-color:#2f6fd0}
#sample-grid{display:flex;gap:10px;overflow-x:auto;align-items:flex-start;padding-bottom:6px}
.sample-col{min-width:240px;max-width:340px;flex:1 0 240px;border:1px solid var(--line);border-radius:8px;padding:8px}
.sample-col h4{margin:0 0 6px;font-size:13px}.sample-col .err{color:var(--bad)}
.sample-col .none{color:var(--muted);font-style:italic}.child-id{font:11px monospace;color:var(--muted)}
footer{text-align:center;margin-top:10px}
@media print{section{break-inside:avoid}}
"""

JS = r"""
(function () {
  var data = JSON.parse(document.getElementById('sample-data').textContent);
  var list = document.getElementById('sample-list');
  var grid = document.getElementById('sample-grid');
  var search = document.getElementById('row-search');
  var title = document.getElementById('sample-row-id');
  var count = document.getElementById('sample-count');
  var rows = data.rows || [];
  var byId = {};
  rows.forEach(function (r) { byId[r.id] = r; });
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  function strip(rec) {
    var out = {};
    Object.keys(rec).forEach(function (k) { if (k !== 'row_id') out[k] = rec[k]; });
    return out;
  }
  function column(name, body) {
    var col = el('div', 'sample-col');
    col.setAttribute('data-step', name);
    col.appendChild(el('h4', null, name));
    body.forEach(function (b) { col.appendChild(b); });
    return col;
  }
  function renderList(filter) {
    while (list.firstChild) list.removeChild(list.firstChild);
    var n = 0;
    rows.forEach(function (r) {
      if (filter && r.id.indexOf(filter) !== 0) return;
      var b = el('button', 'row-pick' + (r.errors.length ? ' has-error' : ''), r.id);
      b.type = 'button';
      b.setAttribute('data-row', r.id);
      b.addEventListener('click', function () { show(r.id); });
      list.appendChild(b);
      n += 1;
    });
    count.textContent = n + ' of ' + rows.length + ' sampled rows';
  }
  function show(id) {
    var top = String(id).split('.')[0];
    var r = byId[top];
    title.textContent = id;
    while (grid.firstChild) grid.removeChild(grid.firstChild);
    Array.prototype.forEach.call(list.querySelectorAll('.row-pick'), function (b) {
      b.classList.toggle('active', b.getAttribute('data-row') === top);
    });
    if (!r) {
      grid.appendChild(el('p', 'none missing', 'Row ' + id + ' is not among the sampled rows (the first ' +
        rows.length + ' committed and the error examples). Its records are in the step folders of the run ' +
        'directory: grep \'"row_id":"' + id + '"\' <step>/*.jsonl'));
      return;
    }
    var input = r.input ? [el('pre', null, JSON.stringify(r.input, null, 2))]
      : [el('p', 'none', 'not kept (the input is stored with the rows that finish the chain)')];
    grid.appendChild(column('chain_input', input));
    var failedAt = null;
    data.steps.forEach(function (step) {
      var body = [];
      (r.values[step] || []).forEach(function (rec) {
        if (rec.row_id !== undefined && rec.row_id !== r.id) body.push(el('div', 'child-id', 'row ' + rec.row_id));
        body.push(el('pre', null, JSON.stringify(strip(rec), null, 2)));
      });
      r.errors.forEach(function (e) {
        if (e.step_id !== step) return;
        var box = el('div', 'err');
        box.appendChild(el('b', null, (e.error_type || 'error') + (e.row_id !== r.id ? ' (row ' + e.row_id + ')' : '')));
        box.appendChild(el('pre', null, String(e.message || '')));
        body.push(box);
        if (failedAt === null) failedAt = step;
      });
      if (!body.length) {
        body.push(el('p', 'none', failedAt !== null && failedAt !== step
          ? 'not reached: the row failed at ' + failedAt
          : 'no record: filtered out, not reached, or past the sampled part of the files'));
      }
      grid.appendChild(column(step, body));
    });
  }
  function fromHash() {
    var m = /^#row=(.+)$/.exec(location.hash);
    if (!m) return false;
    var id = decodeURIComponent(m[1]);
    search.value = id;
    renderList(id);
    show(id);
    document.getElementById('samples').scrollIntoView();
    return true;
  }
  search.addEventListener('input', function () {
    var q = search.value.trim();
    renderList(q);
    if (q && byId[q.split('.')[0]]) show(q);
  });
  search.addEventListener('keydown', function (ev) {
    if (ev.key === 'Enter' && search.value.trim()) show(search.value.trim());
  });
  window.addEventListener('hashchange', fromHash);
  renderList('');
  if (!fromHash()) {
    if (rows.length) show(rows[0].id);
    else grid.appendChild(el('p', 'none', 'No rows were committed.'));
  }
})();
"""
