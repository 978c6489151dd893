"""`agentrt notify` sends the outbox's events to the app's webhooks; `agentrt webhooks`
lists the endpoints and the deliveries (the dead letter among them) and sends a dead one
again."""

import json
import signal
from types import FrameType
from typing import Annotated

import typer

from agentrt.cli.common import CliError, age, app, short, table
from agentrt.cli.options import LIMIT_MAX, AppOptions, grouped, within
from agentrt.cli.said import say_from_handler

webhooks_app = typer.Typer(
    help="The app's webhook endpoints and their deliveries: pending, delivered, dead."
)
app.add_typer(webhooks_app, name="webhooks")

_STATUSES = ("pending", "delivered", "dead", "all")


@app.command()
@grouped
def notify(
    app_options: AppOptions,
    once: Annotated[
        bool, typer.Option(help="One pass: send what is due now, print what it did, exit.")
    ] = False,
    poll: Annotated[float, typer.Option(help="Seconds between passes.")] = 1.0,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Send the outbox's events to the app's webhook endpoints until SIGTERM or Ctrl-C.

    Signed (Standard Webhooks), retried with backoff for hours, then dead (see `agentrt
    webhooks deliveries --status dead`). Any number of processes may send from one
    database: `agentrt serve` and `agentrt worker` do too.
    """
    import logging

    level = logging.getLevelNamesMapping().get(log_level.upper())
    if level is None:
        raise CliError(f"--log-level {log_level!r} is not one of debug, info, warning, error")
    if poll <= 0:
        raise CliError(f"--poll must be > 0 seconds, got {poll!r}")
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with app_options.runtime() as rt:
        if not rt.webhooks.endpoints:
            raise CliError(
                "the app names no webhook endpoints: build its runtime with "
                "AgentRuntime(..., webhooks=Webhooks.from_file('webhooks.yaml'))"
            )
        dispatcher = rt.dispatcher(poll=poll)
        try:
            if once:
                done = dispatcher.deliver_due()
                typer.echo(
                    f"delivered {done.delivered}, to retry {done.retrying}, dead {done.dead}"
                )
                return

            def stop(signum: int, frame: FrameType | None) -> None:
                dispatcher.stop()  # first: takes no lock on this thread
                say_from_handler(f"agentrt notify: {signal.Signals(signum).name}: stopping")

            signal.signal(signal.SIGTERM, stop)
            signal.signal(signal.SIGINT, stop)
            dispatcher.run()
        finally:
            dispatcher.close()


@webhooks_app.command("endpoints")
@grouped
def endpoints(app_options: AppOptions) -> None:
    """The app's endpoints: name, tenant, event filter, host (never the URL's path or the
    secret)."""
    from agentrt.webhooks.config import shown_url

    with app_options.runtime() as rt:
        table(
            ["endpoint", "tenant", "events", "url"],
            [
                [e.name, e.tenant, ", ".join(e.events), shown_url(e.url)]
                for e in rt.webhooks.endpoints
            ],
        )


@webhooks_app.command("deliveries")
@grouped
def deliveries(
    status: Annotated[
        str, typer.Option(help="pending, delivered, dead (the dead letter) or all.")
    ] = "all",
    endpoint: Annotated[str | None, typer.Option(help="Only this endpoint's.")] = None,
    run: Annotated[str | None, typer.Option("--run", help="Only this run's events.")] = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's events.")] = None,
    limit: Annotated[
        int, typer.Option(help="At most this many.", min=1, callback=within(1, LIMIT_MAX))
    ] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
    *,
    app_options: AppOptions,
) -> None:
    """Deliveries, newest event first: who gets what, how many tries, the last error."""
    from agentrt.readable import iso
    from agentrt.webhooks import DeliveryQuery

    if status not in _STATUSES:
        raise CliError(f"--status {status!r} is not one of {', '.join(_STATUSES)}")
    with app_options.runtime(db_only=True) as rt:
        now = rt.clock()
        found = rt.store.list_deliveries(
            DeliveryQuery(
                status=None if status == "all" else status,
                endpoint=endpoint,
                thread_id=run,
                tenant=tenant,
                limit=limit,
            )
        )
        if as_json:
            typer.echo(
                json.dumps(
                    [
                        {
                            "endpoint": d.endpoint,
                            "event_id": d.event.id,
                            "type": d.event.type,
                            "thread_id": d.event.thread_id,
                            "tenant": d.event.tenant,
                            "status": d.status.value,
                            "attempts": d.attempts,
                            "next_at": iso(d.next_at) if d.status.value == "pending" else None,
                            "last_error": d.last_error,
                        }
                        for d in found
                    ],
                    indent=2,
                )
            )
            return
        table(
            ["event", "type", "endpoint", "run", "status", "tries", "next / last error", "age"],
            [
                [
                    d.event.id,
                    d.event.type,
                    d.endpoint,
                    d.event.thread_id,
                    d.status.value,
                    str(d.attempts),
                    short(
                        (f"next {iso(d.next_at)}; " if d.status.value == "pending" else "")
                        + (d.last_error or ""),
                        50,
                    ),
                    age(d.event.created_at, now),
                ]
                for d in found
            ],
        )


@webhooks_app.command("retry")
@grouped
def retry(
    event_id: Annotated[str, typer.Argument(help="The dead delivery's event id.")],
    endpoint: Annotated[str, typer.Option(help="The endpoint it is dead for.")],
    *,
    app_options: AppOptions,
) -> None:
    """Send a dead delivery again: pending at once, its tries counted afresh."""
    from agentrt.webhooks import DeliveryQuery

    with app_options.runtime(db_only=True) as rt:
        query = DeliveryQuery(endpoint=endpoint, event_id=event_id)
        found = rt.store.list_deliveries(query)
        if not found:
            raise CliError(
                f"no delivery of {event_id!r} to endpoint {endpoint!r}; list them with "
                "`agentrt webhooks deliveries`"
            )
        if not rt.store.retry_delivery(endpoint, event_id, now=rt.clock()):
            raise CliError(
                f"delivery of {event_id!r} to {endpoint!r} is {found[0].status.value}, not "
                "dead; only a dead delivery is sent again by hand"
            )
        typer.echo(f"{event_id} to {endpoint}: pending again; a dispatcher sends it next pass")
