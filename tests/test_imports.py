"""What `import agentrt` and the `agentrt` command load: LangGraph only when it is used."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import agentrt

HEAVY = ("langgraph", "langchain_core")


def _imported(args: list[str]) -> set[str]:
    """Top-level packages a fresh interpreter imported running ``args``.

    -X importtime names every module as it is imported, on stderr.
    """
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    modules = set()
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            modules.add(name.split(".")[0])
    assert "agentrt" in modules, "the import trace is empty; was PYTHONPROFILEIMPORTTIME honoured?"
    return modules


@pytest.mark.subprocess
def test_cli_help_does_not_import_langgraph() -> None:
    script = Path(sys.executable).with_name("agentrt")
    assert script.is_file(), f"the agentrt console script is not installed at {script}"
    modules = _imported([str(script), "--help"])
    assert modules & set(HEAVY) == set()
    assert {"asyncio", "ssl"} & modules == set()  # the MCP command's, loaded when it runs
    # and `python -m agentrt` takes the same path
    assert _imported([sys.executable, "-m", "agentrt", "--help"]) & set(HEAVY) == set()


@pytest.mark.subprocess
def test_import_agentrt_loads_nothing_heavy_until_a_name_is_used() -> None:
    assert _imported([sys.executable, "-c", "import agentrt"]) & set(HEAVY) == set()
    used = _imported([sys.executable, "-c", "import agentrt; agentrt.AgentRuntime"])
    assert set(HEAVY) <= used


def test_every_public_name_has_a_source_and_resolves() -> None:
    assert set(agentrt._SOURCES) == set(agentrt.__all__) - {"__version__"}
    for name in agentrt.__all__:
        value = getattr(agentrt, name)
        assert value is not None, name
        if name != "__version__":
            assert getattr(value, "__module__", "").startswith("agentrt"), name
    assert set(agentrt.__all__) <= set(dir(agentrt))


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        agentrt.Nope  # noqa: B018
    assert not hasattr(agentrt, "_private")
