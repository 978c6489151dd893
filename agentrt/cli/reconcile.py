"""`agentrt reconcile resolve|retry`: settle an effect whose outcome nobody recorded."""

from typing import Annotated

import typer

from agentrt.cli.approvals import DecisionOptions
from agentrt.cli.common import app, json_option, print_run
from agentrt.cli.options import grouped

reconcile_app = typer.Typer(
    help="Settle a non-idempotent call that was interrupted or timed out: did it happen?",
    no_args_is_help=True,
)
app.add_typer(reconcile_app, name="reconcile")

IdArgument = Annotated[
    str, typer.Argument(help="Id of the reconcile request (`agentrt approvals`).")
]


def _settle(options: DecisionOptions, approval_id: str, result: str | None) -> None:
    from agentrt.approvals import Decision

    by = options.decider.principal()
    with options.app.runtime() as rt:
        if result is None:
            decision = Decision.retry(approval_id, by=by, reason=options.reason)
        else:
            value = json_option("--result", result)
            decision = Decision.resolve(approval_id, result=value, by=by, reason=options.reason)
        run = rt.decide(decision)
        typer.echo(
            f"{decision.outcome} recorded for {approval_id}; the run is now {run.status.value}"
        )
        print_run(run, rt)


@reconcile_app.command()
@grouped
def resolve(
    approval_id: IdArgument,
    decision: DecisionOptions,
    result: Annotated[str, typer.Option(help="What the effect returned, as JSON.")],
) -> None:
    """The effect happened: record RESULT as its outcome; the run goes on without a call."""
    _settle(decision, approval_id, result)


@reconcile_app.command()
@grouped
def retry(approval_id: IdArgument, decision: DecisionOptions) -> None:
    """The effect did not happen: call the tool again, with the same idempotency key."""
    _settle(decision, approval_id, None)
