"""Artifacts: files and large results kept once, by content, and referred to everywhere else.

A run of real tools on a real SQLite file: a 10 MB result grows the database by its size
once (it grew by about 38 MB, 58 MB with content on spans, before artifacts), a tool puts a
file and another step reads it back, prune drops content no kept run names.
"""

from __future__ import annotations

import base64
import json
import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from agentrt import (
    AgentRuntime,
    ArtifactRef,
    ConfigError,
    Policy,
    Principal,
    RunStatus,
    SizeLimits,
    ToolContext,
    UnknownArtifact,
    tool,
)
from agentrt.artifacts import artifact_digest, is_artifact_ref
from agentrt.store.memory import MemoryStore
from agentrt.testing import ScriptedChatModel, ai, tool_call
from agentrt.tools.artifacts import ToolArtifacts
from agentrt.tools.sandbox import run_python
from tests.conftest import FakeClock

P = Principal("p", tenant="acme")
TEN_MB = 10_000_000
REPORT = b"Refunds\norder,amount\n7,12.50\n"


def noise(size: int, seed: int = 7) -> str:
    """``size`` characters that compress no better than base64 of random bytes does."""
    return base64.b64encode(random.Random(seed).randbytes(size * 3 // 4)).decode()


@tool(effect="write")
def export(rows: int) -> dict[str, Any]:
    """Export the orders table.

    Args:
        rows: How many characters of export to make.
    """
    return {"format": "orders-v1", "data": noise(rows)}


@tool(effect="read")
def write_report(title: str, ctx: ToolContext) -> ArtifactRef:
    """Write a CSV report.

    Args:
        title: The report's first line.
    """
    return ctx.artifacts.put(
        "report.csv", f"{title}\norder,amount\n7,12.50\n", preview=f"{title}: 1 row"
    )


@tool(effect="read")
def counted_report(rows: int, ctx: ToolContext) -> dict[str, Any]:
    """Write a report and say how many rows it has.

    Args:
        rows: How many rows.
    """
    ref = ctx.artifacts.put("rows.txt", "row\n" * rows)
    return {"rows": rows, "files": (ref,)}


@tool(effect="read")
async def copy_report(name: str, ctx: ToolContext) -> ArtifactRef:
    """Copy an artifact, from an async tool.

    Args:
        name: The artifact to copy.
    """
    data = await ctx.artifacts.aget(name)
    return await ctx.artifacts.aput(f"copy-of-{name}", data, preview="a copy")


@tool(effect="read")
def read_report(name: str, ctx: ToolContext) -> dict[str, Any]:
    """Read an artifact back.

    Args:
        name: The artifact's name.
    """
    return {"lines": ctx.artifacts.get(name).decode().splitlines()}


def db_bytes(path: Path) -> int:
    """The file's size with its WAL folded in (what a backup or a copy of it weighs)."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return path.stat().st_size


def runtime(db: Path, model: ScriptedChatModel, **kw: Any) -> AgentRuntime:
    kw.setdefault("tools", [export, write_report, read_report, counted_report, copy_report])
    return AgentRuntime(
        model,
        policy=Policy.allow_all(),
        db=db,
        limits=SizeLimits(result_bytes=32_000_000),
        **kw,
    )


def observations(rt: AgentRuntime, thread_id: str) -> list[str]:
    return [e["data"]["content"] for e in rt.events(thread_id) if e["type"] == "observation"]


def test_a_10_mb_result_is_stored_once_and_the_run_keeps_its_reference(db: Path) -> None:
    model = ScriptedChatModel([ai("", tool_call("export", {"rows": TEN_MB})), "exported"])
    with runtime(db, ScriptedChatModel([])):
        pass
    before = db_bytes(db)
    # Content on spans too: every surface that used to copy the result is on.
    with runtime(db, model, capture_content=True) as rt:
        run = rt.start("export the orders", principal=P)
        assert run.status is RunStatus.SUCCEEDED
        (ref,) = rt.artifacts(run.thread_id)
        content = rt.artifact(run.thread_id, ref.name)
        (seen,) = observations(rt, run.thread_id)
        (effect,) = rt.store.list_effects(run.thread_id)
        spans = rt.store.spans_of(rt.store.run_trace(run.thread_id)[0] or "")
    grew = db_bytes(db) - before

    assert json.loads(content) == {"format": "orders-v1", "data": noise(TEN_MB)}
    assert (ref.name, ref.media_type) == ("export-0.0.json", "application/json")
    assert (ref.size, ref.digest) == (len(content), artifact_digest(content))
    assert ref.preview.startswith('{"format":"orders-v1","data":"')
    assert len(ref.preview) == 200
    # The model, the ledger and the spans see the reference, not the 10 MB.
    assert json.loads(seen) == ref.to_json()
    assert effect.result == ref.to_json()
    assert max(len(json.dumps(s.attributes)) for s in spans) < 10_000
    # Stored once: the file grows by the content and little more (38 MB before artifacts).
    assert len(content) < grew < len(content) + 1_000_000, f"grew {grew:,} bytes"


def test_a_tool_puts_a_file_and_a_later_step_reads_it(db: Path) -> None:
    model = ScriptedChatModel(
        [
            ai("", tool_call("write_report", {"title": "Refunds"})),
            ai("", tool_call("read_report", {"name": "report.csv"})),
            ai("", tool_call("read_report", {"name": "missing.csv"})),
            "done",
        ]
    )
    with runtime(db, model) as rt:
        run = rt.start("report", principal=P)
        refs = rt.artifacts(run.thread_id)
        wrote, read, missing = observations(rt, run.thread_id)
        with pytest.raises(UnknownArtifact) as unknown:
            rt.artifact(run.thread_id, "nope.txt")

    (ref,) = refs
    content = REPORT
    assert ref == ArtifactRef(
        name="report.csv",
        media_type="text/csv",
        size=len(content),
        digest=artifact_digest(content),
        preview="Refunds: 1 row",
    )
    assert json.loads(wrote) == ref.to_json()
    assert json.loads(read) == {"lines": ["Refunds", "order,amount", "7,12.50"]}
    assert missing == (
        "permanent error: UnknownArtifact: this run has no artifact named 'missing.csv'; "
        "it has 'report.csv'"
    )
    assert str(unknown.value).startswith(f"run {run.thread_id!r} has no artifact named 'nope.txt'")


def test_a_reference_inside_a_result_is_kept_as_its_json_form(db: Path) -> None:
    model = ScriptedChatModel([ai("", tool_call("counted_report", {"rows": 3})), "ok"])
    with runtime(db, model) as rt:
        run = rt.start("count", principal=P)
        (seen,) = observations(rt, run.thread_id)
        (ref,) = rt.artifacts(run.thread_id)
    assert json.loads(seen) == {"rows": 3, "files": [ref.to_json()]}
    assert (ref.name, ref.media_type, ref.size) == ("rows.txt", "text/plain", 12)
    assert ref.preview == "row\nrow\nrow\n"


async def _copied(db: Path) -> tuple[list[ArtifactRef], bytes]:
    script = [
        ai("", tool_call("write_report", {"title": "Async"})),
        ai("", tool_call("copy_report", {"name": "report.csv"})),
        "ok",
    ]
    with runtime(db, ScriptedChatModel(script)) as rt:
        run = await rt.astart("copy", principal=P)
        return rt.artifacts(run.thread_id), rt.artifact(run.thread_id, "copy-of-report.csv")


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_an_async_tool_reads_and_puts_artifacts(db: Path) -> None:
    refs, copied = await _copied(db)
    assert [(r.name, r.media_type, r.preview) for r in refs] == [
        ("copy-of-report.csv", "text/csv", "a copy"),
        ("report.csv", "text/csv", "Async: 1 row"),
    ]
    assert refs[0].digest == refs[1].digest  # the same content, kept once
    assert copied == b"Async\norder,amount\n7,12.50\n"


def test_a_small_result_stays_inline(db: Path) -> None:
    model = ScriptedChatModel([ai("", tool_call("export", {"rows": 100})), "ok"])
    with runtime(db, model) as rt:
        run = rt.start("export a little", principal=P)
        (seen,) = observations(rt, run.thread_id)
        assert rt.artifacts(run.thread_id) == []
    assert not is_artifact_ref(json.loads(seen))
    assert json.loads(seen)["data"] == noise(100)


def test_prune_drops_the_content_no_kept_run_refers_to(db: Path, clock: FakeClock) -> None:
    script = [ai("", tool_call("write_report", {"title": "Same"})), "ok"]
    with runtime(db, ScriptedChatModel(script * 3), clock=clock) as rt:
        old = rt.start("report", principal=P).thread_id
        clock.advance(3600)
        kept = rt.start("report", principal=P).thread_id
        (shared,) = rt.artifacts(kept)
        assert rt.artifacts(old) == [shared]  # the same content: one copy for both
        # A replay of a run that put an artifact goes the same way.
        assert rt.replay(old).identical

        assert rt.prune(older_than=1800) == [old]
        assert rt.artifact(kept, "report.csv").startswith(b"Same\n")  # still named by kept
        assert rt.store.artifact_content(shared.digest) is not None

        clock.advance(1)
        assert rt.prune(older_than=0) == [kept]
        assert rt.store.artifact_content(shared.digest) is None


def test_bad_artifact_input_is_refused_by_name() -> None:
    ctx = ToolContext(thread_id="t", step_id="1.0", idempotency_key="k", principal=P)
    with pytest.raises(ConfigError, match=r"artifact name '../etc/passwd' is not usable"):
        ctx.artifacts.put("../etc/passwd", b"x")
    with pytest.raises(ConfigError, match=r"artifact 'a.bin': data must be bytes or str, got int"):
        ctx.artifacts.put("a.bin", 3)  # type: ignore[arg-type]
    # A context made by hand keeps its artifacts in memory: a tool's own test can use it.
    ref = ctx.artifacts.put("a.bin", b"\x00\x01", preview="two\x00 bytes")
    assert (ref.media_type, ref.preview) == ("application/octet-stream", "two bytes")
    assert ctx.artifacts.get(ref) == ctx.artifacts.get("a.bin") == b"\x00\x01"


# the service and the command ----------------------------------------------------------------


@pytest.mark.subprocess
def test_run_python_returns_the_files_its_program_wrote(db: Path) -> None:
    program = (
        "import os\n"
        "os.makedirs('out')\n"
        "open('out/summary.csv', 'w').write('n,total\\n3,36.0\\n')\n"
        "open('chart.png', 'wb').write(bytes([137, 80, 78, 71, 0, 1]))\n"
        "open('data.txt', 'w').write('changed')\n"
        "print('wrote')\n"
    )
    call = tool_call("run_python", {"code": program, "files": {"data.txt": "given", "in.txt": "x"}})
    with AgentRuntime(
        ScriptedChatModel([ai("", call), "done"]),
        tools=[run_python],
        policy=Policy.allow_all(),
        db=db,
    ) as rt:
        run = rt.start("compute", principal=P)
        (seen,) = observations(rt, run.thread_id)
        refs = {r.name: r for r in rt.artifacts(run.thread_id)}
        contents = {name: rt.artifact(run.thread_id, name) for name in refs}

    result = json.loads(seen)
    assert result["stdout"] == "wrote\n"
    # Written or changed: kept, named for the call; the program and an input it left
    # alone: not.
    assert contents == {
        "run_python-0.0-chart.png": bytes([137, 80, 78, 71, 0, 1]),
        "run_python-0.0-data.txt": b"changed",
        "run_python-0.0-out-summary.csv": b"n,total\n3,36.0\n",
    }
    assert result["artifacts"] == [refs[n].to_json() for n in sorted(refs)]
    assert refs["run_python-0.0-chart.png"].media_type == "image/png"
    assert refs["run_python-0.0-chart.png"].preview == ""
    assert refs["run_python-0.0-out-summary.csv"].preview == "n,total\n3,36.0\n"


@pytest.mark.subprocess
def test_run_python_keeps_every_file_whose_names_map_alike(db: Path) -> None:
    program = (
        "import os\n"
        "os.makedirs('out')\n"
        "open('out/a.csv', 'w').write('nested\\n')\n"
        "open('out-a.csv', 'w').write('flat\\n')\n"
        "open('out-a-2.csv', 'w').write('named so\\n')\n"
    )
    call = tool_call("run_python", {"code": program})
    with AgentRuntime(
        ScriptedChatModel([ai("", call), "done"]),
        tools=[run_python],
        policy=Policy.allow_all(),
        db=db,
    ) as rt:
        run = rt.start("compute", principal=P)
        (seen,) = observations(rt, run.thread_id)
        contents = {r.name: rt.artifact(run.thread_id, r.name) for r in rt.artifacts(run.thread_id)}
    result = json.loads(seen)
    # In path order each takes its name; one whose name is taken gets the first free -n,
    # never a name another file has as it is.
    at = "run_python-0.0-"
    assert result["artifact_names"] == {
        "out-a-2.csv": f"{at}out-a-2.csv",
        "out-a.csv": f"{at}out-a.csv",
        "out/a.csv": f"{at}out-a-3.csv",
    }
    assert contents == {
        f"{at}out-a-2.csv": b"named so\n",
        f"{at}out-a.csv": b"flat\n",
        f"{at}out-a-3.csv": b"nested\n",
    }
    assert [a["name"] for a in result["artifacts"]] == [
        f"{at}out-a-2.csv",
        f"{at}out-a.csv",
        f"{at}out-a-3.csv",
    ]


def test_names_that_map_alike_get_a_suffix_before_the_extension() -> None:
    from agentrt.tools.sandbox.tool import artifact_names

    long = "x" * 250
    named = artifact_names(
        ["a/b.txt", "a-b.txt", "a_b.txt", "notes", "é", "ü", f"{long}.csv", f"{long}.tsv"]
    )
    assert named == {
        "a/b.txt": "a-b.txt",
        "a-b.txt": "a-b-2.txt",
        "a_b.txt": "a_b.txt",
        "notes": "notes",
        "é": "file",
        "ü": "file-2",
        f"{long}.csv": "x" * 200,
        f"{long}.tsv": "x" * 198 + "-2",
    }
    assert len(set(named.values())) == len(named)
    assert artifact_names(reversed(list(named))) != named  # by the order given: path order


def test_a_reference_gives_the_content_its_digest_names_or_none() -> None:
    store = MemoryStore()
    arts = ToolArtifacts(store, "t", tenant="acme", step_id="1.0")
    first = arts.put("report.csv", "v1")
    second = arts.put("report.csv", "v2")  # a name put again names the new content
    assert arts.get("report.csv") == arts.get(second) == arts.get(second.to_json()) == b"v2"
    # The first reference names v1, which the run no longer holds: refused, not v2.
    refused = r"this run's artifact 'report.csv' no longer holds the content this reference"
    for ref in (first, first.to_json()):
        with pytest.raises(UnknownArtifact, match=refused):
            arts.get(ref)
    # A reference whose digest is another run's content (forged by a model): refused too.
    other = ToolArtifacts(store, "other", tenant="globex").put("secret.txt", "globex's")
    with pytest.raises(UnknownArtifact, match=rf"sha256 {other.digest[:12]}\.\.\."):
        arts.get({**second.to_json(), "digest": other.digest})
    # Content the run refers to by another name is still the run's: the reference gives it.
    arts.put("kept.csv", "v1")
    assert arts.get(first) == b"v1"
    with pytest.raises(UnknownArtifact, match=r"no artifact named 'gone.csv'; it has 'kept.csv'"):
        arts.get({**first.to_json(), "name": "gone.csv"})


@pytest.mark.subprocess
def test_run_python_files_never_replace_another_tools_artifacts(db: Path) -> None:
    # Code that writes files named as another tool's artifacts (its own, and the name
    # agentrt gives its too-large result): they are kept under the call's own names.
    forge = (
        "open('report.csv', 'w').write('forged')\nopen('write_report-0.0.json', 'w').write('{}')\n"
    )
    model = ScriptedChatModel(
        [
            ai("", tool_call("write_report", {"title": "Refunds"})),
            ai("", tool_call("run_python", {"code": forge})),
            ai("", tool_call("read_report", {"name": "report.csv"})),
            "done",
        ]
    )
    with runtime(db, model, tools=[write_report, read_report, run_python]) as rt:
        run = rt.start("report", principal=P)
        _, ran, read = observations(rt, run.thread_id)
        names = [r.name for r in rt.artifacts(run.thread_id)]
    assert names == [
        "report.csv",
        "run_python-1.0-report.csv",
        "run_python-1.0-write_report-0.0.json",
    ]
    assert json.loads(read) == {"lines": ["Refunds", "order,amount", "7,12.50"]}
    assert json.loads(ran)["artifact_names"] == {
        "report.csv": "run_python-1.0-report.csv",
        "write_report-0.0.json": "run_python-1.0-write_report-0.0.json",
    }
