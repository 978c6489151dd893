"""`agentrt mcp`: an MCP client as a reviewer's console, with exactly the API's checks: the
key's tenant bounds what it sees, rt.decide's checks refuse a decision the API refuses,
and a revoked key stops at once."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters

from agentrt import Principal, RunStatus
from agentrt.examples import refund_desk
from agentrt.examples.refund_desk import APPROVER, GOAL, OPERATOR
from tests.mcp_helpers import ROOT

pytestmark = pytest.mark.subprocess

APP = "agentrt.examples.refund_desk:build_runtime"


def console(db: Path, key: str) -> Client:
    return Client(
        StdioServerParameters(
            command=sys.executable,
            args=["-m", "agentrt", "mcp", "--app", APP, "--db", str(db)],
            env={"AGENTRT_API_KEY": key},
            cwd=ROOT,
        ),
        cache=None,
    )


async def call(client: Client, tool: str, **args: Any) -> tuple[bool, Any]:
    """(is_error, what it said): the structured result, or the error's text."""
    result = await client.session.call_tool(tool, args)
    if result.is_error:
        text: str = result.content[0].text  # type: ignore[union-attr]
        return True, text.removeprefix(f"Error executing tool {tool}: ")
    data = result.structured_content
    return False, data.get("result", data) if isinstance(data, dict) else data


def test_a_reviewer_decides_through_the_console_as_the_api_would_let_it(db: Path) -> None:
    with refund_desk.build_runtime(db) as rt:
        run = rt.start(GOAL, principal=OPERATOR, thread_id="t")
        assert run.status is RunStatus.AWAITING_APPROVAL
        request = run.pending_approval
        assert request is not None
        bob, bob_key = rt.keys.create(APPROVER)
        _, carol_key = rt.keys.create(Principal("carol", roles=["operator"], tenant="acme"))
        _, dave_key = rt.keys.create(Principal("dave", roles=["refund-approver"], tenant="globex"))

    async def review() -> None:
        async with console(db, dave_key) as dave:  # another tenant: nothing to see
            tools = sorted(t.name for t in (await dave.list_tools()).tools)
            assert tools == ["approve", "edit", "list_pending_approvals", "reject", "show_approval"]
            assert await call(dave, "list_pending_approvals") == (False, [])
            assert await call(dave, "show_approval", approval_id=request.id) == (
                True,
                f"no approval request with id {request.id!r} in your tenant; list the pending "
                "ones with list_pending_approvals",
            )
        async with console(db, carol_key) as carol:  # her tenant, not her role
            failed, said = await call(carol, "approve", approval_id=request.id)
            assert failed
            assert said.startswith(f"'carol' cannot decide {request.id!r}: it requires role")
        async with console(db, bob_key) as console_bob:
            failed, pending = await call(console_bob, "list_pending_approvals")
            assert not failed
            assert [(r["id"], r["tool"], r["status"]) for r in pending] == [
                (request.id, "issue_refund", "pending")
            ]
            failed, shown = await call(console_bob, "show_approval", approval_id=request.id)
            assert (failed, shown["args"], shown["required_roles"]) == (
                False,
                request.args,
                ["refund-approver"],
            )
            failed, stale = await call(
                console_bob, "approve", approval_id=request.id, args_digest="0" * 64
            )
            assert failed
            assert "review the current arguments and decide again" in stale
            failed, decided = await call(
                console_bob, "approve", approval_id=request.id, args_digest=shown["args_digest"]
            )
            assert not failed, decided
            assert decided["approval"]["status"] == "approved"
            assert decided["approval"]["decided_by"] == "bob"
            assert decided["run"] == {"thread_id": "t", "status": "succeeded"}
            with refund_desk.build_runtime(db) as again:
                again.keys.revoke(bob.key_id)
            assert await call(console_bob, "list_pending_approvals") == (
                True,
                "this API key is unknown or revoked; ask for a new one",
            )

    asyncio.run(review())


def test_the_console_refuses_to_start_without_a_known_key(db: Path) -> None:
    with refund_desk.build_runtime(db):
        pass
    done = subprocess.run(
        [sys.executable, "-m", "agentrt", "mcp", "--app", APP, "--db", str(db)],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "AGENTRT_API_KEY": "ak_not-a-key-at-all"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert "API key 'ak_not-a-key-at-...' is unknown or revoked in" in done.stderr
    assert "ak_not-a-key-at-all" not in done.stderr  # never the whole key


def test_the_console_refusing_a_key_hides_the_database_password(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from agentrt.cli import app

    monkeypatch.chdir(tmp_path)  # the demo app keeps its payments file beside it
    password = postgres_url.split("@", 1)[0].rsplit(":", 1)[1]
    done = CliRunner().invoke(
        app,
        ["mcp", "--app", APP, "--db", postgres_url],
        env={"AGENTRT_API_KEY": "ak_not-a-key-at-all"},
    )
    assert done.exit_code == 2
    assert "API key 'ak_not-a-key-at-...' is unknown or revoked in 'postgresql://" in done.output
    assert password not in done.output
    assert ":***@" in done.output
