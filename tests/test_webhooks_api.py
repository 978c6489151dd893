"""The webhook deliveries as a tenant reads them: `GET /webhooks/deliveries` lists its own
(the dead letter among them) and sends a dead one again, each event's goal and error
masked as the dispatcher sends them and `GET /runs/{id}` shows the run; `agentrt webhooks
deliveries` lists no run's words at all.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from agentrt import AgentRuntime
from agentrt.cli import app as cli
from agentrt.examples import refund_desk
from agentrt.examples.refund_desk import OPERATOR
from agentrt.service import create_app, issue_key
from agentrt.service.routes.webhooks import deliveries_out
from agentrt.store.outbox import DeliveryQuery
from agentrt.webhooks import Dispatcher, RetrySchedule, Webhooks
from tests.conftest import FakeClock
from tests.test_webhooks import GLOBEX, PIN, door_desk, drain, endpoint, refund
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def desk(tmp_path: Path, clock: FakeClock) -> Iterator[AgentRuntime]:
    rt = refund_desk.build_runtime(tmp_path / "agentrt.db", clock=clock, tracing=None)
    yield rt
    rt.close()


async def test_the_api_lists_a_tenants_dead_letters_and_sends_one_again(
    desk: AgentRuntime, clock: FakeClock
) -> None:
    with Receiver(fail_first=1) as receiver:
        webhooks = Webhooks(
            endpoints=(endpoint(receiver, tenant="*", events=("run.*",)),),
            retry=RetrySchedule(max_attempts=1),
        )
        mine, theirs = refund(desk), refund(desk, GLOBEX)
        drain(Dispatcher(desk.store, webhooks, clock=clock), clock)
    keys = {"alice": issue_key(desk, OPERATOR), "gina": issue_key(desk, GLOBEX)}
    app = create_app(desk, sweep_every=None, rate_limit="10000/minute")
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://agentrt.test"
        ) as client,
    ):

        async def call(method: str, path: str, who: str) -> httpx.Response:
            return await client.request(
                method, path, headers={"Authorization": f"Bearer {keys[who]}"}
            )

        answer = await call("GET", "/webhooks/deliveries?status=dead", "alice")
        assert answer.status_code == 200, answer.text
        (dead,) = answer.json()["deliveries"]
        assert (dead["thread_id"], dead["type"], dead["endpoint"]) == (mine, "run.succeeded", "ops")
        assert dead["last_error"] == "gave up after 1 sends: HTTP 503"
        assert "url" not in dead
        theirs_listed = (await call("GET", "/webhooks/deliveries", "gina")).json()["deliveries"]
        assert {d["thread_id"] for d in theirs_listed} == {theirs}
        path = f"/webhooks/deliveries/ops/{dead['event_id']}/retry"
        assert (await call("POST", path, "gina")).status_code == 404  # not globex's
        retried = await call("POST", path, "alice")
        assert retried.status_code == 200, retried.text
        assert (retried.json()["status"], retried.json()["attempts"]) == ("pending", 0)
        assert (await call("POST", path, "alice")).status_code == 409


async def test_the_deliveries_api_masks_a_runs_goal_and_error_as_get_run_does(
    tmp_path: Path, clock: FakeClock
) -> None:
    # The outbox keeps the goal as written (the dispatcher masks what it sends); a dead or
    # pending delivery must not hand it to any key of the tenant in clear.
    with Receiver(fail_first=99) as receiver:
        webhooks = Webhooks(
            endpoints=(endpoint(receiver, events=("run.*",)),),
            retry=RetrySchedule(max_attempts=1),
        )
        with door_desk(tmp_path / "doors.db", clock, webhooks) as rt:
            run = rt.start(f"Open the back door with pin {PIN}.", principal=OPERATOR)
            assert run.status == "failed"
            dispatcher = rt.dispatcher()
            try:
                assert dispatcher.deliver_due().dead == 1  # one 503: the dead letter
            finally:
                dispatcher.close()
            key = issue_key(rt, OPERATOR)
            app = create_app(rt, sweep_every=None, rate_limit="10000/minute")
            auth = {"Authorization": f"Bearer {key}"}
            async with (
                app.router.lifespan_context(app),
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://agentrt.test"
                ) as client,
            ):
                shown = (await client.get(f"/runs/{run.thread_id}", headers=auth)).json()
                dead = await client.get("/webhooks/deliveries?status=dead", headers=auth)
                event_id = dead.json()["deliveries"][0]["event_id"]
                retried = await client.post(
                    f"/webhooks/deliveries/ops/{event_id}/retry", headers=auth
                )
                pending = await client.get("/webhooks/deliveries?status=pending", headers=auth)
            listed = CliRunner().invoke(
                cli, ["webhooks", "deliveries", "--db", str(rt.db), "--json"]
            )
            table = CliRunner().invoke(cli, ["webhooks", "deliveries", "--db", str(rt.db)])
            # A delivery whose run is pruned between its listing and its masking is left
            # out, never shown unmasked: the run's log that says what to mask is gone.
            found = rt.store.list_deliveries(DeliveryQuery())
            assert rt.store.delete_run(run.thread_id)
            gone = deliveries_out(app.state.agentrt, found)

    masked = {
        "status": "failed",
        "from_status": "running",
        "goal": "Open the back door with pin [REDACTED:field].",
        "error": "RuntimeError: the provider refused a prompt holding [REDACTED:field]",
    }
    assert (shown["goal"], shown["error"]) == (masked["goal"], masked["error"])
    for answer in (dead, retried, pending):
        assert answer.status_code == 200, answer.text
        assert PIN not in answer.text
    ((dead_one,), (pending_one,)) = (dead.json()["deliveries"], pending.json()["deliveries"])
    assert (dead_one["type"], dead_one["status"]) == ("run.failed", "dead")
    assert dead_one["data"] == masked
    assert (retried.json()["status"], retried.json()["data"]) == ("pending", masked)
    assert pending_one["data"] == masked
    # The command lists no event's data, so no goal to mask.
    for said in (listed, table):
        assert said.exit_code == 0, said.output
        assert event_id in said.output
        assert PIN not in said.output
    assert [d["event_id"] for d in json.loads(listed.stdout)] == [event_id]
    assert len(found) == 1
    assert gone == []
