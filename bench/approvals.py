"""Review queue benchmark: one page of rt.approvals() over a big file, against one run's row.

The file holds 100,000 runs, each with one approval request; 10,000 of them are pending
(spread over 10 tenants and 4 required roles), the rest decided. Rows are seeded straight
through the store's tables, in one transaction, because running 100k graphs would measure
the planner, not the queue.

A page is what `agentrt approvals` asks for: 50 pending requests, oldest first, continuing
from the previous page's cursor. The anchor, measured in the same run on the same file, is
reading one run's row by thread id (``Store.get_run``): a primary-key lookup. A page that
costs a small constant multiple of that, the same on the first page and the last, is
keyset pagination working; an OFFSET or a sort would grow with the depth.
"""

from __future__ import annotations

import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from harness import QUICK

from agentrt import AgentRuntime
from agentrt.digests import approval_id, args_digest
from agentrt.testing import ScriptedChatModel

__all__ = ["PAGE", "PENDING", "RUNS", "main", "seed"]

RUNS = 2_000 if QUICK else 100_000
PENDING = 200 if QUICK else 10_000
PAGE = 50
TENANTS = [f"tenant-{i}" for i in range(10)]
ROLES = ["payer", "refund-approver", "treasurer", "support-lead"]
T0 = 1_800_000_000.0


def seed(rt: AgentRuntime) -> list[str]:
    """Write RUNS runs with one request each, PENDING of them pending; return thread ids."""
    rng = random.Random(7)
    pending = set(rng.sample(range(RUNS), PENDING))
    runs, approvals = [], []
    usage = json.dumps({"steps": 1})
    for i in range(RUNS):
        thread = f"run-{i:06d}"
        tenant = TENANTS[i % len(TENANTS)]
        at = T0 + i
        waiting = i in pending
        status = "awaiting_approval" if waiting else "succeeded"
        principal = json.dumps({"id": "olga", "tenant": tenant})
        runs.append((thread, status, "pay", principal, tenant, "{}", usage, at, at))
        args = {"who": f"payee-{i}", "cents": 5000 + i, "card": "4111-1111"}
        approvals.append(
            (
                approval_id(thread, "0.0", "action"),
                thread,
                "0.0",
                "action",
                "pay",
                json.dumps(args),
                args_digest(args),
                "large-payments",
                "Payments over $50 need a person.",
                ROLES[i % len(ROLES)],
                1,
                "olga",
                tenant,
                at,
                at + 7 * 86400,
                "pending" if waiting else "approved",
                None if waiting else "bob",
                None if waiting else at + 60,
            )
        )
    # Seeded straight into the file through its transaction API: a million requests
    # through the runtime would take the benchmark longer than what it measures.
    database = rt.store.db  # type: ignore[attr-defined]
    with database.tx() as db:
        db.executemany(
            "INSERT INTO runs (thread_id, status, goal, principal, tenant, budget, usage, "
            "created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?)",
            runs,
        )
        db.executemany(
            "INSERT INTO approvals (id, thread_id, step_id, kind, tool, args, args_digest, "
            "rule_id, reason, required_role, four_eyes, requested_by, tenant, requested_at, "
            "expires_at, status, decided_by, decided_at) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            approvals,
        )
    with database.tx() as db:
        db.execute("ANALYZE")
    return [r[0] for r in runs]


def _per_call_ms(fn: object, calls: int) -> float:
    """Median over 5 rounds of the mean ms per call."""
    assert callable(fn)
    rounds = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(calls):
            fn()
        rounds.append((time.perf_counter() - started) * 1000 / calls)
    return statistics.median(rounds)


def _walk(rt: AgentRuntime, **filters: str) -> tuple[float, float, float, int]:
    """Walk every page of a queue: ms of the first page, the median page, the last; pages."""
    times, cursor = [], None
    while True:
        started = time.perf_counter()
        page = rt.approvals(limit=PAGE, cursor=cursor, **filters)
        times.append((time.perf_counter() - started) * 1000)
        cursor = page.next_cursor
        if cursor is None:
            break
    return times[0], statistics.median(times), times[-1], len(times)


def main() -> str:
    """Seed the file, time the queue and the anchor, print and return the results."""
    with tempfile.TemporaryDirectory() as tmp:
        rt = AgentRuntime(ScriptedChatModel([]), db=Path(tmp) / "queue.db")
        try:
            started = time.perf_counter()
            threads = seed(rt)
            print(f"seeded {RUNS} runs, {PENDING} pending in {time.perf_counter() - started:.1f} s")
            rng = random.Random(11)
            row_ms = _per_call_ms(lambda: rt.store.get_run(rng.choice(threads)), 2000)
            page_ms = _per_call_ms(lambda: rt.approvals(limit=PAGE), 200)
            rows = [("one run's row (`Store.get_run`), the anchor", row_ms, None, None, 1)]
            rows.append(("first page of the whole queue", page_ms, None, None, 1))
            for label, filters in (
                ("every page of the whole queue", {}),
                ("every page of one tenant's queue", {"tenant": TENANTS[3]}),
                ("every page of one role's queue", {"role": ROLES[1]}),
            ):
                first, median, last, pages = _walk(rt, **filters)
                rows.append((label, median, first, last, pages))
        finally:
            rt.close()

    lines = [
        "### Review queue: one page against one run's row",
        "",
        f"{RUNS:,} runs with one approval request each, {PENDING:,} pending (10 tenants, "
        f"4 roles); a page is {PAGE} pending requests, oldest first, after the previous "
        "page's cursor. ms are medians (5 rounds of 200 calls for the first page, 2000 for "
        "the anchor; every page once for a walk).",
        "",
        "| what | pages | ms/page (median) | first page ms | last page ms | x one row |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, ms, first, last, pages in rows:
        lines.append(
            f"| {label} | {pages} | {ms:.3f} | "
            + (f"{first:.3f} | {last:.3f}" if first is not None and last is not None else "- | -")
            + f" | {ms / row_ms:.0f}x |"
        )
    markdown = "\n".join(lines)
    print(markdown)
    return markdown
