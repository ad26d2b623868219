"""Run the whole benchmark suite and check issue #5's targets.

    python benchmarks/run_all.py                 # full suite (< 15 min on a 2-core machine)
    python benchmarks/run_all.py --smoke         # ~1 minute, small counts, targets informational
    python benchmarks/run_all.py --only step-20ms,import

Every measurement is its own subprocess (per-process CPU time and peak RSS); Chainette and the
raw aiohttp client hit the same mock server (``mock_server.js``), which is reset (counters and
latency PRNG) between them so both see the same latency sequence. Prints a throughput table and
a targets table (measured value, threshold, PASS/FAIL) and writes benchmarks/results/latest.json.
Exit status: 0 unless a workload crashed (a FAIL is a result, not a crash; peers that cannot be
installed are SKIPPED).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import REPO, mock_server, run_child  # noqa: E402

PY = sys.executable
WORKLOADS = str(HERE / "chainette_workloads.py")
RAW = str(HERE / "raw_client.py")
PEERS = str(HERE / "peers.py")
SECTIONS = [
    "step-200ms",
    "step-20ms",
    "step-0ms",
    "lognormal",
    "chain3",
    "default-settings",
    "memory",
    "two-step-fake",
    "import",
    "peers",
    "transport",
]


@dataclass
class Sizes:
    step_rows: int
    chain_rows: int
    memory_rows: tuple[int, int]
    two_step_rows: int
    peer_rows: int
    import_tries: int
    transport: dict


FULL = Sizes(
    step_rows=20000,
    chain_rows=5000,
    memory_rows=(100_000, 1_000_000),
    two_step_rows=200_000,
    peer_rows=2000,
    import_tries=5,
    transport={"levels": [8, 64, 256], "max_requests": 4000, "max_seconds": 12.0},
)
SMOKE = Sizes(
    step_rows=2000,
    chain_rows=400,
    memory_rows=(2000, 20000),
    two_step_rows=10000,
    peer_rows=300,
    import_tries=3,
    transport={"levels": [64], "max_requests": 500, "max_seconds": 3.0},
)


@dataclass
class Suite:
    sizes: Sizes
    smoke: bool
    rows: list[dict] = field(default_factory=list)  # throughput table
    targets: list[dict] = field(default_factory=list)  # targets table
    crashes: list[str] = field(default_factory=list)
    transport: list[dict] = field(default_factory=list)
    peer_skips: dict = field(default_factory=dict)

    def log(self, msg: str) -> None:
        print(msg, flush=True)

    # -- bookkeeping --------------------------------------------------------------------------
    def child(self, name: str, argv: list[str], timeout: float, srv=None, **kw) -> dict | None:
        """Run one measurement process; note the mock server's CPU use and the machine load."""
        cpu0 = srv.cpu_seconds() if srv else None
        t0 = time.perf_counter()
        res, err = run_child(argv, timeout=timeout, **kw)
        if res is None:
            self.crashes.append(f"{name}: {err}")
            self.log(f"  !! {name} crashed: {err[-600:]}")
            return None
        if srv:
            res["server_cpu_pct"] = 100 * (srv.cpu_seconds() - cpu0) / (time.perf_counter() - t0)
        res["loadavg_1m"] = os.getloadavg()[0]
        return res

    def add_row(self, workload: str, res: dict | None, raw: dict | None = None, note: str = "") -> None:
        if res is None:
            self.rows.append({"workload": workload, "client": "?", "error": "crashed"})
            return
        row = {**res, "workload": workload, "note": note}
        if raw and raw.get("rows_per_s"):
            row["ratio_rows_per_s"] = res["rows_per_s"] / raw["rows_per_s"]
            if raw.get("cpu_us_per_row") and res.get("cpu_us_per_row"):
                row["ratio_cpu_per_row"] = res["cpu_us_per_row"] / raw["cpu_us_per_row"]
        self.rows.append(row)
        self.log(
            f"  {workload:18s} {res['client']:12s} {res['rows']:>9.0f} rows "
            f"{res['rows_per_s']:9.0f} rows/s {res.get('cpu_us_per_row') or 0:8.0f} CPU us/row "
            f"{res['peak_rss_mb']:6.0f} MB"
            + (f"  x{row['ratio_rows_per_s']:.2f} raw" if "ratio_rows_per_s" in row else "")
            + (f"  [server CPU {res['server_cpu_pct']:.0f}%]" if "server_cpu_pct" in res else "")
            + f"  [load {res.get('loadavg_1m', 0):.1f}]"
        )

    def target(
        self, name: str, measured: float | None, op: str, threshold: float, unit: str = "", note: str = ""
    ) -> None:
        if measured is None:
            ok = False
        elif op == ">=":
            ok = measured >= threshold
        else:
            ok = measured <= threshold
        self.targets.append(
            {
                "target": name,
                "measured": measured,
                "op": op,
                "threshold": threshold,
                "unit": unit,
                "pass": ok,
                "note": note,
            }
        )

    # -- sections -----------------------------------------------------------------------------
    def vs_raw(
        self,
        workload: str,
        flags: list[str],
        rows: int,
        chain: str = "step",
        requests_per_row: int = 1,
        extra: list[str] | None = None,
        timeout: float = 300,
    ) -> tuple[dict | None, dict | None]:
        """Raw client, then Chainette, on one mock server (reset between them)."""
        with mock_server(*flags) as srv:
            raw = self.child(
                f"{workload}/raw",
                [
                    PY,
                    RAW,
                    "--url",
                    srv.base_url,
                    "--rows",
                    str(rows),
                    "--in-flight",
                    "256",
                    "--requests-per-row",
                    str(requests_per_row),
                ],
                timeout,
                srv,
            )
            self.add_row(workload, raw, note="raw aiohttp baseline")
            srv.reset()
            ch = self.child(
                f"{workload}/chainette",
                [
                    PY,
                    WORKLOADS,
                    chain,
                    "--url",
                    srv.base_url,
                    "--rows",
                    str(rows),
                    "--in-flight",
                    "256",
                    *(extra or []),
                ],
                timeout,
                srv,
            )
            self.add_row(workload, ch, raw)
        return raw, ch

    def ratio(self, a: dict | None, b: dict | None, key: str = "rows_per_s") -> float | None:
        if not a or not b or not a.get(key) or not b.get(key):
            return None
        return a[key] / b[key]

    def step_latency(self, ms: int, threshold: float) -> None:
        name = f"step-{ms}ms"
        raw, ch = self.vs_raw(name, ["--latency-ms", str(ms)], self.sizes.step_rows)
        self.target(
            f"One Step {self.sizes.step_rows} rows, {ms} ms, 256 in flight: rows/s vs raw",
            self.ratio(ch, raw),
            ">=",
            threshold,
            "x",
        )

    def step_0ms(self) -> None:
        raw, ch = self.vs_raw("step-0ms", ["--latency-ms", "0"], self.sizes.step_rows)
        self.target(
            f"One Step {self.sizes.step_rows} rows, 0 ms: CPU per row vs raw",
            self.ratio(ch, raw, "cpu_us_per_row"),
            "<=",
            2.0,
            "x",
        )

    def lognormal(self) -> None:
        raw, ch = self.vs_raw(
            "lognormal",
            ["--latency-ms", "100", "--latency-dist", "lognormal", "--p99-ratio", "20", "--seed", "7"],
            self.sizes.step_rows,
        )
        self.target(
            f"One Step {self.sizes.step_rows} rows, lognormal median 100 ms p99 20x: rows/s vs raw",
            self.ratio(ch, raw),
            ">=",
            0.85,
            "x",
        )

    def chain3(self) -> None:
        raw, ch = self.vs_raw(
            "chain3", ["--latency-ms", "200"], self.sizes.chain_rows, chain="chain3", requests_per_row=4
        )
        self.target(
            f"3-step chain with 2 parallel branches, {self.sizes.chain_rows} rows, 200 ms: "
            "rows/s vs raw at 4 requests/row",
            self.ratio(ch, raw),
            ">=",
            0.85,
            "x",
        )

    def default_settings(self) -> None:
        import tempfile

        cache_dir = tempfile.mkdtemp(prefix="chainette-bench-cache-")  # cold: a fresh cache every run
        try:
            with mock_server("--latency-ms", "20") as srv:
                ch = self.child(
                    "default-settings",
                    [PY, WORKLOADS, "step", "--url", srv.base_url, "--rows", str(self.sizes.step_rows), "--cache"],
                    300,
                    srv,
                    env={"CHAINETTE_CACHE_DIR": cache_dir},
                )
        finally:
            shutil.rmtree(cache_dir, ignore_errors=True)
        self.add_row("step-20ms-cache-on", ch, note="default settings (item cache on, cold)")

    def memory(self) -> None:
        small, big = self.sizes.memory_rows
        res = {}
        for n in (small, big):
            r = self.child(f"memory/{n}", [PY, WORKLOADS, "memory", "--rows", str(n)], 600)
            self.add_row(f"memory-{n}", r, note="Step + Apply, FakeEngine, StreamWriter")
            res[n] = r
        peak_big = res[big]["peak_rss_mb"] if res[big] else None
        self.target(f"Step + Apply, {big} rows, StreamWriter: peak RSS", peak_big, "<=", 200, "MB")
        grow = (res[big]["peak_rss_mb"] / res[small]["peak_rss_mb"]) if res[big] and res[small] else None
        self.target(f"peak RSS at {big} rows / at {small} rows", grow, "<=", 1.2, "x")

    def two_step_fake(self) -> None:
        n = self.sizes.two_step_rows
        r = self.child("two-step-fake", [PY, WORKLOADS, "two_step_fake", "--rows", str(n)], 600)
        self.add_row(f"two-step-fake-{n}", r, note="issue #2: 2 FakeEngine steps, StreamWriter")
        self.target(
            f"issue #2: {n} rows, two-step FakeEngine chain: peak RSS", r["peak_rss_mb"] if r else None, "<=", 250, "MB"
        )

    def import_time(self) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        code = "import time; t = time.perf_counter(); import chainette; print(time.perf_counter() - t)"
        times = []
        for _ in range(self.sizes.import_tries):
            p = subprocess.run([PY, "-c", code], capture_output=True, text=True, env=env, timeout=60)
            if p.returncode == 0:
                times.append(float(p.stdout.strip().splitlines()[-1]))
        self.target(
            "`import chainette` (best of %d, fresh process)" % self.sizes.import_tries,
            min(times) if times else None,
            "<=",
            0.3,
            "s",
        )
        # informational: the names are loaded lazily, so also time the first real use
        code2 = code.replace("import chainette", "from chainette import Chain, Step, register_engine")
        times2 = []
        for _ in range(self.sizes.import_tries):
            p = subprocess.run([PY, "-c", code2], capture_output=True, text=True, env=env, timeout=60)
            if p.returncode == 0:
                times2.append(float(p.stdout.strip().splitlines()[-1]))
        self.targets.append(
            {
                "target": "`from chainette import Chain, Step, register_engine` (info)",
                "measured": min(times2) if times2 else None,
                "op": "",
                "threshold": None,
                "unit": "s",
                "pass": None,
                "info": True,
                "note": "informational (no target)",
            }
        )
        cli = shutil.which("chainette")
        argv = (
            [cli, "--help"]
            if cli
            else [PY, "-c", "import sys; sys.argv[0] = 'chainette'; from chainette.cli import app; app()", "--help"]
        )
        times, err = [], ""
        for _ in range(self.sizes.import_tries):
            t = time.perf_counter()
            p = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
            dt = time.perf_counter() - t
            if p.returncode == 0:
                times.append(dt)
            else:
                err = p.stderr.strip().splitlines()[-1:] or [f"exit {p.returncode}"]
                err = err[0]
        self.target(
            "`chainette --help` wall time (best of %d, fresh process)" % self.sizes.import_tries,
            min(times) if times else None,
            "<=",
            0.6,
            "s",
            note=("" if times else f"failed: {err[:120]}") + ("" if cli else " (via python -c chainette.cli:app)"),
        )

    def peers(self) -> None:
        from peers import PEERS as PEER_NAMES
        from peers import VENV_PY, ensure_venv

        if self.smoke and not VENV_PY.exists():
            py, skips = None, {p: "smoke mode does not install peers; run the full suite once" for p in PEER_NAMES}
        else:
            py, skips = ensure_venv(log=self.log)
        self.peer_skips = skips
        n = self.sizes.peer_rows
        for ms in (0, 20):
            wl = f"peers-{ms}ms"
            with mock_server("--latency-ms", str(ms)) as srv:
                ch = self.child(
                    f"{wl}/chainette", [PY, WORKLOADS, "step", "--url", srv.base_url, "--rows", str(n)], 300, srv
                )
                self.add_row(wl, ch)
                for peer in PEER_NAMES:
                    label = f"Chainette vs {peer}, {n} rows, {ms} ms: rows/s ratio"
                    if peer in skips or py is None:
                        reason = skips.get(peer, "no peers venv")
                        self.rows.append({"workload": wl, "client": peer, "skipped": reason})
                        self.targets.append(
                            {
                                "target": label,
                                "measured": None,
                                "op": ">=",
                                "threshold": 3.0,
                                "unit": "x",
                                "pass": None,
                                "note": f"SKIPPED ({reason})",
                            }
                        )
                        self.log(f"  {wl:18s} {peer:12s} SKIPPED ({reason})")
                        continue
                    srv.reset()
                    cpu0, t0 = srv.cpu_seconds(), time.perf_counter()
                    r, err = run_child(
                        [py, PEERS, "--peer", peer, "--url", srv.base_url, "--rows", str(n)], timeout=300
                    )
                    if r is not None:
                        r["server_cpu_pct"] = 100 * (srv.cpu_seconds() - cpu0) / (time.perf_counter() - t0)
                        r["loadavg_1m"] = os.getloadavg()[0]
                    if r is None:
                        reason = f"run failed: {err[-200:]}"
                        self.rows.append({"workload": wl, "client": peer, "skipped": reason})
                        self.targets.append(
                            {
                                "target": label,
                                "measured": None,
                                "op": ">=",
                                "threshold": 3.0,
                                "unit": "x",
                                "pass": None,
                                "note": f"SKIPPED ({reason})",
                            }
                        )
                        self.log(f"  {wl:18s} {peer:12s} SKIPPED ({reason})")
                        continue
                    self.add_row(wl, r)
                    self.target(label, self.ratio(ch, r), ">=", 3.0, "x")

    def transport_section(self) -> None:
        from transport_bench import format_table, measure

        t = self.sizes.transport
        self.transport = measure(t["levels"], 0.0, t["max_requests"], t["max_seconds"], log=self.log)
        self.log("\n" + format_table(self.transport))


# ---------------------------------------------------------------------------- reporting
def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "mem_gib": mem_gib,
        "python": platform.python_version(),
        "node": node,
        "platform": platform.platform(),
    }


def fmt(v, spec: str = ".0f") -> str:
    return "-" if v is None else format(v, spec)


def throughput_table(rows: list[dict]) -> str:
    out = [
        "| workload | client | rows | rows/s | CPU µs/row | peak RSS MB | rows/s vs raw | CPU/row vs raw "
        "| mock CPU % | load 1m |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "skipped" in r or "error" in r:
            out.append(
                f"| {r['workload']} | {r['client']} | | SKIPPED ({r.get('skipped') or r.get('error')}) | | | | | | |"
            )
            continue
        out.append(
            f"| {r['workload']} | {r['client']} | {r['rows']:.0f} | {r['rows_per_s']:.0f} | "
            f"{fmt(r.get('cpu_us_per_row'))} | {r['peak_rss_mb']:.0f} | "
            f"{fmt(r.get('ratio_rows_per_s'), '.2f')} | {fmt(r.get('ratio_cpu_per_row'), '.2f')} | "
            f"{fmt(r.get('server_cpu_pct'))} | {fmt(r.get('loadavg_1m'), '.1f')} |"
        )
    return "\n".join(out)


def targets_table(targets: list[dict], smoke: bool) -> str:
    out = ["| target | measured | required | result |", "|---|---:|---:|---|"]
    for t in targets:
        meas = "-" if t["measured"] is None else f"{t['measured']:.3g} {t['unit']}".strip()
        if t["pass"] is None:
            verdict = t["note"]
        else:
            verdict = "PASS" if t["pass"] else "FAIL"
            if smoke:
                verdict += " (informational, smoke)"
            if t["note"]:
                verdict += f" — {t['note']}"
        req = "-" if t["threshold"] is None else f"{t['op']} {t['threshold']:g} {t['unit']}"
        out.append(f"| {t['target']} | {meas} | {req} | {verdict} |")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="~1 minute version (CI); targets informational")
    ap.add_argument("--only", help="comma-separated sections: " + ",".join(SECTIONS))
    ap.add_argument("--json", default=str(HERE / "results" / "latest.json"))
    a = ap.parse_args()
    only = set(a.only.split(",")) if a.only else set(SECTIONS)
    unknown = only - set(SECTIONS)
    if unknown:
        ap.error(f"unknown section(s) {sorted(unknown)}; choose from {SECTIONS}")

    suite = Suite(SMOKE if a.smoke else FULL, a.smoke)
    plan = {
        "step-200ms": lambda: suite.step_latency(200, 0.90),
        "step-20ms": lambda: suite.step_latency(20, 0.75),
        "step-0ms": suite.step_0ms,
        "lognormal": suite.lognormal,
        "chain3": suite.chain3,
        "default-settings": suite.default_settings,
        "memory": suite.memory,
        "two-step-fake": suite.two_step_fake,
        "import": suite.import_time,
        "peers": suite.peers,
        "transport": suite.transport_section,
    }
    info = machine()
    t_start = time.perf_counter()
    suite.log(
        f"Chainette benchmarks ({'smoke' if a.smoke else 'full'}) on {info['nproc']} cores, "
        f"{info['cpu']}, {info['mem_gib']} GiB, Python {info['python']}, node {info['node']}"
    )
    for name in SECTIONS:
        if name not in only:
            continue
        suite.log(f"\n== {name}")
        t0 = time.perf_counter()
        try:
            plan[name]()
        except Exception as exc:  # noqa: BLE001 - report and keep going
            import traceback

            traceback.print_exc()
            suite.crashes.append(f"{name}: {type(exc).__name__}: {exc}")
        suite.log(f"   ({time.perf_counter() - t0:.0f} s)")
    total = time.perf_counter() - t_start

    print("\n## Throughput\n")
    print(throughput_table(suite.rows))
    if suite.transport:
        from transport_bench import format_table

        print("\n## Transport (0 ms mock latency)\n")
        print(format_table(suite.transport))
    print("\n## Targets\n")
    print(targets_table(suite.targets, a.smoke))
    passed = sum(1 for t in suite.targets if t["pass"])
    failed = sum(1 for t in suite.targets if t["pass"] is False)
    skipped = sum(1 for t in suite.targets if t["pass"] is None and not t.get("info"))
    print(
        f"\n{passed} PASS, {failed} FAIL, {skipped} SKIPPED; suite took {total:.0f} s"
        + (" (smoke: targets informational)" if a.smoke else "")
    )
    if suite.crashes:
        print("\nCRASHED:\n  " + "\n  ".join(suite.crashes))

    out = Path(a.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "mode": "smoke" if a.smoke else "full",
                "machine": info,
                "seconds": total,
                "rows": suite.rows,
                "targets": suite.targets,
                "transport": suite.transport,
                "crashes": suite.crashes,
                "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            },
            indent=2,
        )
    )
    print(f"wrote {out}")
    return 1 if suite.crashes else 0


if __name__ == "__main__":
    sys.exit(main())
