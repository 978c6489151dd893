"""What is SQLite's own about the SQLite store: its schema, migrations, pragmas, URLs."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentrt.approvals.model import ApprovalQuery
from agentrt.budget import empty_usage
from agentrt.errors import ConfigError
from agentrt.records import AppIdentity, LeaseRecord, NewRun
from agentrt.runs.stats import compute_stats
from agentrt.store import open_store, sqlite_path
from agentrt.store.analytics import Count
from agentrt.store.sqlite import SqliteStore, connect
from agentrt.store.sqlite.schema import MIGRATIONS, SCHEMA_VERSION
from tests.conftest import FakeClock


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "agentrt.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(db_path, clock=FakeClock(1000.0))
    yield s
    s.close()


def schema_of(path: Path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT type, name FROM sqlite_master ORDER BY type, name").fetchall()
        meta = conn.execute(
            "SELECT key, value FROM agentrt_meta WHERE key='schema_version'"
        ).fetchall()
    finally:
        conn.close()
    return rows + meta


def test_new_file_gets_the_tables_and_schema_version(store: SqliteStore, db_path: Path) -> None:
    assert store.schema_version == SCHEMA_VERSION
    tables = {name for kind, name in schema_of(db_path) if kind == "table"}
    assert tables == {
        "agentrt_meta",
        "runs",
        "approvals",
        "effects",
        "spans",
        "model_calls",
        "api_keys",
        "outbox",
        "webhook_cursors",
        "webhook_deliveries",
        "messages",
        "sqlite_sequence",  # the outbox's AUTOINCREMENT: seq is never reused
        "artifact_blobs",
        "artifacts",
    }
    assert ("schema_version", str(SCHEMA_VERSION)) in schema_of(db_path)


def test_reopening_is_a_no_op(store: SqliteStore, db_path: Path) -> None:
    store.create_run(
        NewRun(thread_id="t1", goal="g", principal={"id": "p"}, budget={}, usage=empty_usage())
    )
    store.close()
    before = schema_of(db_path)

    again = SqliteStore(db_path)
    try:
        assert again.schema_version == SCHEMA_VERSION
        assert [r.thread_id for r in again.list_runs()] == ["t1"]
    finally:
        again.close()
    assert schema_of(db_path) == before


def test_newer_schema_is_refused(db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    conn.execute("CREATE TABLE agentrt_meta (key TEXT PRIMARY KEY, value TEXT)")
    conn.execute("INSERT INTO agentrt_meta VALUES ('schema_version', ?)", (SCHEMA_VERSION + 1,))
    conn.commit()
    conn.close()
    before = schema_of(db_path)

    with pytest.raises(ConfigError) as info:
        SqliteStore(db_path)
    assert str(info.value) == (
        f"{str(db_path)!r} has agentrt schema version {SCHEMA_VERSION + 1}, newer than this "
        f"agentrt understands ({SCHEMA_VERSION}); upgrade agentrt"
    )
    assert schema_of(db_path) == before  # no tables created, version left alone


def test_store_connection_pragmas(store: SqliteStore, db_path: Path) -> None:
    def pragmas(conn: sqlite3.Connection) -> tuple[Any, ...]:
        return tuple(
            conn.execute(f"PRAGMA {name}").fetchone()[0]
            for name in ("journal_mode", "busy_timeout", "foreign_keys")
        )

    with store.db.read() as conn:
        assert pragmas(conn) == ("wal", 10000, 1)
    conn = connect(db_path)
    try:
        assert pragmas(conn) == ("wal", 10000, 1)
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("agentrt.db", "agentrt.db"),
        ("sqlite:///agentrt.db", "agentrt.db"),
        ("sqlite:///data/run.db", "data/run.db"),
        ("sqlite:////var/lib/agentrt.db", "/var/lib/agentrt.db"),
    ],
)
def test_a_path_or_sqlite_url_names_the_file(url: str, path: str) -> None:
    assert sqlite_path(url) == path


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite://", "names no file; write sqlite:///relative/file.db"),
        ("sqlite:///", "names no file"),
        ("mysql://db/agentrt", "has scheme 'mysql', which this agentrt cannot open"),
    ],
)
def test_other_urls_are_refused_by_name(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        sqlite_path(url)


PASSWORD = "hunter2-s3cret"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            f"mysql://agent:{PASSWORD}@db.internal/agentrt",
            "'mysql://agent:***@db.internal/agentrt'",
        ),
        # SQLAlchemy's spelling of PostgreSQL with its driver, as many env files have it.
        (
            f"postgresql+psycopg://agent:{PASSWORD}@db/agentrt?password={PASSWORD}",
            "'postgresql+psycopg://agent:***@db/agentrt?password=***'",
        ),
        (f"sqlite://agent:{PASSWORD}@db/x.db", "'sqlite://agent:***@db/x.db'"),
        (f"mysql://agent:{PASSWORD}@[db/agentrt", "'mysql://***'"),
    ],
    ids=["mysql", "sqlalchemy-postgres", "sqlite-with-a-host", "broken-host"],
)
def test_a_refused_database_url_is_shown_with_its_password_hidden(url: str, shown: str) -> None:
    from agentrt import AgentRuntime
    from agentrt.testing import ScriptedChatModel

    for refuse in (sqlite_path, lambda u: AgentRuntime(ScriptedChatModel(["x"]), db=u)):
        with pytest.raises(ConfigError) as caught:
            refuse(url)
        assert f"database URL {shown} " in str(caught.value)
        assert PASSWORD not in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        open_store(url, pool=object())  # type: ignore[arg-type]
    assert PASSWORD not in str(caught.value)


@pytest.mark.parametrize("db", [":memory:", "file::memory:?cache=shared"])
def test_an_in_memory_db_is_refused_when_the_runtime_is_built(
    db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each of the runtime's connections would have a database of its own: it built, then
    # every run failed on tables another connection made ("no such table: spans").
    from agentrt import AgentRuntime
    from agentrt.testing import ScriptedChatModel

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"a database each connection has to itself") as caught:
        AgentRuntime(ScriptedChatModel(["x"]), db=db)
    assert f"db {db!r} " in str(caught.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("db", ["", "  "])
def test_an_empty_db_is_refused_when_the_runtime_is_built(
    db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SQLite would open a private scratch database on each connection: the runtime would
    # build, then every run fail on tables its connection lacks, and nothing be kept.
    from agentrt import AgentRuntime
    from agentrt.testing import ScriptedChatModel

    monkeypatch.chdir(tmp_path)  # where "  " would be made as a file
    with pytest.raises(ConfigError) as caught:
        AgentRuntime(ScriptedChatModel(["x"]), db=db)
    assert str(caught.value) == (
        f"db {db!r} names no database; give a SQLite file path (agentrt.db) or a postgresql:// URL"
    )


def test_a_db_that_cannot_be_a_sqlite_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    from agentrt import AgentRuntime
    from agentrt.testing import ScriptedChatModel

    notes = tmp_path / "notes.txt"
    notes.write_text("shopping: milk, eggs\n", encoding="utf-8")
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"SQLite format 3\x00" + b"\xff" * 200)
    cases = {
        tmp_path: f"db {str(tmp_path)!r} is a directory; give a SQLite file (in it, or a new path)",
        notes: f"cannot open db {str(notes)!r} as a SQLite database (file is not a database); "
        "give agentrt's SQLite file, or a path where there is none yet",
        broken: f"cannot open db {str(broken)!r} as a SQLite database (file is not a database); "
        "give agentrt's SQLite file, or a path where there is none yet",
        tmp_path / "no" / "x.db": f"cannot open db {str(tmp_path / 'no' / 'x.db')!r} as a SQLite "
        "database (unable to open database file); check that its directory exists and that "
        "this process may write there",
    }
    for db, message in cases.items():
        with pytest.raises(ConfigError) as caught:
            AgentRuntime(ScriptedChatModel(["x"]), db=db).close()
        assert str(caught.value) == message
    assert notes.read_text(encoding="utf-8") == "shopping: milk, eggs\n"  # left as it was
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.db", "notes.txt"]


def test_open_store_gives_the_store_and_its_checkpointer(tmp_path: Path) -> None:
    opened = open_store(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        assert opened.store.location == str(tmp_path / "x.db")
        assert opened.checkpointer.get_tuple({"configurable": {"thread_id": "none"}}) is None
    finally:
        opened.close()


def test_a_version_13_file_migrates_and_keeps_its_threads(db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    for step in MIGRATIONS[:13]:
        conn.executescript(step)
    conn.executescript(
        "CREATE TABLE agentrt_meta (key TEXT PRIMARY KEY, value TEXT);"
        "INSERT INTO agentrt_meta VALUES ('schema_version', '13');"
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
        '\'{"input_tokens": 10, "output_tokens": 1, "cost_usd": 0.1}\', 172800, 172800);'
    )
    for request_id, comment in (
        ("superseded", "superseded by message #1"),
        ("ended", "run ended failed"),
    ):
        conn.execute(
            "INSERT INTO approvals (id, thread_id, step_id, kind, tool, args, args_digest, "
            "reason, requested_by, requested_at, status, decided_at, comment) "
            "VALUES (?, 't', '0.0', 'action', 'pay', '{}', 'd', 'why', 'p', 1, 'cancelled', "
            "2, ?)",
            (request_id, comment),
        )
    conn.commit()
    conn.close()

    store = SqliteStore(db_path)
    try:
        assert store.schema_version == SCHEMA_VERSION == 17
        run = store.get_run("t")
        assert run is not None
        assert (run.app, run.tools) == (None, None)  # from before runs recorded their app
        # A request superseded before this version says so where it is asked now.
        found = {a.id: a for a in store.list_approvals(ApprovalQuery(thread_id="t", status=None))}
        assert (found["superseded"].superseded, found["ended"].superseded) == (
            "superseded by message #1",
            None,
        )
        assert found["superseded"].comment == "superseded by message #1"
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
    assert ("index", "messages_by_start") in schema_of(db_path)


def test_a_version_15_files_runs_named_by_a_digest_of_tools_go_to_any_worker(
    db_path: Path,
) -> None:
    # Version 15 recorded an unnamed app as 'tools:' and a digest of its tools' names,
    # which cannot be read back into the names: those runs record nothing now, as runs from
    # before, and any worker claims them. A name, even one shaped like that, is kept.
    conn = sqlite3.connect(db_path)
    for step in MIGRATIONS[:15]:
        conn.executescript(step)
    conn.executescript(
        "CREATE TABLE agentrt_meta (key TEXT PRIMARY KEY, value TEXT);"
        "INSERT INTO agentrt_meta VALUES ('schema_version', '15');"
    )
    made = {
        "derived": "tools:0123456789abcdef",
        "named": "refund-desk",
        "shaped": "tools:refund-desk",
        "upper": "tools:0123456789ABCDEF",
    }
    for n, (thread_id, app) in enumerate(made.items()):
        conn.execute(
            "INSERT INTO runs (thread_id, status, goal, principal, tenant, budget, usage, "
            "created_at, updated_at, app) VALUES (?, 'pending', 'g', '{}', 'acme', '{}', "
            "'{}', ?, ?, ?)",
            (thread_id, n, n, app),
        )
    conn.commit()
    conn.close()

    store = SqliteStore(db_path, clock=FakeClock(1000.0))
    try:
        assert store.schema_version == SCHEMA_VERSION == 17
        # 17: no renewal counted these runs' active time yet.
        assert {r.live_active_seconds for t in made if (r := store.get_run(t))} == {None}
        assert {t: (r.app, r.tools) for t in made if (r := store.get_run(t))} == {
            "derived": (None, None),
            "named": ("refund-desk", None),
            "shaped": ("tools:refund-desk", None),
            "upper": ("tools:0123456789ABCDEF", None),  # not a digest agentrt made
        }
        nothing = AppIdentity(name=None, tools=frozenset())
        claim = store.claim_runs(
            LeaseRecord("h:1:w", "h", 1, 2000.0), now=1000.0, limit=9, app=nothing
        )
        assert claim.thread_ids == ("derived",)
    finally:
        store.close()
