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


def _text(cell: Any) -> str:
    """Everything a code cell printed or displayed, as one string."""
    parts: list[str] = []
    for out in cell.outputs:
        if out["output_type"] == "stream":
            parts.append(out["text"])
        elif out["output_type"] in {"execute_result", "display_data"}:
            parts.append(out["data"].get("text/plain", ""))
    return "".join(parts)


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
    durable = [c for c in code if "rt2.get(" in c.source]
    assert len(durable) == 1
    assert "status: succeeded" in _text(durable[0])
    assert list(scratch.glob("agentrt-quickstart-*/refund_desk.db"))
