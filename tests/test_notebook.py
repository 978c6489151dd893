"""The quickstart notebook runs top to bottom, offline, on this venv's Python."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import nbclient
import nbformat
import pytest
from ipykernel.kernelspec import write_kernel_spec

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"
KERNEL = "agentrt-test-python3"
CELL_TIMEOUT = 60

# Put before the notebook's cells: in the kernel, as in tests (conftest.py), a connection
# off this machine fails loudly. LangGraph's default picture of a graph would make one.
OFFLINE = """
import ipaddress, socket
_connect = socket.socket.connect
def _guarded(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0]
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise RuntimeError(f"the notebook is offline: refused a connection to {address!r}")
    return _connect(self, address)
socket.socket.connect = _guarded
"""


def _text(cell: Any, kind: str = "text/plain") -> str:
    """Everything a code cell printed or displayed (as ``kind``), as one string."""
    parts: list[str] = []
    for out in cell.outputs:
        if out["output_type"] == "stream":
            parts.append(out["text"])
        elif out["output_type"] in {"execute_result", "display_data"}:
            parts.append(out["data"].get(kind, ""))
    return "".join(parts)


def _cell(cells: list[Any], needle: str) -> Any:
    """The one code cell whose source holds ``needle``."""
    (found,) = [c for c in cells if needle in c.source]
    return found


@pytest.mark.subprocess
def test_quickstart_notebook_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A kernelspec of our own whose argv is this very interpreter (sys.executable), found
    # first through JUPYTER_PATH, so no "python3" kernelspec elsewhere can stand in for it.
    jupyter_dir = tmp_path / "jupyter"
    write_kernel_spec(jupyter_dir / "kernels" / KERNEL)
    monkeypatch.setenv("JUPYTER_PATH", str(jupyter_dir))
    workdir = tmp_path / "work"
    workdir.mkdir()
    # The kernel inherits this, so the notebook's tempfile.mkdtemp() lands under tmp_path.
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))

    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    stored = [c for c in nb.cells if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert stored == [], "the notebook has stored outputs; clear them before committing"
    # Not part of the notebook: shows which environment the kernel ran in.
    nb.cells.append(nbformat.v4.new_code_cell("import sys\nprint(sys.prefix)"))
    nb.cells.insert(0, nbformat.v4.new_code_cell(OFFLINE))

    client = nbclient.NotebookClient(
        nb,
        kernel_name=KERNEL,
        timeout=CELL_TIMEOUT,
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute()  # raises CellExecutionError, with the cell's traceback, if a cell raised

    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [o for c in code for o in c.outputs if o["output_type"] == "error"] == []
    assert _text(code[-1]).strip() == sys.prefix
    # The closing cells: the run finished, and a second runtime on the same file sees it.
    assert "status: succeeded" in _text(_cell(code, "rt2.get("))
    assert list(scratch.glob("agentrt-quickstart-*/refund_desk.db"))
    # The run graph, drawn on this machine: never LangGraph's web-drawn picture.
    drawn = _text(_cell(code, "rt.draw()"), "image/svg+xml")
    assert drawn.lstrip().startswith("<?xml")
    assert "</svg>" in drawn
    for node in ("plan", "policy", "approval", "tool", "verify", "commit", "finish"):
        assert f">{node}</text>" in drawn
    assert not [o for c in code for o in c.outputs if "image/png" in o.get("data", {})]
    # Inside a finished run: no next node, its log, its trace.
    assert "next nodes: ()" in _text(_cell(code, "rt.graph.get_state("))
    assert "approval 2.0: issue_refund approved by bob" in _text(_cell(code, "describe(event)"))
    assert "where time went:" in _text(_cell(code, ".render()"))
    # A follow-up on the finished thread, its events as they come, a segment of its trace.
    followed = _text(_cell(code, "rt3.stream_send("))
    assert "message: #1 from alice: Did the refund go through?" in followed
    assert "plan #4: answer: Yes: order 42 was refunded $89.00" in followed
    assert "#1 succeeded: 'Did the refund go through?' (1 steps, 0 tool calls)" in followed
    assert "'send refund-desk']" in followed
    # A child process killed inside a tool; its run resumed here, charged once.
    assert "ended with -9" in _text(_cell(code, "subprocess.run("))
    resumed = _text(_cell(code, "shop_rt.resume("))
    assert "left as: running" in resumed
    assert "resumed: succeeded - Charged al $5.00." in resumed
    assert "charges: [('al', 500)]" in resumed
