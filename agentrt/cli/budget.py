"""`agentrt raise-limit`: answer a run's request to raise the budget limit it reached."""

from __future__ import annotations

import math
from typing import Annotated

import typer

from agentrt.cli.approvals import AsOption, RoleOption, TenantOption
from agentrt.cli.common import AppOption, CliError, DbOption, app, fail, print_run, runtime_from


@app.command("raise-limit")
def raise_limit(
    approval_id: Annotated[str, typer.Argument(help="Id of the budget request.")],
    to: Annotated[str, typer.Option(help="The new value of the limit the run reached.")],
    name: AsOption,
    role: RoleOption = None,
    tenant: TenantOption = None,
    reason: Annotated[str | None, typer.Option(help="A note kept with the decision.")] = None,
    app_spec: AppOption = None,
    db: DbOption = None,
) -> None:
    """Raise the limit a run stopped at; it carries on. (Reject the request to end the run.)"""
    from agentrt.approvals import Decision
    from agentrt.errors import InvalidDecision
    from agentrt.principal import Principal

    try:
        value = float(to)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        fail(CliError(f"--to {to!r} is not a number; give the limit's new value, e.g. --to 40"))
    with runtime_from(app_spec, db) as rt:
        try:
            request = rt.approval(approval_id)
        except InvalidDecision:
            request = None
        if request is None or request.kind != "budget":
            raise CliError(
                f"{approval_id!r} is not a budget request; list them with `agentrt approvals`"
            )
        limit = request.args["limit"]
        by = Principal(name, roles=role or [], tenant=tenant)
        run = rt.decide(
            Decision.raise_limit(approval_id, limit=limit, to=value, by=by, reason=reason)
        )
        typer.echo(f"{limit} raised to {value:g} for {approval_id}; the run is now {run.status}")
        print_run(run, rt)
