"""`agentrt artifacts THREAD [NAME]`: a run's artifacts, listed, or one written out."""

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from agentrt.cli.common import CliError, app, fail
from agentrt.cli.options import AppOptions, ThreadArgument, grouped

if TYPE_CHECKING:
    from agentrt.runtime import AgentRuntime

__all__ = ["artifacts", "print_artifacts"]


@app.command()
@grouped
def artifacts(
    thread_id: ThreadArgument,
    app_options: AppOptions,
    name: Annotated[
        str | None, typer.Argument(help="An artifact's name: write its content out.")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write the artifact to this file (default: stdout)."),
    ] = None,
) -> None:
    """List a run's artifacts (files its tools kept, results too large to inline), or
    write one out: ``agentrt artifacts THREAD report.csv --out report.csv``."""
    if name is None and out is not None:
        fail(CliError("--out needs an artifact's name: agentrt artifacts THREAD NAME --out FILE"))
    if out is not None and name is not None:
        _check_out(out, name)  # before the database is read: a bad path is said at once
    with app_options.runtime(db_only=True) as rt:
        if name is None:
            if not print_artifacts(rt, thread_id):
                typer.echo(f"run {thread_id} has no artifacts")
            return
        content = rt.artifact(thread_id, name)
        if out is None:
            sys.stdout.buffer.write(content)
            sys.stdout.buffer.flush()
        else:
            try:
                out.write_bytes(content)
            except OSError as exc:  # no permission, a full disk: said, not a traceback
                raise CliError(f"cannot write --out {str(out)!r}: {exc.strerror}") from None
            typer.echo(f"wrote {len(content):,} bytes to {out}", err=True)


def _check_out(out: Path, name: str) -> None:
    """Exit with one line if ``out`` is a directory, or in a directory that does not exist
    (a file already there is replaced, as a shell's ``>`` would)."""
    if out.is_dir():
        fail(CliError(f"--out {str(out)!r} is a directory; give a file in it: --out {out / name}"))
    if not out.parent.is_dir():
        fail(
            CliError(
                f"--out {str(out)!r}: there is no directory {str(out.parent)!r}; create it "
                "first or give a path in a directory that exists"
            )
        )


def print_artifacts(rt: "AgentRuntime", thread_id: str, *, indent: str = "") -> int:
    """One line an artifact of the run (name, media type, size, preview masked as the run's
    log masks it); how many."""
    from agentrt.tools.artifacts import shown_ref

    refs = rt.artifacts(thread_id)
    # The log after the artifacts: it held each call's arguments before its tool ran.
    known = rt.log_secrets(thread_id) if refs else []
    for ref in refs:
        preview = shown_ref(ref, rt.redactor, known=known).preview.replace("\n", " ")
        typer.echo(
            f"{indent}{ref.name:<24} {ref.media_type:<28} {ref.size:>12,} B  "
            f"sha256:{ref.digest[:12]}  {preview}"
        )
    return len(refs)
