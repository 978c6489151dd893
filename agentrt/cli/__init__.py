"""The `agentrt` command: inspect runs, decide approvals, resume runs, run the demo.

Commands work on an app given as module:attribute (like uvicorn): --app, the AGENTRT_APP
environment variable, or `app = "..."` under [agentrt] in ./agentrt.toml. The attribute is
an AgentRuntime, or a callable returning one (it is passed db= when --db is given).

Each command group lives in its own module, registering its commands on the one `app`. The
`agentrt` script lists them without loading those modules (agentrt.cli.listed) and loads
them all to run one; code that takes ``agentrt.cli.app`` gets it with every command
registered. Heavy imports (LangGraph, the app) happen inside the commands.
These modules leave out `from __future__ import annotations`: typer reads every command's
signature to build them, and string annotations would be compiled and evaluated again at
each start of a command. Names imported only for type checking are quoted where a
signature uses them.
"""

import importlib
import sys
from typing import Any

import typer

from agentrt.cli import listed
from agentrt.cli.common import CliError, load_runtime, not_text

__all__ = ["app", "load_runtime", "main"]  # app: from __getattr__


def __getattr__(name: str) -> Any:
    """``app``, or a command module, with every command module loaded first: whoever
    embeds or walks the app (its commands, a docs generator) finds all of them, and a
    command it registers after comes after agentrt's, so it wins a name they share."""
    listed.load()
    if name == "app":
        return listed.app
    if name in listed.MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    """Entry point of the `agentrt` script."""
    try:
        why = not_text(sys.argv[1:])
        if why is not None:
            raise CliError(why)
        listed.app()  # not the package's app: listing the commands loads none of them
    except CliError as exc:
        # Outside the command, so not through fail(): typer.Exit would be a traceback here.
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(2)
