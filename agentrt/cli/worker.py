"""`agentrt worker`: a process that drives the runs in a database, beside any number of others."""

import math
import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from agentrt.cli.common import CliError, app, fail
from agentrt.cli.options import AppOptions, grouped
from agentrt.cli.said import say_from_handler
from agentrt.collector import tune_for_serving

if TYPE_CHECKING:
    from agentrt.runtime import AgentRuntime


@app.command()
@grouped
def worker(
    app_options: AppOptions,
    concurrency: Annotated[int, typer.Option(help="Runs driven at once.", min=1)] = 8,
    poll: Annotated[
        float,
        typer.Option(
            help="Seconds between looks for runs when nothing wakes the worker; 0: 10 s on "
            "PostgreSQL, which says when a run needs a driver, 0.25 s on SQLite."
        ),
    ] = 0.0,
    sweep_every: Annotated[
        float, typer.Option(help="Seconds between expiry sweeps of approvals; 0: none.")
    ] = 30.0,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    notify: Annotated[
        bool, typer.Option(help="Also send the app's webhooks (if it names endpoints).")
    ] = True,
) -> None:
    """Drive the runs of the app's database, with any number of other workers.

    A worker claims each run that needs a driver, and no other worker gets it: new runs
    (from rt.create, or POST /runs under `agentrt serve --no-worker`), runs whose gate was
    decided, runs whose process stopped or died (once its lease expires; at once for a
    process on this machine over SQLite), and runs whose wait to retry is over.

    SIGTERM or Ctrl-C: claim nothing more, let each run finish the step it is in, let go
    of it (another worker carries it on at once) and exit 0. While it still waits for its
    database to take connections: stop waiting and exit 0 at once.
    """
    import logging

    from agentrt.errors import StartupStopped
    from agentrt.processes import stop_start_up

    level = logging.getLevelNamesMapping().get(log_level.upper())
    if level is None:
        raise CliError(f"--log-level {log_level!r} is not one of debug, info, warning, error")
    for flag, seconds, zero in (
        ("--poll", poll, "the database's default"),
        ("--sweep-every", sweep_every, "no sweep"),
    ):
        if not (math.isfinite(seconds) and seconds >= 0):
            fail(CliError(f"{flag} {seconds!r} is not a number of seconds >= 0 (0: {zero})"))
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # A signal while the app and its database open (seconds, on a busy machine) is kept and
    # obeyed once the worker exists: it then claims nothing and exits 0. One that comes while
    # the store waits for its server (up to ?pool_patience=, 120 s by default) ends that
    # wait too, from the wait's own loop (processes.stop_start_up): nothing is claimed yet,
    # so the worker exits 0 at once, not once the patience (or systemd's stop timeout) is out.
    signalled: list[int] = []

    def starting(signum: int, frame: FrameType | None) -> None:
        signalled.append(signum)
        stop_start_up()

    signal.signal(signal.SIGTERM, starting)
    signal.signal(signal.SIGINT, starting)
    try:
        # A worker drives the runs of a database that exists: one it made of a typo'd --db
        # would be empty, and polled for ever.
        with app_options.runtime() as rt:
            _work(
                rt,
                signalled,
                concurrency=concurrency,
                poll=poll,
                sweep_every=sweep_every,
                notify=notify,
            )
    except StartupStopped:
        name = signal.Signals(signalled[0]).name if signalled else "told to stop"
        typer.echo(
            f"agentrt worker: {name}: stopped before it was ready, claiming nothing", err=True
        )


def _work(
    rt: "AgentRuntime",
    signalled: list[int],
    *,
    concurrency: int,
    poll: float,
    sweep_every: float,
    notify: bool,
) -> None:
    """Drive ``rt``'s runs until a signal (``signalled``: those that came while it opened)."""
    pool = rt.worker(concurrency=concurrency, poll=poll or None, sweep_every=sweep_every or None)

    def stop(signum: int, frame: FrameType | None) -> None:
        # First, and takes no lock: the handler runs on the worker loop's thread,
        # between any two of its steps (agentrt.runs.workers.Worker.stop).
        pool.stop()
        say_from_handler(
            f"agentrt worker: {signal.Signals(signum).name}: stopping once each run in "
            "hand finishes its step"
        )

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for signum in signalled:
        stop(signum, None)
    typer.echo(f"agentrt worker: ready, driving up to {concurrency} runs at once", err=True)
    dispatcher = rt.dispatcher() if notify and rt.webhooks.endpoints else None
    sending = threading.Thread(
        target=dispatcher.run if dispatcher else lambda: None, name="agentrt-webhooks"
    )
    sending.start()
    tune_for_serving()
    try:
        pool.run()
    finally:
        if dispatcher is not None:
            dispatcher.stop()
            sending.join()
            dispatcher.close()
