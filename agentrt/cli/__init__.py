"""The `agentrt` command: inspect runs, decide approvals, resume runs, run the demo.

Commands work on an app given as module:attribute (like uvicorn): --app, the AGENTRT_APP
environment variable, or `app = "..."` under [agentrt] in ./agentrt.toml. The attribute is
an AgentRuntime, or a callable returning one (it is passed db= when --db is given).

Each command group lives in its own module, registered on the one `app` by importing it here.
Heavy imports (LangGraph, the app) happen inside the commands, so `agentrt --help` is quick.
For the same reason these modules leave out `from __future__ import annotations`: typer
reads every command's signature to build even the top-level help, and string annotations
would be compiled and evaluated again at each start (8% of `agentrt --help`'s instructions).
Names imported only for type checking are quoted where a signature uses them.
"""

import sys

import typer

from agentrt.cli import (  # noqa: F401  (registers the commands)
    approvals,
    artifacts,
    budget,
    demo,
    eval,
    keys,
    mcp,
    memory,
    notify,
    policy,
    prune,
    reconcile,
    replay,
    runs,
    serve,
    stats,
    tools,
    trace,
    worker,
)
from agentrt.cli.common import CliError, app, load_runtime, not_text

__all__ = ["app", "load_runtime", "main"]


def main() -> None:
    """Entry point of the `agentrt` script."""
    try:
        why = not_text(sys.argv[1:])
        if why is not None:
            raise CliError(why)
        app()
    except CliError as exc:
        # Outside the command, so not through fail(): typer.Exit would be a traceback here.
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(2)
