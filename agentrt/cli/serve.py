"""`agentrt serve`: the runtime behind its HTTP API and review page, on uvicorn."""

import math
from typing import Annotated

import typer

from agentrt.cli.common import CliError, app, fail
from agentrt.cli.options import AppOptions, grouped, one_of, within
from agentrt.collector import tune_for_serving
from agentrt.errors import ConfigError

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
"""uvicorn's log levels (``uvicorn.config.LOG_LEVELS``), named here so that a word uvicorn
lacks is a usage error before anything starts, not its KeyError once serving."""


@app.command()
@grouped
def serve(
    app_options: AppOptions,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    # Bounded here: uvicorn takes port 99999 without a word, and nothing is reachable there.
    port: Annotated[int, typer.Option(help="Port to listen on.", callback=within(0, 65535))] = 8000,
    rate_limit: Annotated[str, typer.Option(help="Requests per API key.")] = "600/minute",
    max_body_bytes: Annotated[int, typer.Option(help="Largest request body.", min=1)] = 256 * 1024,
    max_concurrent_runs: Annotated[int, typer.Option(help="Runs driven at once.", min=1)] = 64,
    worker: Annotated[
        bool,
        typer.Option(
            "--worker/--no-worker",
            help="--no-worker: answer the API and drive no run; `agentrt worker` processes "
            "on the same database carry the runs on.",
        ),
    ] = True,
    threads: Annotated[
        int, typer.Option(help="Threads for the run graph's nodes (model and tool calls).", min=1)
    ] = 64,
    sweep_every: Annotated[
        float, typer.Option(help="Seconds between expiry sweeps of approvals; 0: none.")
    ] = 30.0,
    log_level: Annotated[
        str,
        typer.Option(help="uvicorn's log level.", callback=one_of(LOG_LEVELS)),
    ] = "info",
) -> None:
    """Serve the app's runtime: the HTTP API (/runs, /approvals, /openapi.json) and /ui.

    Callers need an API key (`agentrt keys create`). Runs left running by a process that
    died are carried on at startup. With --no-worker the server drives no run: start
    `agentrt worker` processes on the same database, as many as the load needs.
    """
    try:
        import uvicorn

        from agentrt.service import create_app
    except ImportError as exc:
        raise CliError(
            f"`agentrt serve` needs the service extra ({exc.name} is missing): "
            "pip install 'agentrt[service]'"
        ) from None
    if not (math.isfinite(sweep_every) and sweep_every >= 0):
        fail(CliError(f"--sweep-every {sweep_every!r} is not a number of seconds >= 0 (0: none)"))
    with app_options.runtime(create=True) as rt:
        try:
            api = create_app(
                rt,
                rate_limit=rate_limit,
                max_body_bytes=max_body_bytes,
                max_concurrent_runs=max_concurrent_runs,
                drive_runs=worker,
                executor_threads=threads,
                sweep_every=sweep_every or None,
            )
        except ConfigError as exc:
            # Each setting is one of serve's options: what create_app refuses is a usage error.
            raise CliError(f"{exc} (see agentrt serve --help)") from None
        typer.echo(
            f"agentrt: serving {rt.store.location!r} on http://{host}:{port} (review page: /ui)"
            + ("" if worker else "; driving no runs: `agentrt worker` processes do"),
            err=True,
        )
        tune_for_serving()
        uvicorn.run(api, host=host, port=port, log_level=log_level)
