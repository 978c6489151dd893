"""`agentrt approvals`, `approve`, `reject` and `edit`: the review queue from a terminal."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from agentrt.cli.common import (
    AppOption,
    CliError,
    DbOption,
    age,
    app,
    print_run,
    runtime_from,
    short,
    table,
)


@app.command()
def approvals(
    app_spec: AppOption = None,
    db: DbOption = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's requests.")] = None,
    status: Annotated[str, typer.Option(help="pending, approved, rejected, ...")] = "pending",
    limit: Annotated[int, typer.Option(help="At most this many, oldest first.")] = 50,
) -> None:
    """The review queue: approval requests across all runs."""
    with runtime_from(app_spec, db) as rt:
        found = rt.approvals(tenant=tenant, status=status, limit=limit)
        table(
            ["id", "age", "tool", "args", "rule", "role", "thread"],
            [
                [
                    a.id,
                    age(a.requested_at),
                    a.tool,
                    short(a.args, 40),
                    a.rule_id or "",
                    a.required_role or "(any)",
                    a.thread_id,
                ]
                for a in found
            ],
        )


def _decide(
    app_spec: str | None,
    db: str | None,
    approval_id: str,
    outcome: str,
    name: str,
    roles: list[str],
    tenant: str | None,
    reason: str | None,
    args: str | None = None,
) -> None:
    from agentrt.approvals import Decision
    from agentrt.principal import Principal

    with runtime_from(app_spec, db) as rt:
        payload: dict[str, Any] = {
            "approval_id": approval_id,
            "outcome": outcome,
            "by": Principal(name, roles=roles, tenant=tenant),
            "reason": reason,
        }
        if args is not None:
            try:
                payload["args"] = json.loads(args)
            except json.JSONDecodeError as exc:
                raise CliError(f"--args {args!r} is not JSON: {exc}") from None
        run = rt.decide(Decision.parse(payload))
        typer.echo(f"{outcome} recorded for {approval_id}; the run is now {run.status.value}")
        print_run(run)


AsOption = Annotated[str, typer.Option("--as", help="Your principal id.")]
RoleOption = Annotated[
    list[str] | None, typer.Option("--role", help="A role you hold; repeat for several.")
]
TenantOption = Annotated[str | None, typer.Option(help="Your tenant.")]


@app.command()
def approve(
    approval_id: Annotated[str, typer.Argument(help="Id from `agentrt approvals`.")],
    name: AsOption,
    role: RoleOption = None,
    tenant: TenantOption = None,
    reason: Annotated[str | None, typer.Option(help="A note kept with the decision.")] = None,
    app_spec: AppOption = None,
    db: DbOption = None,
) -> None:
    """Approve a pending action; the run carries on."""
    _decide(app_spec, db, approval_id, "approve", name, role or [], tenant, reason)


@app.command()
def reject(
    approval_id: Annotated[str, typer.Argument(help="Id from `agentrt approvals`.")],
    name: AsOption,
    reason: Annotated[str, typer.Option(help="Why; the agent is told.")],
    role: RoleOption = None,
    tenant: TenantOption = None,
    app_spec: AppOption = None,
    db: DbOption = None,
) -> None:
    """Reject a pending action; the agent is told why and replans."""
    _decide(app_spec, db, approval_id, "reject", name, role or [], tenant, reason)


@app.command()
def edit(
    approval_id: Annotated[str, typer.Argument(help="Id from `agentrt approvals`.")],
    name: AsOption,
    args: Annotated[str, typer.Option(help="The arguments to run instead, as JSON.")],
    role: RoleOption = None,
    tenant: TenantOption = None,
    reason: Annotated[str | None, typer.Option(help="A note kept with the decision.")] = None,
    app_spec: AppOption = None,
    db: DbOption = None,
) -> None:
    """Run the action with other arguments; they pass through the policy again."""
    _decide(app_spec, db, approval_id, "edit", name, role or [], tenant, reason, args)
