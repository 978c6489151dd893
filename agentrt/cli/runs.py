"""`agentrt runs`, `show` and `resume`: look at runs and carry them on."""

from typing import Annotated

import typer

from agentrt.cli.common import (
    CliError,
    age,
    app,
    fail,
    message_line,
    print_run,
    short,
    table,
)
from agentrt.cli.options import LIMIT_MAX, AppOptions, ThreadArgument, grouped, within


@app.command()
@grouped
def runs(
    app_options: AppOptions,
    status: Annotated[str | None, typer.Option(help="Only runs in this status.")] = None,
    tenant: Annotated[str | None, typer.Option(help="Only runs of this tenant.")] = None,
    limit: Annotated[
        int,
        typer.Option(help="At most this many, newest first.", min=1, callback=within(1, LIMIT_MAX)),
    ] = 50,
) -> None:
    """List runs, newest first."""
    from agentrt.state import RunStatus
    from agentrt.tracing.shown import shown

    statuses = [s.value for s in RunStatus]
    if status is not None and status not in statuses:
        # A typo is a usage error (2), not a refusal of the database's (1).
        fail(
            CliError(f"--status {status!r} is not a run status; give one of {', '.join(statuses)}")
        )
    with app_options.runtime(db_only=True) as rt:
        found = rt.runs(status, tenant=tenant, limit=limit)
        table(
            ["thread", "status", "age", "steps", "goal"],
            [
                [
                    r.thread_id,
                    r.status.value,
                    age(r.created_at),
                    str(r.usage["steps"]),
                    short(shown(r.goal, rt.redactor), 50),
                ]
                for r in found
            ],
        )


@app.command()
@grouped
def show(thread_id: ThreadArgument, app_options: AppOptions) -> None:
    """Show one run: status, usage, output, pending approval, its artifacts and its event
    log."""
    from agentrt.cli.artifacts import print_artifacts
    from agentrt.events import describe
    from agentrt.tracing.shown import shown_events

    with app_options.runtime(db_only=True) as rt:
        run = rt.get(thread_id)
        print_run(run, rt)
        if rt.artifacts(thread_id):
            typer.echo("artifacts:")
            print_artifacts(rt, thread_id, indent="  ")
        said = rt.messages(thread_id)
        if len(said) > 1:  # a thread that went on: each message, its answer and its spend
            typer.echo("messages:")
            known = rt.log_secrets(thread_id)
            for m in said:
                typer.echo(f"  {message_line(m, rt, known)}")
        typer.echo("events:")
        for event in shown_events(rt.events(thread_id), rt.redactor, rt.tools.sensitive_of):
            typer.echo(f"  {describe(event)}")


@app.command()
@grouped
def resume(thread_id: ThreadArgument, app_options: AppOptions) -> None:
    """Carry a run on from its last checkpoint (after a crash, or after a decision).

    A run that has finished cannot be carried on: that is said, with its status and
    error, and the exit status is 1. A run waiting to retry is carried on at once."""
    from agentrt.state import TERMINAL, RunStatus

    with app_options.runtime() as rt:
        before = rt.get(thread_id)
        queued = any(m.status == "queued" for m in rt.messages(thread_id))
        if before.status in TERMINAL and not queued:  # a queued message: it is answered
            print_run(before, rt)
            typer.echo(
                f"cannot resume {thread_id}: it already ended ({before.status.value}); "
                "start a new run to try again",
                err=True,
            )
            raise typer.Exit(1)
        run = rt.resume(thread_id)
        print_run(run, rt)
        if run.status is RunStatus.AWAITING_APPROVAL:
            typer.echo(
                "waiting for a decision: agentrt approve or agentrt reject the request above, "
                "then resume"
            )


@app.command()
@grouped
def cancel(
    thread_id: ThreadArgument,
    reason: Annotated[str, typer.Option(help="Why; kept as the run's error.")],
    app_options: AppOptions,
) -> None:
    """End a run that has not finished; its pending approvals are cancelled.

    A run another process is driving stops at its next step."""
    with app_options.runtime(db_only=True) as rt:
        run = rt.cancel(thread_id, reason=reason)
        if run.cancel_requested is not None:
            typer.echo(
                f"cancel requested: another process is driving {thread_id}; it ends the run "
                "at its next step"
            )
        print_run(run, rt)
