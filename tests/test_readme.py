"""The commands the README and the Makefile print, run as they are printed.

A new user copies them into a shell: each must work there as written, from a directory
with nothing in it yet. Only the server's port differs (8000 may be taken here).
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from string import Template
from typing import Any

import httpx
import pytest

from agentrt import AgentRuntime, Principal, RunStatus
from agentrt.examples.refund_desk import GOAL, OPERATOR
from agentrt.runtime import Run
from tests.serving import Server, _wait_healthy, free_port, wait_for

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def sh_block(containing: str) -> list[str]:
    """The commands of the README's one ```sh block that holds ``containing``: continued
    lines joined, comments and blank lines dropped."""
    (block,) = [b for b in re.findall(r"```sh\n(.*?)```", README, re.S) if containing in b]
    joined = block.replace("\\\n", " ")
    words = [shlex.split(line, comments=True) for line in joined.splitlines()]
    return [shlex.join(line) for line in words if line]


def agentrt(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """One `agentrt ...` line, run in ``cwd`` as a shell would run it."""
    name, *args = shlex.split(command)
    assert name == "agentrt", command
    return subprocess.run(
        [sys.executable, "-m", "agentrt", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def curl(line: str, base: str, names: dict[str, str]) -> httpx.Response:
    """One `curl ...` line of the README, made with httpx; its $NAMEs filled from ``names``."""
    words = shlex.split(Template(line).substitute(names))
    assert words[0] == "curl", line
    method, url, headers, body = "GET", "", {}, None
    rest = iter(words[1:])
    for word in rest:
        if word.startswith("-X"):
            method = word[2:]
        elif word == "-H":
            name, _, value = next(rest).partition(":")
            headers[name.strip()] = value.strip()
        elif word == "-d":
            body = next(rest)
        elif word.startswith("-"):
            assert set(word[1:]) <= {"s", "N"}, word  # silent, unbuffered: nothing to do
        else:
            url = word.replace("localhost:8000", base)
    return httpx.request(method, url, headers=headers, content=body, timeout=30)


@pytest.mark.subprocess
def test_the_makefile_comment_before_make_serve_makes_a_key_with_the_database_alone(
    tmp_path: Path,
) -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    (command,) = re.findall(r"^#.*?`(agentrt keys create [^`]*)`", makefile, re.M)
    made = agentrt(command, tmp_path)
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith("agrt_"), made.stdout
    assert "acts as 'alice' of tenant 'acme'" in made.stderr
    assert (tmp_path / "agentrt.db").is_file()


@pytest.mark.subprocess
def test_the_service_walkthrough_works_as_printed(tmp_path: Path) -> None:
    lines = sh_block("agentrt serve --app agentrt.examples.refund_desk")
    keys = [line for line in lines if line.startswith("agentrt keys create")]
    (serve,) = [line for line in lines if line.startswith("agentrt serve")]
    calls = [line for line in lines if line.startswith("curl")]
    assert (len(keys), len(calls)) == (2, 4), lines

    names: dict[str, str] = {}
    for line, who in zip(keys, ("ALICE", "BOB"), strict=True):
        made = agentrt(line, tmp_path)
        assert made.returncode == 0, made.stderr
        names[who] = made.stdout.strip()

    port = free_port()
    name, *args = shlex.split(serve.replace("--port 8000", f"--port {port}"))
    assert name == "agentrt"
    process = subprocess.Popen(
        [sys.executable, "-m", "agentrt", *args, "--log-level", "warning"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    server = Server(process, f"http://127.0.0.1:{port}")
    try:
        _wait_healthy(server)
        started = curl(calls[0], server.url, names)
        assert started.status_code == 202, started.text
        names["THREAD"] = started.json()["thread_id"]
        with server.client(names["ALICE"]) as alice:
            wait_for(alice, names["THREAD"], {"awaiting_approval"})
        queue = curl(calls[1], server.url, names)
        assert queue.status_code == 200, queue.text
        (request,) = queue.json()["approvals"]
        names["ID"] = request["id"]
        decided = curl(calls[2], server.url, names)
        assert decided.status_code == 200, decided.text
        streamed = curl(calls[3], server.url, names)
        assert streamed.status_code == 200, streamed.text
        statuses = [
            json.loads(line.removeprefix("data: "))["status"]
            for event, line in zip(
                streamed.text.splitlines(), streamed.text.splitlines()[1:], strict=False
            )
            if event == "event: status"
        ]
        assert statuses[-1] == "succeeded", streamed.text
    finally:
        process.terminate()
        process.communicate(timeout=30)


def python_block(containing: str) -> str:
    """The README's one ```python block that holds ``containing``."""
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", README, re.S) if containing in b]
    return block


def test_the_scripted_model_example_prints_what_it_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    block = python_block("model.assert_complete()")
    exec(compile(block, "README.md", "exec"), {})
    (said,) = re.findall(r"print\(run\.output\)\s+# (.*)", block)
    assert capsys.readouterr().out == said + "\n"


def test_answer_now_drive_later_answers_before_the_run_moves(desk: AgentRuntime) -> None:
    names: dict[str, Any] = {"asyncio": asyncio, "rt": desk, "Run": Run, "Principal": Principal}
    exec(compile(python_block("async def submit("), "README.md", "exec"), names)

    async def main() -> tuple[RunStatus, RunStatus]:
        thread_id = await names["submit"](GOAL, OPERATOR)
        answered = desk.get(thread_id).status  # before the task had a turn of the loop
        await asyncio.gather(*names["background"])
        return answered, desk.get(thread_id).status

    assert asyncio.run(main()) == (RunStatus.PENDING, RunStatus.AWAITING_APPROVAL)
    assert names["background"] == set()


def test_the_mounting_example_runs_agentrt_lifespan(desk: AgentRuntime) -> None:
    stopped = desk.create(GOAL, principal=OPERATOR)
    names: dict[str, Any] = {"rt": desk}
    exec(compile(python_block("agentrt_lifespan(app)"), "README.md", "exec"), names)
    app = names["app"]

    async def main() -> int:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://shop.test"
            ) as client,
        ):
            (mounted,) = [r.app for r in app.routes if getattr(r, "path", "") == "/agentrt"]
            await mounted.state.agentrt.worker.wait()
            return (await client.get("/agentrt/healthz")).status_code

    assert asyncio.run(main()) == 200
    assert desk.get(stopped.thread_id).status is RunStatus.AWAITING_APPROVAL
