"""What ``chainette run ... --dry-run`` prints: the first sample's prompts in full, then a
projection table per step (requests, tokens, cost) with totals and duration."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from chainette.engine.pricing import format_cost


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    seconds = int(seconds + 0.5)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def prompt_panels(report: Any) -> list[Any]:
    """The first sample row's rendered messages, in full, per step."""
    panels: list[Any] = []
    for st in report.steps:
        if not st.first_messages:
            panels.append(Text(f"{st.step_id}: no sample row reached this step", style="yellow"))
            continue
        body = Text()
        for k, m in enumerate(st.first_messages):
            if k:
                body.append("\n\n")
            body.append(f"[{m.get('role', '?')}]\n", style="bold")
            body.append(str(m.get("content", "")))
        panels.append(
            Panel(
                body,
                title=f"{st.step_id} · first sample row · engine {st.engine}",
                title_align="left",
                border_style="dim",
            )
        )
    return panels


def projection_table(report: Any) -> Any:
    upper = "≤ " if report.cost_is_upper_bound else ""
    table = Table(
        title=f"Dry run · {report.chain} · {report.total_inputs:,} input row(s) "
        f"(sample {report.sample_rows}"
        + (f", sample run {report.sample_run_rows}" if report.sample_run_rows else "")
        + ")",
        title_justify="left",
        header_style="bold",
    )
    for col, justify in (
        ("step", "left"),
        ("engine", "left"),
        ("requests", "right"),
        ("prompt tok/req", "right"),
        ("completion tok/req", "right"),
        ("tokens", "right"),
        ("cost", "right"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for st in report.steps:
        tokens = (
            st.projected_prompt_tokens + st.projected_completion_tokens
            if st.projected_completion_tokens is not None
            else None
        )
        if st.cost is not None:
            cost = (
                upper + format_cost(st.cost) if st.completion_method.startswith("max_tokens") else format_cost(st.cost)
            )
        elif st.price is None:
            cost = "price unknown"
        else:
            cost = f"≥ {format_cost(st.input_cost)} (input only)"
        prompt = f"{st.prompt_tokens:,.0f}" + ("" if st.prompt_exact else " ~")
        completion = (
            f"{st.completion_tokens:,.0f}" + (" max" if st.completion_method.startswith("max_tokens") else "")
            if st.completion_tokens is not None
            else "?"
        )
        table.add_row(
            st.step_id,
            st.engine,
            f"{st.requests:,}",
            prompt,
            completion,
            f"{tokens:,}" if tokens is not None else f"≥ {st.projected_prompt_tokens:,}",
            cost,
        )
    return table


def summary_lines(report: Any) -> Text:
    out = Text()
    tokens = f"{report.tokens:,}" if report.tokens is not None else f"≥ {report.prompt_tokens:,} (completion unknown)"
    upper = "at most " if report.cost_is_upper_bound and report.cost is not None else ""
    out.append(
        f"projected: {tokens} tokens · cost {upper}{format_cost(report.cost, unknown='unknown')}"
        f" · duration {_dur(report.duration_s)} ({report.duration_basis})"
    )
    for name, c in report.hour_costs.items():
        out.append(
            f"\n  {name}: {format_cost(c, unknown='unknown (duration unknown)')} for the time the server is held"
        )
    methods = sorted({f"{st.engine}: {st.prompt_method}" for st in report.steps})
    for m in methods:
        out.append(f"\nprompt tokens · {m}", style="dim")
    for st in report.steps:
        out.append(f"\ncompletion tokens · {st.step_id}: {st.completion_method}", style="dim")
    if report.requests_sent:
        out.append(f"\nsample run sent {report.requests_sent} request(s)", style="dim")
    else:
        out.append("\nno completion request was sent", style="dim")
    for note in report.notes:
        out.append(f"\nnote: {note}", style="yellow")
    for err in report.sample_errors[:3]:
        out.append(
            f"\nsample row {escape(str(err.get('row_id')))} at {err.get('step_id')}: "
            f"{err.get('error_type')}: {str(err.get('message', ''))[:200]}",
            style="red",
        )
    return out


def render(report: Any) -> Any:
    return Group(*prompt_panels(report), projection_table(report), summary_lines(report))
