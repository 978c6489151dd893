"""`agentrt stats --since 7d [--tenant T] [--json]`: what the runs of a window did."""

import json
from typing import Annotated

import typer

from agentrt.cli.common import CliError, app, fail, table
from agentrt.cli.options import AppOptions, grouped
from agentrt.cli.prune import parse_age
from agentrt.readable import iso, span, usd


def _seconds(value: float) -> str:
    """A wait as people read it, with its fraction under a minute (0.4s, 12s, 5m 3s)."""
    return f"{value:.1f}s" if value < 60 else span(value)


@app.command()
@grouped
def stats(
    app_options: AppOptions,
    since: Annotated[
        str | None,
        typer.Option(
            help="Only runs created, and what was spent, within this age, e.g. 7d, 12h "
            "(default: all)."
        ),
    ] = None,
    tenant: Annotated[str | None, typer.Option(help="Only runs of this tenant.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """Run analytics: runs by status, cost and tokens by tenant and by day, approval
    waits by rule and role, denials by rule, budget stops and the slowest tools."""
    try:
        seconds = None if since is None else parse_age(since, flag="--since")
    except CliError as exc:
        fail(exc)
    with app_options.runtime(db_only=True) as rt:
        # On the store's clock, which wrote the runs' created_at (on PostgreSQL the server's).
        start = None if seconds is None else rt.store.clock() - seconds
        figures = rt.stats(since=start, tenant=tenant)
    if as_json:
        typer.echo(json.dumps(figures.to_dict(), indent=2))
        return
    window = "every run" if start is None else f"since {iso(start)}"
    typer.echo(
        f"{window}{'' if tenant is None else f' of tenant {tenant!r}'}: "
        f"{figures.runs} run(s) created, {usd(figures.cost_usd)} and {figures.tokens:,} "
        "tokens spent"
    )
    typer.echo("\nruns by status:")
    table(["status", "runs"], [[k, str(v)] for k, v in figures.runs_by_status.items()])
    typer.echo("\ncost and tokens by tenant:")
    table(
        ["tenant", "runs", "input tokens", "output tokens", "cost"],
        [
            [
                s.tenant or "-",
                str(s.runs),
                f"{s.input_tokens:,}",
                f"{s.output_tokens:,}",
                usd(s.cost_usd),
            ]
            for s in figures.by_tenant()
        ],
    )
    typer.echo("\ncost and tokens by day (UTC):")
    table(
        ["day", "runs", "tokens", "cost"],
        [
            [s.day, str(s.runs), f"{s.input_tokens + s.output_tokens:,}", usd(s.cost_usd)]
            for s in figures.by_day()
        ],
    )
    typer.echo("\napproval waits by rule and role:")
    table(
        ["rule", "role", "decided", "p50", "p95", "max"],
        [
            [
                w.rule_id or "-",
                w.required_role or "-",
                str(w.decided),
                _seconds(w.p50_seconds),
                _seconds(w.p95_seconds),
                _seconds(w.max_seconds),
            ]
            for w in figures.approval_waits
        ],
    )
    typer.echo("\ndenials by rule:")
    table(
        ["rule", "denials"],
        [[c.key or "(default)", str(c.count)] for c in figures.denials],
    )
    typer.echo("\nbudget stops by limit:")
    table(["limit", "stops"], [[c.key or "-", str(c.count)] for c in figures.budget_stops])
    typer.echo("\nslowest tools (from the span store):")
    table(
        ["tool", "calls", "mean", "max"],
        [
            [t.tool, str(t.calls), _seconds(t.mean_seconds), _seconds(t.max_seconds)]
            for t in figures.slowest_tools
        ],
    )
