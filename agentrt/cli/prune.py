"""`agentrt prune --older-than 30d`: delete old finished runs and everything they left."""

import math
import re
from typing import Annotated

import typer

from agentrt.cli.common import CliError, app, fail
from agentrt.cli.options import AppOptions, grouped, within

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

MAX_AGE_DAYS = 36_500
"""The longest age an option takes: 100 years, older than any run. A time further back is
one no datetime shows (--since 99999999999999999999999d was an OverflowError)."""

KEEP_MAX = 1_000_000_000
"""The most runs --keep-latest keeps: more than a database holds, less than SQLite's
largest integer (a larger number was an OverflowError)."""


def parse_age(text: str, *, flag: str = "--older-than") -> float:
    """'30d', '12h', '90m', '45s', '2w' as seconds (``flag``: the option it came from)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if m is None or not math.isfinite(float(m.group(1)) * _UNITS[m.group(2)]):
        raise CliError(
            f"{flag} {text!r} is not an age; write a number and a unit, e.g. 30d, 12h, "
            "90m, 45s or 2w"
        )
    seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if seconds > MAX_AGE_DAYS * _UNITS["d"]:
        raise CliError(f"{flag} {text!r} is more than 100 years; give an age up to {MAX_AGE_DAYS}d")
    return seconds


@app.command()
@grouped
def prune(
    older_than: Annotated[
        str, typer.Option("--older-than", help="Age since the run last changed, e.g. 30d.")
    ],
    app_options: AppOptions,
    keep_latest: Annotated[
        int,
        typer.Option(
            "--keep-latest",
            min=0,
            callback=within(0, KEEP_MAX),
            help="Keep the newest N runs whatever their age.",
        ),
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
