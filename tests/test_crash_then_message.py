"""A run whose process died after the model answered, before the plan step's checkpoint,
then sent an interrupting message or cancelled before anyone resumed it: the answer paid
for is neither asked for again nor dropped from the run's usage."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from agentrt import Principal, RunStatus
from tests.crashy_app import build_runtime, killed_at, sink_path

OPS = Principal("ops")

pytestmark = pytest.mark.subprocess


def _asks(db: Path) -> int:
    with sqlite3.connect(sink_path(db)) as conn:
        return int(conn.execute("SELECT count(*) FROM asks").fetchone()[0])


def test_an_interrupting_message_waits_for_the_answer_already_paid_for(tmp_path: Path) -> None:
    db = tmp_path / "agentrt.db"
    killed_at(db, "answered")
    with build_runtime(db) as rt:
        paid = rt.get("t-crash").usage
        run = rt.send("t-crash", "that is enough", principal=OPS, double_texting="interrupt")
        assert run.status is RunStatus.SUCCEEDED
        plans = [e["data"]["revision"] for e in rt.events("t-crash") if e["type"] == "plan"]
        usage = rt.get("t-crash").usage
    assert _asks(db) == 1  # turn 2's answer was recorded before the crash: used, not asked
    assert plans[:2] == [0, 1]  # turn 2 planned from its answer before the message was taken
    assert usage["steps"] > paid["steps"]
    assert usage["input_tokens"] > paid["input_tokens"]


def test_a_cancel_keeps_the_answer_already_paid_for_in_the_usage(tmp_path: Path) -> None:
    db = tmp_path / "agentrt.db"
    killed_at(db, "answered")
    with build_runtime(db) as rt:
        paid = rt.get("t-crash").usage  # the row counted turn 2 as it was recorded
        assert paid["steps"] == 2
        run = rt.cancel("t-crash", reason="not needed")
        assert run.status is RunStatus.CANCELLED
        assert run.usage["steps"] == paid["steps"]
        assert run.usage["input_tokens"] == paid["input_tokens"]
