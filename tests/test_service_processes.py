"""The server as a real process: SIGKILLed in the middle of a side effect, started again,
it carries the run on by itself, and the effect happens once."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from agentrt import Principal
from agentrt.service import issue_key
from tests import crashy_app
from tests.serving import serve, wait_for

pytestmark = pytest.mark.subprocess

APP = "tests.crashy_app:build_runtime"


def test_a_server_killed_mid_effect_carries_the_run_on_when_it_starts_again(
    tmp_path: Path,
) -> None:
    db = tmp_path / "agentrt.db"
    with crashy_app.build_runtime(db) as rt:
        key = issue_key(rt, Principal("ops", roles=["operator"], tenant="shop"))

    with serve(APP, db, env={"AGENTRT_TEST_BLOCK_AT": "tool"}) as first:
        with first.client(key) as api:
            started = api.post("/runs", json={"goal": "Charge al, bo and cy."})
            assert started.status_code == 202, started.text
            thread_id = started.json()["thread_id"]
        assert first.process.stdout is not None
        # The first charge has reached the payment system; its answer has not come back.
        assert first.process.stdout.readline() == "BLOCKED tool\n"
        first.kill()

    with serve(APP, db) as second, second.client(key) as api:
        run = wait_for(api, thread_id, {"succeeded", "failed"})
        assert run["status"] == "succeeded", run
        assert run["output"] == "charged three"

    with sqlite3.connect(crashy_app.sink_path(db)) as sink:
        charges = sink.execute("SELECT who, cents FROM charges ORDER BY who").fetchall()
        calls = sink.execute("SELECT who FROM calls ORDER BY n").fetchall()
    assert charges == [("al", 100), ("bo", 200), ("cy", 300)]
    # al's charge was called again after the kill, with the same idempotency key.
    assert [c[0] for c in calls] == ["al", "al", "bo", "cy"]
