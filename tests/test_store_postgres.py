"""The PostgreSQL store beyond the conformance suite: what is Postgres's own.

Its schema and version guard, the URL (a hidden password, the pool's settings), the
indexes the review queue reads, conditional writes raced across connections, a COMMIT
whose answer was lost, a server that restarts under a run, and whole runs of the demo
through AgentRuntime and the CLI on a ``postgresql://`` URL. The server is the session's
throwaway one (tests/postgres.py).
"""

from __future__ import annotations

import asyncio
import random
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from typer.testing import CliRunner

from agentrt import AgentRuntime, ConfigError, Decision, Principal, RunStatus, tool
from agentrt.approvals import ApprovalRequest, ApprovalStatus
from agentrt.approvals.model import ApprovalQuery, Decided
from agentrt.budget import empty_usage
from agentrt.cli import app as cli_app
from agentrt.digests import approval_id, args_digest
from agentrt.examples import refund_desk
from agentrt.examples.refund_desk import APPROVER, GOAL, OPERATOR
from agentrt.records import AppIdentity, LeaseRecord, NewMessage, NewRun
from agentrt.runs import lifecycle
from agentrt.runs.stats import compute_stats
from agentrt.service import issue_key
from agentrt.store import open_store
from agentrt.store.analytics import Count
from agentrt.store.postgres import DatabaseUnavailable, PoolSettings, PostgresStore
from agentrt.store.postgres import database as pg_database
from agentrt.store.postgres import leases as pg_leases
from agentrt.store.postgres import listen as pg_listen
from agentrt.store.postgres.approvals import queue_sql
from agentrt.store.postgres.database import Database, hidden_password
from agentrt.store.postgres.schema import MIGRATIONS, SCHEMA_VERSION
from agentrt.testing import ScriptedChatModel, ai, tool_call
from tests import crashy_app
from tests.conftest import FakeClock, Ids
from tests.postgres import PostgresServer, SilentRelay, _free_port
from tests.serving import serve, wait_for

ALICE = {"id": "alice", "roles": [], "tenant": "acme", "scopes": []}


@pytest.fixture
def store(postgres_url: str) -> Iterator[PostgresStore]:
    s = PostgresStore(postgres_url, clock=FakeClock(1000.0))
    yield s
    s.close()


def sql(url: str, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """A statement on a connection of the test's own, outside the store."""
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(statement, params or None)
        return cur.fetchall() if cur.description else []


def new_run(store: PostgresStore, thread_id: str = "t1") -> Any:
    return store.create_run(
        NewRun(thread_id=thread_id, goal="g", principal=ALICE, budget={}, usage=empty_usage())
    )


def request(thread_id: str, step_id: str, **extra: Any) -> ApprovalRequest:
    args = {"order_id": "7", "amount": 80.0}
    fields: dict[str, Any] = {
        "id": approval_id(thread_id, step_id, "action"),
        "thread_id": thread_id,
        "step_id": step_id,
        "kind": "action",
        "tool": "issue_refund",
        "args": args,
        "args_digest": args_digest(args),
        "reason": "large refund",
        "required_role": "refund-approver",
        "requested_by": "alice",
        "tenant": "acme",
        "requested_at": 1000.0,
    }
    return ApprovalRequest(**(fields | extra))


# the schema and the URL ------------------------------------------------------------------


def test_a_new_database_gets_both_sets_of_tables_and_its_version(
    empty_postgres_url: str,
) -> None:
    url = empty_postgres_url
    store = PostgresStore(url)
    try:
        tables = {
            name
            for (name,) in sql(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
        assert tables == {
            "agentrt_meta",
            "runs",
            "approvals",
            "effects",
            "model_calls",
            "api_keys",
            "spans",
            "outbox",
            "webhook_cursors",
            "webhook_deliveries",
            "artifact_blobs",
            "artifacts",
            "messages",
            # LangGraph's own
            "checkpoints",
            "checkpoint_blobs",
            "checkpoint_writes",
            "checkpoint_migrations",
            "store",  # the long-term store: runs' memory across threads
            "store_migrations",
        }
        assert store.schema_version == SCHEMA_VERSION == 12
        salt = store.redaction_salt()
        assert len(salt) == 32
        assert store.redaction_salt() == salt  # made once
    finally:
        store.close()
    again = PostgresStore(url)  # reopening migrates nothing and keeps the salt
    try:
        assert (again.schema_version, again.redaction_salt()) == (SCHEMA_VERSION, salt)
    finally:
        again.close()


def test_a_version_7_database_migrates_and_keeps_its_threads(empty_postgres_url: str) -> None:
    url = empty_postgres_url
    with psycopg.connect(url, autocommit=True) as conn:
        for step in MIGRATIONS[:7]:
            conn.execute(step, prepare=False)
        conn.execute(
            "CREATE TABLE agentrt_meta (key TEXT PRIMARY KEY, value TEXT);"
            "INSERT INTO agentrt_meta VALUES ('schema_version', '7');"
            "INSERT INTO runs (thread_id, status, goal, principal, tenant, budget, usage, "
            "created_at, updated_at, message) VALUES ('t', 'succeeded', 'g', '{\"id\": \"p\"}', "
            "'acme', '{}', '{\"input_tokens\": 30, \"output_tokens\": 3, \"cost_usd\": 0.3}', "
            "86400, 90000, 1);"
            "INSERT INTO messages (thread_id, idx, text, principal, status, usage_before, usage, "
            "created_at, started_at, ended_at) VALUES ('t', 0, 'g', '{}', 'budget_exceeded', "
            '\'{}\', \'{"input_tokens": 10, "output_tokens": 1, "cost_usd": 0.1}\', '
            "86400, 86400, 86460);"
            "INSERT INTO messages (thread_id, idx, text, principal, status, usage_before, "
            "created_at, started_at) VALUES ('t', 1, 'go on', '{}', 'current', "
            '\'{"input_tokens": 10, "output_tokens": 1, "cost_usd": 0.1}\', '
            "172800, 172800);",
            prepare=False,
        )
        for request_id, comment in (
            ("superseded", "superseded by message #1"),
            ("ended", "run ended failed"),
        ):
            conn.execute(
                "INSERT INTO approvals (id, thread_id, step_id, kind, tool, args, args_digest, "
                "reason, requested_by, requested_at, status, decided_at, comment) VALUES "
                "(%s, 't', '0.0', 'action', 'pay', '{}', 'd', 'why', 'p', 1, 'cancelled', 2, %s)",
                (request_id, comment),
            )

    store = PostgresStore(url)
    try:
        assert store.schema_version == SCHEMA_VERSION == 12
        run = store.get_run("t")
        assert run is not None
        assert (run.app, run.tools) == (None, None)  # from before runs recorded their app
        # A request superseded before this version says so where it is asked now.
        found = {a.id: a for a in store.list_approvals(ApprovalQuery(thread_id="t", status=None))}
        assert (found["superseded"].superseded, found["ended"].superseded) == (
            "superseded by message #1",
            None,
        )
        # A stop from before kept no report: counted, under no limit.
        assert [(m.index, m.budget_report) for m in store.thread_messages("t")] == [
            (0, None),
            (1, None),
        ]
        figures = compute_stats(store)
        assert [(s.day, s.runs, s.input_tokens) for s in figures.spend] == [
            ("1970-01-02", 1, 10),
            ("1970-01-03", 0, 20),
        ]
        assert figures.budget_stops == [Count(None, 1)]
    finally:
        store.close()
    assert sql(url, "SELECT indexname FROM pg_indexes WHERE indexname = 'messages_by_start'") == [
        ("messages_by_start",)
    ]


def test_opening_a_new_database_at_once_from_many_places_migrates_it_once(
    empty_postgres_url: str,
) -> None:
    postgres_url = empty_postgres_url
    opened: list[PostgresStore] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def open_one() -> None:
        start.wait()
        try:
            opened.append(PostgresStore(postgres_url))
        except BaseException as exc:  # pragma: no cover - the failure is the assertion
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in opened:
        s.close()
    assert errors == []
    assert sql(postgres_url, "SELECT value FROM agentrt_meta WHERE key = 'schema_version'") == [
        (str(SCHEMA_VERSION),)
    ]


def test_a_newer_schema_is_refused_and_the_message_hides_the_password(
    postgres_url: str,
) -> None:
    PostgresStore(postgres_url).close()
    sql(postgres_url, "UPDATE agentrt_meta SET value = '99' WHERE key = 'schema_version'")
    shown = hidden_password(postgres_url)
    assert ":***@" in shown
    with pytest.raises(ConfigError) as info:
        PostgresStore(postgres_url)
    assert str(info.value) == (
        f"{shown!r} has agentrt schema version 99, newer than this agentrt understands "
        f"({SCHEMA_VERSION}); upgrade agentrt"
    )
    with pytest.raises(ConfigError, match="newer than this agentrt understands"):
        refund_desk.build_runtime(postgres_url)  # through the runtime too
    # Nothing of LangGraph's was touched on a database this agentrt does not understand.
    assert sql(postgres_url, "SELECT count(*) FROM checkpoints") == [(0,)]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql://app:s3cret@db.internal:5432/agentrt",
            "postgresql://app:***@db.internal:5432/agentrt",
        ),
        ("postgresql://app@db/agentrt", "postgresql://app@db/agentrt"),
        (
            "postgres://db/agentrt?user=app&password=s3cret&sslmode=require",
            "postgres://db/agentrt?user=app&password=***&sslmode=require",
        ),
        (
            "postgresql://app:p%40ss@h1:5432,h2:5433/agentrt",
            "postgresql://app:***@h1:5432,h2:5433/agentrt",
        ),
    ],
)
def test_the_location_hides_the_password(url: str, shown: str) -> None:
    assert hidden_password(url) == shown


def test_the_store_location_hides_the_password(store: PostgresStore, postgres_url: str) -> None:
    password = postgres_url.split(":")[2].split("@", maxsplit=1)[0]
    assert store.location == postgres_url.replace(password, "***")


def test_the_url_query_sizes_the_pool_and_libpq_never_sees_it(postgres_url: str) -> None:
    s = PostgresStore(
        f"{postgres_url}?pool_min_size=0&pool_max_size=3&pool_timeout=2.5&pool_patience=7.5"
    )
    try:
        settings = s.db.settings
        assert (settings.min_size, settings.max_size, settings.timeout, settings.patience) == (
            0,
            3,
            2.5,
            7.5,
        )
        assert (s.db.pool.min_size, s.db.pool.max_size) == (0, 3)
        new_run(s)
        assert s.get_run("t1") is not None
    finally:
        s.close()
    keyword = PostgresStore(postgres_url, pool=PoolSettings(max_size=2, patience=5.0))
    try:
        assert (keyword.db.settings.max_size, keyword.db.settings.patience) == (2, 5.0)
    finally:
        keyword.close()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("pool_max_size=lots", "pool_max_size='lots' is not a number"),
        ("pool_min_size=5&pool_max_size=2", "min_size=5, max_size=2"),
        ("pool_patience=nan", "patience=nan"),
    ],
)
def test_bad_pool_settings_are_refused_by_name(
    postgres_server: PostgresServer, query: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        PostgresStore(postgres_server.url("postgres") + "?" + query)


def test_a_server_that_cannot_be_reached_is_one_clear_error(tmp_path: Path) -> None:
    # No patience: given up at the first refusal (test_postgres_opening.py: the wait).
    url = f"postgresql://app:s3cret@127.0.0.1:{_free_port()}/agentrt?pool_patience=0"
    with pytest.raises(DatabaseUnavailable) as info:
        open_store(url)
    message = str(info.value)
    assert message.startswith("the database 'postgresql://app:***@127.0.0.1:")
    assert "s3cret" not in message
    with pytest.raises(ConfigError, match="pool= applies to a postgresql:// database"):
        open_store(tmp_path / "agentrt.db", pool=PoolSettings())


# the queue's indexes -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def busy_queue(postgres_server: PostgresServer) -> Iterator[str]:
    """A database whose queue has a history: 20,000 requests over 100 runs and 50 tenants,
    one in 20 pending, one in 500 needing a director; its statistics gathered."""
    url = postgres_server.create_database()
    PostgresStore(url).close()
    sql(
        url,
        "INSERT INTO runs (thread_id, status, goal, principal, tenant, budget, usage, "
        "created_at, updated_at) SELECT 't' || i, 'running', 'g', '{}', 'acme', '{}', '{}', "
        "i, i FROM generate_series(0, 99) i",
    )
    sql(
        url,
        "INSERT INTO approvals (id, thread_id, step_id, kind, tool, args, args_digest, reason, "
        "required_role, required_roles, requested_by, tenant, requested_at, status) "
        "SELECT 'apr_' || i, 't' || (i % 100), i::text, 'action', 'pay', '{}', 'd', 'r', "
        "'refund-approver', CASE WHEN i % 500 = 0 THEN ARRAY['refund-approver', 'director'] "
        "ELSE '{}' END, 'alice', 'tenant' || (i % 50), i, "
        "CASE WHEN i % 20 = 0 THEN 'pending' ELSE 'approved' END "
        "FROM generate_series(1, 20000) i",
    )
    sql(url, "ANALYZE")
    yield url
    postgres_server.drop_database(url)


@pytest.mark.parametrize(
    ("query", "index"),
    [
        (ApprovalQuery(), "approvals_queue"),
        (ApprovalQuery(after=(15000.0, "apr_15000")), "approvals_queue"),
        (ApprovalQuery(tenant="tenant10"), "approvals_queue_by_tenant"),
        (ApprovalQuery(role="director"), "approvals_by_role"),
        (ApprovalQuery(thread_id="t7", status=None), "approvals_by_run"),
        (ApprovalQuery(status="approved", tenant="tenant7", limit=10), "approvals_queue_by_tenant"),
    ],
)
def test_each_way_the_queue_is_read_has_an_index(
    busy_queue: str, query: ApprovalQuery, index: str
) -> None:
    statement, params = queue_sql(query)
    plan = "\n".join(str(row[0]) for row in sql(busy_queue, "EXPLAIN " + statement, tuple(params)))
    assert index in plan, plan
    assert "Seq Scan" not in plan, plan
    with_ids = statement.replace("SELECT ", "SELECT id, ", 1)
    found = [r[0] for r in sql(busy_queue, with_ids, tuple(params))]
    assert found  # and the query finds what it should
    if query.role == "director":
        assert found == [f"apr_{i}" for i in range(500, 20001, 500)][:100]


# conditional writes across connections -----------------------------------------------------


def race(n: int, each: Callable[[int], Any]) -> list[Any]:
    """``each(i)`` for i in range(n), all released at once from threads of their own."""
    results: list[Any] = [None] * n
    start = threading.Barrier(n)

    def go(i: int) -> None:
        start.wait()
        results[i] = each(i)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_of_racing_writers_on_other_connections_exactly_one_wins(postgres_url: str) -> None:
    stores = [PostgresStore(postgres_url, clock=FakeClock(1000.0)) for _ in range(4)]
    try:
        for n in range(5):
            thread_id = f"t{n}"
            new_run(stores[0], thread_id)
            req = stores[0].put_approval(request(thread_id, "1.0"))
            decided = race(
                4,
                lambda i, req=req: stores[i].decide_approval(
                    req.id, Decided(status=ApprovalStatus.APPROVED, by=f"approver-{i}")
                ),
            )
            assert sorted(decided) == [False, False, False, True]
            # Each worked its move out from the same read: only the first write applies.
            read = stores[0].get_run(thread_id)
            assert read is not None
            change = lifecycle.change_for(read, RunStatus.RUNNING, now=1000.0)
            moved = race(4, lambda i, t=thread_id, c=change: stores[i].change_run(t, c))
            assert sum(m is not None for m in moved) == 1
    finally:
        for s in stores:
            s.close()


def test_a_run_a_transaction_adds_a_row_for_is_claimed_not_skipped(
    store: PostgresStore, postgres_url: str
) -> None:
    # Adding a row that refers to a run (a model call, an approval) takes FOR KEY SHARE on the
    # run's row for the foreign key. A claim locks the rows it picks with the UPDATE's own
    # lock, FOR NO KEY UPDATE, which that does not block: the run is claimed, not skipped.
    new_run(store)  # pending: the claim of runs that need a driver
    new_run(store, "t2")  # a finished thread with a message queued: the claim of those
    sql(postgres_url, "UPDATE runs SET status='succeeded' WHERE thread_id='t2'")
    sql(
        postgres_url,
        "INSERT INTO messages (thread_id, idx, text, principal, status, created_at) "
        "VALUES ('t2', 1, 'and the other order?', '{}', 'queued', 0)",
    )
    with psycopg.connect(postgres_url) as adding:
        for thread_id in ("t1", "t2"):
            adding.execute(
                "INSERT INTO model_calls (thread_id, revision, request_digest, response, "
                "created_at) VALUES (%s, 0, 'd', '{}', 0)",
                (thread_id,),
            )
        claim = store.claim_runs(LeaseRecord("h:1:w", "h", 1, 1030.0), now=1000.0, limit=5)
        adding.rollback()
    assert sorted(claim.thread_ids) == ["t1", "t2"]


def test_prune_does_not_delete_a_run_a_message_is_being_added_to(
    store: PostgresStore, postgres_url: str
) -> None:
    # Adding a message locks the run's row (to number the message) and commits later. A
    # delete that waited for that lock must then see the message: it keeps the run, rather
    # than deleting it and the message its sender was told was queued.
    from tests.test_workers import wait_until

    new_run(store)
    lifecycle.move(store, "t1", RunStatus.RUNNING, now=1000.0)
    lifecycle.move(store, "t1", RunStatus.SUCCEEDED, now=1000.0)
    assert store.prunable_runs(before=1001.0) == ["t1"]
    deleted: list[bool] = []
    with (
        psycopg.connect(postgres_url, row_factory=dict_row) as adding,
        psycopg.connect(postgres_url, autocommit=True, row_factory=dict_row) as watcher,
    ):
        adding.execute("SELECT 1 FROM runs WHERE thread_id='t1' FOR UPDATE")
        adding.execute(
            "INSERT INTO messages (thread_id, idx, text, principal, status, created_at) "
            "VALUES ('t1', 1, 'and the other order?', '{}', 'queued', 1000)"
        )
        pruning = threading.Thread(
            target=lambda: deleted.append(store.delete_run("t1", idle_before=1001.0))
        )
        pruning.start()
        wait_until(
            lambda: (
                watcher.execute(
                    "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                ).fetchone()["n"]
                == 1
            ),
            "the delete waits for the run's row",
            timeout=30,
        )
        adding.commit()
        pruning.join(timeout=30)
    assert deleted == [False]
    assert [m.status for m in store.thread_messages("t1")] == ["queued"]


# workers: their claims, what wakes them ------------------------------------------------------


def test_a_claim_for_an_app_reads_past_another_apps_backlog_by_index(
    postgres_url: str,
) -> None:
    # Another app has 20,000 runs waiting for its workers, older than this app's: a claim
    # for this app, named or not, reads the runs it may drive (its name's, an unnamed app's,
    # those from before) off runs_to_drive_by_app, never every row of the other's. Tool
    # lists are in no index: they sift the unnamed app's runs the index found.
    sql(
        postgres_url,
        "INSERT INTO runs (thread_id, status, goal, principal, tenant, budget, usage, "
        "created_at, updated_at, app, tools) SELECT 't' || i, 'pending', 'g', '{}', 'acme', "
        "'{}', '{}', i, i, CASE WHEN i < 20000 THEN 'theirs' WHEN i < 20003 THEN NULL "
        "WHEN i < 20006 THEN 'mine' END, CASE WHEN i >= 20006 THEN ARRAY['note'] END "
        "FROM generate_series(0, 20008) i",
    )
    sql(postgres_url, "ANALYZE")
    params = {
        "now": 1e9,
        "limit": 10,
        "owner": "h:1:w",
        "host": "h",
        "pid": 1,
        "expires_at": 2e9,
        "tools": ["note", "pay"],
    }
    with psycopg.connect(postgres_url) as conn:
        for app in ("mine", None):
            explained = conn.execute("EXPLAIN " + pg_leases._CLAIM_MINE, {**params, "app": app})
            plan = "\n".join(r[0] for r in explained)
            assert "runs_to_drive_by_app" in plan, plan
            assert "Seq Scan on runs" not in plan, plan
    store = PostgresStore(postgres_url)
    mine = AppIdentity(name="mine", tools=frozenset({"note", "pay"}))
    try:
        claim = store.claim_runs(LeaseRecord("h:1:w", "h", 1, 2e9), now=1e9, limit=10, app=mine)
    finally:
        store.close()
    assert claim.thread_ids == tuple(f"t{i}" for i in range(20000, 20009))


def test_a_version_10_databases_runs_named_by_a_digest_of_tools_go_to_any_worker(
    empty_postgres_url: str,
) -> None:
    # As SQLite's 15: an identity derived from a digest of the tools cannot be read back
    # into their names, so those runs record nothing now, and any worker claims them. A
    # name, even one shaped like that, is kept.
    url = empty_postgres_url
    with psycopg.connect(url, autocommit=True) as conn:
        for step in MIGRATIONS[:10]:
            conn.execute(step, prepare=False)
        conn.execute(
            "CREATE TABLE agentrt_meta (key TEXT PRIMARY KEY, value TEXT);"
            "INSERT INTO agentrt_meta VALUES ('schema_version', '10');"
            "INSERT INTO runs (thread_id, status, goal, principal, tenant, budget, usage, "
            "created_at, updated_at, app) VALUES "
            "('derived', 'pending', 'g', '{}', 'acme', '{}', '{}', 0, 0, "
            "'tools:0123456789abcdef'), "
            "('named', 'pending', 'g', '{}', 'acme', '{}', '{}', 1, 1, 'refund-desk'), "
            "('shaped', 'pending', 'g', '{}', 'acme', '{}', '{}', 2, 2, 'tools:refund-desk')",
            prepare=False,
        )
    store = PostgresStore(url)
    try:
        assert store.schema_version == SCHEMA_VERSION == 12
        # 12: no renewal counted these runs' active time yet.
        made = ("derived", "named", "shaped")
        assert {r.live_active_seconds for t in made if (r := store.get_run(t))} == {None}
        assert {
            t: (r.app, r.tools) for t in ("derived", "named", "shaped") if (r := store.get_run(t))
        } == {
            "derived": (None, None),
            "named": ("refund-desk", None),
            "shaped": ("tools:refund-desk", None),
        }
        nothing = AppIdentity(name=None, tools=frozenset())
        claim = store.claim_runs(LeaseRecord("h:1:w", "h", 1, 2e9), now=1e9, limit=9, app=nothing)
        assert claim.thread_ids == ("derived",)
    finally:
        store.close()


def test_a_message_kept_for_a_thread_tells_the_workers(
    store: PostgresStore, postgres_url: str
) -> None:
    # A follow-up queued on a finished thread (or sent to interrupt a live one no process
    # drives) needs a driver now: the database says so, as it does of a new run or a
    # decision, and a listening worker claims the thread at once.
    new_run(store, "t1")
    sql(postgres_url, "UPDATE runs SET status='succeeded' WHERE thread_id='t1'")
    with psycopg.connect(postgres_url, autocommit=True) as listening:
        listening.execute("LISTEN agentrt_runs")
        kept = store.add_message(NewMessage(thread_id="t1", text="and the rest?", principal=ALICE))
        assert kept is not None
        assert kept.status == "queued"
        heard = [n.payload for n in listening.notifies(timeout=10, stop_after=1)]
    assert heard == ["t1"]


def test_a_listening_connection_gone_silent_is_made_again_and_wakes_the_worker(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A NAT or firewall that dropped the idle LISTEN connection tells neither end: nothing
    # passes, nothing is closed. The listener asks its connection a question when it has
    # heard nothing for a while; unanswered, it connects again and wakes the worker (runs
    # may have come meanwhile), and it is told of what comes after.
    monkeypatch.setattr(pg_listen, "CHECK_EVERY", 0.2)
    monkeypatch.setattr(pg_listen, "ANSWER_WITHIN", 0.5)
    woken = threading.Semaphore(0)
    wakes: list[float] = []

    def wake() -> None:
        wakes.append(time.monotonic())
        woken.release()

    with SilentRelay(postgres_url) as relay:
        listener = pg_listen.Listener(relay.url, "the relay", wake)
        try:
            assert woken.acquire(timeout=30), "it never listened"
            (first,) = listen_backends(postgres_url)
            relay.go_silent()
            silent_at = time.monotonic()
            assert woken.acquire(timeout=10), "the silent connection was never noticed"
            assert wakes[1] - silent_at < 5
            until(lambda: listener.listening.is_set() and len(wakes) >= 3, "listening again")
            assert [pid for pid in listen_backends(postgres_url) if pid != first]
            told = len(wakes)
            sql(postgres_url, "NOTIFY agentrt_runs, 't9'")
            until(lambda: len(wakes) > told, "told of a run after it connected again")
        finally:
            listener.close()


def listen_backends(url: str) -> list[int]:
    """The server's processes of connections that listen for runs."""
    return [
        pid
        for (pid,) in sql(
            url,
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND query = 'LISTEN agentrt_runs'",
        )
    ]


def until(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Until ``check()`` holds (another thread moves it on; nothing to wait on)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout} s: {what}")
        time.sleep(0.01)


# a COMMIT whose answer was lost ------------------------------------------------------------


def test_a_commit_that_happened_but_whose_answer_was_lost_is_not_done_twice(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    new_run(store)
    commits: list[str] = []
    real_commit = Database._commit

    def lost_answer(self: Database, conn: Any) -> None:
        real_commit(self, conn)
        commits.append("committed")
        if len(commits) == 1:
            raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(Database, "_commit", lost_answer)
    # A conditional move: done twice, the second would find the run moved and say None.
    moved = lifecycle.move(store, "t1", RunStatus.RUNNING, now=1000.0)
    assert moved.status is RunStatus.RUNNING
    assert commits == ["committed"]  # asked the server, which said it committed: not redone
    attempts = store.start_effect(
        key="k", thread_id="t1", step_id="1.0", tool="pay", args_digest="d", seen=0
    )
    assert attempts == 1


def test_a_commit_that_never_reached_the_server_is_done_again(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    new_run(store)
    tries: list[str] = []
    real_commit = Database._commit

    def connection_lost(self: Database, conn: Any) -> None:
        tries.append("commit")
        if len(tries) == 1:
            conn.close()  # the server sees its client gone and rolls the transaction back
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        real_commit(self, conn)

    monkeypatch.setattr(Database, "_commit", connection_lost)
    assert store.start_effect(
        key="k", thread_id="t1", step_id="1.0", tool="pay", args_digest="d", seen=0
    )
    assert tries == ["commit", "commit"]
    effect = store.get_effect("k")
    assert effect is not None
    assert effect.attempts == 1  # reserved once, though asked twice


def test_past_its_patience_a_write_gives_the_error_up(
    postgres_server: PostgresServer, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []
    monkeypatch.setattr(pg_database, "_sleep", slept.append)  # no waiting on the wall clock
    s = PostgresStore(postgres_url, pool=PoolSettings(timeout=0.2, patience=0.1))
    name = postgres_url.rsplit("/", 1)[1]
    try:
        new_run(s)
        # The database stops taking connections, and the ones the store holds are cut.
        sql(postgres_server.admin_url, f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        sql(
            postgres_server.admin_url,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (name,),
        )
        with pytest.raises(DatabaseUnavailable) as info:
            s.set_usage("t1", empty_usage())
        assert slept  # it did try again before giving up
        assert isinstance(info.value.__cause__, psycopg.OperationalError)
        assert isinstance(info.value, ConnectionError)  # a failure that may pass
        assert str(info.value).startswith(
            f"the database {s.location!r} could not be used for 0.1 s ("
        )
    finally:
        sql(postgres_server.admin_url, f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        s.close()


# errors no retry gets past -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "tried_again"),
    [
        (psycopg.OperationalError("server closed the connection unexpectedly"), True),
        (psycopg.errors.AdminShutdown("terminating connection"), True),
        (psycopg.errors.CannotConnectNow("the database system is starting up"), True),
        (psycopg.errors.IdleSessionTimeout("idle-session timeout"), True),
        (psycopg.errors.ConnectionFailure("connection failure"), True),
        (psycopg.errors.SerializationFailure("could not serialize access"), True),
        (psycopg.errors.DeadlockDetected("deadlock detected"), True),
        (psycopg.errors.TooManyConnections("too many clients already"), True),
        (psycopg.errors.LockNotAvailable("canceling statement due to lock timeout"), True),
        (psycopg.errors.QueryCanceled("canceling statement due to statement timeout"), False),
        (psycopg.errors.ProgramLimitExceeded("index row size 5016 exceeds ..."), False),
        (psycopg.errors.DatabaseDropped("the database was dropped"), False),
        (psycopg.errors.TransactionIntegrityConstraintViolation("deferred check"), False),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else str(value),
)
def test_only_errors_that_may_pass_are_tried_again(
    store: PostgresStore,
    monkeypatch: pytest.MonkeyPatch,
    error: psycopg.OperationalError,
    tried_again: bool,
) -> None:
    slept: list[float] = []
    monkeypatch.setattr(pg_database, "_sleep", slept.append)
    tries: list[int] = []

    def attempt() -> str:
        tries.append(1)
        if len(tries) == 1:
            raise error
        return "done"

    if tried_again:
        assert store.db.patiently(attempt) == "done"
        assert (len(tries), len(slept)) == (2, 1)
    else:
        with pytest.raises(type(error)) as info:
            store.db.patiently(attempt)
        assert info.value is error  # as it was, at once
        assert (len(tries), slept) == (1, [])


@pytest.mark.parametrize("field", ["thread_id", "tenant"])
def test_a_value_too_long_for_an_index_is_refused_at_once_by_its_column(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch, field: str
) -> None:
    slept: list[float] = []
    monkeypatch.setattr(pg_database, "_sleep", slept.append)
    # Fine on SQLite; more than a btree index row holds, compressed or not.
    long = random.Random(7).randbytes(2500).hex()
    principal = ALICE | {"tenant": long} if field == "tenant" else ALICE
    with pytest.raises(ConfigError) as info:
        store.create_run(
            NewRun(
                thread_id=long if field == "thread_id" else "t1",
                goal="g",
                principal=principal,
                budget={},
                usage=empty_usage(),
            )
        )
    assert slept == []  # not taken for an outage
    assert isinstance(info.value.__cause__, psycopg.errors.ProgramLimitExceeded)
    if field == "thread_id":
        assert str(info.value) == (
            "a value is too long for PostgreSQL to index in index 'runs_pkey' on runs "
            "(thread_id): index row size 5016 exceeds btree version 4 maximum 2704 for index "
            '"runs_pkey". An index row holds at most 2704 bytes, so give a shorter value (a '
            "thread id, tenant, principal id or key is an identifier: keep it to a few "
            "hundred characters)"
        )
    else:
        assert "index 'runs_by_tenant' on runs (tenant, status, created_at, thread_id)" in str(
            info.value
        )
    assert store.get_run("t1") is None
    assert store.get_run(long) is None


# a role with data rights only ------------------------------------------------------------------


@pytest.fixture
def data_role(postgres_server: PostgresServer) -> Iterator[Callable[[str], tuple[str, str]]]:
    """A role that may connect to the test's databases and use their schema, no more: its
    name and the URL of a database as that role (its data rights granted by the test)."""
    role = f"app_rw_{secrets.token_hex(4)}"
    sql(postgres_server.admin_url, f"CREATE ROLE {role} LOGIN PASSWORD 'app-secret'")
    used: list[str] = []

    def url_of(url: str) -> tuple[str, str]:
        name = url.rsplit("/", 1)[1]
        used.append(url)
        sql(postgres_server.admin_url, f'GRANT CONNECT ON DATABASE "{name}" TO {role}')
        sql(url, f"GRANT USAGE ON SCHEMA public TO {role}")
        # Not the schema's CREATE, which PostgreSQL before 15 gives every role.
        sql(url, "REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        user = url.split("//", 1)[1].split("@", 1)[0]
        return role, url.replace(f"//{user}@", f"//{role}:app-secret@")

    try:
        yield url_of
    finally:
        sql(
            postgres_server.admin_url,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
            (role,),
        )
        for url in used:
            sql(url, f"DROP OWNED BY {role}")
        sql(postgres_server.admin_url, f"DROP ROLE IF EXISTS {role}")


def grant_data_rights(url: str, role: str) -> None:
    sql(url, f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}")
    sql(url, f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}")


def test_a_role_with_data_rights_only_opens_a_database_already_migrated(
    postgres_url: str, data_role: Callable[[str], tuple[str, str]]
) -> None:
    role, app_url = data_role(postgres_url)
    grant_data_rights(postgres_url, role)
    model = ScriptedChatModel([ai("Done.")])
    with AgentRuntime(model, tools=[], db=app_url) as rt:
        run = rt.start("hello", principal=OPERATOR)
        assert run.status is RunStatus.SUCCEEDED
        rt.memory("acme").put("notes", "k", {"v": 1})
        item = rt.memory("acme").get("notes", "k")
        assert item is not None
        assert item.value == {"v": 1}


def test_a_role_that_may_not_migrate_a_database_that_needs_it_is_told_what_to_do(
    empty_postgres_url: str, data_role: Callable[[str], tuple[str, str]]
) -> None:
    role, app_url = data_role(empty_postgres_url)
    with pytest.raises(ConfigError) as info:
        PostgresStore(app_url)
    assert str(info.value) == (
        f"{hidden_password(app_url)!r} is not at this agentrt's schema (agentrt's tables, "
        "LangGraph's checkpoint tables, LangGraph's long-term store missing or older), and "
        f"role {role!r} may not migrate it: permission denied for schema public. Have a role "
        "that may create tables in its schema (the database's owner) open it once with this "
        "agentrt, which migrates it: any command that opens it does (there is no separate "
        "migrate command), e.g. `agentrt runs --db <the owner's URL>`; then grant "
        f"{role!r} SELECT, INSERT, UPDATE, DELETE on its tables and USAGE, SELECT on its "
        "sequences"
    )
    assert "app-secret" not in str(info.value)
    # Its owner migrates it once, as the message says; then the role opens it.
    PostgresStore(empty_postgres_url).close()
    grant_data_rights(empty_postgres_url, role)
    opened = PostgresStore(app_url)
    try:
        new_run(opened)
        assert opened.get_run("t1") is not None
    finally:
        opened.close()


# memory (LangGraph's PostgresStore on the store's pool) ----------------------------------------


def test_memory_outlives_the_server_closing_its_idle_connections(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    name = postgres_url.rsplit("/", 1)[1]
    with AgentRuntime(ScriptedChatModel([]), tools=[], db=postgres_url) as rt:
        memory = rt.memory("acme")
        memory.put("customers", "c-42", {"channel": "email"})
        # What a restart, a failover, idle_session_timeout or a pooler does to idle ones.
        sql(
            postgres_server.admin_url,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        item = memory.get("customers", "c-42")
        assert item is not None
        assert item.value == {"channel": "email"}
        sql(
            postgres_server.admin_url,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        memory.put("customers", "c-43", {"channel": "phone"})  # a write too
        assert [i.key for i in memory.search("customers")] == ["c-43", "c-42"]


def test_memory_past_its_patience_gives_up_as_every_database_call_does(
    postgres_server: PostgresServer, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pg_database, "_sleep", lambda pause: None)
    opened = open_store(postgres_url, pool=PoolSettings(timeout=0.2, patience=0.1))
    name = postgres_url.rsplit("/", 1)[1]
    try:
        sql(postgres_server.admin_url, f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        sql(
            postgres_server.admin_url,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (name,),
        )
        with pytest.raises(DatabaseUnavailable):
            opened.memories.get(("notes",), "k")
    finally:
        sql(postgres_server.admin_url, f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        opened.store.close()


# whole runs through the runtime --------------------------------------------------------------


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AGENTRT_APP", raising=False)
    return tmp_path


def desk_on(url: str, **kwargs: Any) -> AgentRuntime:
    """The refund desk on ``url``. Its "payment system" is a SQLite file in the working
    directory, named after the database (payments_path)."""
    kwargs.setdefault("clock", FakeClock())
    kwargs.setdefault("new_id", Ids())
    return refund_desk.build_runtime(url, **kwargs)


def refunds(url: str) -> list[tuple[str, float]]:
    path = refund_desk.payments_path(url)
    if not path.exists():
        return []
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT order_id, amount FROM refunds ORDER BY rowid").fetchall()


def test_the_demo_command_runs_on_a_url_and_keeps_its_password_out_of_file_names(
    postgres_url: str, in_tmp: Path
) -> None:
    from typer.testing import CliRunner

    from agentrt.cli import app

    result = CliRunner().invoke(app, ["demo", "--db", postgres_url])
    assert result.exit_code == 0, result.output
    assert "status    awaiting_approval" in result.output
    name = postgres_url.rsplit("/", 1)[1]
    # (SQLite's -wal and -shm beside it stay while a connection of the app is open.)
    files = {p.name.removesuffix("-wal").removesuffix("-shm") for p in in_tmp.iterdir()}
    assert files == {f"{name}.payments.db"}
    password = postgres_url.split("@", 1)[0].rsplit(":", 1)[1]
    assert password not in result.output
    # The printed commands read the URL from AGENTRT_DB, and work so.
    line = next(ln for ln in result.output.splitlines() if " approve apr_" in ln)
    args = line.split(" approve ", 1)[1].split()
    decided = CliRunner().invoke(app, ["approve", *args], env={"AGENTRT_DB": postgres_url})
    assert decided.exit_code == 0, decided.output
    assert "status    succeeded" in decided.output


def test_the_demo_runs_start_to_finish_on_postgres(postgres_url: str, in_tmp: Path) -> None:
    with desk_on(postgres_url) as rt:
        assert rt.store.schema_version == SCHEMA_VERSION
        assert ":***@" in rt.store.location
        run = rt.start(GOAL, principal=OPERATOR)
        assert run.status is RunStatus.AWAITING_APPROVAL
        req = run.pending_approval
        assert req is not None
        assert (req.tool, req.args, req.required_role) == (
            "issue_refund",
            {"order_id": "42", "amount": 89.0},
            "refund-approver",
        )
        assert rt.approvals(tenant="acme", role="refund-approver") == [req]
        assert rt.runs(status="awaiting_approval") == [run]
        assert refunds(postgres_url) == []

    # Another process (here another runtime on the same database) carries it on.
    with desk_on(postgres_url) as other:
        done = other.decide(Decision.approve(req.id, by=APPROVER))
        assert done.status is RunStatus.SUCCEEDED
        assert done.output == (
            "Refunded $89.00 to Dana Reyes for order 42 and noted the broken blender."
        )
        assert [e["type"] for e in other.events(run.thread_id)][-3:] == [
            "observation",
            "plan",
            "finish",
        ]
        assert other.approvals() == []
        trace = other.trace(run.thread_id)
        assert trace is not None
    assert refunds(postgres_url) == [("42", 89.0)]


def test_an_async_run_on_postgres(postgres_url: str, in_tmp: Path) -> None:
    async def scenario() -> tuple[Any, Any, Any]:
        with desk_on(postgres_url) as rt:
            run = await rt.astart(GOAL, principal=OPERATOR)
            assert run.pending_approval is not None
            waiting = await rt.aresume(run.thread_id)  # nothing to do until a person decides
            done = await rt.adecide(Decision.approve(run.pending_approval.id, by=APPROVER))
            return run, waiting, done

    run, waiting, done = asyncio.run(scenario())
    assert run.status is RunStatus.AWAITING_APPROVAL
    assert waiting == run
    assert done.status is RunStatus.SUCCEEDED
    assert refunds(postgres_url) == [("42", 89.0)]


def restart_between_steps(server: PostgresServer) -> Any:
    """A tool that restarts the server while the run is going: the step after it meets
    every pooled connection cut."""

    @tool(effect="read")
    def restart_database() -> dict[str, str]:
        """Restart the database server."""
        server.restart()
        return {"restarted": "yes"}

    return restart_database


@pytest.mark.parametrize("driven", ["sync", "async"])
def test_a_run_survives_its_server_restarting_between_two_steps(
    postgres_server: PostgresServer, postgres_url: str, in_tmp: Path, driven: str
) -> None:
    if not postgres_server.owned:
        pytest.skip("the server is not the tests' own: it is not theirs to restart")
    model = ScriptedChatModel(
        [
            ai("Restarting.", tool_call("restart_database", {})),
            ai("Restarted, and still here."),
        ]
    )
    with AgentRuntime(
        model, tools=[restart_between_steps(postgres_server)], db=postgres_url, new_id=Ids()
    ) as rt:
        if driven == "sync":
            run = rt.start("restart the database", principal=OPERATOR)
        else:
            run = asyncio.run(rt.astart("restart the database", principal=OPERATOR))
        assert (run.status, run.output, run.error) == (
            RunStatus.SUCCEEDED,
            "Restarted, and still here.",
            None,
        )
        assert [e["type"] for e in rt.events(run.thread_id)] == [
            "plan",
            "policy",
            "observation",
            "plan",
            "finish",
        ]


def test_a_run_at_a_gate_is_decided_after_its_server_restarted(
    postgres_server: PostgresServer, postgres_url: str, in_tmp: Path
) -> None:
    if not postgres_server.owned:
        pytest.skip("the server is not the tests' own: it is not theirs to restart")
    with desk_on(postgres_url) as rt:
        run = rt.start(GOAL, principal=OPERATOR)
        assert run.pending_approval is not None
        postgres_server.restart()
        done = rt.decide(Decision.approve(run.pending_approval.id, by=APPROVER))
        assert done.status is RunStatus.SUCCEEDED
    assert refunds(postgres_url) == [("42", 89.0)]


@pytest.mark.subprocess
def test_a_server_on_postgres_killed_mid_effect_carries_the_run_on_when_it_starts_again(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTRT_TEST_SINK", str(tmp_path / "payments.db"))
    with crashy_app.build_runtime(postgres_url) as rt:
        key = issue_key(rt, Principal("ops", roles=["operator"], tenant="shop"))

    monkeypatch.setenv("AGENTRT_TEST_LEASE_TTL", "5")
    app = "tests.crashy_app:build_runtime"
    with serve(app, postgres_url, env={"AGENTRT_TEST_BLOCK_AT": "tool"}) as first:
        with first.client(key) as api:
            started = api.post("/runs", json={"goal": "Charge al, bo and cy."})
            assert started.status_code == 202, started.text
            thread_id = started.json()["thread_id"]
        assert first.process.stdout is not None
        # The first charge has reached the payment system; its answer has not come back.
        assert first.process.stdout.readline() == "BLOCKED tool\n"
        first.kill()

    # No pid is trusted on a database other hosts share: the run is carried on once the
    # dead server's lease has expired.
    with serve(app, postgres_url) as second, second.client(key) as api:
        assert api.get("/healthz").json()["schema_version"] == SCHEMA_VERSION
        run = wait_for(api, thread_id, {"succeeded", "failed"})
        assert run["status"] == "succeeded", run

    with sqlite3.connect(crashy_app.sink_path(postgres_url)) as sink:
        charges = sink.execute("SELECT who, cents FROM charges ORDER BY who").fetchall()
        calls = sink.execute("SELECT who FROM calls ORDER BY n").fetchall()
    assert charges == [("al", 100), ("bo", 200), ("cy", 300)]
    # al's charge was called again after the kill, with the same idempotency key.
    assert [c[0] for c in calls] == ["al", "al", "bo", "cy"]


# the agentrt command ------------------------------------------------------------------------


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli_app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def test_the_command_works_on_a_postgres_url(postgres_url: str, in_tmp: Path) -> None:
    code, out = cli("keys", "create", "--id", "alice", "--tenant", "acme", "--db", postgres_url)
    assert code == 0, out
    assert "alice" in cli("keys", "list", "--db", postgres_url)[1]
    with desk_on(postgres_url) as rt:
        run = rt.start(GOAL, principal=OPERATOR)
    code, out = cli("runs", "--db", postgres_url)
    assert code == 0, out
    assert run.thread_id in out
    assert "awaiting_approval" in out
    code, out = cli("approvals", "--db", postgres_url)
    assert code == 0, out
    assert out.splitlines()[1].split()[0] == run.pending_approval.id  # type: ignore[union-attr]
    code, out = cli("show", run.thread_id, "--db", postgres_url)
    assert code == 0, out
    assert "awaiting_approval" in out
    password = postgres_url.split(":")[2].split("@", maxsplit=1)[0]
    assert password not in out


def test_an_outbox_writer_holds_the_next_one_back_till_it_commits(
    store: PostgresStore, postgres_url: str
) -> None:
    # seq order must be commit order: a dispatcher moves its cursor past what it read, so a
    # lower seq committed later would never be delivered. A writer draws its seq under the
    # outbox's lock and holds the lock to its commit; the next writer waits, then draws.
    from agentrt.store.outbox import OutboxEvent
    from agentrt.store.postgres.outbox import insert_event
    from tests.test_workers import wait_until

    new_run(store, "t1")

    def event(name: str) -> OutboxEvent:
        return OutboxEvent(
            id=name,
            type="run.succeeded",
            thread_id="t1",
            tenant=None,
            data={"n": name},
            created_at=1000.0,
        )

    def connect() -> psycopg.Connection[Any]:
        return psycopg.connect(postgres_url, autocommit=True, row_factory=dict_row)

    with connect() as first, connect() as second, connect() as watcher:
        first.execute("BEGIN")
        insert_event(first, event("first"))
        second_pid = second.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"]

        def write_second() -> None:
            with second.transaction():
                insert_event(second, event("second"))

        writer = threading.Thread(target=write_second)
        writer.start()
        wait_until(
            lambda: (
                watcher.execute(
                    "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (second_pid,)
                ).fetchone()["wait_event_type"]
                == "Lock"
            ),
            "the second writer waits for the outbox's lock",
            timeout=30,
        )
        assert watcher.execute("SELECT count(*) AS n FROM outbox").fetchone()["n"] == 0
        first.execute("COMMIT")
        writer.join(timeout=30)
        assert not writer.is_alive()
        rows = watcher.execute("SELECT id FROM outbox ORDER BY seq").fetchall()
    assert [r["id"] for r in rows] == ["first", "second"]


class _SelfRetrying(ScriptedChatModel):
    """A model whose client retries on its own (as ChatOpenAI's): agentrt adds none, so a
    connection error sends the run to wait at once."""

    max_retries: int = 2


def test_a_run_waiting_to_retry_is_due_by_the_stores_clock(postgres_url: str) -> None:
    # retry_at is compared with the server's clock when a worker claims the run: written by
    # a host whose own clock runs two days fast, the run would wait two days more.
    model = _SelfRetrying([ConnectionError("connection reset"), ai("Done.")])
    with AgentRuntime(model, tools=[], db=postgres_url) as rt:
        rt._driver.clock = lambda: time.time() + 2 * 86400  # this host's time, two days fast
        run = rt.start("hello", principal=Principal("alice", tenant="acme"))
        assert run.status is RunStatus.WAITING_RETRY
        row = rt.store.get_run(run.thread_id)
        assert row is not None
        assert row.retry_at is not None
        assert 0 < row.retry_at - rt.store.clock() <= 120  # the first wait, on the server's clock


def test_a_requests_expiry_is_on_the_stores_clock(postgres_url: str) -> None:
    # Every host sweeps expiries against the server's clock: a request written by a host
    # whose own clock runs two days fast would have lived two days more than its 3 days
    # (and one written by a slow host would be swept early).
    from agentrt.examples import refund_desk
    from agentrt.store.postgres.clock import ServerClock

    def fast() -> float:
        return time.time() + 2 * 86400  # this host's clock, two days fast

    with refund_desk.build_runtime(postgres_url, clock=fast) as rt:
        # Given a clock, the store takes it too (a test's); the server's, as by default.
        rt.store.db.clock = ServerClock(rt.store._server_time)  # type: ignore[attr-defined]
        run = rt.start(refund_desk.GOAL, principal=refund_desk.OPERATOR)
        assert run.status is RunStatus.AWAITING_APPROVAL
        (request,) = run.pending_approvals
        assert request.expires_at is not None
        now = rt.store.clock()
        assert abs(request.requested_at - now) < 120
        assert abs(request.expires_at - (now + 3 * 86400)) < 120
        assert rt.sweep_approvals().expired == ()  # not due by the server's clock
