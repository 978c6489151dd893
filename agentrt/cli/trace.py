"""`agentrt trace THREAD`: a run's span tree with durations, and where the time went."""

import json
from typing import Annotated

import typer

from agentrt.cli.common import app
from agentrt.cli.options import AppOptions, ThreadArgument, grouped


@app.command()
@grouped
def trace(
    thread_id: ThreadArgument,
    app_options: AppOptions,
    as_json: Annotated[bool, typer.Option("--json", help="Print the trace as JSON.")] = False,
) -> None:
    """Show a run's trace: every segment, step, model, tool and policy call, and waits."""
    with app_options.runtime(db_only=True) as rt:
        found = rt.trace(thread_id)
        if as_json:
            typer.echo(json.dumps(found.to_dict(), indent=2, sort_keys=True))
        else:
            typer.echo(found.render())
