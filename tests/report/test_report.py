"""The run report (issue #14 item 5): written at the end of every run, rebuilt by
``chainette report``, self-contained, bounded in size, right for interrupted, killed and
resumed runs. The browser checks are in test_report_browser.py."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chainette import FakeEngine
from chainette.io.metrics import METRICS_FILE, RunMetrics, load_metrics
from chainette.io.report import build_report, write_report
from chainette.io.report.data import SAMPLE_ROWS, load_report_data

from .chains import TimedFake, build_chain, inputs

HERE = Path(__file__).resolve().parent
STEPS = ["extract", "check", "judge", "translate", "summary"]


def run(out: Path, n: int = 120, **options):
    options.setdefault("engines", {"fk": TimedFake(name="fk", sleep=False)})
    options.setdefault("cache", False)
    return build_chain().run(inputs(n), output_dir=out, **options)


class Page(HTMLParser):
    """The parts of a report page the tests look at."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.step_rows: dict[str, list[str]] = {}
        self.error_groups: list[tuple[str, str]] = []
        self.dag_nodes: list[str] = []
        self.scripts: list[dict[str, str]] = []
        self.external: list[str] = []
        self._row: str | None = None
        self._cell: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        for key in ("src", "href"):
            if a.get(key) and not a[key].startswith(("#", "data:")):
                self.external.append(f"{tag} {key}={a[key]}")
        if tag == "link":
            self.external.append(f"link {a}")
        if tag == "script":
            self.scripts.append(a)
        if tag == "tr" and "data-step" in a:
            self._row = a["data-step"]
            self.step_rows[self._row] = []
        if tag == "td" and self._row is not None:
            self._cell = []
        if tag == "div" and "error-group" in (a.get("class") or ""):
            self.error_groups.append((a["data-step"], a["data-type"]))
        if tag == "g" and "dag-node" in (a.get("class") or ""):
            self.dag_nodes.append(a["data-node"])

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None and self._row is not None:
            self.step_rows[self._row].append("".join(self._cell).strip())
            self._cell = None
        if tag == "tr":
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


COLUMNS = [
    "step",
    "type",
    "rows in",
    "rows out",
    "errors",
    "cached",
    "requests",
    "tokens in",
    "tokens out",
    "cost",
    "p50",
    "p95",
    "p99",
    "out tokens p50",
]


def table(page: Page) -> dict[str, dict[str, str]]:
    return {sid: dict(zip(COLUMNS, cells, strict=True)) for sid, cells in page.step_rows.items()}


def as_int(text: str) -> int:
    return int(text.replace(",", ""))


def as_ms(text: str) -> float:
    value, unit = text.split()
    return float(value) * {"ms": 1, "s": 1000, "µs": 0.001}[unit]


def sample_data(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="sample-data">(.*?)</script>', html, re.S)
    assert m is not None
    return json.loads(m.group(1))


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for p in sorted(path.glob("*.jsonl")) for line in p.read_text().splitlines() if line]


# -- a finished run ------------------------------------------------------------------------------
def test_every_run_writes_metrics_and_a_self_contained_report(tmp_path):
    out = tmp_path / "run"
    result = run(out, 150)
    assert (out / METRICS_FILE).is_file()
    html = (out / "report.html").read_text(encoding="utf-8")
    page = Page(html)
    assert page.external == []  # nothing to fetch: it opens offline
    assert all("src" not in s for s in page.scripts) and len(page.scripts) == 2
    assert {
        "fig-dag",
        "steps-table",
        "fig-throughput",
        "fig-latency",
        "fig-tokens",
        "fig-errors",
        "fig-latency-hist",
        "samples",
        "row-search",
        "run-status",
    } <= page.ids
    assert set(page.dag_nodes) >= {"__inputs__", *STEPS, "b_judge", "b_translate"}
    rows = table(page)
    assert list(rows) == STEPS
    for sid in STEPS:
        st = result.step_stats[sid]
        assert as_int(rows[sid]["rows out"]) == len(jsonl(out / sid)) == st.outputs
        assert as_int(rows[sid]["errors"]) == st.errors
        assert as_int(rows[sid]["rows in"]) == st.done + st.errors
    for sid in ("extract", "judge", "translate", "summary"):
        st = result.step_stats[sid]
        assert as_int(rows[sid]["tokens in"]) == st.prompt_tokens
        assert as_int(rows[sid]["tokens out"]) == st.completion_tokens
        assert as_int(rows[sid]["requests"]) == st.requests
        p50, p95, p99 = (as_ms(rows[sid][k]) for k in ("p50", "p95", "p99"))
        assert 4.5 <= p50 <= p95 <= p99 <= 85  # TimedFake: 5-80 ms
        assert rows[sid]["cost"] == "price unknown"
    assert rows["check"]["p50"] == "–" and rows["check"]["cost"] == "–"
    errors = jsonl(out / "errors")
    assert errors and page.error_groups == [("check", "ValueError")]
    assert f"{len(errors):,} error records" in html


def test_latency_percentiles_match_the_requests(tmp_path):
    out = tmp_path / "run"
    seen: list[float] = []

    class Recording(TimedFake):
        async def complete(self, request):
            c = await super().complete(request)
            if request.step_id == "extract":
                seen.append(c.latency_s)
            return c

    run(out, 200, engines={"fk": Recording(name="fk", sleep=False)})
    rows = table(Page((out / "report.html").read_text()))
    seen.sort()
    for key, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        exact = seen[max(0, -(-len(seen) * int(q * 100) // 100) - 1)] * 1000
        assert as_ms(rows["extract"][key]) == pytest.approx(exact, rel=0.06)


def test_sample_browser_data_holds_each_rows_values_across_steps(tmp_path):
    out = tmp_path / "run"
    run(out, 40)
    data = sample_data((out / "report.html").read_text())
    assert data["steps"] == STEPS
    by_id = {r["id"]: r for r in data["rows"]}
    assert set(by_id) == {str(i) for i in range(40)}
    flattened = {r["row_id"]: r for r in jsonl(out / "flattened")}
    errors = {e["row_id"]: e for e in jsonl(out / "errors")}
    for rid, row in by_id.items():
        if rid in errors:
            assert row["errors"][0]["step_id"] == "check" and "unlucky" in row["errors"][0]["message"]
            assert "summary" not in row["values"]
        else:
            assert row["input"] == {"text": f"question {rid}"}
            assert row["values"]["summary"][0]["answer"] == flattened[rid]["summary.answer"]
            assert row["values"]["judge"][0]["row_id"] == rid


def test_hostile_values_cannot_break_out_of_the_page(tmp_path):
    out = tmp_path / "run"
    evil = '</script><script>window.__pwned=1</script><img src=x onerror="alert(1)"> & \u2028'

    def echo(request):
        return {"answer": evil + request.messages[-1]["content"][-5:], "score": 1}

    build_chain().run(
        [{"text": evil}], output_dir=out, engines={"fk": FakeEngine(name="fk", handler=echo)}, cache=False
    )
    html = (out / "report.html").read_text()
    page = Page(html)
    assert len(page.scripts) == 2 and page.external == []
    assert "window.__pwned=1</script>" not in html and "<img" not in html
    row = sample_data(html)["rows"][0]
    assert row["values"]["extract"][0]["answer"].startswith(evil)  # intact as data


def test_long_values_are_clipped(tmp_path):
    out = tmp_path / "run"

    def long(request):
        return {"answer": "x" * 50_000, "score": 1}

    build_chain().run(inputs(5), output_dir=out, engines={"fk": FakeEngine(name="fk", handler=long)}, cache=False)
    html = (out / "report.html").read_text()
    assert "more characters]" in html and len(html) < 200_000


# -- interrupted, resumed, killed -----------------------------------------------------------------
def test_interrupted_then_resumed_run_covers_every_session(tmp_path):
    out = tmp_path / "run"
    first = run(out, 300, max_tokens=3_000)
    assert first.interrupted and first.stopped_by == "max_tokens"
    html = (out / "report.html").read_text()
    assert 'id="run-status">interrupted' in html and "--resume" in html
    rows = table(Page(html))
    journal = json.loads((out / ".chainette/progress.json").read_text())
    for sid in STEPS:
        assert as_int(rows[sid]["rows out"]) == journal["counts"].get(sid, {}).get("outputs", 0)

    second = run(out, 300, resume=True)
    assert not second.interrupted
    html = (out / "report.html").read_text()
    page = Page(html)
    assert 'id="run-status">completed' in html and "sessions-table" in page.ids
    assert [s["status"] for s in load_metrics(out)["sessions"]] == ["interrupted", "completed"]
    assert 'class="session-marker"' in html and "resumed (session 1 interrupted)" in html
    rows = table(page)
    reference = tmp_path / "reference"
    run(reference, 300)
    ref_rows = table(Page((reference / "report.html").read_text()))
    for sid in STEPS:
        assert rows[sid]["rows out"] == ref_rows[sid]["rows out"]
        assert rows[sid]["errors"] == ref_rows[sid]["errors"]
    spent = json.loads((out / ".chainette/progress.json").read_text())["spent"]
    shown = sum(as_int(r["tokens in"]) + as_int(r["tokens out"]) for sid, r in rows.items() if sid != "check")
    assert (
        shown
        == spent["tokens"]
        == (
            sum(s.prompt_tokens + s.completion_tokens for s in first.step_stats.values())
            + sum(s.prompt_tokens + s.completion_tokens for s in second.step_stats.values())
        )
    )


KILLED_SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from report.chains import TimedFake, build_chain, inputs
    build_chain().run(inputs(4000), output_dir={out!r}, engines={{"fk": TimedFake(name="fk", max_in_flight=8)}},
                      cache=False, batch_size=16)
""")


def test_killed_run_report_shows_committed_rows_only(tmp_path):
    out = tmp_path / "run"
    script = tmp_path / "killed.py"
    script.write_text(KILLED_SCRIPT.format(tests=str(HERE.parent), out=str(out)))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            data = load_metrics(out)
            if data and sum(data["sessions"][0]["rows"]) >= 64:
                break
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.05)
        else:
            pytest.fail("the run committed nothing in 60 s")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not (out / "report.html").exists()
    # lines written after the last commit (as a killed process leaves them) must not show
    with open(out / "extract" / "000.jsonl", "ab") as f:
        f.write(b'{"row_id":"999999","answer":"uncommitted","score":1}\n{"row_id":"99')
    result = CliRunner().invoke(_app(), ["report", str(out)])
    assert result.exit_code == 0, result.output
    html = (out / "report.html").read_text()
    assert 'id="run-status">running, or its process was killed' in html
    journal = json.loads((out / ".chainette/progress.json").read_text())
    rows = table(Page(html))
    for sid in STEPS:
        assert as_int(rows[sid]["rows out"]) == journal["counts"].get(sid, {}).get("outputs", 0)
    ids = {r["id"] for r in sample_data(html)["rows"]}
    assert ids and "999999" not in ids and "uncommitted" not in html

    resumed = run(out, 4000, resume=True)
    assert not resumed.interrupted
    html = (out / "report.html").read_text()
    assert [s["status"] for s in load_metrics(out)["sessions"]] == ["killed", "completed"]
    assert 'id="run-status">completed' in html and "resumed (session 1 killed)" in html


# -- size and bounds ---------------------------------------------------------------------------
def test_report_of_a_million_row_run_stays_small(tmp_path):
    """A synthetic run directory: 1,000,000 committed rows per step, 100,000 errors, a day-long
    metrics session. The report reads a bounded part of it and stays small."""
    out = tmp_path / "big"
    out.mkdir()
    chain = build_chain()
    (out / "graph.json").write_text(json.dumps(chain.graph.to_dict()))
    n, n_err = 1_000_000, 100_000
    for sid in ("extract", "summary"):
        (out / sid).mkdir()
        with open(out / sid / "000.jsonl", "wb") as f:
            f.writelines(b'{"row_id":"%d","answer":"a%d","score":%d}\n' % (i, i, i % 100) for i in range(n))
    (out / "errors").mkdir()
    with open(out / "errors" / "000.jsonl", "wb") as f:
        f.writelines(
            b'{"row_id":"%d","step_id":"check","error_type":"ValueError%d","message":"m","attempts":1}\n'
            % (i * 10, i % 4)
            for i in range(n_err)
        )
    counts = {
        "extract": {"outputs": n, "errors": 0},
        "check": {"outputs": n - n_err, "errors": n_err},
        "summary": {"outputs": n, "errors": 0},
    }
    (out / ".chainette").mkdir()
    (out / ".chainette/progress.json").write_text(json.dumps({"completed": True, "counts": counts, "rows_seen": n}))
    (out / "metadata.json").write_text(json.dumps({"chain_name": "big", "status": "completed", "rows_in": n}))
    from chainette.core.result import StepStats

    stats = {sid: StepStats() for sid in STEPS}
    clock = [0.0]
    m = RunMetrics(out, stats, clock=lambda: clock[0], wall=lambda: 1e9 + clock[0])
    for k in range(86_400 // 5):  # a day, sampled every 5 s
        for st in stats.values():
            st.done += 58
            st.requests += 58
            st.prompt_tokens += 5800
            st.latency_s += 58 * 0.4
        m.sample(rows=58)
        for _ in range(3):
            m.observe("extract", 0.1 + (k % 50) / 100, 120)
        clock[0] += 5
    m.finish("completed")
    assert (out / METRICS_FILE).stat().st_size < 100_000
    started = time.perf_counter()
    path = write_report(out)
    seconds = time.perf_counter() - started
    size = path.stat().st_size
    assert size < 1_500_000, size
    assert seconds < 20, seconds
    html = path.read_text()
    rows = table(Page(html))
    assert rows["extract"]["rows out"] == "1,000,000" and rows["check"]["errors"] == "100,000"
    data = load_report_data(out)
    assert len(data.sample["rows"]) <= SAMPLE_ROWS + 30
    assert sorted((g.error_type, g.count) for g in data.error_groups) == [(f"ValueError{k}", 25_000) for k in range(4)]


def test_run_directory_without_metrics_still_gets_a_report(tmp_path):
    out = tmp_path / "run"
    run(out, 30)
    (out / METRICS_FILE).unlink()
    html = build_report(out)
    assert "no metrics.json" in html and "steps-table" in html
    assert as_int(table(Page(html))["summary"]["rows out"]) > 0


def test_report_false_and_in_memory_runs_write_no_report(tmp_path):
    out = tmp_path / "run"
    run(out, 10, report=False)
    assert (out / METRICS_FILE).is_file() and not (out / "report.html").exists()
    result = build_chain().run(inputs(5), engines={"fk": TimedFake(name="fk", sleep=False)}, cache=False)
    assert result.step_stats["summary"].done + result.step_stats["check"].errors == 5


# -- CLI ---------------------------------------------------------------------------------------
def _app():
    from chainette.cli import app

    return app


def test_cli_report_rebuilds_the_page(tmp_path):
    out = tmp_path / "run"
    run(out, 20)
    target = tmp_path / "elsewhere" / "r.html"
    result = CliRunner().invoke(_app(), ["report", str(out), "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert "written to" in result.output and target.is_file()
    assert Page(target.read_text()).step_rows.keys() == set(STEPS)
    result = CliRunner().invoke(_app(), ["report", "--help"])
    assert result.exit_code == 0 and "chainette report" in result.output and "Example" in result.output


@pytest.mark.parametrize("make", ["missing", "not_a_run"])
def test_cli_report_on_a_wrong_directory_says_what_to_pass(tmp_path, make):
    target = tmp_path / "x"
    if make == "not_a_run":
        target.mkdir()
    result = CliRunner().invoke(_app(), ["report", str(target)])
    assert result.exit_code == 1
    assert "-o/--output-dir" in result.output and "Traceback" not in result.output


def test_cli_run_summary_names_the_report(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "chain_def.py").write_text(
        f"import sys\nsys.path.insert(0, {str(HERE.parent)!r})\nfrom report.chains import build_chain\n"
        "chain = build_chain()\n"
    )
    (tmp_path / "engines.yml").write_text("engines:\n  - {name: fk, backend: fake}\n")
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in inputs(10)))
    result = CliRunner().invoke(
        _app(), ["run", "chain_def.py:chain", "-i", "in.jsonl", "-o", "out", "-f", "engines.yml", "--no-cache"]
    )
    assert result.exit_code == 0, result.output
    assert "report: " in result.output and os.path.isfile(tmp_path / "out" / "report.html")


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_report_reads_parquet_and_csv_run_directories(tmp_path, fmt):
    pytest.importorskip("pyarrow") if fmt == "parquet" else None
    out = tmp_path / "run"
    result = run(out, 30, fmt=fmt)
    assert list((out / "extract").glob(f"*.{fmt}"))
    html = (out / "report.html").read_text()
    rows = table(Page(html))
    assert as_int(rows["summary"]["rows out"]) == result.step_stats["summary"].outputs
    data = sample_data(html)
    first = data["rows"][0]
    assert first["id"] == "0" and first["values"]["extract"][0]["answer"]
    assert any(r["input"] == {"text": f"question {r['id']}"} for r in data["rows"])


def test_force_overwrite_drops_the_old_report_and_metrics(tmp_path):
    out = tmp_path / "run"
    run(out, 10)
    assert (out / "report.html").is_file()
    run(out, 5, force=True, report=False)  # a new run in the same directory: nothing stale stays
    assert not (out / "report.html").exists()
    sessions = load_metrics(out)["sessions"]
    assert len(sessions) == 1 and sessions[0]["totals"]["extract"]["done"] == 5


def test_a_report_that_cannot_be_built_is_a_warning_not_a_failed_run(tmp_path, monkeypatch):
    import chainette.io.report as report

    def broken(run_dir):
        raise OSError("disk full")

    monkeypatch.setattr(report, "build_report", broken)
    out = tmp_path / "run"
    with pytest.warns(RuntimeWarning, match=r"report of .*run was not written: OSError: disk full.*chainette report"):
        result = run(out, n=5)
    assert not result.interrupted and result.rows_in == 5
    assert (out / "metadata.json").exists() and not (out / "report.html").exists()


def test_the_sample_scan_stops_once_every_sampled_row_is_found(tmp_path, monkeypatch):
    from chainette.io.report import data as report_data

    run_dir = tmp_path / "run"
    (run_dir / "s").mkdir(parents=True)
    lines = []
    for i in range(5000):
        ids = [f"{i}.{c}" for c in range(3)] if i % 50 == 7 else [str(i)]  # some rows fan out
        lines += [json.dumps({"row_id": r, "v": r}) for r in ids]
    (run_dir / "s" / "000.jsonl").write_text("\n".join(lines) + "\n")
    read: list[str] = []
    real = report_data._iter_records

    def counting(folder, limit):
        for item in real(folder, limit):
            read.append(folder.name)
            yield item

    monkeypatch.setattr(report_data, "_iter_records", counting)
    wanted = [str(i) for i in range(SAMPLE_ROWS)]
    sample = report_data._sample(run_dir, ["s"], {}, wanted, {})
    values = {r["id"]: r["values"]["s"] for r in sample["rows"]}
    assert [v["v"] for v in values["57"]] == ["57.0", "57.1", "57.2"], "a fan-out's children are all kept"
    assert all(values[i] for i in wanted)
    assert read.count("s") <= SAMPLE_ROWS + 2 * (SAMPLE_ROWS // 50) + 1, "read on after every sampled row was found"

    read.clear()
    report_data._sample(run_dir, ["s"], {}, [*wanted, "no such row"], {})  # a row with no record here
    assert read.count("s") >= SAMPLE_ROWS + report_data.QUIET_LINES, "a missing row keeps the quiet-lines rule"
