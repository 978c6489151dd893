"""The stop mark beside a SQLite file (agentrt.store.sqlite.stop_mark): a process that
writes a stop request moves it, and a run in another process that finds it moved looks for
the request at its next node, where it would otherwise not read the file at all."""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest

from agentrt import Principal, RunStatus
from agentrt.store.sqlite import SqliteStore
from agentrt.store.sqlite.stop_mark import SUFFIX, StopMark
from tests.conftest import SlowJobs

ROOT = Path(__file__).resolve().parent.parent
OPS = Principal("ops", roles=["ops"], tenant="acme")


def _in_another_process(code: str) -> None:
    """Run ``code`` in a fresh interpreter: nothing it does is known to this process."""
    done = subprocess.run(
        [sys.executable, "-c", code],
        check=False,  # the assert below shows what it printed
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_a_stop_asked_in_another_process_moves_the_mark_here(tmp_path: Path) -> None:
    db = tmp_path / "agentrt.db"
    store = SqliteStore(db)
    try:
        before = store.stop_mark()
        assert isinstance(before, bytes)
        _in_another_process(
            "from agentrt.store.sqlite import SqliteStore\n"
            f"s = SqliteStore({str(db)!r})\n"
            "s.request_cancel('t1', 'from afar')\n"
            "s.close()\n"
        )
        assert store.stop_mark() != before
    finally:
        store.close()


def test_the_mark_lies_beside_the_file_with_its_permissions(tmp_path: Path) -> None:
    shared = tmp_path / "shared.db"
    shared.touch()
    os.chmod(shared, 0o660)  # a database a group shares: its members all move the mark
    kept = os.umask(0o022)  # which would take the group's write away from a new file
    try:
        SqliteStore(shared).close()
    finally:
        os.umask(kept)
    mark = tmp_path / ("shared.db" + SUFFIX)
    assert mark.stat().st_size == 16
    assert stat.S_IMODE(mark.stat().st_mode) == 0o660
    own = tmp_path / "own.db"
    own.touch()
    os.chmod(own, 0o600)
    SqliteStore(own).close()
    assert stat.S_IMODE((tmp_path / ("own.db" + SUFFIX)).stat().st_mode) == 0o600


def test_a_database_opened_through_a_link_shares_the_mark_of_the_file(tmp_path: Path) -> None:
    db = tmp_path / "agentrt.db"
    link = tmp_path / "link.db"
    store = SqliteStore(db)
    link.symlink_to(db)
    through = SqliteStore(link)
    try:
        before = store.stop_mark()
        through.request_cancel("t1", "through the link")
        assert store.stop_mark() != before
        assert not (tmp_path / ("link.db" + SUFFIX)).exists()
    finally:
        through.close()
        store.close()


def test_a_link_planted_where_the_mark_goes_is_not_written_through(tmp_path: Path) -> None:
    victim = tmp_path / "victim.conf"
    victim.write_text("important=config\n")
    (tmp_path / ("agentrt.db" + SUFFIX)).symlink_to(victim)
    store = SqliteStore(tmp_path / "agentrt.db")
    try:
        assert store.stop_mark() is None  # no mark: runs look as with none
        store.request_cancel("t1", "a stop request")
    finally:
        store.close()
    assert victim.read_text() == "important=config\n"


def test_the_mark_is_made_whole_before_it_is_in_place(tmp_path: Path) -> None:
    SqliteStore(tmp_path / "agentrt.db").close()
    assert sorted(p.name for p in tmp_path.glob("*" + SUFFIX + "*")) == ["agentrt.db" + SUFFIX]
    assert (tmp_path / ("agentrt.db" + SUFFIX)).read_bytes() == bytes(16)


def test_a_mark_made_by_another_process_is_kept_as_it_is(tmp_path: Path) -> None:
    db = tmp_path / "agentrt.db"
    first = SqliteStore(db)
    try:
        first.request_cancel("t1", "moves it")
        moved = first.stop_mark()
        second = SqliteStore(db)  # finds the file made: maps it, never rewrites it
        assert second.stop_mark() == moved
        second.close()
    finally:
        first.close()


def test_where_no_mark_can_be_made_every_look_reads(tmp_path: Path) -> None:
    db = tmp_path / "agentrt.db"
    (tmp_path / ("agentrt.db" + SUFFIX)).mkdir()  # in the way: no file can be opened there
    store = SqliteStore(db)
    try:
        assert store.stop_mark() is None
        store.request_cancel("t1", "still written")  # moving no mark is no error
    finally:
        store.close()
    assert StopMark(":memory:").read() is None
    assert StopMark("").read() is None  # SQLite's private temporary database


def _as_nobody(work: Callable[[], object]) -> object:
    """``work``'s result in a forked child that runs as user nobody (agentrt already
    imported: the child needs no access to the checkout)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.setgid(65534)
            os.setuid(65534)
            os.write(write, json.dumps(work()).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        said = pipe.read()
    os.waitpid(pid, 0)
    return json.loads(said)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_a_process_that_may_only_read_the_mark_warns_and_runs_see_its_cancel_later(
    caplog: pytest.LogCaptureFixture,
) -> None:
    shared = Path(tempfile.mkdtemp(prefix="agentrt-mark-"))
    try:
        shared.chmod(0o777)
        db = shared / "agentrt.db"
        db.touch()
        db.chmod(0o666)
        store = SqliteStore(db)
        mark = shared / ("agentrt.db" + SUFFIX)
        mark.chmod(0o644)  # nobody may write the database, and only read the mark
        before = store.stop_mark()

        def cancel() -> object:
            theirs = SqliteStore(db)
            with caplog.at_level(logging.WARNING, logger="agentrt"):
                seen = theirs.stop_mark() == before
                theirs.request_cancel("t1", "from nobody")
            theirs.close()
            return [seen, [r.getMessage() for r in caplog.records]]

        seen, said = cast(list[Any], _as_nobody(cancel))
        assert seen  # mapped for reading: the same mark
        assert any("may not write the stop mark" in line for line in said), said
        assert store.stop_mark() == before  # unmoved: runs here see it at a stale look
        store.close()
    finally:
        shutil.rmtree(shared)


@pytest.mark.timeout(120)
def test_a_cancel_from_another_process_stops_the_run_before_its_next_effect(
    tmp_path: Path,
) -> None:
    db = tmp_path / "agentrt.db"
    jobs = SlowJobs(db, patience=60.0)
    # Only the mark may make this run look again: no look goes stale in this test.
    jobs.driver.deps.stop_watch.marked_stale = 3600.0
    run = jobs.run_while(
        lambda: _in_another_process(
            "from agentrt import AgentRuntime\n"
            "from agentrt.testing import ScriptedChatModel\n"
            f"with AgentRuntime(ScriptedChatModel([]), db={str(db)!r}, tracing=None) as rt:\n"
            "    rt.cancel('t', reason='customer withdrew')\n"
        )
    )
    assert jobs.done == ["a"]  # the call in flight finished; the next one never began
    assert (run.status, run.error) == (RunStatus.CANCELLED, "customer withdrew")
