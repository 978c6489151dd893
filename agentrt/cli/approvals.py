"""`agentrt approvals` (the review queue, `show`, `sweep`), `approve`, `reject` and `edit`."""

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agentrt.cli.common import (
    CliError,
    age,
    app,
    fail,
    json_option,
    print_run,
    rule_of,
    short,
    shown_args,
    shown_request,
    table,
)
from agentrt.cli.options import LIMIT_MAX, AppOptions, OptionGroup, grouped, within
from agentrt.readable import moment

if TYPE_CHECKING:
    from agentrt.approvals import ApprovalRequest
    from agentrt.principal import Principal

queue = typer.Typer(
    help="The review queue: approval requests across all runs.",
    invoke_without_command=True,
    no_args_is_help=False,
)
app.add_typer(queue, name="approvals")

ApprovalArgument = Annotated[str, typer.Argument(help="Id from `agentrt approvals`.")]


@queue.callback()
@grouped
def approvals(
    ctx: typer.Context,
    app_options: AppOptions,
    status: Annotated[
        str, typer.Option(help="pending, approved, rejected, edited, expired, cancelled, or all.")
    ] = "pending",
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's requests.")] = None,
    role: Annotated[str | None, typer.Option(help="Only requests that require this role.")] = None,
    limit: Annotated[
        int, typer.Option(help="Rows a page, oldest first.", min=1, callback=within(1, LIMIT_MAX))
    ] = 50,
    cursor: Annotated[
        str | None, typer.Option(help="Continue after a previous page (printed below it).")
    ] = None,
) -> None:
    """The review queue: one page of approval requests across all runs, oldest first.

    Arguments are shown with each tool's sensitive fields masked.
    """
    from agentrt.approvals import ApprovalStatus

    if ctx.invoked_subcommand is not None:
        return
    statuses = [*(s.value for s in ApprovalStatus), "all"]
    if status not in statuses:
        # A typo is a usage error (2), not a refusal of the database's (1).
        fail(
            CliError(
                f"--status {status!r} is not a request status; give one of {', '.join(statuses)}"
            )
        )
    with app_options.runtime(db_only=True) as rt:
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
@grouped
def show_request(approval_id: ApprovalArgument, app_options: AppOptions) -> None:
    """One request in full: arguments (masked), rule, who asked, who decided, how long it waited."""
    with app_options.runtime(db_only=True) as rt:
        # Its words (reason, comment, superseded) as a person may see them (a reason may
        # quote a tool's error).
        req = shown_request(rt, rt.approval(approval_id))
        now = rt.clock()
        edited = None if req.edited_args is None else shown_args(rt, req, req.edited_args)
        waited = req.waited_seconds
        rows = [
            ("id", req.id),
            ("status", req.status.value),
            ("run", f"{req.thread_id} step {req.step_id}"),
            ("action", f"{req.tool}({short(shown_args(rt, req), 200)})"),
            ("edited to", "" if edited is None else short(edited, 200)),
            rule_of(req),
            ("role", (req.required_role or "(any)") + (" (four eyes)" if req.four_eyes else "")),
            ("asked by", f"{req.requested_by} (tenant {req.tenant})"),
            ("asked", f"{age(req.requested_at, now)} ago"),
            ("expires", "never" if req.expires_at is None else moment(req.expires_at, now=now)),
            # A request superseded while pending has the same note as its comment: said once.
            (
                "decided by",
                f"{req.decided_by or ''} {_own_comment(req)}".strip(),
            ),
            ("waited", "" if waited is None else f"{waited:.0f}s"),
            ("on expiry", "" if req.expires_at is None else _on_expiry(req)),
            ("escalated", req.escalated_to or req.escalated_from or ""),
            ("superseded", req.superseded or ""),
        ]
        for label, value in rows:
            if value:
                typer.echo(f"{label:<11}{value}")


def _own_comment(req: "ApprovalRequest") -> str:
    """The request's comment, unless it is only the superseded note shown on its own row."""
    return "" if req.comment in (None, req.superseded) else str(req.comment)


def _on_expiry(req: "ApprovalRequest") -> str:
    """What happens to the request if nobody decides it in time, in words."""
    if req.on_expiry == "escalate" and req.escalate_to:
        return (
            f"it escalates: a new request for role {req.escalate_to}, with as long to decide, "
            "then rejected"
        )
    return "it is rejected: the agent is told nobody decided, and goes on without it"


@queue.command()
@grouped
def sweep(
    app_options: AppOptions,
    now: Annotated[
        float | None, typer.Option(help="Epoch seconds to sweep as of (default: the app's clock).")
    ] = None,
) -> None:
    """Expire overdue requests (reject or escalate, as their rule says) and carry runs on."""
    if now is not None and not math.isfinite(now):
        fail(CliError(f"--now {now!r} is not a time; give epoch seconds, e.g. --now 1767225600"))
    with app_options.runtime() as rt:
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


@dataclass(frozen=True)
class Decider(OptionGroup):
    """--as, --role and --tenant: the person who decides."""

    name: Annotated[str, typer.Option("--as", help="Your principal id.")]
    role: Annotated[
        list[str] | None,
        typer.Option("--role", metavar="ROLE", help="A role you hold; repeat for several."),
    ] = None
    tenant: Annotated[
        str | None,
        typer.Option(
            help="Your tenant; only a principal of that tenant (or '*', every tenant) decides."
        ),
    ] = None

    def principal(self) -> "Principal":
        from agentrt.principal import Principal

        return Principal(self.name, roles=self.role or [], tenant=self.tenant)


@dataclass(frozen=True, kw_only=True)
class DecisionOptions(OptionGroup):
    """What deciding a request takes besides the request: who decides, a note, the app."""

    decider: Decider
    reason: Annotated[str | None, typer.Option(help="A note kept with the decision.")] = None
    app: AppOptions


def _decide(
    options: DecisionOptions, approval_id: str, outcome: str, args: str | None = None
) -> None:
    from agentrt.approvals import Decision

    with options.app.runtime() as rt:
        payload: dict[str, Any] = {
            "approval_id": approval_id,
            "outcome": outcome,
            "by": options.decider.principal(),
            "reason": options.reason,
        }
        if args is not None:
            payload["args"] = json_option("--args", args)
        run = rt.decide(Decision.parse(payload))
        typer.echo(f"{outcome} recorded for {approval_id}; the run is now {run.status.value}")
        print_run(run, rt)


@app.command()
@grouped
def approve(approval_id: ApprovalArgument, decision: DecisionOptions) -> None:
    """Approve a pending action; the run carries on once its whole gate is decided."""
    _decide(decision, approval_id, "approve")


@app.command()
@grouped
def reject(
    approval_id: ApprovalArgument,
    decider: Decider,
    reason: Annotated[str, typer.Option(help="Why; the agent is told.")],
    app_options: AppOptions,
) -> None:
    """Reject a pending action; the agent is told why."""
    _decide(DecisionOptions(decider=decider, reason=reason, app=app_options), approval_id, "reject")


@app.command()
@grouped
def edit(
    approval_id: ApprovalArgument,
    decision: DecisionOptions,
    args: Annotated[str, typer.Option(help="The arguments to run instead, as JSON.")],
) -> None:
    """Run the action with other arguments; they pass through the policy again."""
    _decide(decision, approval_id, "edit", args)
