"""A node written as steps: the cancel check shares the worker-thread trip of the node's
first blocking call, and a cancel still comes before any of the node's work."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

import pytest

from agentrt.graphs.run_graph import _checked
from agentrt.steps import Step, Steps, adrive, blocking, drive

STATE: Any = {"thread_id": "t1"}


class _Store:
    def __init__(self, cancel: str | None) -> None:
        self.cancel = cancel
        self.calls: list[str] = []

    def stop_requests(self, thread_id: str) -> tuple[str | None, bool]:
        self.calls.append("check")
        return self.cancel, False


def _deps(store: _Store) -> Any:
    return cast(Any, SimpleNamespace(store=store))


def _node(store: _Store, seen: list[Any], *, fail: bool = False) -> Steps[dict[str, Any]]:
    def first() -> str:
        store.calls.append("first")
        if fail:
            raise ValueError("first call failed")
        return "one"

    try:
        seen.append((yield blocking(first)))
    except ValueError as exc:
        seen.append(str(exc))
    seen.append((yield blocking(lambda: "two")))
    return {"route": "policy"}


def _trips(steps: Steps[dict[str, Any]]) -> tuple[dict[str, Any], int]:
    """Drive ``steps`` on an event loop; its result and the steps it yielded."""
    count = 0

    def counting() -> Steps[dict[str, Any]]:
        nonlocal count
        sent: Any = None
        while True:
            try:
                step = steps.send(sent)
            except StopIteration as done:
                return cast(dict[str, Any], done.value)
            count += 1
            sent = yield step

    return asyncio.run(adrive(counting())), count


def test_the_cancel_check_shares_the_first_calls_trip() -> None:
    store, seen = _Store(None), []
    update, trips = _trips(_checked("plan", STATE, _deps(store), _node(store, seen)))
    assert update == {"route": "policy"}
    assert seen == ["one", "two"]
    assert store.calls == ["check", "first"]
    assert trips == 2  # check and first call in one, then the second call


def test_a_cancel_comes_before_any_of_the_nodes_work() -> None:
    store, seen = _Store("stop it"), []
    update, _ = _trips(_checked("tool", STATE, _deps(store), _node(store, seen)))
    assert update["stop"]["status"] == "cancelled"
    assert update["stop"]["reason"] == "stop it"
    assert store.calls == ["check"]
    assert seen == []


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_the_first_calls_error_reaches_the_node_at_its_yield(driver: str) -> None:
    store, seen = _Store(None), []
    steps = _checked("plan", STATE, _deps(store), _node(store, seen, fail=True))
    update = drive(steps) if driver == "sync" else asyncio.run(adrive(steps))
    assert update == {"route": "policy"}
    assert seen == ["first call failed", "two"]


def test_a_node_starting_with_an_awaited_step_is_checked_first() -> None:
    store = _Store(None)

    def node() -> Steps[dict[str, Any]]:
        got = yield Step(lambda: "sync", lambda: asyncio.sleep(0, "awaited"))
        return {"route": got}

    update, trips = _trips(_checked("plan", STATE, _deps(store), node()))
    assert update == {"route": "awaited"}
    assert store.calls == ["check"]
    assert trips == 2
