"""Run analytics (`rt.stats`, `agentrt stats`): figures from a seeded store, checked against
the seed, on SQLite and PostgreSQL; and a real run's denials and tool times counted."""

from __future__ import annotations

import json
import math
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from agentrt import Budget, ConfigError
from agentrt.approvals import ApprovalRequest, ApprovalStatus
from agentrt.approvals.model import Decided
from agentrt.budget import empty_usage, tokens_used
from agentrt.digests import approval_id, args_digest
from agentrt.examples import refund_desk
from agentrt.examples.refund_desk import OPERATOR
from agentrt.records import LeaseRecord, NewMessage, NewRun, SpanRow
from agentrt.runs import lifecycle
from agentrt.runs.messages import opening_for
from agentrt.runs.stats import compute_stats, denials_of, percentile
from agentrt.state import RunState, RunStatus, Usage
from agentrt.store.analytics import Count, Spend, StatsQuery, ToolTiming
from agentrt.store.postgres import PostgresStore
from agentrt.store.protocols import RunChange, Store
from agentrt.store.sqlite import SqliteStore
from agentrt.testing import ScriptedChatModel, ai, tool_call
from tests import threads_app
from tests.conftest import FakeClock, Ids
from tests.postgres import PostgresServer

DAY = 86400.0
MIDNIGHT = 1_799_971_200.0  # 2027-01-15T00:00:00Z
TENANTS = ("acme", "globex", "initech")
ENDS = ("succeeded", "succeeded", "failed", "budget_exceeded", "awaiting_approval", "cancelled")

BACKENDS: dict[str, Callable[[pytest.FixtureRequest, FakeClock], Store]] = {
    "sqlite": lambda request, clock: SqliteStore(
        request.getfixturevalue("tmp_path") / "agentrt.db", clock=clock
    ),
    "postgres": lambda request, clock: PostgresStore(
        request.getfixturevalue("postgres_url"), clock=clock
    ),
}


@pytest.fixture(params=sorted(BACKENDS))
def store(request: pytest.FixtureRequest, clock: FakeClock) -> Iterator[Store]:
    s = BACKENDS[request.param](request, clock)
    yield s
    s.close()


@dataclass
class Seeded:
    """One seeded run, as the test wrote it: what the figures must add up to."""

    thread_id: str
    tenant: str
    created_at: float
    status: str
    usage: Usage
    denials: dict[str, int]
    limit: str | None
    waits: list[tuple[str, str, float]] = field(default_factory=list)
    tools: list[tuple[str, float]] = field(default_factory=list)


def seed(store: Store, clock: FakeClock, n: int = 48) -> list[Seeded]:
    """``n`` runs over four days and three tenants, every end status, with approvals
    decided after known waits (and some left pending), denials and tool spans."""
    runs = []
    for i in range(n):
        created = MIDNIGHT + (i % 4) * DAY + i * 60
        clock.now = created
        thread_id, trace_id = f"run-{i:03d}", f"{i + 1:032x}"
        tenant = TENANTS[i % 3]
        principal = {"id": "alice", "roles": [], "tenant": tenant, "scopes": []}
        usage = Usage(
            input_tokens=100 + i,
            output_tokens=10 + i,
            cost_usd=0.01 * (i + 1),
            tool_calls=2,
            steps=3,
            active_seconds=1.0,
        )
        status = ENDS[i % 6]
        denials = {"no-wires": 1 + i % 2, "": 1} if i % 5 == 0 else {}
        limit = (
            ("max_tool_calls", "max_cost_usd")[i // 6 % 2] if status == "budget_exceeded" else None
        )
        run = Seeded(thread_id, tenant, created, status, usage, denials, limit)
        made = store.create_run(
            NewRun(
                thread_id=thread_id,
                goal="refund",
                principal=principal,
                budget={},
                usage=usage,
                trace_id=trace_id,
            )
        )
        assert made is not None
        if status != "cancelled":
            assert store.change_run(
                thread_id, RunChange(from_status=RunStatus.PENDING, status=RunStatus.RUNNING)
            )
        gates = [("large-refunds", "refund-approver", 30.0 * (i + 1))] if i % 4 == 0 else []
        gates += [("wires", "treasurer", 600.0 + i)] if i % 8 == 0 else []
        for step, (rule, role, wait) in enumerate(gates):
            request = _request(thread_id, f"{step}.0", rule, role, tenant, at=created + 10)
            store.put_approval(request)
            clock.now = created + 10 + wait
            assert store.decide_approval(
                request.id, Decided(status=ApprovalStatus.APPROVED, by="bob")
            )
            run.waits.append((rule, role, wait))
        if status == "awaiting_approval":  # a request nobody decided yet: no wait counted
            store.put_approval(
                _request(
                    thread_id, "9.0", "large-refunds", "refund-approver", tenant, at=created + 20
                )
            )
        spans = [("lookup_order", 0.1 + i * 0.001)]
        spans += [("issue_refund", 1.0 + (i % 7) * 0.1)] if i % 2 == 0 else []
        store.write_spans(
            [
                _span(trace_id, f"{i:08x}{k:08x}", f"execute_tool {tool}", created, seconds)
                for k, (tool, seconds) in enumerate(spans)
            ]
            + [_span(trace_id, f"{i:08x}ffffffff", "check_policy issue_refund", created, 9.0)]
        )
        run.tools = spans
        current = RunStatus.PENDING if status == "cancelled" else RunStatus.RUNNING
        moved = store.change_run(
            thread_id,
            RunChange(
                from_status=current,
                status=RunStatus(status),
                usage=usage,
                denials=denials or None,
                budget_report={"limit": limit, "message": "over"} if limit else None,
            ),
        )
        assert moved is not None
        assert moved.status.value == status
        runs.append(run)
    return runs


def _request(
    thread_id: str, step_id: str, rule: str, role: str, tenant: str, *, at: float
) -> ApprovalRequest:
    args = {"order_id": "7", "amount": 80.0}
    return ApprovalRequest(
        id=approval_id(thread_id, step_id, "action"),
        thread_id=thread_id,
        step_id=step_id,
        kind="action",
        tool="issue_refund",
        args=args,
        args_digest=args_digest(args),
        rule_id=rule,
        reason="needs a person",
        required_role=role,
        four_eyes=False,
        requested_by="alice",
        tenant=tenant,
        requested_at=at,
        expires_at=None,
    )


def _span(trace_id: str, span_id: str, name: str, start: float, seconds: float) -> SpanRow:
    start_ns = int(start * 1e9)
    return SpanRow(
        span_id=span_id,
        trace_id=trace_id,
        parent_id=None,
        thread_id=None,
        name=name,
        start_ns=start_ns,
        end_ns=start_ns + round(seconds * 1e9),
        status="OK",
        attributes={},
        events=[],
        links=[],
    )


def expected(runs: list[Seeded], *, since: float | None = None, tenant: str | None = None) -> Any:
    """The figures, summed from the seed by hand."""
    chosen = [
        r
        for r in runs
        if (since is None or r.created_at >= since) and (tenant is None or r.tenant == tenant)
    ]
    spend: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0, 0, 0.0])
    for r in chosen:
        day = datetime.fromtimestamp(r.created_at, UTC).strftime("%Y-%m-%d")
        row = spend[(day, r.tenant)]
        row[0] += 1
        row[1] += r.usage["input_tokens"]
        row[2] += r.usage["output_tokens"]
        row[3] += r.usage["cost_usd"]
    waits: dict[tuple[str, str], list[float]] = defaultdict(list)
    denials: Counter[str] = Counter()
    tools: dict[str, list[float]] = defaultdict(list)
    for r in chosen:
        for rule, role, wait in r.waits:
            waits[(rule, role)].append(wait)
        denials.update(r.denials)
        for tool, seconds in r.tools:
            tools[tool].append(seconds)
    return {
        "status": Counter(r.status for r in chosen),
        "spend": sorted(spend.items()),
        "waits": {
            key: (
                len(v),
                sorted(v)[math.ceil(0.5 * len(v)) - 1],
                sorted(v)[math.ceil(0.95 * len(v)) - 1],
                max(v),
            )
            for key, v in waits.items()
        },
        "denials": denials,
        "stops": Counter(r.limit for r in chosen if r.limit),
        "tools": {t: (len(v), sum(v) / len(v), max(v)) for t, v in tools.items()},
    }


def _rounded(values: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(round(v, 6) for v in values)


@pytest.mark.parametrize(
    "window",
    [
        {},
        {"since": MIDNIGHT + 2 * DAY},
        {"tenant": "acme"},
        {"since": MIDNIGHT + DAY, "tenant": "globex"},
    ],
    ids=["all", "since", "tenant", "both"],
)
def test_figures_add_up_to_the_seed(store: Store, clock: FakeClock, window: dict[str, Any]) -> None:
    want = expected(seed(store, clock), **window)
    got = compute_stats(store, **window)

    assert Counter(got.runs_by_status) == want["status"]
    assert [((s.day, s.tenant), s.runs, s.input_tokens, s.output_tokens) for s in got.spend] == [
        (key, row[0], row[1], row[2]) for key, row in want["spend"]
    ]
    assert [s.cost_usd for s in got.spend] == pytest.approx([row[3] for _, row in want["spend"]])
    assert {
        (w.rule_id, w.required_role): _rounded(
            (w.decided, w.p50_seconds, w.p95_seconds, w.max_seconds)
        )
        for w in got.approval_waits
    } == {key: _rounded(v) for key, v in want["waits"].items()}
    # The longest p95 first.
    assert [w.p95_seconds for w in got.approval_waits] == sorted(
        (w.p95_seconds for w in got.approval_waits), reverse=True
    )
    assert {c.key or "": c.count for c in got.denials} == want["denials"]
    assert {c.key: c.count for c in got.budget_stops} == want["stops"]
    assert {
        t.tool: _rounded((t.calls, t.mean_seconds, t.max_seconds)) for t in got.slowest_tools
    } == {tool: _rounded(v) for tool, v in want["tools"].items()}
    assert got.slowest_tools[0].tool == "issue_refund"  # the slowest on average first
    assert got.runs == sum(want["status"].values())


def test_the_report_sums_by_tenant_and_by_day(store: Store, clock: FakeClock) -> None:
    seed(store, clock, n=12)
    figures = compute_stats(store)
    assert [(s.tenant, s.runs) for s in figures.by_tenant()] == [
        ("initech", 4),  # the costliest first: run i costs 0.01 * (i + 1)
        ("globex", 4),
        ("acme", 4),
    ]
    assert [(s.day, s.runs) for s in figures.by_day()] == [
        ("2027-01-15", 3),
        ("2027-01-16", 3),
        ("2027-01-17", 3),
        ("2027-01-18", 3),
    ]
    assert figures.cost_usd == pytest.approx(sum(0.01 * (i + 1) for i in range(12)))
    data = json.loads(json.dumps(figures.to_dict()))
    assert (data["runs"], data["by_tenant"][0]["tenant"]) == (12, "initech")
    assert data["denials"] == [
        {"rule_id": "no-wires", "count": 4},  # runs 0, 5 and 10: 1 + 2 + 1
        {"rule_id": None, "count": 3},  # the policy's default, once each
    ]


def test_an_empty_window_has_no_figures(store: Store, clock: FakeClock) -> None:
    seed(store, clock, n=6)
    figures = compute_stats(store, since=MIDNIGHT + 30 * DAY)
    assert (figures.runs, figures.spend, figures.approval_waits, figures.slowest_tools) == (
        0,
        [],
        [],
        [],
    )
    assert compute_stats(store, tenant="nobody").runs == 0


def test_the_queries_read_through_indexes(tmp_path: Path, clock: FakeClock) -> None:
    store = SqliteStore(tmp_path / "agentrt.db", clock=clock)
    seed(store, clock, n=6)
    query = StatsQuery(since=MIDNIGHT, tenant="acme")
    plans = []
    with store.db.read() as db:
        for sql, params in [
            ("SELECT * FROM runs r WHERE r.tenant = ? AND r.created_at >= ?", ["acme", MIDNIGHT]),
            ("SELECT * FROM runs r WHERE r.created_at >= ?", [MIDNIGHT]),
            (
                "SELECT * FROM runs r JOIN spans s ON s.trace_id = r.trace_id "
                "WHERE r.created_at >= ?",
                [MIDNIGHT],
            ),
        ]:
            rows = db.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
            plans.append(" | ".join(r["detail"] for r in rows))
        # Spend and budget stops, a message at a time: the runs that never went on by
        # their creation, every later message by its start, whatever the tenant has.
        turns, params = store._turns(query)
        rows = db.execute(f"EXPLAIN QUERY PLAN SELECT * FROM ({turns}) t", params).fetchall()
        plans.append(" | ".join(r["detail"] for r in rows))
    assert "USING INDEX runs_by_tenant_time" in plans[0]
    assert "USING INDEX runs_by_time" in plans[1]
    assert "USING INDEX spans_by_trace" in plans[2]
    assert "SEARCH r USING INDEX runs_by_tenant_time (tenant=? AND created_at>?)" in plans[3]
    assert "SEARCH m USING INDEX messages_by_start (started_at>?)" in plans[3]
    assert "SCAN" not in plans[3].replace("SCAN t", "")  # t: the rows read, summed
    assert query.tenant == "acme"
    store.close()


def test_bad_windows_are_refused_by_name(tmp_path: Path, clock: FakeClock) -> None:
    store = SqliteStore(tmp_path / "agentrt.db", clock=clock)
    with pytest.raises(ConfigError, match="tenant must be a tenant's name or None, got ''"):
        compute_stats(store, tenant="")
    with pytest.raises(ConfigError, match="since must be epoch seconds or None, got 'yesterday'"):
        compute_stats(store, since="yesterday")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="keeps no run analytics"):
        compute_stats(object())
    store.close()


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 21)]
    assert (percentile(values, 0.5), percentile(values, 0.95), percentile(values, 1.0)) == (
        10.0,
        19.0,
        20.0,
    )
    assert percentile([], 0.5) == 0.0
    assert percentile([7.0], 0.95) == 7.0


def test_denials_are_counted_by_rule_from_the_event_log() -> None:
    events: list[Any] = [
        {"type": "policy", "data": {"outcome": "deny", "rule_id": "r1"}},
        {"type": "policy", "data": {"outcome": "allow", "rule_id": "r2"}},
        {"type": "policy", "data": {"outcome": "deny", "rule_id": None}},
        {"type": "policy", "data": {"outcome": "deny", "rule_id": "r1"}},
        {"type": "observation", "data": {"kind": "denied"}},
    ]
    assert denials_of(events) == {"r1": 2, "": 1}


def _denied_run_desk(db: Path, clock: FakeClock) -> Any:
    model = ScriptedChatModel(
        [
            ai("Looking.", tool_call("lookup_order", {"order_id": "42"})),
            ai("Refunding nothing.", tool_call("issue_refund", {"order_id": "42", "amount": 0})),
            ai("Refunding less.", tool_call("issue_refund", {"order_id": "42", "amount": -5})),
            "I could not refund the order.",
        ]
    )
    return refund_desk.build_runtime(db, model=model, clock=clock, new_id=Ids())


def test_a_real_runs_denials_and_tool_calls_are_counted(db: Path, clock: FakeClock) -> None:
    with _denied_run_desk(db, clock) as rt:
        run = rt.start("Refund order 42", principal=OPERATOR)
        assert run.status is RunStatus.SUCCEEDED
        figures = rt.stats()
        assert figures.runs_by_status == {"succeeded": 1}
        assert figures.denials == [Count("not-positive", 2)]
        assert [t.tool for t in figures.slowest_tools] == ["lookup_order"]
        assert figures.slowest_tools[0].calls == 1
        assert figures.spend == [
            Spend(
                "acme",
                figures.spend[0].day,
                1,
                run.usage["input_tokens"],
                run.usage["output_tokens"],
                run.usage["cost_usd"],
            )
        ]
        assert rt.stats(since=clock() + 1).runs == 0
        assert isinstance(figures.slowest_tools[0], ToolTiming)


runner = CliRunner()


def test_agentrt_stats_prints_the_figures_and_json(db: Path, clock: FakeClock) -> None:
    from agentrt.cli import app

    clock.now = 1_000_000_000.0  # 2001: long before the window below, which ends now
    with _denied_run_desk(db, clock) as rt:
        rt.start("Refund order 42", principal=OPERATOR)
    result = runner.invoke(app, ["stats", "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["runs"], data["runs_by_status"], data["denials"]) == (
        1,
        {"succeeded": 1},
        [{"rule_id": "not-positive", "count": 2}],
    )
    assert data["by_tenant"][0]["tenant"] == "acme"

    result = runner.invoke(app, ["stats", "--db", str(db), "--tenant", "acme"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.startswith("every run of tenant 'acme': 1 run(s)")
    for heading in (
        "runs by status:",
        "cost and tokens by tenant:",
        "denials by rule:",
        "approval waits by rule and role:",
        "budget stops by limit:",
        "slowest tools (from the span store):",
    ):
        assert heading in out
    assert "not-positive  2" in out

    result = runner.invoke(app, ["stats", "--db", str(db), "--since", "7d", "--json"])
    assert (result.exit_code, json.loads(result.output)["runs"]) == (0, 0)

    result = runner.invoke(app, ["stats", "--db", str(db), "--since", "a week"])
    assert result.exit_code == 2
    assert "--since 'a week' is not an age; write a number and a unit" in result.output


# --- threads that go on -------------------------------------------------------------------

LEASE = LeaseRecord(owner="host:1:me", host="host", pid=1, expires_at=0.0)


def _spent(tokens: int, *, tool_calls: int = 0) -> Usage:
    return Usage(
        input_tokens=tokens,
        output_tokens=tokens // 10,
        cost_usd=tokens / 1000,
        tool_calls=tool_calls,
        steps=1,
        active_seconds=1.0,
    )


def _plus(a: Usage, b: Usage) -> Usage:
    return Usage(**{key: a[key] + b[key] for key in a})  # type: ignore[literal-required]


@dataclass
class Turn:
    """One message of a seeded thread: when it starts, what it spends, how it ends."""

    at: float
    tokens: int
    ends: str = "succeeded"
    limit: str | None = None


def converse(
    store: Store,
    clock: FakeClock,
    thread_id: str,
    tenant: str | None,
    turns: list[Turn],
    *,
    trace_id: str | None = None,
) -> None:
    """A thread whose message i starts at ``turns[i].at`` and spends its tokens there; each
    follow-up taken as the driver takes one (``opening_for``: the one before closed with
    what it spent, the thread's usage carried on)."""
    principal = {"id": "alice", "roles": [], "tenant": tenant, "scopes": []}
    total = empty_usage()
    for index, turn in enumerate(turns):
        clock.now = turn.at
        if index == 0:
            made = store.create_run(
                NewRun(
                    thread_id=thread_id,
                    goal="g",
                    principal=principal,
                    budget={},
                    usage=total,
                    trace_id=trace_id,
                )
            )
            assert made is not None
            lifecycle.move(store, thread_id, RunStatus.RUNNING, now=clock())
        else:
            store.add_message(
                NewMessage(thread_id=thread_id, text=f"m{index}", principal=principal)
            )
            record = store.get_run(thread_id)
            assert record is not None
            taking = opening_for(store, record, RunState(), index=index, lease=LEASE, now=clock())
            assert store.open_message(thread_id, taking) is not None
        total = _plus(total, _spent(turn.tokens))
        clock.now = turn.at + 60
        lifecycle.move(
            store,
            thread_id,
            RunStatus(turn.ends),
            now=clock(),
            usage=total,
            output="ok" if turn.ends == "succeeded" else None,
            budget_report={"limit": turn.limit, "message": "over"} if turn.limit else None,
        )


def _figures(spend: list[Spend]) -> list[tuple[str | None, str, int, int, int]]:
    return [(s.tenant, s.day, s.runs, s.input_tokens, s.output_tokens) for s in spend]


def test_agentrt_stats_windows_are_on_the_stores_clock(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL created_at is the server's time: a host whose own clock runs two days
    ahead still counts the run created a moment ago in the last hour."""
    import time

    from agentrt import AgentRuntime
    from agentrt.cli import app, common

    with AgentRuntime(ScriptedChatModel([ai("Done.")]), tools=[], db=postgres_url) as rt:
        rt.start("hello", principal=OPERATOR)

    opened = common.database_runtime

    def ahead(db: str) -> AgentRuntime:
        rt = opened(db)
        rt.clock = lambda: time.time() + 2 * 86400  # this host's time.time, two days fast
        return rt

    monkeypatch.setattr(common, "database_runtime", ahead)
    result = runner.invoke(app, ["stats", "--db", postgres_url, "--since", "1h", "--json"])
    assert (result.exit_code, json.loads(result.output)["runs"]) == (0, 1), result.output


def test_spend_is_counted_on_the_day_each_message_spent_it(store: Store, clock: FakeClock) -> None:
    d = [MIDNIGHT + n * DAY for n in range(32)]
    # Started a month ago; followed up on day 30, and on day 31 (still at work).
    converse(
        store,
        clock,
        "old",
        "acme",
        [Turn(d[0], 100), Turn(d[30], 500), Turn(d[31], 2000, ends="running")],
    )
    converse(store, clock, "new", "acme", [Turn(d[31] + 3600, 40)])  # never went on
    converse(store, clock, "other", "globex", [Turn(d[0], 7), Turn(d[31], 70)])
    converse(store, clock, "nobody's", None, [Turn(d[31], 9)])

    every = compute_stats(store)
    assert _figures(every.spend) == [
        ("acme", "2027-01-15", 1, 100, 10),
        ("globex", "2027-01-15", 1, 7, 0),
        ("acme", "2027-02-14", 0, 500, 50),  # a follow-up: no run was created that day
        (None, "2027-02-15", 1, 9, 0),
        ("acme", "2027-02-15", 1, 2040, 204),  # the current message's, and a new run's
        ("globex", "2027-02-15", 0, 70, 7),
    ]
    assert every.tokens == sum(t + t // 10 for t in (100, 500, 2000, 40, 7, 70, 9))
    assert every.cost_usd == pytest.approx(sum((100, 500, 2000, 40, 7, 70, 9)) / 1000)
    assert every.runs == sum(s.runs for s in every.spend) == 4

    # "What did acme spend in the last two days?": the follow-ups, and the new run.
    recent = compute_stats(store, since=d[30], tenant="acme")
    assert _figures(recent.spend) == [
        ("acme", "2027-02-14", 0, 500, 50),
        ("acme", "2027-02-15", 1, 2040, 204),
    ]
    assert (recent.runs, recent.runs_by_status) == (1, {"succeeded": 1})  # created then
    assert recent.cost_usd == pytest.approx(2.54)
    today = compute_stats(store, since=d[31])
    assert today.tokens == sum(t + t // 10 for t in (2000, 40, 70, 9))
    assert compute_stats(store, since=d[31] + DAY).spend == []


def test_a_budget_stop_stays_counted_once_the_thread_went_on(
    store: Store, clock: FakeClock
) -> None:
    d = [MIDNIGHT + n * DAY for n in range(3)]
    stopped = Turn(d[0], 10, ends="budget_exceeded", limit="max_tool_calls")
    converse(store, clock, "went-on", "acme", [stopped, Turn(d[1], 10)])
    converse(store, clock, "went-on-twice", "acme", [stopped, Turn(d[1], 10), Turn(d[2], 10)])
    # Stopped at its current message, after one that ended well.
    later = Turn(d[2], 10, ends="budget_exceeded", limit="max_cost_usd")
    converse(store, clock, "stopped-now", "acme", [Turn(d[0], 10), later])
    converse(store, clock, "never-went-on", "acme", [later])

    assert compute_stats(store).budget_stops == [
        Count("max_cost_usd", 2),
        Count("max_tool_calls", 2),
    ]
    assert compute_stats(store).runs_by_status == {"succeeded": 2, "budget_exceeded": 2}
    # A stop is counted in the window its message started in.
    assert compute_stats(store, since=d[1]).budget_stops == [Count("max_cost_usd", 2)]
    assert compute_stats(store, tenant="globex").budget_stops == []


def test_an_approval_superseded_after_its_decision_waited_until_its_decision(
    store: Store, clock: FakeClock
) -> None:
    clock.now = MIDNIGHT
    converse(store, clock, "t1", "acme", [Turn(MIDNIGHT, 10, ends="awaiting_approval")])
    gates = [
        _request("t1", f"0.{n}", "large-refunds", "refund-approver", "acme", at=clock())
        for n in range(2)
    ]
    for request in gates:
        store.put_approval(request)
    clock.advance(10)  # the approver decides the first after 10 s; the other stays pending
    assert store.decide_approval(
        gates[0].id, Decided(status=ApprovalStatus.APPROVED, by="bob", comment="checked")
    )
    clock.advance(1000)  # a message supersedes the gate much later
    sender = {"id": "alice", "roles": [], "tenant": "acme", "scopes": []}
    store.add_message(NewMessage(thread_id="t1", text="stop", principal=sender, interrupt=True))
    record = store.get_run("t1")
    assert record is not None
    taking = opening_for(store, record, RunState(), index=1, lease=LEASE, now=clock())
    taking = replace(taking, supersede=(gates[0].id,))  # given at the gate, never carried out
    assert store.open_message("t1", taking) is not None
    [wait] = compute_stats(store).approval_waits
    assert (wait.rule_id, wait.decided, wait.max_seconds) == ("large-refunds", 1, 10.0)


@pytest.fixture
def postgres_in_english(postgres_server: PostgresServer) -> Iterator[str]:
    """A database whose text sorts as people read it (ICU en-US: case and punctuation
    weigh least), as many servers' default is; the session's server sorts byte-wise."""
    url = postgres_server.url(f"agentrt_test_{os.getpid()}_english")
    postgres_server.drop_database(url)
    with psycopg.connect(postgres_server.admin_url, autocommit=True) as conn:
        conn.execute(
            f'CREATE DATABASE "{url.rsplit("/", 1)[1]}" TEMPLATE template0 '
            "LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
        )
    yield url
    postgres_server.drop_database(url)


@pytest.fixture(params=["sqlite", "postgres", "postgres-english"])
def any_sorting_store(request: pytest.FixtureRequest, clock: FakeClock) -> Iterator[Store]:
    if request.param == "postgres-english":
        s: Store = PostgresStore(request.getfixturevalue("postgres_in_english"), clock=clock)
    else:
        s = BACKENDS[request.param](request, clock)
    yield s
    s.close()


def test_rows_come_in_the_same_order_on_every_backend(
    any_sorting_store: Store, clock: FakeClock
) -> None:
    # Ties broken by key: text byte-wise (capitals first, as SQLite compares), a missing
    # tenant or limit first; whatever the database's own collation.
    store = any_sorting_store
    tenants = ["beta", "acme", None, "Acme", "_x"]
    for i, tenant in enumerate(tenants):
        stop = ("max_steps", None, "max_cost_usd", "max_steps", None)[i]
        converse(
            store,
            clock,
            f"t{i}",
            tenant,
            [Turn(MIDNIGHT + i, 10, ends="budget_exceeded", limit=stop)],
            trace_id=f"{i + 1:032x}",
        )
        clock.now = MIDNIGHT + i
        store.change_run(
            f"t{i}",
            RunChange(
                from_status=RunStatus.BUDGET_EXCEEDED,
                status=RunStatus.BUDGET_EXCEEDED,
                denials={("b-rule", "B-rule", "a_rule", "A-rule", "")[i]: 1},
            ),
        )
    store.write_spans(
        [
            _span(f"{1:032x}", f"{k:016x}", f"execute_tool {tool}", MIDNIGHT, 1.0)
            for k, tool in enumerate(["zap", "Zap", "alpha", "_lift"])
        ]
    )
    figures = compute_stats(store)
    assert [s.tenant for s in figures.spend] == [None, "Acme", "_x", "acme", "beta"]
    assert figures.budget_stops == [
        Count(None, 2),
        Count("max_steps", 2),
        Count("max_cost_usd", 1),
    ]
    assert [c.key for c in figures.denials] == [None, "A-rule", "B-rule", "a_rule", "b-rule"]
    assert [s.tenant for s in figures.by_tenant()] == [None, "Acme", "_x", "acme", "beta"]
    assert [t.tool for t in figures.slowest_tools] == ["Zap", "_lift", "alpha", "zap"]
    assert figures.runs_by_status == {"budget_exceeded": 5}


def test_this_weeks_spend_counts_a_follow_up_sent_this_week_on_an_old_thread(
    db: Path, clock: FakeClock
) -> None:
    with threads_app.build_runtime(db, clock=clock, new_id=Ids()) as rt:
        first = rt.start("note 2", principal=threads_app.OPS)  # a thread started a month ago
        clock.advance(30 * DAY)
        before = rt.get(first.thread_id).usage
        rt.send(first.thread_id, "note 3", principal=threads_app.OPS)  # this week's work
        after = rt.get(first.thread_id).usage
        spent = tokens_used(after) - tokens_used(before)
        assert spent > 0
        week = rt.stats(since=clock() - 7 * DAY, tenant="acme")
        assert (week.tokens, week.runs) == (spent, 0)  # spent this week; created before
        assert week.cost_usd == pytest.approx(after["cost_usd"] - before["cost_usd"])
        assert rt.stats().tokens == tokens_used(after)  # every day: the thread's whole spend
        [follow_up] = [m for m in rt.messages(first.thread_id) if m.index == 1]
        assert tokens_used(follow_up.usage) == spent  # as rt.messages tells it


def test_a_budget_stop_is_counted_after_the_thread_went_on_and_was_answered(
    db: Path, clock: FakeClock
) -> None:
    with threads_app.build_runtime(db, clock=clock, new_id=Ids()) as rt:
        stopped = rt.start("note 3", principal=threads_app.OPS, budget=Budget(max_tool_calls=1))
        assert stopped.status is RunStatus.BUDGET_EXCEEDED
        rt.send(stopped.thread_id, "thanks", principal=threads_app.OPS)  # answered at once
        assert [m.status for m in rt.messages(stopped.thread_id)] == [
            "budget_exceeded",
            "succeeded",
        ]
        figures = rt.stats()
        assert figures.budget_stops == [Count("max_tool_calls", 1)]
        assert figures.runs_by_status == {"succeeded": 1}  # how the thread stands now
        assert sum(p["value"] for p in rt.metrics()["agentrt.budget.stops"]) == 1
