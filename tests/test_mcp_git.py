"""Real MCP servers from PyPI, started over stdio: mcp-server-git on a temporary repository
and mcp-server-time. A commit goes through the gate and lands once; a process killed
during git_commit leaves the commit to a person (the reconcile gate), never to a second
call."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from agentrt import AgentRuntime, Decision, Policy, RunStatus
from agentrt.testing import ScriptedChatModel, ai, tool_call
from agentrt.tools.mcp import MCPServer
from tests.mcp_git_app import ALICE, BOB, build_runtime
from tests.mcp_helpers import ROOT, TIME_SERVER, commits, git_repo, wait_for

pytestmark = pytest.mark.subprocess


def observed(rt: AgentRuntime, thread_id: str) -> list[tuple[str, str]]:
    return [
        (e["data"]["tool"], e["data"]["kind"])
        for e in rt.events(thread_id)
        if e["type"] == "observation"
    ]


def approve_next(rt: AgentRuntime, thread_id: str, tool: str, *, resume: bool = True) -> None:
    request = rt.get(thread_id).pending_approval
    assert request is not None
    assert (request.kind, request.tool, request.rule_id) == ("action", tool, "git-changes")
    rt.decide(Decision.approve(request.id, by=BOB), resume=resume)


def test_the_time_servers_tools_are_reads_from_its_annotations(db: Path) -> None:
    model = ScriptedChatModel(
        [ai("", tool_call("get_current_time", {"timezone": "Asia/Tokyo"})), "it is late"]
    )
    time = MCPServer.stdio(TIME_SERVER, name="time")
    with AgentRuntime(model, tools=[time], policy=Policy.cautious(), db=db) as rt:
        assert {(t.name, t.effect.value, t.server, t.source) for t in rt.tools} == {
            ("get_current_time", "read", "time", "mcp"),
            ("convert_time", "read", "time", "mcp"),
        }
        run = rt.start("time in Tokyo", principal=ALICE)
        assert run.status is RunStatus.SUCCEEDED
        assert observed(rt, run.thread_id) == [("get_current_time", "ok")]
        shown = next(e for e in rt.events(run.thread_id) if e["type"] == "observation")
    assert '"timezone": "Asia/Tokyo"' in shown["data"]["content"]


def test_a_commit_goes_through_the_gate_and_lands_once(db: Path, tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    with build_runtime(db, repo) as rt:
        assert {(t.name, t.effect.value, t.idempotent) for t in rt.tools if t.name in (
            "git_status", "git_add", "git_commit", "git_reset"
        )} == {
            ("git_status", "read", True),
            ("git_add", "write", True),
            ("git_commit", "write", False),
            ("git_reset", "irreversible", True),
        }  # fmt: skip
        run = rt.start("commit my notes", principal=ALICE, thread_id="t")
        approve_next(rt, "t", "git_add")
        assert commits(repo) == []  # staged, not committed: the commit waits for its own yes
        approve_next(rt, "t", "git_commit")
        done = rt.get("t")
        assert done.status is RunStatus.SUCCEEDED, done.error
        assert observed(rt, "t") == [
            ("git_status", "ok"),
            ("git_add", "ok"),
            ("git_commit", "ok"),
        ]
        assert commits(repo) == ["Add notes"]
        assert rt.resume("t").status is RunStatus.SUCCEEDED  # nothing runs twice
        calls = [
            span.attributes
            for _, span in rt.trace(run.thread_id).spans()
            if span.attributes.get("gen_ai.tool.name") == "git_commit"
            and span.attributes.get("gen_ai.operation.name") == "execute_tool"
        ]
    assert commits(repo) == ["Add notes"]
    assert [(a["gen_ai.tool.type"], a["agentrt.tool.server"]) for a in calls] == [
        ("extension", "git")
    ]


HOOK = """#!/bin/sh
# Runs inside git_commit, after the commit is written: say so, then wait to be killed.
echo "$$ $PPID" > {marker}
i=0
while [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
"""


def test_a_process_killed_during_git_commit_leaves_it_to_a_person(db: Path, tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    marker = tmp_path / "committing"
    with build_runtime(db, repo) as rt:
        rt.start("commit my notes", principal=ALICE, thread_id="t")
        approve_next(rt, "t", "git_add")
        approve_next(rt, "t", "git_commit", resume=False)  # a worker will carry it on
    hook = repo / ".git" / "hooks" / "post-commit"
    hook.write_text(HOOK.format(marker=marker))
    hook.chmod(hook.stat().st_mode | stat.S_IEXEC)

    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys\nfrom tests.mcp_git_app import build_runtime\n"
            "build_runtime(sys.argv[1], sys.argv[2]).resume('t')\n",
            str(db),
            str(repo),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        wait_for("git_commit to be under way", marker.exists)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        log.close()
        if worker.poll() is None:
            worker.kill()
        # The orphaned server and its hook: stopped as a group (the SDK starts the server
        # in a session of its own).
        if marker.exists() and marker.read_text().split():
            server = int(marker.read_text().split()[1])
            os.killpg(server, signal.SIGKILL)
    hook.unlink()
    assert worker.returncode == -signal.SIGKILL, (tmp_path / "worker.log").read_text()
    assert commits(repo) == ["Add notes"]  # it landed before the process died

    with build_runtime(db, repo) as rt:
        run = rt.resume("t")
        assert run.status is RunStatus.AWAITING_APPROVAL
        request = run.pending_approval
        assert request is not None
        assert (request.kind, request.tool) == ("reconcile", "git_commit")
        assert "'git_commit' is not idempotent" in (request.reason or "")
        # A person looks at the repository, sees the commit, and settles it as done.
        done = rt.decide(Decision.resolve(request.id, result="Changes committed", by=BOB))
        assert done.status is RunStatus.SUCCEEDED, done.error
        assert ("git_commit", "ok") in observed(rt, "t")
    assert commits(repo) == ["Add notes"]
