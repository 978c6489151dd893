"""`agentrt replay THREAD`: re-run a run from its recordings and say where it would differ."""

import typer

from agentrt.cli.common import app
from agentrt.cli.options import AppOptions, ThreadArgument, grouped


@app.command()
@grouped
def replay(thread_id: ThreadArgument, app_options: AppOptions) -> None:
    """Re-run a run with today's code and policy on its recorded model answers and results.

    Prints "identical", or the first divergence and exits with status 3.
    """
    from agentrt.tracing.shown import shown

    with app_options.runtime() as rt:
        report = rt.replay(thread_id)
        typer.echo(shown(str(report), rt.redactor))  # a divergence quotes arguments
        if not report.identical:
            raise typer.Exit(3)
