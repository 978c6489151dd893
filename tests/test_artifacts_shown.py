"""A run's artifacts as people see them: `GET /runs/{id}/artifacts`, the review page and
`agentrt artifacts` (and `agentrt show`), to the run's tenant only, each preview masked as
the run's log masks its copy of the reference: by the Redactor's detectors, and with the
secret values the log holds (a preview may repeat a tool's sensitive argument).
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from agentrt import AgentRuntime, ArtifactRef, Policy, Principal, ToolContext, tool
from agentrt.artifacts import artifact_digest
from agentrt.cli import app as cli_app
from agentrt.service import create_app, issue_key
from agentrt.testing import ScriptedChatModel, ai, tool_call
from tests.test_artifacts import REPORT, P, write_report

SECRET = "sk-live-4f9a8b7c6d5e4f3a2b1c0d9e"


@tool(effect="read")
def leaky_report(ctx: ToolContext) -> ArtifactRef:
    """Write a report whose preview quotes a secret."""
    return ctx.artifacts.put(
        "keys.txt", f"api_key={SECRET}\n", preview=f"api_key={SECRET}", media_type="text/plain"
    )


def two_runs(db: Path) -> tuple[str, str]:
    """A run that wrote report.csv and one whose artifact's preview quotes a secret."""
    made = []
    for call in (tool_call("write_report", {"title": "Refunds"}), tool_call("leaky_report")):
        with served_runtime(db, ScriptedChatModel([ai("", call), "done"])) as rt:
            made.append(rt.start("report", principal=P).thread_id)
    return made[0], made[1]


def served_runtime(db: Path, model: ScriptedChatModel | None = None) -> AgentRuntime:
    return AgentRuntime(
        model or ScriptedChatModel([]),
        tools=[write_report, leaky_report],
        policy=Policy.allow_all(),
        db=db,
    )


def served_app(db: str) -> AgentRuntime:
    """``served_runtime`` as the command's --app."""
    return served_runtime(Path(db))


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_api_serves_a_runs_artifacts_to_its_tenant_only(db: Path) -> None:
    ours, leaky = two_runs(db)
    rt = served_runtime(db)
    keys = {
        "acme": issue_key(rt, P),
        "globex": issue_key(rt, Principal("eve", tenant="globex")),
    }
    app = create_app(rt, sweep_every=None)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):

        async def get(path: str, who: str = "acme") -> httpx.Response:
            headers = {"Authorization": f"Bearer {keys[who]}"}
            return await client.get(path, headers=headers)

        listed = await get(f"/runs/{ours}/artifacts")
        served = await get(f"/runs/{ours}/artifacts/report.csv")
        other_list = await get(f"/runs/{ours}/artifacts", "globex")
        other_get = await get(f"/runs/{ours}/artifacts/report.csv", "globex")
        unknown = await get(f"/runs/{ours}/artifacts/nope.csv")
        masked = await get(f"/runs/{leaky}/artifacts")
        client.cookies.set("agentrt_key", keys["acme"])
        page = await client.get(f"/ui/runs/{ours}")
        leaky_page = await client.get(f"/ui/runs/{leaky}")
        download = await client.get(f"/ui/runs/{ours}/artifacts/report.csv")
        client.cookies.set("agentrt_key", keys["globex"])
        refused_download = await client.get(f"/ui/runs/{ours}/artifacts/report.csv")
    rt.close()

    assert listed.status_code == 200, listed.text
    assert listed.json()["artifacts"] == [
        {
            "name": "report.csv",
            "media_type": "text/csv",
            "size": 29,
            "digest": artifact_digest(REPORT),
            "preview": "Refunds: 1 row",
            "url": f"/runs/{ours}/artifacts/report.csv",
        }
    ]
    assert served.status_code == 200
    assert served.content == REPORT
    assert served.headers["content-type"].startswith("text/csv")
    assert served.headers["content-disposition"] == 'attachment; filename="report.csv"'
    # Another tenant is told nothing is there, as for any run of another tenant.
    for refused in (other_list, other_get):
        assert refused.status_code == 404
        assert refused.json()["type"] == "urn:agentrt:problem:unknown-run"
    assert unknown.status_code == 404
    assert unknown.json()["type"] == "urn:agentrt:problem:unknown-artifact"
    assert unknown.json()["detail"] == (
        f"run {ours!r} has no artifact named 'nope.csv'; list its artifacts with "
        f"GET /runs/{ours}/artifacts"
    )
    # A preview passes the Redactor like any output, in the API and on the page.
    (leaked,) = masked.json()["artifacts"]
    assert SECRET not in leaked["preview"]
    assert leaked["preview"].startswith("api_key=")
    assert page.status_code == 200
    assert f'href="/ui/runs/{ours}/artifacts/report.csv"' in page.text
    assert "Refunds: 1 row" in page.text
    assert leaky_page.status_code == 200
    assert "keys.txt" in leaky_page.text
    assert SECRET not in leaky_page.text
    assert (download.status_code, download.content) == (200, REPORT)
    assert refused_download.status_code == 404


def test_the_command_lists_and_writes_out_artifacts(db: Path, tmp_path: Path) -> None:
    thread, leaky = two_runs(db)

    def cli(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(cli_app, [*args, "--db", str(db)])
        return result.exit_code, result.output

    code, listed = cli("artifacts", thread, "--app", "tests.test_artifacts_shown:served_app")
    assert code == 0, listed
    assert listed.split() == [
        "report.csv",
        "text/csv",
        "29",
        "B",
        f"sha256:{artifact_digest(REPORT)[:12]}",
        "Refunds:",
        "1",
        "row",
    ]
    # Without the app no tool says which of its fields are harmless: the preview, a field
    # of the tool's result, is masked as the log's copy of the reference is.
    code, listed = cli("artifacts", thread)
    assert code == 0, listed
    assert listed.split()[5:] == ["[REDACTED:field]"]
    code, shown = cli("show", leaky)
    assert code == 0, shown
    assert "artifacts:\n  keys.txt" in shown
    assert SECRET not in shown
    out = tmp_path / "report.csv"
    code, said = cli("artifacts", thread, "report.csv", "--out", str(out))
    assert (code, out.read_bytes()) == (0, REPORT), said
    code, said = cli("artifacts", thread, "nope.csv")
    assert code == 1
    assert f"error: run {thread!r} has no artifact named 'nope.csv'" in said


def test_the_command_says_where_it_cannot_write_out(db: Path, tmp_path: Path) -> None:
    thread, _ = two_runs(db)
    (tmp_path / "taken").write_text("a file, not a directory")
    cases = [
        (
            tmp_path / "no" / "r.csv",
            f"--out {str(tmp_path / 'no' / 'r.csv')!r}: there is no directory "
            f"{str(tmp_path / 'no')!r}; create it first or give a path in a directory that exists",
        ),
        (
            tmp_path / "taken" / "r.csv",
            f"--out {str(tmp_path / 'taken' / 'r.csv')!r}: there is no directory "
            f"{str(tmp_path / 'taken')!r}",
        ),
        (
            tmp_path,
            f"--out {str(tmp_path)!r} is a directory; give a file in it: "
            f"--out {tmp_path / 'report.csv'}",
        ),
    ]
    for out, said in cases:
        result = CliRunner().invoke(
            cli_app, ["artifacts", thread, "report.csv", "--out", str(out), "--db", str(db)]
        )
        assert isinstance(result.exception, SystemExit), repr(result.exception)
        assert result.exit_code == 2, result.output
        assert result.output.startswith(f"error: {said}"), result.output
        assert len(result.output.splitlines()) == 1
    assert not (tmp_path / "report.csv").exists()
    if Path("/dev/full").exists():  # a write that fails past the checks: a full disk
        full = CliRunner().invoke(
            cli_app, ["artifacts", thread, "report.csv", "-o", "/dev/full", "--db", str(db)]
        )
        assert (full.exit_code, full.output) == (
            2,
            "error: cannot write --out '/dev/full': No space left on device\n",
        )
    nameless = CliRunner().invoke(cli_app, ["artifacts", thread, "--out", "x", "--db", str(db)])
    assert (nameless.exit_code, nameless.output) == (
        2,
        "error: --out needs an artifact's name: agentrt artifacts THREAD NAME --out FILE\n",
    )


PIN = "otter-40917-copper"  # no detector knows its shape: only its field says it is secret


@tool(effect="read", sensitive=["pin"])
def door_log(door: str, pin: str, ctx: ToolContext) -> list[ArtifactRef]:
    """Write the door's log, previewed by its start, and a note whose preview names the pin.

    Args:
        door: Which door.
        pin: The pin it opened to.
    """
    return [
        ctx.artifacts.put("door.txt", f"door {door} opened with pin {pin}\n" * 3),
        ctx.artifacts.put("note.txt", "opened", preview=f"{door}: {pin}"),
    ]


def door_app(db: str) -> AgentRuntime:
    """The app of ``door_log``, as the command's --app."""
    return AgentRuntime(
        ScriptedChatModel([]), tools=[door_log], policy=Policy.allow_all(), db=Path(db)
    )


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_preview_is_masked_with_the_secrets_of_the_runs_log_everywhere(
    db: Path,
) -> None:
    model = ScriptedChatModel([ai("", tool_call("door_log", {"door": "back", "pin": PIN})), "ok"])
    with AgentRuntime(model, tools=[door_log], policy=Policy.allow_all(), db=db) as rt:
        run = rt.start("log the back door", principal=P)
        assert run.status == "succeeded", run.error
        key = issue_key(rt, P)
        app = create_app(rt, sweep_every=None)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
        ):
            headers = {"Authorization": f"Bearer {key}"}
            events = await c.get(f"/runs/{run.thread_id}/events", headers=headers)
            listed = await c.get(f"/runs/{run.thread_id}/artifacts", headers=headers)
            c.cookies.set("agentrt_key", key)
            page = await c.get(f"/ui/runs/{run.thread_id}")
    with_app = ["--app", "tests.test_artifacts_shown:door_app", "--db", str(db)]
    said = {
        command: CliRunner().invoke(cli_app, [command, run.thread_id, *with_app])
        for command in ("artifacts", "show")
    }

    assert "door.txt" in events.text  # the log's copy of the reference is masked
    assert PIN not in events.text
    assert listed.status_code == 200, listed.text
    assert [(a["name"], a["preview"]) for a in listed.json()["artifacts"]] == [
        ("door.txt", "door back opened with pin [REDACTED:field]\n" * 3),
        ("note.txt", "back: [REDACTED:field]"),
    ]
    assert page.status_code == 200
    assert "note.txt" in page.text
    assert "back: [REDACTED:field]" in page.text
    assert PIN not in page.text
    for command, result in said.items():
        assert result.exit_code == 0, (command, result.output)
        assert "back: [REDACTED:field]" in result.output, command
        assert PIN not in result.output, command
