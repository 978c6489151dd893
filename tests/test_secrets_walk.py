"""The seeded-secrets walk: runs full of secrets (tests/secrets_app.py) go through the HTTP
API, then every surface a person or a log sees is read and searched for every secret.

Surfaces: the spans in the SQLite span store (content capture on and off: attributes,
events, status, links), every log record of every agentrt logger, the CLI (runs, show,
trace, replay, approvals, approvals show, artifacts), every API response (runs, a run, its
trace, its artifacts, its messages, the approvals, one approval, the event stream, the
answers to POSTs, a 500), and the review page (queue, runs, each run with its messages).
One thread goes on with a follow-up that holds a secret and is answered with another.
Secrets stay exact where a run executes from: the checkpoint, the ledger, the approvals
table; a tool's credential is in none of them.
"""

from __future__ import annotations

import html
import logging
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from agentrt import AgentRuntime
from agentrt.cli import app as cli_app
from agentrt.logs import get_logger
from agentrt.service import create_app, issue_key
from tests import secrets_app as S

pytestmark = pytest.mark.anyio

BASE = "http://agentrt.test"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Walk:
    """Every surface read, and every secret found on one."""

    def __init__(self) -> None:
        self.surfaces: set[str] = set()
        self.checks = 0
        self.leaks: list[str] = []

    def check(self, surface: str, text: str) -> str:
        text = html.unescape(text)  # a page writes "&" as "&amp;"
        self.surfaces.add(surface)
        for name, needles in S.SECRETS.items():
            for needle in needles:
                self.checks += 1
                if needle in text:
                    self.leaks.append(f"{surface}: {name} ({needle!r})")
        return text


class Records(logging.Handler):
    """Every record of an agentrt logger, formatted as a handler would write it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "agentrt" or record.name.startswith("agentrt."):
            self.lines.append(self.format(record))


@contextmanager
def root_records() -> Iterator[Records]:
    records, root = Records(), logging.getLogger()
    level = root.level
    root.addHandler(records)
    root.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        root.removeHandler(records)
        root.setLevel(level)


async def test_seeded_secrets_reach_no_surface(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    walk = Walk()
    with root_records() as records:
        for capture in (True, False):
            db = tmp_path / f"capture-{'on' if capture else 'off'}.db"
            rt = S.build_runtime(db, capture_content=capture)
            try:
                runs = await _service(rt, walk, monkeypatch)
                _stored_data_is_exact(rt, runs)
            finally:
                rt.close()  # flushes the spans
            spans = walk.check(f"spans (capture {capture})", _spans(db))
            assert "refused pin [REDACTED:field]; ask ops with [REDACTED:api_key]" in spans
            if capture:
                for marker in ("jwt", "iban", "secret", "aws_secret", "email", "field"):
                    assert f"[REDACTED:{marker}]" in spans, marker
            _cli(db, runs, walk)
        # A logger made after the runtimes, and one made with plain logging before them.
        get_logger("agentrt.walk.late").warning("late: %s", S.LOG_CARD)
        S.early.error("early: key %s", S.OPENAI_KEY)
        logs = walk.check("logs", "\n".join(records.lines))
    for line in (
        "agentrt ERROR run ",  # the provider's error, its traceback redacted
        "agentrt.service ERROR driving run",  # the worker
        "agentrt.service ERROR GET /runs/",  # the 500 handler
        "agentrt.walk.late WARNING late: [REDACTED:card]",
        "agentrt.walk.early ERROR early: key [REDACTED:api_key]",
        "agentrt.walk.crm WARNING syncing walker with key [REDACTED:credential]",
    ):
        assert line in logs, line
    assert "Incorrect API key provided: [REDACTED:api_key]" in logs
    with capsys.disabled():
        print(
            f"\nsecrets walk: surfaces={len(walk.surfaces)} secrets={len(S.SECRETS)} "
            f"leaks={len(walk.leaks)}"
        )
    assert walk.leaks == [], "\n".join(walk.leaks)


async def _service(rt: AgentRuntime, walk: Walk, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Drive the runs over HTTP and read every answer; the runs' thread ids."""
    app = create_app(rt, sweep_every=None, rate_limit="10000/minute", poll_interval=0.01)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    worker = app.state.agentrt.worker
    olive = {"Authorization": f"Bearer {issue_key(rt, S.OPERATOR)}"}
    abe_key = issue_key(rt, S.APPROVER)
    abe = {"Authorization": f"Bearer {abe_key}"}
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url=BASE, headers={"Origin": BASE}) as http,
    ):

        async def get(path: str, who: dict[str, str] = olive) -> str:
            response = await http.get(path, headers=who)
            assert response.status_code == 200, response.text
            return walk.check(f"GET {_route(path)}", response.text)

        runs = []
        for goal in (S.GOAL, S.GOAL, S.FAIL_GOAL):
            started = await http.post("/runs", json={"goal": goal}, headers=olive)
            walk.check("POST /runs", started.text)
            runs.append(started.json()["thread_id"])
            await worker.wait(runs[-1])
        approved, _, failed = runs
        gate = rt.get(approved).pending_approvals[0].id
        decided = await http.post(
            f"/approvals/{gate}/decision",
            json={"outcome": "approve", "reason": S.COMMENT},
            headers=abe,
        )
        walk.check("POST /approvals/{id}/decision", decided.text)
        await worker.wait(approved)
        assert rt.get(approved).status == "succeeded"
        await _follow_up(http, app, approved, olive, walk)
        assert "Incorrect API key provided: [REDACTED:api_key]" in (rt.get(failed).error or "")

        # A store that fails under the worker, and a request that fails: both are logged.
        broken = f"store refused card {S.LOG_CARD} with key {S.OPENAI_KEY}"
        with monkeypatch.context() as patch:
            for drives in ("aresume", "astream_resume"):  # what it drives with, unwatched or not
                patch.setattr(rt, drives, _fails(RuntimeError(broken)))
            patch.setattr(rt, "trace", _fails(OSError(broken)))
            lost = await http.post("/runs", json={"goal": S.GOAL}, headers=olive)
            await worker.wait(lost.json()["thread_id"])
            crashed = await http.get(f"/runs/{approved}/trace", headers=olive)
            assert crashed.status_code == 500
            walk.check("a 500", crashed.text)

        await get("/runs")
        for thread_id in runs:
            await get(f"/runs/{thread_id}")
            await get(f"/runs/{thread_id}/trace")
            await get(f"/runs/{thread_id}/artifacts")
            await get(f"/runs/{thread_id}/messages")
        for thread_id in (approved, failed):  # the streams of runs that ended
            assert "event: status" in await get(f"/runs/{thread_id}/events")
        await get("/approvals", abe)
        await get("/approvals?status=approved", abe)
        for request in rt.approvals(None):
            await get(f"/approvals/{request.id}", abe)

        signed_in = await http.post("/ui/login", data={"key": abe_key})
        assert signed_in.status_code == 303
        await get("/ui", {})
        await get("/ui/runs", {})
        for thread_id in runs:
            page = await get(f"/ui/runs/{thread_id}", {})
            assert "[REDACTED:" in page
            if thread_id == approved:  # its messages listed, the follow-up's masked
                assert "Put it on my other card, [REDACTED:card]" in page
    return runs


async def _follow_up(
    http: httpx.AsyncClient, app: Any, thread_id: str, who: dict[str, str], walk: Walk
) -> None:
    """The thread goes on: a follow-up with secrets, answered with another."""
    sent = await http.post(
        f"/runs/{thread_id}/messages", json={"message": S.FOLLOW_UP}, headers=who
    )
    walk.check("POST /runs/{id}/messages", sent.text)
    await app.state.agentrt.worker.wait(thread_id)
    run = app.state.agentrt.runtime.get(thread_id)
    assert (run.status, run.message) == ("succeeded", 1)


def _route(path: str) -> str:
    """A path (or a command's word) with its run and approval ids as {id}: one surface."""
    return re.sub(r"(apr_[0-9a-f]+|[0-9a-f]{32})", "{id}", path)


def _fails(exc: Exception) -> Any:
    def fails(*args: Any, **kwargs: Any) -> Any:
        raise exc

    return fails


def _stored_data_is_exact(rt: AgentRuntime, runs: list[str]) -> None:
    """Masking is for what is shown: what a run executes from keeps every secret."""
    approved, waiting, _ = runs
    args = rt.approval(rt.get(waiting).pending_approvals[0].id).args
    assert args == {"iban": S.IBAN, "memo": f"the password: {S.PASSWORD} works"}
    plan = rt.events(approved)[0]["data"]["actions"]
    assert [a["args"].get("pin") for a in plan] == [None, S.PIN]
    with sqlite3.connect(rt.db) as conn:
        ledger = "\n".join(str(r) for r in conn.execute("SELECT * FROM effects"))
    assert S.ACCESS_TOKEN in ledger
    assert S.JWT in ledger
    # A credential is not kept even there: the tool's echoes of it were cut out.
    assert S.CRM_KEY not in ledger
    assert "the CRM refused key [REDACTED:credential] for walker" in ledger
    state = rt.graph.get_state({"configurable": {"thread_id": approved}}).values
    assert S.CRM_KEY not in str(state)
    assert "Basic [REDACTED:credential]" in str(state)


def _spans(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT * FROM spans").fetchall()
    assert rows
    return "\n".join(str(row) for row in rows)


def _cli(db: Path, runs: list[str], walk: Walk) -> None:
    approved = runs[0]
    where = ["--app", "tests.secrets_app:build_runtime", "--db", str(db)]
    commands = [
        ["runs"],
        *(["show", t] for t in runs),
        *(["trace", t] for t in runs),
        *(["artifacts", t] for t in runs),
        ["trace", approved, "--json"],
        ["replay", approved],
        ["approvals", "--status", "all"],
        *(["approvals", "show", r.id] for r in _requests(db)),
    ]
    runner = CliRunner()
    for command in commands:
        done = runner.invoke(cli_app, [*command, *where])
        assert done.exit_code == 0, (command, done.output)
        shown = walk.check(" ".join(["agentrt", *map(_route, command)]), done.output)
        if command[0] == "show" and command[1] == approved:
            assert '"iban": "[REDACTED:iban]"' in shown  # the plan's arguments, masked
            assert "Put it on my other card, [REDACTED:card]" in shown  # its messages


def _requests(db: Path) -> list[Any]:
    rt = S.build_runtime(db, tracing=None)
    try:
        return list(rt.approvals(None))
    finally:
        rt.close()
