"""The files `agentrt eval` writes (--junit, --save-baseline), checked before anything
runs: each must be a file that can be written, none of the eval's inputs (the dataset,
the --baseline read, the database; but --save-baseline may be the --baseline it was
compared with, read before any case runs: a baseline rolled forward), and, if it exists,
an earlier report of its kind.

A report written over the database loses every run, approval and ledger entry in it; one
written over the dataset loses the cases. A path that already holds anything but a report
of the kind is said, and left as it is.
"""

import os
import re
from pathlib import Path

from agentrt.cli.usage import CliError

__all__ = ["check_not_database", "check_outputs"]

_HEAD = 4096
"""Bytes of an existing file read to tell what it is."""

_JUNIT_START = re.compile(r"\s*(?:<\?[^>]*\?>\s*)?(?:<!--.*?-->\s*)*<testsuites?[\s/>]", re.S)
"""The start of a JUnit XML file: an XML declaration and comments, if any, then its
<testsuites> or <testsuite> root."""

_SQLITE_SIDES = ("", "-wal", "-shm", "-journal")
"""A SQLite database's own file and those SQLite keeps beside it while it writes."""


def check_outputs(
    junit: str | None,
    save_baseline: str | None,
    inputs: dict[str, str | None],
    database: str | None,
) -> None:
    """CliError for an output path the report could not, or must not, be written to:
    found now, not after every case ran. ``inputs``: each input file by what it is
    ("the dataset", "--baseline"), None where not given; ``database``: the SQLite file
    --db (or AGENTRT_DB, or agentrt.toml) names, if any."""
    outputs = [(f, p) for f, p in (("--junit", junit), ("--save-baseline", save_baseline)) if p]
    if junit is not None and save_baseline is not None and _same(junit, save_baseline):
        raise CliError(
            f"--junit and --save-baseline both name {junit!r}; give each a file of its own"
        )
    for flag, path in outputs:
        _check_writable(flag, path)
        for what, given in inputs.items():
            if flag == "--save-baseline" and what == "--baseline":
                continue  # read before any case runs: a baseline rolled forward is kept so
            if given is not None and _same(path, given):
                raise CliError(
                    f"{flag} {path!r} is {what} ({given!r}), which the report would be written "
                    "over; give the report a file of its own"
                )
        if database is not None:
            check_not_database(junit, save_baseline, database)
        _check_kind(flag, path)


def check_not_database(junit: str | None, save_baseline: str | None, database: str) -> None:
    """CliError for an output path that is the SQLite file ``database`` (or one SQLite
    keeps beside it). Checked again once the runtime is made, before any case runs: an
    app factory's default database is known only then, and may be a file made just now."""
    for flag, path in (("--junit", junit), ("--save-baseline", save_baseline)):
        if path is not None and any(_same(path, database + side) for side in _SQLITE_SIDES):
            raise CliError(
                f"{flag} {path!r} is the app's database ({database!r}), which the report "
                "would be written over; give the report a file of its own"
            )


def _same(a: str, b: str) -> bool:
    """Whether two paths name one file: the same path resolved (a file not made yet
    too), or one file under two names (a link)."""
    if Path(a).resolve() == Path(b).resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # either does not exist (or cannot be looked at): not one file
        return False


def _check_writable(flag: str, path: str) -> None:
    target = Path(path)
    folder = target.parent
    if target.is_dir():
        raise CliError(f"{flag} {path!r} is a directory; give a file path in it")
    if not folder.is_dir():
        raise CliError(
            f"{flag} {path!r}: there is no directory {str(folder)!r}; create it first, "
            "or give a path in one that exists"
        )
    if not os.access(target if target.exists() else folder, os.W_OK):
        raise CliError(f"{flag} {path!r}: not allowed to write there; give another path")


def _check_kind(flag: str, path: str) -> None:
    """CliError unless the file at ``path`` is missing, empty, or an earlier report of
    the kind ``flag`` writes: what else is there is not the eval's to write over."""
    try:
        with open(path, "rb") as f:
            head = f.read(_HEAD)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise CliError(f"{flag} {path!r}: cannot read what is there: {exc.strerror}") from None
    if not head.strip():
        return
    if flag == "--junit":
        if _is_junit(head):
            return
        kind = "a JUnit XML report"
    else:
        if head.lstrip().startswith(b"{") and _is_report(path):
            return
        kind = "an eval report (agentrt eval --save-baseline or --json)"
    what = "a SQLite database" if head.startswith(b"SQLite format 3\x00") else "a file"
    raise CliError(
        f"{flag} {path!r} is {what} that is not {kind}; agentrt eval writes over its own "
        "earlier reports only: give another path, or move that file away first"
    )


def _is_junit(head: bytes) -> bool:
    """Whether a file beginning ``head`` is JUnit XML: its first element a <testsuites>
    or a <testsuite> (after an XML declaration and comments, if any)."""
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    return _JUNIT_START.match(text) is not None


def _is_report(path: str) -> bool:
    from agentrt.errors import ConfigError
    from agentrt.evals import EvalReport

    try:
        EvalReport.load(path)
    except ConfigError:
        return False
    return True
