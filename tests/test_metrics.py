"""The runtime's OpenTelemetry metrics, read back from an in-memory metric reader."""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.metrics import CallbackOptions
from opentelemetry.sdk import metrics as sdk
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.metrics.view import View

from agentrt import AgentRuntime, Budget, ConfigError, Decision, Policy, Principal, tool
from agentrt.examples import refund_desk
from agentrt.examples.refund_desk import APPROVER, GOAL, OPERATOR
from agentrt.records import LeaseRecord
from agentrt.state import RunStatus
from agentrt.testing import ScriptedChatModel, ai, tool_call
from agentrt.tracing import tally
from agentrt.tracing.metrics import RunMetrics, make_meter, metric_points
from agentrt.tracing.tally import Summed, summed_counter
from tests import threads_app
from tests.conftest import FakeClock, Ids, run_interleaved

APP = {"agentrt.app": "refund-desk"}


def sums(points: dict[str, list[dict[str, Any]]], name: str, *keys: str) -> Counter[Any]:
    """A metric's values summed by the given attributes (one key: by its value alone)."""
    found: Counter[Any] = Counter()
    for point in points.get(name, []):
        attrs = point["attributes"]
        key = tuple(attrs.get(k) for k in keys)
        found[key[0] if len(keys) == 1 else key] += point["value"]
    return found


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


class Counted:
    """Where a test's runtime counts: the caller's MeterProvider (OpenTelemetry's own
    counters), or agentrt's own, read with rt.metrics() (counters agentrt sums)."""

    def __init__(self, where: str) -> None:
        self.reader = InMemoryMetricReader() if where == "caller" else None

    def setting(self) -> bool | MeterProvider:
        return True if self.reader is None else MeterProvider(metric_readers=[self.reader])

    def points(self, rt: AgentRuntime) -> dict[str, list[dict[str, Any]]]:
        return rt.metrics() if self.reader is None else metric_points(self.reader)


@pytest.fixture(params=["caller", "own"])
def counted(request: pytest.FixtureRequest) -> Counted:
    return Counted(request.param)


def desk(db: Path, clock: FakeClock, counted: Counted, **kwargs: Any) -> AgentRuntime:
    return refund_desk.build_runtime(
        db, clock=clock, new_id=Ids(), metrics=counted.setting(), **kwargs
    )


def test_a_run_through_a_gate_is_counted(db: Path, clock: FakeClock, counted: Counted) -> None:
    with desk(db, clock, counted, prices={"refund-desk-script": (3.0, 15.0)}) as rt:
        run = rt.start(GOAL, principal=OPERATOR)
        assert run.pending_approval is not None
        clock.advance(120)
        done = rt.decide(Decision.approve(run.pending_approval.id, by=APPROVER))
        assert done.status is RunStatus.SUCCEEDED
        events = rt.events(run.thread_id)
        points = counted.points(rt)

    assert sums(points, "agentrt.runs.started", "agentrt.tenant", "agentrt.app") == {
        ("acme", "refund-desk"): 1
    }
    assert sums(points, "agentrt.runs.ended", "agentrt.run.status", "agentrt.tenant") == {
        ("succeeded", "acme"): 1
    }
    # One point a model answer: the demo's four turns, every one counted with its tokens.
    assert sums(points, "agentrt.model.calls", "gen_ai.request.model") == {"refund-desk-script": 4}
    tokens = sums(points, "agentrt.model.tokens", "gen_ai.token.type")
    assert tokens == {
        "input": done.usage["input_tokens"],
        "output": done.usage["output_tokens"],
    }
    assert sum(p["value"] for p in points["agentrt.model.cost"]) == pytest.approx(
        done.usage["cost_usd"]
    )
    # Tools: each call once by its outcome; the refund twice (its preview, then its commit).
    assert sums(points, "agentrt.tool.calls", "gen_ai.tool.name", "agentrt.tool.phase") == {
        ("lookup_order", "call"): 1,
        ("lookup_customer", "call"): 1,
        ("add_order_note", "call"): 1,
        ("issue_refund", "preview"): 1,
        ("issue_refund", "commit"): 1,
    }
    # Policy: a point each time the policy decided, as the run's own log says.
    logged = Counter(
        (e["data"]["outcome"], e["data"]["rule_id"]) for e in events if e["type"] == "policy"
    )
    assert sums(points, "agentrt.policy.decisions", "agentrt.outcome", "agentrt.policy.rule") == (
        logged
    )
    assert logged[("require_approval", "large-refunds")] == 1
    [wait] = points["agentrt.approval.wait"]
    assert wait["attributes"] == {
        **APP,
        "agentrt.outcome": "approved",
        "agentrt.policy.rule": "large-refunds",
        "agentrt.approval.role": "refund-approver",
    }
    assert (wait["count"], wait["sum"], wait["buckets"]["300.0"]) == (1, 120.0, 1)
    assert "agentrt.budget.stops" not in points


def test_a_thread_that_goes_on_keeps_runs_started_and_ended_in_step(
    db: Path, clock: FakeClock, counted: Counted
) -> None:
    """A dashboard reads started - ended as the runs in flight and ended / started as the
    completion rate: a follow-up that sets a finished thread going again is a start, as
    its end is an end; one that interrupts a live stretch starts nothing, for that stretch
    never ends."""
    ops = threads_app.OPS

    def in_step(rt: AgentRuntime) -> tuple[int, int]:
        points = counted.points(rt)
        started = sums(points, "agentrt.runs.started", "agentrt.tenant")
        ended = sums(points, "agentrt.runs.ended", "agentrt.tenant")
        return started["acme"], ended["acme"]

    with threads_app.build_runtime(db, clock=clock, new_id=Ids(), metrics=counted.setting()) as rt:
        first = rt.start("note 1", principal=ops)
        assert first.status is RunStatus.SUCCEEDED
        assert in_step(rt) == (1, 1)
        assert rt.send(first.thread_id, "hello", principal=ops).status is RunStatus.SUCCEEDED
        assert in_step(rt) == (2, 2)
        gated = rt.send(first.thread_id, "pay 500", principal=ops)
        assert gated.status is RunStatus.AWAITING_APPROVAL
        assert in_step(rt) == (3, 2)  # one in flight: the follow-up waits for a payer
        # An interrupt closes the waiting stretch as interrupted, not ended: no new start.
        taken = rt.send(first.thread_id, "note 1", principal=ops, double_texting="interrupt")
        assert (taken.status, taken.message) == (RunStatus.SUCCEEDED, 3)
        assert in_step(rt) == (3, 3)
        ended = sums(counted.points(rt), "agentrt.runs.ended", "agentrt.run.status")
        told = [m.status for m in rt.messages(first.thread_id)]
    assert ended == {"succeeded": 3}
    assert told == ["succeeded", "succeeded", "interrupted", "succeeded"]


def test_a_budget_stop_and_a_denial_are_counted_by_limit_and_rule(
    db: Path, clock: FakeClock, counted: Counted
) -> None:
    model = ScriptedChatModel(
        [
            ai("", tool_call("issue_refund", {"order_id": "42", "amount": -1})),
            ai("", tool_call("lookup_order", {"order_id": "42"})),
            ai("", tool_call("lookup_order", {"order_id": "43"})),
            "unreachable",
        ]
    )
    with desk(db, clock, counted, model=model) as rt:
        run = rt.start(GOAL, principal=OPERATOR, budget=Budget(max_tool_calls=1))
        assert run.status is RunStatus.BUDGET_EXCEEDED
        points = counted.points(rt)
    assert sums(points, "agentrt.budget.stops", "agentrt.budget.limit", "agentrt.tenant") == {
        ("max_tool_calls", "acme"): 1
    }
    assert sums(points, "agentrt.runs.ended", "agentrt.run.status") == {"budget_exceeded": 1}
    decisions = sums(points, "agentrt.policy.decisions", "agentrt.outcome", "agentrt.policy.rule")
    assert decisions[("deny", "not-positive")] == 1


class Crash(BaseException):
    """The process dying in the middle of a call."""


def test_a_reconcile_and_a_lease_takeover_are_counted(
    db: Path, clock: FakeClock, counted: Counted
) -> None:
    calls: list[str] = []

    @tool(effect="write")
    def send(to: str) -> str:
        """Send a letter."""
        calls.append(to)
        if len(calls) == 1:
            raise Crash  # after the effect, before its result is recorded
        return "sent"

    model = ScriptedChatModel([ai("", tool_call("send", {"to": "al"})), "sent it"])
    ops = Principal("ops", tenant="acme")
    setting = counted.setting()
    with AgentRuntime(
        model, tools=[send], policy=Policy.allow_all(), db=db, clock=clock, metrics=setting
    ) as rt:
        with pytest.raises(Crash):
            rt.start("mail al", principal=ops, thread_id="t1")
        # Another process held the run and its lease ran out: the resume takes it over.
        stale = LeaseRecord(owner="far:1:x", host="far", pid=1, expires_at=clock() - 5)
        assert rt.store.take_lease("t1", stale, expected=None)
        waiting = rt.resume("t1")
        assert waiting.pending_approval is not None
        assert waiting.pending_approval.kind == "reconcile"
        done = rt.decide(Decision.resolve(waiting.pending_approval.id, result="sent", by=ops))
        assert done.status is RunStatus.SUCCEEDED
        points = counted.points(rt)
    assert calls == ["al"]
    assert sums(points, "agentrt.lease.takeovers", "agentrt.outcome") == {"expired": 1}
    assert sums(points, "agentrt.ledger.reconciles", "gen_ai.tool.name", "agentrt.outcome") == {
        ("send", "resolve"): 1
    }
    # The call that died never ended; the resume found its effect in doubt and called nothing.
    assert sums(points, "agentrt.tool.calls", "gen_ai.tool.name", "agentrt.outcome") == {
        ("send", "in_doubt"): 1
    }


def test_rt_metrics_reads_them_without_a_collector(db: Path, clock: FakeClock) -> None:
    with refund_desk.build_runtime(db, clock=clock, new_id=Ids()) as rt:
        assert rt.metrics() == {}
        rt.start(GOAL, principal=OPERATOR)
        figures = rt.metrics()
    assert sums(figures, "agentrt.runs.started", "agentrt.tenant") == {"acme": 1}
    assert json.loads(json.dumps(figures)) == figures  # plain data


@pytest.mark.parametrize(
    ("tracing", "preference", "summed"),
    [
        ("sqlite", "delta", True),  # kept in memory only: read as totals
        ("console", "", True),
        ("otlp", "", True),
        ("otlp", " Cumulative ", True),
        # Sent as deltas, observable counters would keep every series for good, and fold new
        # ones past the SDK's limit into its overflow point: Counters there.
        ("otlp", "delta", False),
        ("otlp", "lowmemory", False),
    ],
)
def test_agentrts_own_counters_are_summed_where_they_are_read_as_totals(
    monkeypatch: pytest.MonkeyPatch, tracing: str, preference: str, summed: bool
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", preference)
    setup = make_meter(True, tracing)
    assert setup.provider is not None
    try:
        assert setup.summed is summed
        counted = RunMetrics(setup.meter, app="a", summed=setup.summed)
        assert isinstance(counted._started, Summed) is summed
    finally:
        setup.provider.shutdown()
    assert make_meter(MeterProvider(), tracing).summed is False  # the caller's: Counters
    assert make_meter(False, tracing).summed is False


def test_a_runtime_on_its_own_provider_counts_through_the_tally(db: Path, clock: FakeClock) -> None:
    with refund_desk.build_runtime(db, clock=clock, new_id=Ids()) as rt:
        assert isinstance(rt.deps.tracing.metrics._started, Summed)


def test_console_tracing_exports_the_metrics_too(
    db: Path, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    with refund_desk.build_runtime(db, clock=clock, new_id=Ids(), tracing="console") as rt:
        rt.start(GOAL, principal=OPERATOR)
        capsys.readouterr()
    # Closing the runtime exports what the periodic reader has not yet sent.
    out = capsys.readouterr().out
    assert '"name": "agentrt.runs.started"' in out
    assert '"name": "agentrt.policy.decisions"' in out


def test_metrics_off_and_a_bad_setting(db: Path, clock: FakeClock) -> None:
    with refund_desk.build_runtime(db, clock=clock, metrics=False) as rt:
        rt.start(GOAL, principal=OPERATOR)
        assert rt.metrics() == {}
    with pytest.raises(ConfigError, match="metrics='yes' is not a metrics setting; use True"):
        refund_desk.build_runtime(db, clock=clock, metrics="yes")


def test_two_runtimes_on_one_provider_of_the_callers_add_to_the_same_points(
    tmp_path: Path, clock: FakeClock, reader: InMemoryMetricReader
) -> None:
    provider = MeterProvider(metric_readers=[reader])
    for name in ("one", "two"):
        with refund_desk.build_runtime(
            tmp_path / f"{name}.db", clock=clock, new_id=Ids(), metrics=provider
        ) as rt:
            rt.start(GOAL, principal=OPERATOR)
    points = metric_points(reader)
    assert sums(points, "agentrt.runs.started", "agentrt.tenant") == {"acme": 2}
    # Each run asks the model three times before it waits at its gate.
    assert sums(points, "agentrt.model.calls", "agentrt.app") == {"refund-desk": 2 * 3}


def test_a_callers_views_and_temporality_for_counters_apply(db: Path, clock: FakeClock) -> None:
    # The caller configured Counters: agentrt's counters on their provider are Counters.
    reader = InMemoryMetricReader(preferred_temporality={sdk.Counter: AggregationTemporality.DELTA})
    view = View(instrument_type=sdk.Counter, attribute_keys={"agentrt.tenant"})
    provider = MeterProvider(metric_readers=[reader], views=[view])
    with desk_on(db, clock, provider) as rt:
        rt.start(GOAL, principal=OPERATOR)
        first = metric_points(reader)
        rt.start(GOAL, principal=OPERATOR)
        second = metric_points(reader)
    for points in (first, second):  # deltas: one run each time
        assert points["agentrt.runs.started"] == [
            {"attributes": {"agentrt.tenant": "acme"}, "value": 1}
        ]


def desk_on(db: Path, clock: FakeClock, provider: MeterProvider) -> AgentRuntime:
    return refund_desk.build_runtime(db, clock=clock, new_id=Ids(), metrics=provider)


def test_summed_counts_are_cumulative_and_every_add_from_every_thread_counts(
    reader: InMemoryMetricReader,
) -> None:
    meter = MeterProvider(metric_readers=[reader]).get_meter("t")
    metrics = RunMetrics(meter, app="a", summed=True)
    metrics.tool_call("send", "ok")
    assert sums(metric_points(reader), "agentrt.tool.calls", "gen_ai.tool.name") == {"send": 1}

    def count() -> None:
        for _ in range(5_000):
            metrics.tool_call("send", "ok")
            metrics.policy_decision("allow", None)

    run_interleaved(*(threading.Thread(target=count) for _ in range(4)))
    # A second RunMetrics on the meter adds to the same sums: OpenTelemetry keeps only the
    # first observable counter of a name, and so only its callback.
    RunMetrics(meter, app="a", summed=True).tool_call("send", "ok")
    points = metric_points(reader)
    assert sums(points, "agentrt.tool.calls", "gen_ai.tool.name") == {"send": 20_002}
    assert sums(points, "agentrt.policy.decisions", "agentrt.policy.rule") == {"default": 20_000}
    [point] = points["agentrt.tool.calls"]  # one point for the one attribute set
    assert point["attributes"] == {
        "agentrt.app": "a",
        "gen_ai.tool.name": "send",
        "agentrt.outcome": "ok",
        "agentrt.tool.phase": "call",
    }


def test_attributes_given_in_another_order_are_one_point(reader: InMemoryMetricReader) -> None:
    meter = MeterProvider(metric_readers=[reader]).get_meter("t")
    counter = summed_counter(meter, "agentrt.things", "{thing}", "Things.")
    counter.add(1, {"a": 1, "b": 2})
    counter.add(2, {"b": 2, "a": 1})
    counter.add(5, {"a": 1, "b": 3})
    counter.add(-4, {"a": 1, "b": 3})  # dropped, as a Counter drops it: sums only grow
    found = {
        tuple(sorted(p["attributes"].items())): p["value"]
        for p in metric_points(reader)["agentrt.things"]
    }
    assert found == {(("a", 1), ("b", 2)): 3, (("a", 1), ("b", 3)): 5}
    # What the meter is handed: one observation an attribute set (two of one set in one
    # callback are left to the SDK to resolve, which the API leaves open).
    observed = tally._tallies[meter].observe("agentrt.things", CallbackOptions())
    assert sorted((sorted(o.attributes.items()), o.value) for o in observed) == [
        ([("a", 1), ("b", 2)], 3),
        ([("a", 1), ("b", 3)], 5),
    ]


def test_counters_registered_while_the_meter_collects_do_not_deadlock(
    reader: InMemoryMetricReader,
) -> None:
    # A collection holds the SDK's lock and asks the tally; registering a counter takes
    # the SDK's lock: the tally must not hold its own while it registers.
    meter = MeterProvider(metric_readers=[reader]).get_meter("t")
    summed_counter(meter, "c0", "1", "").add(1, {"a": 1})
    done = threading.Event()

    def collect() -> None:
        while not done.is_set():
            reader.get_metrics_data()

    def register() -> None:
        for i in range(1, 40):
            summed_counter(meter, f"c{i}", "1", "").add(1, {"a": 1})
        done.set()

    run_interleaved(
        threading.Thread(target=register, daemon=True),
        threading.Thread(target=collect, daemon=True),
        timeout=30,
    )
    assert done.is_set(), "registering a counter deadlocked with a collection"
    assert len(metric_points(reader)) == 40
