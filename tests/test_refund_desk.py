"""The demo app refuses refunds that are not amounts above zero, before any money moves."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from agentrt import RunStatus
from agentrt.examples import refund_desk
from agentrt.examples.refund_desk import OPERATOR
from agentrt.testing import ScriptedChatModel, ai, tool_call
from tests.conftest import FakeClock, Ids


def refunds(db: Path) -> list[tuple[str, float]]:
    path = refund_desk.payments_path(db)
    if not path.exists():
        return []
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT order_id, amount FROM refunds").fetchall()


@pytest.mark.parametrize(
    ("amount", "kind", "says"),
    [
        # The model's JSON said -Infinity: once it passed `amount <= 50.0` and ran unasked.
        pytest.param(
            -math.inf, "invalid_args", "amount: Input should be a finite number", id="-inf"
        ),
        pytest.param(math.nan, "invalid_args", "amount: Input should be a finite number", id="nan"),
        pytest.param(-5.0, "denied", "A refund is an amount above zero.", id="negative"),
        pytest.param(0.0, "denied", "A refund is an amount above zero.", id="zero"),
    ],
)
def test_a_refund_that_is_not_above_zero_never_runs(
    db: Path, clock: FakeClock, amount: float, kind: str, says: str
) -> None:
    model = ScriptedChatModel(
        [
            ai("Refunding.", tool_call("issue_refund", {"order_id": "42", "amount": amount})),
            ai("I could not refund order 42."),
        ]
    )
    with refund_desk.build_runtime(db, model=model, clock=clock, new_id=Ids()) as rt:
        run = rt.start(refund_desk.GOAL, principal=OPERATOR)
        observations: list[dict[str, Any]] = [
            dict(e["data"]) for e in rt.events(run.thread_id) if e["type"] == "observation"
        ]
    assert run.status is RunStatus.SUCCEEDED  # nothing waits for a person
    assert [(o["tool"], o["kind"]) for o in observations] == [("issue_refund", kind)]
    assert says in observations[0]["content"]
    assert refunds(db) == []
