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
    # what the commands open and read (a database, agentrt.toml, logs) loads when they run
    assert {"sqlite3", "tomllib", "tempfile", "logging", "sysconfig"} & modules == set()
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


@pytest.mark.subprocess
def test_a_policy_with_conditions_loads_the_cel_engine_without_its_command_line() -> None:
    # cel's package imports its interactive command line (typer, prompt_toolkit, rich):
    # about 190 modules every process would carry; agentrt loads the engine alone.
    script = (
        "from agentrt import Policy, Principal, tool\n"
        "@tool(effect='write', idempotent=True)\n"
        "def pay(amount: float) -> str: return 'paid'\n"
        "policy = Policy.from_yaml('default: allow\\nrules:\\n  - id: big\\n"
        "    match: {tools: [pay]}\\n    when: args.amount > 50.0\\n    decision: deny\\n')\n"
        "verdict = policy.evaluate(pay, 'pay', {'amount': 80.0}, Principal('a'))\n"
        "assert verdict.outcome == 'deny', verdict\n"
        "import sys; assert 'cel.cel' in sys.modules\n"
    )
    modules = _imported([sys.executable, "-c", script])
    assert {"typer", "prompt_toolkit", "rich", "pygments"} & modules == set()


def test_cel_imported_after_agentrt_is_the_whole_package() -> None:
    # The package agentrt left unrun runs whole at the first name it was not given.
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import agentrt.policies.cel_engine\n"
            "import sys; assert 'cel.cli' not in sys.modules\n"
            "import cel\n"
            "from cel import evaluate\n"
            "assert evaluate('1 + 2') == 3\n"
            "assert cel.cli.__name__ == 'cel.cli' and cel.stdlib.__name__ == 'cel.stdlib'\n"
            "assert cel.compile('1 + 1').execute(cel.Context()) == 2\n",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_commands_typer_reads_hold_no_string_annotations() -> None:
    """typer reads every command's signature to build even the top-level help; a string
    annotation there is compiled and evaluated again at each start of `agentrt`."""
    import agentrt.cli

    apps = [agentrt.cli.app, *(g.typer_instance for g in agentrt.cli.app.registered_groups)]
    commands = [c.callback for a in apps if a is not None for c in a.registered_commands]
    assert len(commands) > 30
    strings = {
        f"{fn.__module__}.{fn.__qualname__}: {name}"
        for fn in commands
        if fn is not None
        for name, hint in fn.__annotations__.items()
        if isinstance(hint, str)
    }
    assert strings == set()
