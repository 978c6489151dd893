"""The built-in run_python tool, on the sandboxed runner."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Sequence

from langgraph.types import RetryPolicy
from pydantic import BaseModel

from agentrt.artifacts import ArtifactRef
from agentrt.state import storable_text
from agentrt.tools.artifacts import call_stem
from agentrt.tools.contract import ToolContext, ToolSpec, tool
from agentrt.tools.sandbox.limits import SandboxLimits
from agentrt.tools.sandbox.runner import run_sandboxed

MAX_ARTIFACTS = 20
"""Files of one call kept as artifacts; past that, the rest are only listed in ``files``."""


class RunPythonResult(BaseModel):
    """What the run_python tool returns to the model."""

    exit_code: int
    stdout: str
    """What it printed (cut to max_output_chars; a NUL or other non-text as U+FFFD)."""
    stderr: str
    files: dict[str, int]
    """The files it left, path -> size: the first in path order, within a bound."""
    files_not_listed: int = 0
    """Files it left that ``files`` does not list (past its bound), and directories not
    looked into, each of those counted as one."""
    artifacts: list[ArtifactRef] = []
    """The files the program wrote, each kept as an artifact of the run."""
    artifact_names: dict[str, str] = {}
    """Each kept file's path -> the name of its artifact: the call's tool and step, then
    the path (``out/a.csv`` at step 0.1: ``run_python-0.1-out-a.csv``; a second path that
    maps to a name taken gets ``-2``, ``-3``, ...). Never a name agentrt gives another
    tool's result, nor one of another call's files."""


def run_python_tool(
    limits: SandboxLimits | None = None, *, name: str = "run_python", scopes: Sequence[str] = ()
) -> ToolSpec:
    """A run_python tool with these limits; register it to offer it (it is never implicit)."""
    limits = limits or SandboxLimits()

    # Its effects stay in a directory that is deleted afterwards, so calling it again is
    # harmless: idempotent. A run killed at its timeout is a timeout observation; it is not
    # retried (max_attempts=1), since the same code would most likely run as long again.
    @tool(
        name=name,
        effect="write",
        scopes=list(scopes),
        idempotent=True,
        retry=RetryPolicy(max_attempts=1),
    )
    def run_python(
        code: str, ctx: ToolContext, files: dict[str, str] | None = None
    ) -> RunPythonResult:
        """Run a Python program in a sandbox and return its exit code and output; the files
        it writes come back as artifacts, named in artifact_names.

        Args:
            code: The program, run as main.py in a fresh, empty working directory.
            files: Extra files to create first, relative path -> text.
        """
        inputs = {**(files or {}), "main.py": code}
        done = run_sandboxed(
            [sys.executable, "-I", "main.py"],
            files=inputs,
            limits=limits,
            keep_written=True,
            max_written=MAX_ARTIFACTS,
        )
        if done.timed_out:
            raise TimeoutError(f"the program was killed at its timeout of {limits.timeout:g}s")
        names = artifact_names(done.written, prefix=f"{call_stem(name, ctx.step_id)}-")
        return RunPythonResult(
            exit_code=done.returncode,
            # Output is the program's bytes: a NUL in it would make the result one no
            # store can keep, and the model would lose it all.
            stdout=storable_text(done.stdout),
            stderr=storable_text(done.stderr),
            files=done.files,
            files_not_listed=done.files_not_listed,
            artifacts=[ctx.artifacts.put(names[path], data) for path, data in done.written.items()],
            artifact_names=names,
        )

    return run_python


def artifact_name(path: str, prefix: str = "") -> str:
    """A file's path in the working directory as an artifact's name, after ``prefix``
    (``out/a.csv``: ``out-a.csv``), 200 characters at most."""
    name = re.sub(r"[^A-Za-z0-9._\-]", "_", path.replace("/", "-")).lstrip("._-")
    return (prefix + (name or "file"))[:200]


def artifact_names(paths: Iterable[str], *, prefix: str = "") -> dict[str, str]:
    """Each of ``paths`` (one call's files, in path order) -> its own artifact name: its
    ``artifact_name`` after ``prefix``, or where an earlier path took that, the name with
    the first free ``-2``, ``-3``, ... before its extension (``out/a.csv`` beside
    ``out-a.csv``: ``out-a-2.csv``). Never a name another path maps to, so each file is
    kept; the same paths get the same names, so a re-run of the call names them alike."""
    ordered = list(dict.fromkeys(paths))
    mapped = {path: artifact_name(path, prefix) for path in ordered}
    # A suffixed name must not be one a later path maps to as it is: that file keeps it.
    taken = set(mapped.values())
    given: dict[str, str] = {}
    used: set[str] = set()
    for path in ordered:
        name = mapped[path]
        if name in used:
            n = 2
            while (name := _numbered(mapped[path], n)) in used or name in taken:
                n += 1
        used.add(name)
        given[path] = name
    return given


def _numbered(name: str, n: int) -> str:
    """``name`` with ``-n`` before its extension (a short one), cut to stay 200 long."""
    stem, dot, ext = name.rpartition(".")
    if not stem or len(ext) > 16:
        stem, dot, ext = name, "", ""
    suffix = f"-{n}{dot}{ext}"
    return stem[: 200 - len(suffix)] + suffix


run_python = run_python_tool()
"""The built-in run_python tool with default limits: pass it in tools=[...] to offer it."""
