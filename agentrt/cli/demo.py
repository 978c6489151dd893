"""`agentrt demo`: the refund desk on a scripted model, offline, up to its approval gate."""

import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer

from agentrt.cli.common import DEMO_APP, CliError, app, fail, print_run, runtime_from


@app.command()
def demo(
    db: Annotated[
        str,
        typer.Option(
            envvar="AGENTRT_DB", help="SQLite file or postgresql:// URL for the demo's runs."
        ),
    ] = "agentrt.db",
    decision: Annotated[
        str | None,
        typer.Option(help="approve or reject without asking (default: ask on a terminal)."),
    ] = None,
) -> None:
    """Run the refund desk on a scripted model, offline, up to its approval gate."""
    from agentrt.events import describe
    from agentrt.examples.refund_desk import APPROVER, GOAL, OPERATOR
    from agentrt.tracing.shown import shown_events

    if decision not in (None, "approve", "reject"):
        fail(CliError(f"--decision must be approve or reject, got {decision!r}"))
    with runtime_from(DEMO_APP, db, create=True) as rt:
        typer.echo(f"goal: {GOAL}\nas:   {OPERATOR.id} (roles {list(OPERATOR.roles)})\n")
        run = rt.start(GOAL, principal=OPERATOR)
        for event in shown_events(rt.events(run.thread_id), rt.redactor, rt.tools.sensitive_of):
            typer.echo(f"  {describe(event)}")
        typer.echo("")
        print_run(run, rt)
        request = run.pending_approval
        if request is None:
            return
        if decision is None and _on_terminal():
            decision = _ask(f"\n{APPROVER.id} ({APPROVER.roles[0]}): approve or reject? [y/n]")
        if decision is None:
            base = (
                f"{_command()} {{}} {request.id} --as {APPROVER.id} --role {APPROVER.roles[0]} "
                f"--tenant {APPROVER.tenant}"
            )
            where = f"--app {DEMO_APP} --db {db}"
            typer.echo("\nNo terminal to ask on. To decide, run one of:")
            if rt.store.location != db:  # a URL with a password, which is never printed
                where = f"--app {DEMO_APP}"
                typer.echo(
                    f"  (with AGENTRT_DB set to the database URL, {rt.store.location}, "
                    "password included)"
                )
            typer.echo(f"  {base.format('approve')} {where}")
            typer.echo(f"  {base.format('reject')} --reason 'not eligible' {where}")
            typer.echo(f"then see the run with:\n  {_command()} show {run.thread_id} {where}")
            return
        from agentrt.approvals import Decision

        if decision == "approve":
            chosen = Decision.approve(request.id, by=APPROVER)
        else:
            chosen = Decision.reject(request.id, by=APPROVER, reason="rejected in the demo")
        run = rt.decide(chosen)
        typer.echo(f"\n{decision} by {APPROVER.id}:")
        log = shown_events(rt.events(run.thread_id), rt.redactor, rt.tools.sensitive_of)
        for event in log[-4:]:
            typer.echo(f"  {describe(event)}")
        typer.echo("")
        print_run(run, rt)


_ANSWERS = {
    **dict.fromkeys(("approve", "a", "y", "yes"), "approve"),
    **dict.fromkeys(("reject", "r", "n", "no"), "reject"),
}


def _on_terminal() -> bool:
    return sys.stdin.isatty()


def _ask(question: str) -> str:
    """approve or reject, as the person at the terminal answers; asked again, with the
    choices listed, until an answer is understood."""
    while True:
        answer = typer.prompt(question).strip().lower()
        if answer in _ANSWERS:
            return _ANSWERS[answer]
        typer.echo(
            f"{answer!r} is not a choice here: type approve (or y, yes) or reject (or n, no)"
        )


def _command() -> str:
    """How to call this command again: by name if it is on PATH, else as it was invoked."""
    invoked = Path(sys.argv[0])
    if invoked.name != "agentrt":
        return f"{Path(sys.executable).name} -m agentrt"
    found = shutil.which("agentrt")
    return "agentrt" if found and Path(found).resolve() == invoked.resolve() else str(invoked)
