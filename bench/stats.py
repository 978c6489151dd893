"""Run analytics benchmark: `agentrt stats` (``rt.stats()``) over a file of 10,000 runs.

The file holds RUNS finished runs over 30 days and 10 tenants, each with its usage, three
tool.call spans in the span store, every third with a decided approval request, every
tenth with denials and every twentieth stopped by a budget. Rows are seeded straight
through the store's tables, in one transaction, as the review queue benchmark does:
running 10k graphs would measure the planner, not the queries.

The target is under a second for the whole report. The anchor, measured in the same run
on the same file, is listing the newest RUNS runs (``rt.runs(limit=RUNS)``): reading each
run's row once, which any report over every run must at least match.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

from harness import QUICK

from agentrt import AgentRuntime
from agentrt.digests import approval_id, args_digest
from agentrt.testing import ScriptedChatModel

__all__ = ["RUNS", "main", "seed"]

RUNS = 500 if QUICK else 10_000
TENANTS = [f"tenant-{i}" for i in range(10)]
TOOLS = ["lookup_order", "issue_refund", "add_order_note", "lookup_customer"]
T0 = 1_800_000_000.0
DAY = 86400.0


def seed(rt: AgentRuntime) -> None:
    """Write RUNS finished runs with their approvals and tool spans."""
    runs, approvals, spans = [], [], []
    for i in range(RUNS):
        thread, trace = f"run-{i:06d}", f"{i + 1:032x}"
        tenant = TENANTS[i % len(TENANTS)]
        at = T0 + (i % 30) * DAY + i
        usage = json.dumps(
            {
                "input_tokens": 900 + i % 100,
                "output_tokens": 80 + i % 10,
                "cost_usd": 0.002,
                "tool_calls": 3,
                "steps": 4,
                "active_seconds": 2.0,
            }
        )
        stopped = i % 20 == 0
        status = "budget_exceeded" if stopped else ("failed" if i % 7 == 0 else "succeeded")
        report = json.dumps({"limit": "max_cost_usd"}) if stopped else None
        denials = json.dumps({"no-wires": 1, "": i % 2}) if i % 10 == 0 else None
        principal = json.dumps({"id": "olga", "tenant": tenant})
        runs.append(
            (
                thread,
                status,
                "refund",
                principal,
                tenant,
                "{}",
                usage,
                trace,
                at,
                at,
                report,
                denials,
            )
        )
        if i % 3 == 0:
            args = {"order_id": str(i), "amount": 80.0}
            approvals.append(
                (
                    approval_id(thread, "0.0", "action"),
                    thread,
                    "0.0",
                    "action",
                    "issue_refund",
                    json.dumps(args),
                    args_digest(args),
                    "large-refunds",
                    "over $50",
                    "refund-approver",
                    0,
                    "olga",
                    tenant,
                    at,
                    None,
                    "approved",
                    "bob",
                    at + 30 + i % 600,
                )
            )
        for k in range(3):
            start = int((at + k) * 1e9)
            spans.append(
                (
                    f"{i:08x}{k:08x}",
                    trace,
                    None,
                    None,
                    f"execute_tool {TOOLS[(i + k) % 4]}",
                    start,
                    start + 1_000_000 * (1 + (i + k) % 50),
                    "OK",
                    "{}",
                    "[]",
                    "[]",
                )
            )
    database = rt.store.db  # type: ignore[attr-defined]
    with database.tx() as db:
        db.executemany(
            "INSERT INTO runs (thread_id, status, goal, principal, tenant, budget, usage, "
            "trace_id, created_at, updated_at, budget_report, denials) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            runs,
        )
        db.executemany(
            "INSERT INTO approvals (id, thread_id, step_id, kind, tool, args, args_digest, "
            "rule_id, reason, required_role, four_eyes, requested_by, tenant, requested_at, "
            "expires_at, status, decided_by, decided_at) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            approvals,
        )
        db.executemany(
            "INSERT INTO spans (span_id, trace_id, parent_id, thread_id, name, start_ns, "
            "end_ns, status, attributes, events, links) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            spans,
        )
    with database.tx() as db:
        db.execute("ANALYZE")


def _ms(fn: object, rounds: int = 5) -> float:
    """Median ms of ``rounds`` calls."""
    assert callable(fn)
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> str:
    """Seed the file, time the report and the anchor, print and return the results."""
    with tempfile.TemporaryDirectory() as tmp:
        rt = AgentRuntime(ScriptedChatModel([]), db=Path(tmp) / "stats.db")
        try:
            started = time.perf_counter()
            seed(rt)
            print(f"seeded {RUNS} runs in {time.perf_counter() - started:.1f} s")
            anchor = _ms(lambda: rt.runs(limit=RUNS))
            assert rt.stats().runs == RUNS
            rows = [
                ("every run", _ms(rt.stats)),
                ("the last 7 days (`--since 7d`)", _ms(lambda: rt.stats(since=T0 + 23 * DAY))),
                ("one tenant (`--tenant`)", _ms(lambda: rt.stats(tenant=TENANTS[3]))),
            ]
        finally:
            rt.close()
    lines = [
        f"### Run analytics: `agentrt stats` over {RUNS:,} runs",
        "",
        f"{RUNS:,} finished runs over 30 days and 10 tenants, 3 tool spans each, a decided "
        "approval every third, denials every tenth, a budget stop every twentieth. ms are "
        "medians of 5 calls of the whole report (counts by status, spend by tenant and "
        "day, approval waits, denials, budget stops, slowest tools). Target: under 1000 ms. "
        f"Anchor: listing the {RUNS:,} runs (`rt.runs(limit={RUNS})`), {anchor:.1f} ms.",
        "",
        "| report over | ms (median) | x listing every run | under 1 s |",
        "|---|---:|---:|---|",
    ]
    for label, ms in rows:
        lines.append(
            f"| {label} | {ms:.1f} | {ms / anchor:.2f}x | {'yes' if ms < 1000 else 'NO'} |"
        )
    markdown = "\n".join(lines)
    print(markdown)
    return markdown


if __name__ == "__main__":
    main()
