"""`agentrt raise-limit`: answer a run's request to raise the budget limit it reached."""

import math
from typing import Annotated

import typer

from agentrt.cli.approvals import DecisionOptions
from agentrt.cli.common import CliError, app, fail, print_run
from agentrt.cli.options import grouped


@app.command("raise-limit")
@grouped
def raise_limit(
    approval_id: Annotated[str, typer.Argument(help="Id of the budget request.")],
    to: Annotated[str, typer.Option(help="The new value of the limit the run reached.")],
    decision: DecisionOptions,
) -> None:
    """Raise the limit a run stopped at; it carries on. (Reject the request to end the run.)"""
    from agentrt.approvals import Decision
    from agentrt.errors import InvalidDecision

    try:
        value = float(to)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        fail(CliError(f"--to {to!r} is not a number; give the limit's new value, e.g. --to 40"))
    with decision.app.runtime() as rt:
        try:
            request = rt.approval(approval_id)
        except InvalidDecision:
            request = None
        if request is None or request.kind != "budget":
            raise CliError(
                f"{approval_id!r} is not a budget request; list them with `agentrt approvals`"
            )
        limit = request.args["limit"]
        by = decision.decider.principal()
        run = rt.decide(
            Decision.raise_limit(approval_id, limit=limit, to=value, by=by, reason=decision.reason)
        )
        typer.echo(f"{limit} raised to {value:g} for {approval_id}; the run is now {run.status}")
        print_run(run, rt)
