"""The outbox on every backend: events written with the changes they describe, and the
deliveries made from them (claimed once, in order per run, retried, dead-lettered).

Part of the store conformance suite: the same backends (tests/test_store_conformance.py's
BACKENDS), the same fixtures.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from agentrt.approvals import ApprovalStatus
from agentrt.approvals.expiry import escalation_of
from agentrt.approvals.model import ApprovalQuery, Decided
from agentrt.records import NewRun
from agentrt.runs import lifecycle
from agentrt.state import RunStatus
from agentrt.store.outbox import (
    Delivery,
    DeliveryOutcome,
    DeliveryQuery,
    DeliveryStatus,
    OutboxEvent,
)
from agentrt.store.protocols import Store
from tests.conftest import FakeClock
from tests.test_store_conformance import ALICE, BACKENDS, USAGE, request

BOB = {"id": "bob", "roles": [], "tenant": "globex", "scopes": []}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_000.0)


@pytest.fixture(params=sorted(BACKENDS))
def store(request: pytest.FixtureRequest, clock: FakeClock) -> Iterator[Store]:
    s = BACKENDS[request.param](request, clock)
    yield s
    s.close()


def new_run(store: Store, thread_id: str, principal: dict[str, Any] = ALICE) -> None:
    store.create_run(
        NewRun(
            thread_id=thread_id, goal="refund order 7", principal=principal, budget={}, usage=USAGE
        )
    )


def move(store: Store, thread_id: str, status: RunStatus, **kw: Any) -> Any:
    return lifecycle.move(store, thread_id, status, now=store.clock(), **kw)


def told(store: Store, thread_id: str | None = None) -> list[tuple[str, str]]:
    return [(e.type, e.thread_id) for e in store.outbox_events(thread_id=thread_id)]


def test_each_change_writes_its_event_once(store: Store, clock: FakeClock) -> None:
    new_run(store, "t1")
    move(store, "t1", RunStatus.RUNNING)
    move(store, "t1", RunStatus.AWAITING_APPROVAL)
    assert told(store) == []  # starting and waiting are not told; the request is

    asked = store.put_approval(request())
    store.put_approval(request(requested_at=2000.0))  # a re-run of the gate: nothing new
    clock.now = 1100.0
    assert store.decide_approval(asked.id, Decided(status=ApprovalStatus.APPROVED, by="bob"))
    assert not store.decide_approval(asked.id, Decided(status=ApprovalStatus.REJECTED, by="eve"))
    move(store, "t1", RunStatus.RUNNING)
    move(store, "t1", RunStatus.RUNNING, usage=USAGE)  # staying put is not told
    move(store, "t1", RunStatus.WAITING_RETRY, error="provider said 503", retry_at=1200.0)
    move(store, "t1", RunStatus.RUNNING)
    move(store, "t1", RunStatus.FAILED, error="the tool broke")

    events = store.outbox_events()
    assert [(e.type, e.seq) for e in events] == [
        ("approval.requested", events[0].seq),
        ("approval.decided", events[1].seq),
        ("run.waiting_retry", events[2].seq),
        ("run.failed", events[3].seq),
    ]
    assert [e.seq for e in events] == sorted({e.seq for e in events})
    assert {e.tenant for e in events} == {"acme"}
    requested, decided, waiting, failed = events
    assert requested.data["approval_id"] == asked.id
    assert requested.data["rule_id"] == "large-refunds"
    assert "args" not in requested.data  # arguments stay behind the review page's sign-in
    assert decided.data | {"decided_by": "bob", "status": "approved"} == decided.data
    assert decided.created_at == 1100.0
    assert waiting.data["retry_at"] == 1200.0
    assert failed.data | {"status": "failed", "error": "the tool broke"} == failed.data
    assert len({e.id for e in events}) == 4


def test_a_change_that_did_not_apply_tells_nothing(store: Store) -> None:
    new_run(store, "t1")
    stale = store.get_run("t1")
    assert stale is not None
    move(store, "t1", RunStatus.RUNNING)
    # Worked out from "pending", but the run moved on: the store applies nothing, tells nothing.
    change = lifecycle.change_for(stale, RunStatus.CANCELLED, now=store.clock())
    assert store.change_run("t1", change) is None
    assert told(store) == []


def test_expiry_tells_the_expiry_and_the_escalation(store: Store, clock: FakeClock) -> None:
    new_run(store, "t1")
    asked = store.put_approval(request(on_expiry="escalate", escalate_to="director"))
    clock.now = 300_000.0
    follow = escalation_of(asked, now=clock.now)
    assert store.expire_approval(asked.id, now=clock.now, escalation=follow)
    assert not store.expire_approval(asked.id, now=clock.now, escalation=follow)
    events = store.outbox_events()
    assert [e.type for e in events] == [
        "approval.requested",
        "approval.expired",
        "approval.escalated",
    ]
    assert events[1].data["escalated_to"] == follow.id
    assert events[2].data["approval_id"] == follow.id
    assert events[2].data["escalated_from"] == asked.id


def add_all(store: Store, endpoint: str, now: float) -> None:
    cursor = store.outbox_cursor(endpoint)
    events = store.outbox_events(after=cursor)
    assert store.add_deliveries(
        endpoint, events, cursor=cursor, upto=events[-1].seq if events else cursor, now=now
    )


def finish(store: Store, d: Delivery, status: DeliveryStatus, **kw: Any) -> bool:
    outcome = DeliveryOutcome(status=status, attempts=d.attempts + 1, now=store.clock(), **kw)
    return store.finish_delivery(d.endpoint, d.event.id, owner="w1", outcome=outcome)


def claim(store: Store, endpoint: str = "ops", owner: str = "w1") -> list[Delivery]:
    now = store.clock()
    return store.claim_deliveries(endpoint, owner=owner, now=now, until=now + 30, limit=10)


def two_runs_with_events(store: Store) -> tuple[list[OutboxEvent], list[OutboxEvent]]:
    new_run(store, "t1")
    new_run(store, "t2", BOB)
    store.put_approval(request("t1", "1.0"))
    store.put_approval(request("t2", "1.0", tenant="globex"))
    store.put_approval(request("t1", "2.0"))
    return store.outbox_events(thread_id="t1"), store.outbox_events(thread_id="t2")


def test_deliveries_go_out_in_order_per_run(store: Store, clock: FakeClock) -> None:
    (a1, a2), (b1,) = two_runs_with_events(store)
    add_all(store, "ops", clock.now)
    assert store.outbox_cursor("ops") == a2.seq
    # The cursor moved: a second hand-out from the old cursor is refused and adds nothing.
    assert not store.add_deliveries("ops", [a1], cursor=0, upto=a2.seq, now=clock.now)

    first = claim(store)
    assert [d.event.id for d in first] == [a1.id, b1.id]  # a2 waits for a1
    assert claim(store, owner="w2") == []  # held by w1's claim
    assert finish(store, first[0], DeliveryStatus.DELIVERED, http_status=204)
    assert [d.event.id for d in claim(store)] == [a2.id]

    listed = store.list_deliveries(DeliveryQuery(endpoint="ops"))
    assert [(d.event.id, d.status) for d in listed] == [
        (a2.id, DeliveryStatus.PENDING),
        (b1.id, DeliveryStatus.PENDING),
        (a1.id, DeliveryStatus.DELIVERED),
    ]
    assert (listed[2].delivered_at, listed[2].last_status) == (clock.now, 204)
    assert [d.event.id for d in store.list_deliveries(DeliveryQuery(tenant="globex"))] == [b1.id]


def test_a_claim_that_ran_out_is_taken_again(store: Store, clock: FakeClock) -> None:
    (a1, _), _ = two_runs_with_events(store)
    add_all(store, "ops", clock.now)
    held = claim(store)[0]
    assert held.event.id == a1.id
    clock.advance(31)  # its dispatcher died between sending and marking
    again = claim(store, owner="w2")
    assert a1.id in [d.event.id for d in again]
    # The dead owner's late word no longer counts; the new owner's does.
    assert not finish(store, held, DeliveryStatus.DELIVERED)
    outcome = DeliveryOutcome(status=DeliveryStatus.DELIVERED, attempts=2, now=clock.now)
    assert store.finish_delivery("ops", a1.id, owner="w2", outcome=outcome)


def test_retry_later_then_dead_then_retried_by_hand(store: Store, clock: FakeClock) -> None:
    (a1, _), _ = two_runs_with_events(store)
    add_all(store, "ops", clock.now)
    d = claim(store)[0]
    assert finish(
        store, d, DeliveryStatus.PENDING, next_at=clock.now + 60, error="HTTP 500", http_status=500
    )
    assert a1.id not in [x.event.id for x in claim(store)]  # not due yet
    clock.advance(60)
    d = next(x for x in claim(store) if x.event.id == a1.id)
    assert (d.attempts, d.last_error) == (1, "HTTP 500")
    assert finish(store, d, DeliveryStatus.DEAD, error="gave up: HTTP 500")
    dead = store.list_deliveries(DeliveryQuery(status="dead"))
    assert [(x.event.id, x.attempts, x.last_error) for x in dead] == [
        (a1.id, 2, "gave up: HTTP 500")
    ]
    assert store.retry_delivery("ops", a1.id, now=clock.now)
    assert not store.retry_delivery("ops", a1.id, now=clock.now)  # no longer dead
    again = next(x for x in claim(store, owner="w3") if x.event.id == a1.id)
    assert again.attempts == 0


def test_endpoints_have_cursors_and_deliveries_of_their_own(store: Store, clock: FakeClock) -> None:
    (_, a2), (b1,) = two_runs_with_events(store)
    add_all(store, "ops", clock.now)
    assert store.add_deliveries("globex", [b1], cursor=0, upto=a2.seq, now=clock.now)
    assert [d.event.id for d in claim(store, "globex")] == [b1.id]
    assert store.outbox_cursor("globex") == store.outbox_cursor("ops") == a2.seq


def test_deleting_a_run_takes_its_events_and_deliveries(store: Store, clock: FakeClock) -> None:
    two_runs_with_events(store)
    add_all(store, "ops", clock.now)
    store.delete_run("t1")
    assert told(store) == [("approval.requested", "t2")]
    assert {d.event.thread_id for d in store.list_deliveries(DeliveryQuery())} == {"t2"}


def test_concurrent_claims_take_each_delivery_once(store: Store, clock: FakeClock) -> None:
    for n in range(12):
        new_run(store, f"r{n:02d}")
        store.put_approval(request(f"r{n:02d}"))
    add_all(store, "ops", clock.now)
    taken: list[str] = []
    lock = threading.Lock()

    def claimer(n: int) -> None:
        got = store.claim_deliveries(
            "ops", owner=f"w{n}", now=clock.now, until=clock.now + 30, limit=3
        )
        with lock:
            taken.extend(d.event.id for d in got)

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(taken) == len(set(taken)) == 12


def test_the_queue_narrows_by_tool_rule_and_age(store: Store) -> None:
    """The review page's filters, which every backend answers in its query."""
    new_run(store, "t1")
    old = store.put_approval(request(step_id="1.0", requested_at=1000.0))
    store.put_approval(request(step_id="2.0", requested_at=5000.0, tool="lookup_order"))
    store.put_approval(request(step_id="3.0", requested_at=5000.0, rule_id="other"))

    def ids(**query: Any) -> list[str]:
        return [r.id for r in store.list_approvals(ApprovalQuery(**query))]

    assert len(ids()) == 3
    assert ids(tool="lookup_order") == [request(step_id="2.0").id]
    assert ids(rule_id="other") == [request(step_id="3.0").id]
    assert ids(requested_before=4000.0) == [old.id]
    assert ids(tool="issue_refund", rule_id="large-refunds") == [old.id]
