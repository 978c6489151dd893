"""`agentrt reconcile resolve|retry`: settle an effect whose outcome nobody recorded."""

from __future__ import annotations

from typing import Annotated

import typer

from agentrt.cli.approvals import AsOption, RoleOption, TenantOption
from agentrt.cli.common import AppOption, DbOption, app, json_option, print_run, runtime_from

reconcile_app = typer.Typer(
    help="Settle a non-idempotent call that was interrupted or timed out: did it happen?",
    no_args_is_help=True,
)
app.add_typer(reconcile_app, name="reconcile")

IdArgument = Annotated[
    str, typer.Argument(help="Id of the reconcile request (`agentrt approvals`).")
]
NoteOption = Annotated[str | None, typer.Option(help="A note kept with the decision.")]


def _settle(
    app_spec: str | None,
    db: str | None,
    approval_id: str,
    name: str,
    roles: list[str],
    tenant: str | None,
    reason: str | None,
    result: str | None,
) -> None:
    from agentrt.approvals import Decision
    from agentrt.principal import Principal

    by = Principal(name, roles=roles, tenant=tenant)
    with runtime_from(app_spec, db) as rt:
        if result is None:
            decision = Decision.retry(approval_id, by=by, reason=reason)
        else:
            value = json_option("--result", result)
            decision = Decision.resolve(approval_id, result=value, by=by, reason=reason)
        run = rt.decide(decision)
        typer.echo(
            f"{decision.outcome} recorded for {approval_id}; the run is now {run.status.value}"
        )
        print_run(run, rt)


@reconcile_app.command()
def resolve(
    approval_id: IdArgument,
    name: AsOption,
    result: Annotated[str, typer.Option(help="What the effect returned, as JSON.")],
    role: RoleOption = None,
    tenant: TenantOption = None,
    reason: NoteOption = None,
    app_spec: AppOption = None,
    db: DbOption = None,
) -> None:
    """The effect happened: record RESULT as its outcome; the run goes on without a call."""
    _settle(app_spec, db, approval_id, name, role or [], tenant, reason, result)


@reconcile_app.command()
def retry(
    approval_id: IdArgument,
    name: AsOption,
    role: RoleOption = None,
    tenant: TenantOption = None,
    reason: NoteOption = None,
    app_spec: AppOption = None,
    db: DbOption = None,
) -> None:
    """The effect did not happen: call the tool again, with the same idempotency key."""
    _settle(app_spec, db, approval_id, name, role or [], tenant, reason, None)
