"""The built-in run_python tool, on the sandboxed runner."""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence

from langgraph.types import RetryPolicy
from pydantic import BaseModel

from agentrt.artifacts import ArtifactRef
from agentrt.tools.contract import ToolContext, ToolSpec, tool
from agentrt.tools.sandbox.limits import SandboxLimits
from agentrt.tools.sandbox.runner import run_sandboxed

MAX_ARTIFACTS = 20
"""Files of one call kept as artifacts; past that, the rest are only listed in ``files``."""


class RunPythonResult(BaseModel):
    """What the run_python tool returns to the model."""

    exit_code: int
    stdout: str
    stderr: str
    files: dict[str, int]
    artifacts: list[ArtifactRef] = []
    """The files the program wrote, each kept as an artifact of the run."""


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
        it writes come back as artifacts.

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
        return RunPythonResult(
            exit_code=done.returncode,
            stdout=done.stdout,
            stderr=done.stderr,
            files=done.files,
            artifacts=[
                ctx.artifacts.put(artifact_name(path), data) for path, data in done.written.items()
            ],
        )

    return run_python


def artifact_name(path: str) -> str:
    """A file's path in the working directory as an artifact's name (``out/a.csv``:
    ``out-a.csv``)."""
    name = re.sub(r"[^A-Za-z0-9._\-]", "_", path.replace("/", "-")).lstrip("._-")
    return name[:200] or "file"


run_python = run_python_tool()
"""The built-in run_python tool with default limits: pass it in tools=[...] to offer it."""
