"""`agentrt --help` lists the commands from agentrt.cli.listed without building them: the
list must say what the built commands would. Code that takes ``agentrt.cli.app`` gets it
whole, every command registered, as before the list existed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import typer.main
from typer.core import TyperGroup
from typer.testing import CliRunner

from agentrt.cli import app
from agentrt.cli.listed import MODULES, SUMMARIES, Commands, load

HERE = Path(__file__).parent


def _built() -> TyperGroup:
    load()
    group = typer.main.get_group(app)
    assert isinstance(group, Commands)
    return group


def test_the_list_names_every_command_in_the_order_typer_built_them() -> None:
    group = _built()
    assert list(SUMMARIES) == list(group.commands)
    assert {f"agentrt.cli.{m}" for m in MODULES} <= set(sys.modules)
    registering = {
        p.stem
        for p in Path(HERE.parent, "agentrt", "cli").glob("*.py")
        if "@app.command(" in p.read_text() or "app.add_typer(" in p.read_text()
    }
    assert set(MODULES) == registering  # a module left out would never be loaded


@pytest.mark.parametrize("width", [40, 60, 80, 120, 200])
def test_the_listed_help_is_what_the_built_commands_print(width: int) -> None:
    group = _built()
    ctx = group.make_context("agentrt", ["--help"], resilient_parsing=True)
    listed, built = ctx.make_formatter(), ctx.make_formatter()
    listed.width = built.width = width
    Commands(name="agentrt").format_commands(ctx, listed)  # none built: from SUMMARIES
    TyperGroup.format_commands(group, ctx, built)  # from each built command's own help
    assert listed.getvalue() == built.getvalue()
    assert listed.getvalue().count("\n") == len(SUMMARIES) + 1


def test_each_summary_is_the_first_sentence_of_its_command_help() -> None:
    for name, command in _built().commands.items():
        assert command.help is not None, name
        words = command.help.split("\n\n")[0].split()
        # click shortens to the first word ending a sentence, or the whole paragraph
        ends = [i + 1 for i, w in enumerate(words) if w.endswith(".")] or [len(words)]
        assert SUMMARIES[name] == " ".join(words[: ends[0]]), name


@pytest.mark.subprocess
def test_help_builds_no_command_and_running_one_builds_them() -> None:
    listed = (
        "import sys, io, contextlib\n"
        "from agentrt.cli import main\n"
        "sys.argv = ['agentrt', *sys.argv[1:]]\n"
        "try:\n"
        "    with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "        main()\n"
        "except SystemExit as e:\n"
        "    code = e.code\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('agentrt.cli.'))\n"
        "print(code, ' '.join(loaded))\n"
        "print(out.getvalue())\n"
    )

    def run(*args: str) -> tuple[str, set[str], str]:
        done = subprocess.run(
            [sys.executable, "-c", listed, *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "COLUMNS": "100"},
            check=True,
        )
        head, _, shown = done.stdout.partition("\n")
        code, _, loaded = head.partition(" ")
        return code, {m.rsplit(".", 1)[1] for m in loaded.split()}, shown

    code, loaded, shown = run("--help")
    assert code == "0"
    assert loaded & set(MODULES) == set()
    assert [line.split()[0] for line in shown.split("Commands:\n")[1].splitlines() if line] == list(
        SUMMARIES
    )
    code, loaded, shown = run("keys", "--help")
    assert (code, set(MODULES) <= loaded) == ("0", True)
    assert "API keys of `agentrt serve`" in shown


def test_a_command_and_a_misspelt_one_are_found_from_the_list() -> None:
    runner = CliRunner()
    shown = runner.invoke(app, ["approvals", "--help"])
    assert shown.exit_code == 0, shown.output
    assert "The review queue: approval requests across all runs." in shown.output
    wrong = runner.invoke(app, ["aprove"])
    assert wrong.exit_code == 2
    assert "No such command 'aprove'. Did you mean 'approve', 'approvals'?" in wrong.output
    bare = runner.invoke(app, [])
    assert bare.exit_code == 2  # no command: the help, as click answers it
    assert "raise-limit  Raise the limit a run stopped at; it carries on." in bare.output


def _fresh(code: str) -> str:
    """What ``code`` prints in a fresh interpreter: which command modules are loaded is
    the process's, and these register commands on the one app."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=HERE.parent,
        env={**os.environ, "PYTHONPATH": str(HERE.parent), "COLUMNS": "100"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.subprocess
def test_the_app_taken_from_the_package_holds_every_command() -> None:
    out = _fresh(
        """
        import typer.main
        import agentrt.cli
        from agentrt.cli import app
        group = typer.main.get_command(app)
        print(len(group.commands), len(app.registered_commands), len(app.registered_groups),
              agentrt.cli.runs.__name__)
        """
    )
    assert out.split() == [str(len(SUMMARIES)), "20", "6", "agentrt.cli.runs"]


@pytest.mark.subprocess
def test_commands_an_embedder_adds_are_listed_and_one_it_replaces_stays_replaced() -> None:
    out = _fresh(
        """
        import os, tempfile
        import typer
        from typer.testing import CliRunner
        from agentrt.cli import app

        @app.command()
        def hello() -> None:
            "Say hello to the team."
            print("hello")

        @app.command("demo")
        def my_demo() -> None:
            "Our own demo."
            print("MY DEMO")

        plugin = typer.Typer(help="Our own plugin commands.")
        @plugin.command()
        def ping() -> None:
            print("pong")
        app.add_typer(plugin, name="plugin")

        os.chdir(tempfile.mkdtemp())  # agentrt's demo, were it to run, writes here
        runner = CliRunner()
        print(repr(runner.invoke(app, ["demo"]).output))
        runner.invoke(app, ["runs", "--help"])
        print(repr(runner.invoke(app, ["demo"]).output))
        print(runner.invoke(app, ["--help"]).output)
        """
    )
    first, second, *shown = out.splitlines()
    assert (first, second) == (repr("MY DEMO\n"), repr("MY DEMO\n"))
    listed = [line.split()[0] for line in shown[shown.index("Commands:") + 1 :] if line]
    # in typer's order: commands, then groups (agentrt's before the embedder's each)
    assert [name for name in listed if name in SUMMARIES] == list(SUMMARIES)
    assert sorted(listed) == sorted([*SUMMARIES, "hello", "plugin"])
    assert any(line.split() == ["hello", "Say", "hello", "to", "the", "team."] for line in shown)
    assert any(line.split() == ["plugin", "Our", "own", "plugin", "commands."] for line in shown)
