"""The status transition table and the Budget value object."""

from __future__ import annotations

import pytest

from agentrt import Budget, ConfigError, IllegalTransition, RunStatus
from agentrt.budget import empty_usage, first_exceeded
from agentrt.state import TERMINAL, TRANSITIONS, append_events, check_transition

S = RunStatus


def test_the_table_is_the_design() -> None:
    assert {k: set(v) for k, v in TRANSITIONS.items()} == {
        S.PENDING: {S.RUNNING, S.FAILED, S.CANCELLED},
        S.RUNNING: {
            S.AWAITING_APPROVAL,
            S.WAITING_RETRY,
            S.SUCCEEDED,
            S.FAILED,
            S.CANCELLED,
            S.BUDGET_EXCEEDED,
        },
        S.AWAITING_APPROVAL: {S.RUNNING, S.FAILED, S.CANCELLED},
        S.WAITING_RETRY: {S.RUNNING, S.FAILED, S.CANCELLED},
        S.SUCCEEDED: set(),
        S.FAILED: set(),
        S.CANCELLED: set(),
        S.BUDGET_EXCEEDED: set(),
    }
    assert {s for s, targets in TRANSITIONS.items() if not targets} == TERMINAL


@pytest.mark.parametrize("current", list(RunStatus))
@pytest.mark.parametrize("target", list(RunStatus))
def test_every_pair_follows_the_table(current: RunStatus, target: RunStatus) -> None:
    if target in TRANSITIONS[current]:
        assert check_transition(current, target) is target
    else:
        with pytest.raises(IllegalTransition) as info:
            check_transition(current, target, thread_id="t-9")
        assert str(info.value) == (
            f"run 't-9' cannot go from status {current.value!r} to {target.value!r}; "
            "see agentrt.state.TRANSITIONS for the allowed moves"
        )


def test_unknown_status_names_raise() -> None:
    with pytest.raises(IllegalTransition, match="from status 'running' to 'paused'"):
        check_transition("running", "paused")


def test_event_reducer_is_batching_invariant() -> None:
    a = [{"type": "plan", "data": {"n": 1}}]
    b = [{"type": "finish", "data": {"n": 2}}]
    once = append_events([], [a, b])  # type: ignore[list-item]
    twice = append_events(append_events([], [a]), [b])  # type: ignore[list-item]
    assert once == twice == [*a, *b]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_steps": -1}, "Budget.max_steps must be a finite number >= 0, got -1"),
        ({"max_cost_usd": float("nan")}, "Budget.max_cost_usd must be a finite number"),
        ({"max_tool_calls": 2.5}, "Budget.max_tool_calls counts whole units, got 2.5"),
        ({"max_tokens": "100"}, "Budget.max_tokens must be a number or None, got '100'"),
        ({"deadline": True}, "Budget.deadline must be a number or None, got True"),
    ],
)
def test_budget_validation(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Budget(**kwargs)  # type: ignore[arg-type]


def test_budget_round_trip_and_unknown_fields() -> None:
    budget = Budget(max_steps=3, max_cost_usd=0.5)
    assert Budget.from_dict(budget.to_dict()) == budget
    with pytest.raises(ConfigError, match=r"unknown Budget fields \['max_stpes'\]"):
        Budget.from_dict({"max_stpes": 3})


@pytest.mark.parametrize(("limit", "used", "tripped"), [(3, 2, False), (3, 3, True), (3, 4, True)])
def test_token_limit_trips_at_the_boundary(limit: int, used: int, tripped: bool) -> None:
    usage = empty_usage() | {"input_tokens": used}
    result = first_exceeded(Budget(max_tokens=limit), usage, now=0.0)  # type: ignore[arg-type]
    assert (result is not None) == tripped


@pytest.mark.parametrize(("limit", "used", "tripped"), [(3, 1, False), (3, 2, False), (3, 3, True)])
def test_step_limit_is_checked_before_the_step(limit: int, used: int, tripped: bool) -> None:
    usage = empty_usage() | {"steps": used}
    result = first_exceeded(Budget(max_steps=limit), usage, now=0.0, next_steps=1)  # type: ignore[arg-type]
    assert (result is not None) == tripped


def test_deadline() -> None:
    assert first_exceeded(Budget(deadline=100.0), empty_usage(), now=99.0) is None
    tripped = first_exceeded(Budget(deadline=100.0), empty_usage(), now=100.0)
    assert tripped is not None
    assert tripped.limit == "deadline"
