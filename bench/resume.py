"""Resume and start-up benchmark: real processes, timed from before they are started.

Resume: a run died in the middle of its second action (its tool killed the process);
a new process opens the file and resumes it. Measured from just before the process is
started to the moment the first resumed node (that tool) runs, so it counts the
interpreter, the imports, opening the store and building the graph, reading the
checkpoint, and agentrt's own checks (run row, lease takeover from the dead process).
The anchor is the bare LangGraph agent (model node + ToolNode) on SqliteSaver, resumed
with ``get_state`` and ``invoke(None)``. See resume_child.py.

Start-up: wall time of ``import agentrt``, ``from agentrt import AgentRuntime`` and
``agentrt --help`` in fresh interpreters, against the interpreter alone, against
importing LangGraph's graph and SQLite checkpointer, and (``agentrt --help``) against
importing typer, which the command is built on.

Every process runs agentrt from bytecode, as an install leaves it (pip compiles a package
as it installs it; an editable one writes its bytecode as it is first imported): agentrt's
modules are compiled before the first sample. Without that, where PYTHONDONTWRITEBYTECODE
is set on a tree that has none, each process would compile agentrt's source again, while
its anchors, LangGraph and the standard library, load theirs already compiled.
"""

from __future__ import annotations

import compileall
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import QUICK, Report, Row, paired

__all__ = ["main"]

REPEATS = 1 if QUICK else 7
WARMUP = 0 if QUICK else 1
CHILD = Path(__file__).with_name("resume_child.py")
PYTHON = sys.executable
AGENTRT = str(Path(sys.executable).with_name("agentrt"))


def _child(side: str, mode: str, db: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, str(CHILD), side, mode, str(db)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _resume_ms(side: str, db: Path) -> float:
    from resume_child import RESUMED

    started = time.monotonic()
    done = _child(side, "resume", db)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith(RESUMED)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{side} resume failed ({done.returncode}): {done.stderr[-2000:]}")
    return (float(lines[0][len(RESUMED) :]) - started) * 1000


def _setup(side: str, db: Path) -> None:
    done = _child(side, "setup", db)
    # The tool kills the process with status 3 in the middle of the second action.
    if done.returncode != 3:
        raise RuntimeError(f"{side} setup ended {done.returncode}: {done.stderr[-2000:]}")


def compile_agentrt() -> None:
    """Write agentrt's bytecode beside its modules (see the module's docstring)."""
    import agentrt

    if not compileall.compile_dir(str(Path(agentrt.__file__).parent), quiet=1):
        raise RuntimeError("agentrt's modules did not compile")


def _wall_ms(args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(args, capture_output=True, timeout=120, check=True)
    return (time.perf_counter() - started) * 1000


def startup_rows() -> list[Row]:
    """Wall time of importing agentrt and of `agentrt --help`, against their anchors."""
    bare = [PYTHON, "-c", "pass"]
    langgraph = [PYTHON, "-c", "import langgraph.graph, langgraph.checkpoint.sqlite"]
    cases = [
        (
            "`python -c 'import agentrt'`",
            [PYTHON, "-c", "import agentrt"],
            "`python -c pass`",
            bare,
        ),
        ("`agentrt --help`", [AGENTRT, "--help"], "`python -c pass`", bare),
        # typer's own import, which any typer command pays before it can print a word
        (
            "`agentrt --help`",
            [AGENTRT, "--help"],
            "`python -c 'import typer'`",
            [PYTHON, "-c", "import typer"],
        ),
    ]
    if not QUICK:  # the resume row runs these imports already; quick mode skips them
        cases.append(
            (
                "`python -c 'from agentrt import AgentRuntime'`",
                [PYTHON, "-c", "from agentrt import AgentRuntime"],
                "`import langgraph.graph, langgraph.checkpoint.sqlite`",
                langgraph,
            )
        )
    rows = []
    for measure, ours, anchor_name, anchor in cases:
        a, b = paired(
            lambda ours=ours: _wall_ms(ours), lambda a=anchor: _wall_ms(a), REPEATS, warmup=WARMUP
        )
        rows.append(Row.of("start-up", f"ms, {measure}", a, anchor_name, b))
    return rows


def main() -> Report:
    """Run the resume and start-up benchmarks and return their rows."""
    compile_agentrt()
    with tempfile.TemporaryDirectory(prefix="agentrt-bench-") as tmp:
        ours_db, bare_db = Path(tmp, "agentrt.db"), Path(tmp, "langgraph.db")
        _setup("agentrt", ours_db)
        _setup("langgraph", bare_db)
        # Each resume exits as its first node starts, so every one starts from the same
        # checkpoint (and agentrt takes over the lease of a dead process each time).
        a, b = paired(
            lambda: _resume_ms("agentrt", ours_db),
            lambda: _resume_ms("langgraph", bare_db),
            REPEATS,
            warmup=WARMUP,
        )
    rows = [
        Row.of(
            "resume",
            "ms from process start to the first resumed node",
            a,
            "bare LangGraph: get_state + invoke(None)",
            b,
        ),
        *startup_rows(),
    ]
    notes = (
        "All in fresh processes of the benchmark's own interpreter, agentrt's modules "
        "compiled to bytecode first, as an install leaves them. `import agentrt` "
        "loads the package's modules on first use of a name, so it and `agentrt --help` "
        "import neither LangGraph nor LangChain (tests/test_imports.py checks that); the "
        "runtime pays for them when it is first used, as in the resume figure. "
        "`agentrt --help` lists the commands without loading their modules "
        "(agentrt/cli/listed.py); importing typer, which the command is built on, is most "
        "of what is left."
    )
    return Report(rows=rows, notes=notes)


if __name__ == "__main__":
    main()
