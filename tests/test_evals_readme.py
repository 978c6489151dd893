"""The README's Evals section, run as printed: its dataset, its commands in a shell-like
subprocess from an empty directory, the error it quotes, and its Python example."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from agentrt import Policy
from agentrt.examples import refund_desk
from agentrt.examples.refund_desk import POLICY_FILE

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
SECTION = README.split("## Evals\n", 1)[1].split("\n## ", 1)[0]


def block(kind: str) -> str:
    (found,) = re.findall(rf"```{kind}\n(.*?)```", SECTION, re.S)
    return str(found)


def commands() -> list[list[str]]:
    joined = block("sh").replace("\\\n", " ")
    return [shlex.split(line) for line in joined.splitlines() if line.strip()]


def agentrt(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    assert args[0] == "agentrt", args
    return subprocess.run(
        [sys.executable, "-m", "agentrt", *args[1:]],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.subprocess
def test_the_readme_eval_commands_run_as_printed(tmp_path: Path) -> None:
    (tmp_path / "refunds-eval.yaml").write_text(block("yaml"), encoding="utf-8")
    (tmp_path / "candidate.yaml").write_text(
        POLICY_FILE.read_text(encoding="utf-8").replace("50.0", "10.0"), encoding="utf-8"
    )
    first, second, what_if = commands()
    saved = agentrt(first, tmp_path)
    assert saved.returncode == 0, saved.stderr
    assert saved.stdout.splitlines()[-1].startswith("pass rate 100.0% (6/6)")
    assert (tmp_path / "eval.xml").exists()
    assert (tmp_path / "baseline.json").exists()
    compared = agentrt(second, tmp_path)
    assert compared.returncode == 0, compared.stderr
    assert '"regressions": []' in compared.stdout
    replayed = agentrt(what_if, tmp_path)
    assert replayed.returncode == 3, replayed.stderr  # the $20 refunds now wait for a person
    assert replayed.stdout.splitlines()[-1] == (
        "this policy would have required approval on 9 of the last 9 runs and denied 0 "
        "(as recorded: 6 and 0); 3 diverge, 6 replay identical"
    )


@pytest.mark.subprocess
def test_the_error_the_readme_quotes_is_the_one_printed(tmp_path: Path) -> None:
    typo = block("yaml").replace("status: awaiting_approval", "statsu: awaiting_approval")
    (tmp_path / "refunds-eval.yaml").write_text(typo, encoding="utf-8")
    result = agentrt(commands()[0], tmp_path)
    assert result.returncode == 2
    (quoted,) = re.findall(r"\(`(refunds-eval\.yaml:.*?)\.\.\.`\)", SECTION, re.S)
    assert result.stderr.startswith("error: " + " ".join(quoted.split()))
    assert not (tmp_path / "evals.db").exists()


def test_the_readme_python_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "refunds-eval.yaml").write_text(block("yaml"), encoding="utf-8")
    (tmp_path / "candidate.yaml").write_text(POLICY_FILE.read_text(encoding="utf-8"))
    with refund_desk.build_runtime(tmp_path / "agentrt.db") as rt:
        names = {"rt": rt, "Policy": Policy}
        exec(compile(block("python"), "README.md", "exec"), names)
        assert names["report"].pass_rate == 1.0
        assert (tmp_path / "baseline.json").exists()
