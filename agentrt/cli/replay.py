"""`agentrt replay THREAD`: re-run a run from its recordings and say where it would differ."""

from __future__ import annotations

from typing import Annotated

import typer

from agentrt.cli.common import AppOption, DbOption, app, runtime_from


@app.command()
def replay(
    thread_id: Annotated[str, typer.Argument(help="The run's thread id.")],
    app_spec: AppOption = None,
    db: DbOption = None,
) -> None:
    """Re-run a run with today's code and policy on its recorded model answers and results.

    Prints "identical", or the first divergence and exits with status 3.
    """
    from agentrt.tracing.shown import shown

    with runtime_from(app_spec, db) as rt:
        report = rt.replay(thread_id)
        typer.echo(shown(str(report), rt.redactor))  # a divergence quotes arguments
        if not report.identical:
            raise typer.Exit(3)
