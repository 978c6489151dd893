"""The `agentrt` command: inspect runs, decide approvals, resume runs, run the demo.

Commands work on an app given as module:attribute (like uvicorn): --app, the AGENTRT_APP
environment variable, or `app = "..."` under [agentrt] in ./agentrt.toml. The attribute is
an AgentRuntime, or a callable returning one (it is passed db= when --db is given).

Each command group lives in its own module, registering its commands on the one `app`.
`agentrt --help` lists them without loading those modules (agentrt.cli.listed); running a
command loads them all, and heavy imports (LangGraph, the app) happen inside the commands.
These modules leave out `from __future__ import annotations`: typer reads every command's
signature to build them, and string annotations would be compiled and evaluated again at
each start of a command. Names imported only for type checking are quoted where a
signature uses them.
"""

import sys

import typer

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
