"""`agentrt prune --older-than 30d`: delete old finished runs and everything they left."""

from __future__ import annotations

import math
import re
from typing import Annotated

import typer

from agentrt.cli.common import CliError, app, fail
from agentrt.cli.options import AppOptions, grouped

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_age(text: str, *, flag: str = "--older-than") -> float:
    """'30d', '12h', '90m', '45s', '2w' as seconds (``flag``: the option it came from)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if m is None or not math.isfinite(float(m.group(1)) * _UNITS[m.group(2)]):
        raise CliError(
            f"{flag} {text!r} is not an age; write a number and a unit, e.g. 30d, 12h, "
            "90m, 45s or 2w"
        )
    return float(m.group(1)) * _UNITS[m.group(2)]


@app.command()
@grouped
def prune(
    older_than: Annotated[
        str, typer.Option("--older-than", help="Age since the run last changed, e.g. 30d.")
    ],
    app_options: AppOptions,
    keep_latest: Annotated[
        int, typer.Option("--keep-latest", min=0, help="Keep the newest N runs whatever their age.")
    ] = 0,
) -> None:
    """Delete finished runs older than an age: their checkpoints, spans and model calls too.

    Runs waiting at a gate, running, or stopped by a crash are never deleted.
    """
    try:
        seconds = parse_age(older_than)
    except CliError as exc:
        fail(exc)
    with app_options.runtime() as rt:
        gone = rt.prune(older_than=seconds, keep_latest=keep_latest)
        for thread_id in gone:
            typer.echo(f"pruned {thread_id}")
        typer.echo(f"{len(gone)} run(s) pruned")
