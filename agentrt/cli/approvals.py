"""`agentrt approvals` (the review queue, `show`, `sweep`), `approve`, `reject` and `edit`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from agentrt.cli.common import (
    AppOption,
    DbOption,
    age,
    app,
    json_option,
    print_run,
    runtime_from,
    short,
    shown_args,
    table,
)

queue = typer.Typer(
    help="The review queue: approval requests across all runs.",
    invoke_without_command=True,
    no_args_is_help=False,
)
app.add_typer(queue, name="approvals")


@queue.callback()
def approvals(
    ctx: typer.Context,
    app_spec: AppOption = None,
    db: DbOption = None,
    status: Annotated[
        str, typer.Option(help="pending, approved, rejected, edited, expired, cancelled, or all.")
    ] = "pending",
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's requests.")] = None,
    role: Annotated[str | None, typer.Option(help="Only requests that require this role.")] = None,
    limit: Annotated[int, typer.Option(help="Rows a page, oldest first.")] = 50,
    cursor: Annotated[
        str | None, typer.Option(help="Continue after a previous page (printed below it).")
    ] = None,
) -> None:
    """The review queue: one page of approval requests across all runs, oldest first.

    Arguments are shown with each tool's sensitive fields masked.
    """
    if ctx.invoked_subcommand is not None:
        return
    with runtime_from(app_spec, db, db_only=True) as rt:
        page = rt.approvals(
            None if status == "all" else status,
            tenant=tenant,
            role=role,
            limit=limit,
            cursor=cursor,
        )
        now = rt.clock()
        table(
            ["id", "age", "tool", "args", "rule", "role", "thread"],
            [
                [
                    a.id,
                    age(a.requested_at, now),
                    a.tool,
                    short(shown_args(rt, a), 40),
                    a.rule_id or "",
                    a.required_role or "(any)",
                    a.thread_id,
                ]
                for a in page
            ],
        )
        if page.next_cursor:
            typer.echo(f"more: --cursor {page.next_cursor}")


@queue.command("show")
def show_request(
    approval_id: Annotated[str, typer.Argument(help="Id from `agentrt approvals`.")],
    app_spec: AppOption = None,
    db: DbOption = None,
) -> None:
    """One request in full: arguments (masked), rule, who asked, who decided, how long it waited."""
    from agentrt.tracing.shown import shown

    with runtime_from(app_spec, db, db_only=True) as rt:
        req = rt.approval(approval_id)
        edited = None if req.edited_args is None else shown_args(rt, req, req.edited_args)
        waited = req.waited_seconds
        rows = [
            ("id", req.id),
            ("status", req.status.value),
            ("run", f"{req.thread_id} step {req.step_id}"),
            ("action", f"{req.tool}({short(shown_args(rt, req), 200)})"),
            ("edited to", "" if edited is None else short(edited, 200)),
            ("rule", f"{req.rule_id}: {req.reason}"),
            ("role", (req.required_role or "(any)") + (" (four eyes)" if req.four_eyes else "")),
            ("asked by", f"{req.requested_by} (tenant {req.tenant})"),
            ("asked", f"{age(req.requested_at, rt.clock())} ago"),
            ("expires", "never" if req.expires_at is None else f"at {req.expires_at:.0f}"),
            (
                "decided by",
                f"{req.decided_by or ''} {shown(req.comment, rt.redactor) or ''}".strip(),
            ),
            ("waited", "" if waited is None else f"{waited:.0f}s"),
            ("escalates", f"{req.on_expiry} {req.escalate_to or ''}".strip()),
            ("escalated", req.escalated_to or req.escalated_from or ""),
        ]
        for label, value in rows:
            if value:
                typer.echo(f"{label:<11}{value}")


@queue.command()
def sweep(
    app_spec: AppOption = None,
    db: DbOption = None,
    now: Annotated[
        float | None, typer.Option(help="Epoch seconds to sweep as of (default: the app's clock).")
    ] = None,
) -> None:
    """Expire overdue requests (reject or escalate, as their rule says) and carry runs on."""
    with runtime_from(app_spec, db) as rt:
        done = rt.sweep_approvals(now)
        follow = {e.escalated_from: e for e in done.escalated}
        for req in done.expired:
            then = (
                f"escalated to {follow[req.id].id} (role {follow[req.id].required_role})"
                if req.id in follow
                else "rejected"
            )
            typer.echo(f"expired {req.id} ({req.tool}, run {req.thread_id}): {then}")
        for run in done.runs:
            typer.echo(f"run {run.thread_id} is now {run.status.value}")
        typer.echo(f"{len(done.expired)} expired, {len(done.escalated)} escalated")


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
            payload["args"] = json_option("--args", args)
        run = rt.decide(Decision.parse(payload))
        typer.echo(f"{outcome} recorded for {approval_id}; the run is now {run.status.value}")
        print_run(run, rt)


AsOption = Annotated[str, typer.Option("--as", help="Your principal id.")]
RoleOption = Annotated[
    list[str] | None, typer.Option("--role", help="A role you hold; repeat for several.")
]
TenantOption = Annotated[
    str | None,
    typer.Option(
        help="Your tenant; only a principal of that tenant (or '*', every tenant) decides."
    ),
]


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
    """Approve a pending action; the run carries on once its whole gate is decided."""
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
    """Reject a pending action; the agent is told why."""
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
