"""Crash chaos: a workflow of four side effects, its driver killed with SIGKILL at seeded points.

The workflow (one run): reserve stock (write, idempotent), charge the card (irreversible,
idempotent, prepared and verified first), then in one turn email the customer and notify
the warehouse (both write, NOT idempotent: the systems they call have no idempotency key).
Every effect lands in a separate SQLite file standing for the outside world.

The driver is a single-threaded process that has imported everything once; each attempt
to move a run forward is a forked child that arms a kill point chosen from the seed: at
its N-th point (before or after each store write, checkpoint write, tool side effect and
model call) it sends itself SIGKILL, a real kill that runs no cleanup. The driver then
plays the operator: a run waiting at a reconcile gate is settled by looking in the sink
for the effect's key (resolve with what the sink holds, or retry), by a forked child that
may be killed too. At the end it checks the sink: zero duplicate effects, zero lost
effects, and every repeated attempt of a non-idempotent call authorised by a person.

    python -m tests.chaos_app --min-kills 500 --seed 1 --dir /tmp/chaos
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from langgraph.checkpoint.sqlite import SqliteSaver

from agentrt import AgentRuntime, Decision, Policy, Principal, ToolContext, tool
from agentrt.store.sqlite import SqliteStore
from agentrt.testing import ScriptedChatModel, ai, tool_call
from agentrt.tools import effect_key
from agentrt.tools.ledger import CRASH_LIMIT

OPERATOR = Principal("ops", roles=["operator"], tenant="acme")
CLERK = Principal("clerk", roles=["operator"], tenant="acme")
GOAL = "reserve, charge, email and notify"
EFFECTS = ("reserve_stock", "charge_card", "send_email", "notify_warehouse")
NOT_IDEMPOTENT = ("send_email", "notify_warehouse")


# kill points ------------------------------------------------------------------------------

_armed: dict[str, int] = {"at": 0, "seen": 0}


def point() -> None:
    """One place where the process may die; the armed one kills it, for real."""
    _armed["seen"] += 1
    if _armed["seen"] == _armed["at"]:
        os.kill(os.getpid(), signal.SIGKILL)


def _around(owner: Any, name: str) -> None:
    original: Callable[..., Any] = getattr(owner, name)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        point()
        result = original(*args, **kwargs)
        point()
        return result

    setattr(owner, name, wrapped)


def arm(at: int) -> None:
    """Count kill points in this process; die at the ``at``-th (0: never)."""
    _armed.update(at=at, seen=0)
    for name in ("start_effect", "finish_effect", "settle_effect", "change_run", "put_approval"):
        _around(SqliteStore, name)
    for name in ("put", "put_writes"):
        _around(SqliteSaver, name)


# the outside world ------------------------------------------------------------------------


def sink_path(db: str | Path) -> Path:
    """The outside world's file: CHAOS_SINK, else beside a SQLite database."""
    given = os.environ.get("CHAOS_SINK")
    return Path(given) if given else Path(db).with_name("sink.db")


# Seconds each side effect and each model answer take (CHAOS_LATENCY): under worker chaos,
# where kills come from outside at random moments, time inside the calls is what puts
# kills there.
LATENCY = float(os.environ.get("CHAOS_LATENCY", "0"))


def _sink(db: str | Path) -> sqlite3.Connection:
    conn = sqlite3.connect(sink_path(db), isolation_level=None, timeout=30)
    for table in ("reservations", "charges"):  # these systems dedupe on the key
        conn.execute(f"CREATE TABLE IF NOT EXISTS {table} (key TEXT PRIMARY KEY, thread TEXT)")
    for table in ("emails", "notices"):  # these do not: every call is one more effect
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {table} "
            "(n INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT, thread TEXT)"
        )
    conn.execute("CREATE TABLE IF NOT EXISTS calls (n INTEGER PRIMARY KEY, tool TEXT, key TEXT)")
    return conn


def _effect(db: str | Path, tool_name: str, table: str, ctx: ToolContext, dedupe: bool) -> int:
    point()
    with _sink(db) as conn:
        conn.execute(
            "INSERT INTO calls (tool, key) VALUES (?, ?)", (tool_name, ctx.idempotency_key)
        )
    if LATENCY:
        time.sleep(LATENCY)  # the call is on its way; the effect has not happened yet
    with _sink(db) as conn:
        verb = "INSERT OR IGNORE" if dedupe else "INSERT"
        cur = conn.execute(
            f"{verb} INTO {table} (key, thread) VALUES (?, ?)", (ctx.idempotency_key, ctx.thread_id)
        )
        n = int(cur.lastrowid or 0)
    point()
    return n


def build_runtime(db: str | Path = "agentrt.db") -> AgentRuntime:
    @tool(effect="write", idempotent=True)
    def reserve_stock(sku: str, qty: int, ctx: ToolContext) -> dict[str, Any]:
        """Reserve stock; the warehouse dedupes on the idempotency key."""
        _effect(db, "reserve_stock", "reservations", ctx, dedupe=True)
        return {"reserved": sku, "qty": qty}

    def preview_charge(who: str, cents: int) -> dict[str, Any]:
        return {"would_charge": who, "cents": cents}

    @tool(
        effect="irreversible",
        idempotent=True,
        prepare=preview_charge,
        verify=lambda args, result: result.get("cents") == args["cents"],
    )
    def charge_card(who: str, cents: int, ctx: ToolContext) -> dict[str, Any]:
        """Charge the card; the payment system dedupes on the idempotency key."""
        _effect(db, "charge_card", "charges", ctx, dedupe=True)
        return {"charged": who, "cents": cents}

    @tool(effect="write")
    def send_email(to: str, ctx: ToolContext) -> dict[str, Any]:
        """Send the receipt; the mail server has no idempotency key."""
        return {"to": to, "message": _effect(db, "send_email", "emails", ctx, dedupe=False)}

    @tool(effect="write")
    def notify_warehouse(sku: str, ctx: ToolContext) -> dict[str, Any]:
        """Tell the warehouse to ship; its API has no idempotency key."""
        return {"sku": sku, "notice": _effect(db, "notify_warehouse", "notices", ctx, dedupe=False)}

    def turn(*calls: Any) -> Callable[[Any], Any]:
        def respond(messages: Any) -> Any:
            point()
            return ai("", *calls)

        return respond

    model = ScriptedChatModel(
        [
            turn(tool_call("reserve_stock", {"sku": "A1", "qty": 2})),
            turn(tool_call("charge_card", {"who": "al", "cents": 500})),
            turn(
                tool_call("send_email", {"to": "al"}),
                tool_call("notify_warehouse", {"sku": "A1"}),
            ),
            "all done",
        ],
        latency=LATENCY,
    )
    tools = [reserve_stock, charge_card, send_email, notify_warehouse]
    lease_ttl = float(os.environ.get("CHAOS_LEASE_TTL", "30"))
    return AgentRuntime(model, tools=tools, policy=Policy.allow_all(), db=db, lease_ttl=lease_ttl)


# the driver -------------------------------------------------------------------------------


def _child(db: Path, thread: str, kill_at: int, decision: dict[str, Any] | None) -> None:
    """Runs in a forked child: move the run one go forward, maybe dying on the way."""
    try:
        arm(kill_at)
        with build_runtime(db) as rt:
            if decision is not None:
                rt.decide(decision)
            elif rt.store.get_run(thread) is None:
                rt.start(GOAL, principal=OPERATOR, thread_id=thread)
            else:
                rt.resume(thread)
    except BaseException:
        traceback.print_exc()
        os._exit(1)
    os._exit(0)


def _fork(db: Path, thread: str, kill_at: int, decision: dict[str, Any] | None) -> int:
    """Run one child; return its wait status."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        _child(db, thread, kill_at, decision)
    _, status = os.waitpid(pid, 0)
    return status


def _query(path: Path, sql: str, *params: Any) -> list[Any]:
    conn = sqlite3.connect(path, timeout=30)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def _settle(db: Path, thread: str) -> dict[str, Any] | None:
    """The operator at a reconcile gate: look in the target system, then decide."""
    pending = _query(
        db,
        "SELECT id, step_id, tool, args FROM approvals WHERE thread_id=? AND status='pending'",
        thread,
    )
    if not pending:
        return None
    rid, step, tool_name, args_text = pending[0]
    if tool_name not in NOT_IDEMPOTENT:
        # The crash-loop guard: an idempotent call whose process died CRASH_LIMIT times.
        # The system dedupes on the key, so calling again is safe: the operator says so.
        return Decision.retry(rid, by=CLERK).model_dump(mode="json")
    key = effect_key(thread, step, tool_name, json.loads(args_text))
    table, field = {"send_email": ("emails", "to"), "notify_warehouse": ("notices", "sku")}[
        tool_name
    ]
    found = (
        _query(sink_path(db), f"SELECT n FROM {table} WHERE key=?", key)
        if sink_path(db).exists()
        else []
    )
    if found:
        args = json.loads(args_text)
        number = "message" if tool_name == "send_email" else "notice"
        result = {field: args[field], number: found[0][0]}
        return Decision.resolve(rid, result=result, by=CLERK).model_dump(mode="json")
    return Decision.retry(rid, by=CLERK).model_dump(mode="json")


def drive(
    workdir: Path, *, min_kills: int, seed: int, max_kills_per_run: int = 6
) -> dict[str, Any]:
    """Start runs and kill their processes until ``min_kills`` kills; check the sink."""
    rng = random.Random(seed)
    db = workdir / "agentrt.db"
    counts = {"runs": 0, "kills": 0, "resumes": 0, "reconciles": 0, "children": 0}
    failures: list[str] = []
    points = _points_in_one_run(workdir / "probe")
    while counts["kills"] < min_kills:
        thread = f"run-{counts['runs']}"
        counts["runs"] += 1
        killed_here = 0
        for _ in range(100):
            rows = (
                _query(db, "SELECT status FROM runs WHERE thread_id=?", thread)
                if db.exists()
                else []
            )
            status = rows[0][0] if rows else None
            if status in ("succeeded", "failed", "cancelled", "budget_exceeded"):
                break
            decision = _settle(db, thread) if status == "awaiting_approval" else None
            if decision is not None:
                counts["reconciles"] += 1
            elif status is not None:
                counts["resumes"] += 1
            kill_at = rng.randint(1, points) if killed_here < max_kills_per_run else 0
            wait = _fork(db, thread, kill_at, decision)
            counts["children"] += 1
            if os.WIFSIGNALED(wait) and os.WTERMSIG(wait) == signal.SIGKILL:
                counts["kills"] += 1
                killed_here += 1
            elif not (os.WIFEXITED(wait) and os.WEXITSTATUS(wait) == 0):
                failures.append(f"{thread}: child ended with wait status {wait}")
                break
        else:
            failures.append(f"{thread}: did not finish")
        if status != "succeeded":
            failures.append(f"{thread}: ended {status!r}")
    counts.update(_audit(db, failures))
    return {**counts, "failures": failures, "points_per_run": points}


def _points_in_one_run(workdir: Path) -> int:
    """How many kill points a whole run passes, measured once without a kill."""
    workdir.mkdir(parents=True, exist_ok=True)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            arm(0)
            with build_runtime(workdir / "agentrt.db") as rt:
                rt.start(GOAL, principal=OPERATOR, thread_id="probe")
            os.write(write, str(_armed["seen"]).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        seen = int(f.read() or 0)
    os.waitpid(pid, 0)
    return seen


def _audit(db: Path, failures: list[str]) -> dict[str, int]:
    """Zero duplicates, zero lost, and every repeat of a non-idempotent call authorised."""
    sink = sink_path(db)
    duplicates = lost = 0
    threads = [r[0] for r in _query(db, "SELECT thread_id FROM runs")]
    for table, tool_name in (
        ("reservations", "reserve_stock"),
        ("charges", "charge_card"),
        ("emails", "send_email"),
        ("notices", "notify_warehouse"),
    ):
        for thread in threads:
            rows = _query(sink, f"SELECT key FROM {table} WHERE thread=?", thread)
            if not rows:
                lost += 1
                failures.append(f"{thread}: no {tool_name} effect")
            if len(rows) > 1:
                duplicates += len(rows) - 1
                failures.append(f"{thread}: {len(rows)} {tool_name} effects")
    retried = dict(
        _query(
            db,
            "SELECT thread_id || ' ' || step_id, count(*) FROM approvals "
            "WHERE kind='reconcile' AND status='retried' GROUP BY thread_id, step_id",
        )
    )
    for thread, step, tool_name, attempts in _query(
        db, "SELECT thread_id, step_id, tool, attempts FROM effects"
    ):
        if tool_name in NOT_IDEMPOTENT and attempts - 1 != retried.get(f"{thread} {step}", 0):
            failures.append(
                f"{thread}: {tool_name} ran {attempts} times with "
                f"{retried.get(f'{thread} {step}', 0)} retries authorised"
            )
    for thread, tool_name, step in _query(
        db, "SELECT thread_id, tool, step_id FROM approvals WHERE kind='reconcile'"
    ):
        started = _query(
            db, "SELECT attempts FROM effects WHERE thread_id=? AND step_id=?", thread, step
        )
        crash_loop = bool(started) and started[0][0] >= CRASH_LIMIT
        if tool_name not in NOT_IDEMPOTENT and not crash_loop:
            failures.append(f"{thread}: idempotent {tool_name} was sent to reconcile")
    resolved = _query(
        db, "SELECT count(*) FROM approvals WHERE kind='reconcile' AND status='resolved'"
    )[0][0]
    repeats = _query(
        sink,
        "SELECT count(*) - count(DISTINCT key) FROM calls "
        "WHERE tool IN ('reserve_stock', 'charge_card')",
    )[0][0]
    return {
        "duplicates": duplicates,
        "lost": lost,
        "resolved": resolved,
        "retried": sum(retried.values()),
        "idempotent_recalls": repeats,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-kills", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dir", type=Path, default=None)
    opts = parser.parse_args()
    workdir = opts.dir or Path(tempfile.mkdtemp(prefix="agentrt-chaos-"))
    workdir.mkdir(parents=True, exist_ok=True)
    report = drive(workdir, min_kills=opts.min_kills, seed=opts.seed)
    print(
        " ".join(
            f"{k}={report[k]}"
            for k in ("runs", "kills", "resumes", "reconciles", "resolved", "retried")
        )
        + f" duplicates={report['duplicates']} lost={report['lost']}"
        + f" idempotent_recalls={report['idempotent_recalls']} failures={len(report['failures'])}"
    )
    print(json.dumps(report))
    sys.exit(1 if report["failures"] else 0)


if __name__ == "__main__":
    main()
