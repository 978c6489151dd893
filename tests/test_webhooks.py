"""Webhooks from the outbox to a real receiver on 127.0.0.1: retried with backoff and jitter
on the test's clock, each event taken once by id and in order per run, signed as Standard
Webhooks says (checked with its reference library), dead-lettered, sent again by hand,
each tenant's events only to its own endpoints, and no secret or URL in a log line.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langchain_core.messages import BaseMessage
from langgraph.types import RetryPolicy
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from typer.testing import CliRunner

from agentrt import AgentRuntime, Decision, Policy, Principal, tool
from agentrt.cli import app as cli
from agentrt.errors import ConfigError
from agentrt.examples import refund_desk
from agentrt.examples.refund_desk import APPROVER, GOAL, OPERATOR
from agentrt.service import create_app
from agentrt.service.schemas import run_out
from agentrt.store.outbox import DeliveryQuery
from agentrt.testing import ScriptedChatModel, ai, tool_call
from agentrt.webhooks import (
    Dispatcher,
    RetrySchedule,
    SignatureError,
    WebhookEndpoint,
    Webhooks,
    verify,
)
from tests.conftest import FakeClock
from tests.serving import ROOT, worker
from tests.webhook_receiver import Receiver

SECRET = "whsec_" + base64.b64encode(b"a key of thirty-two bytes, made!").decode()
pytestmark = pytest.mark.anyio

GLOBEX_SECRET = "whsec_" + base64.b64encode(b"globex's own key, thirty-two b!!").decode()
GLOBEX = Principal("gina", roles=["operator"], tenant="globex", scopes=OPERATOR.scopes)


def endpoint(
    receiver: Receiver, name: str = "ops", tenant: str = "acme", **kw: object
) -> WebhookEndpoint:
    secret = kw.pop("secret", SECRET)
    return WebhookEndpoint(name=name, url=receiver.url, secret=str(secret), tenant=tenant, **kw)  # type: ignore[arg-type]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def desk(tmp_path: Path, clock: FakeClock) -> Iterator[AgentRuntime]:
    rt = refund_desk.build_runtime(tmp_path / "agentrt.db", clock=clock, tracing=None)
    yield rt
    rt.close()


def refund(rt: AgentRuntime, principal: Principal = OPERATOR) -> str:
    """A refund that waits for a person, approved and finished: three events."""
    run = rt.start(GOAL, principal=principal)
    assert run.pending_approval is not None
    approver = (
        APPROVER
        if principal is OPERATOR
        else Principal("gus", roles=["refund-approver"], tenant=principal.tenant)
    )
    rt.decide(Decision.approve(run.pending_approval.id, by=approver))
    return run.thread_id


def drain(dispatcher: Dispatcher, clock: FakeClock, *, passes: int = 60) -> None:
    """Pass after pass, the clock moved to the next try each time, until nothing is due."""
    store = dispatcher.store
    for _ in range(passes):
        dispatcher.deliver_due()
        pending = store.list_deliveries(DeliveryQuery(status="pending"))
        if not pending:
            return
        # Later events of a run wait behind its first (their own time has come already).
        clock.now = min((d.next_at for d in pending if d.next_at > clock.now), default=clock.now)
    raise AssertionError("deliveries still pending after every pass")


def test_a_failing_receiver_gets_each_event_once_by_id_in_order_after_backoff(
    desk: AgentRuntime, clock: FakeClock
) -> None:
    with Receiver(fail_first=2) as receiver:
        webhooks = Webhooks(
            endpoints=(endpoint(receiver),), public_url="https://agents.example.com/desk/"
        )
        thread_id = refund(desk)
        dispatcher = Dispatcher(desk.store, webhooks, clock=clock, rand=lambda: 0.5)
        start = clock.now
        drain(dispatcher, clock)

    events = desk.store.outbox_events(thread_id=thread_id)
    ids = [e.id for e in events]
    assert [e.type for e in events] == ["approval.requested", "approval.decided", "run.succeeded"]
    assert receiver.accepted() == ids  # each taken once, in the order they happened
    assert Counter(receiver.ids()) == dict.fromkeys(ids, 3)  # two refusals each, same id
    # Backoff with jitter on the test's clock: 5 s then 10 s, each cut by 0.25 * 0.5.
    first = [int(r.headers["webhook-timestamp"]) for r in receiver.received if r.event_id == ids[0]]
    assert first == [int(start), int(start + 4.375), int(start + 4.375 + 8.75)]
    body = receiver.received[-1].document
    assert body["id"] == ids[-1]
    assert body["type"] == "run.succeeded"
    assert body["links"]["run"] == f"https://agents.example.com/desk/ui/runs/{thread_id}"
    asked = receiver.received[0].document
    approval_id = asked["data"]["approval_id"]
    assert asked["links"]["review"] == f"https://agents.example.com/desk/ui/approvals/{approval_id}"
    assert asked["tenant"] == "acme"
    assert "args" not in asked["data"]  # the arguments stay behind the page's sign-in
    delivered = desk.store.list_deliveries(DeliveryQuery(status="delivered"))
    assert {(d.event.id, d.attempts) for d in delivered} == {(i, 3) for i in ids}


def test_the_signature_is_standard_webhooks(desk: AgentRuntime) -> None:
    now = FakeClock(time.time())  # the reference library checks against the wall clock
    with Receiver() as receiver:
        refund(desk)
        dispatcher = Dispatcher(desk.store, Webhooks(endpoints=(endpoint(receiver),)), clock=now)
        dispatcher.deliver_due()
    sent = receiver.received[0]
    reference = Webhook(SECRET)
    assert reference.verify(sent.body, sent.headers)["id"] == sent.event_id
    assert verify(SECRET, sent.headers, sent.body, now=now()) == sent.event_id
    tampered = sent.body.replace(b"acme", b"evil")
    with pytest.raises(WebhookVerificationError):
        reference.verify(tampered, sent.headers)
    with pytest.raises(SignatureError, match="no v1 signature"):
        verify(SECRET, sent.headers, tampered, now=now())
    with pytest.raises(SignatureError, match="more than 300 s"):
        verify(SECRET, sent.headers, sent.body, now=now() + 301)
    with pytest.raises(SignatureError, match="no v1 signature"):
        verify(GLOBEX_SECRET, sent.headers, sent.body, now=now())


def test_a_tenants_events_reach_only_its_own_endpoints(
    desk: AgentRuntime, clock: FakeClock
) -> None:
    with Receiver() as acme, Receiver() as globex, Receiver() as operator:
        webhooks = Webhooks(
            endpoints=(
                endpoint(acme, "acme-ops"),
                endpoint(globex, "globex-ops", tenant="globex", secret=GLOBEX_SECRET),
                endpoint(operator, "operator", tenant="*", events=("run.*",)),
            )
        )
        mine = refund(desk)
        theirs = refund(desk, GLOBEX)
        drain(Dispatcher(desk.store, webhooks, clock=clock), clock)

    def runs_of(receiver: Receiver) -> set[str]:
        return {r.document["thread_id"] for r in receiver.received}

    assert runs_of(acme) == {mine}
    assert runs_of(globex) == {theirs}
    assert {r.document["tenant"] for r in globex.received} == {"globex"}
    assert runs_of(operator) == {mine, theirs}
    assert {r.document["type"] for r in operator.received} == {"run.succeeded"}
    # Each endpoint signs with its own secret.
    for r in globex.received:
        verify(GLOBEX_SECRET, r.headers, r.body, now=clock())
        with pytest.raises(SignatureError):
            verify(SECRET, r.headers, r.body, now=clock())


def test_given_up_deliveries_are_dead_listed_and_sent_again_by_hand(
    desk: AgentRuntime, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="agentrt")
    with Receiver(fail_first=3, fail_status=500) as receiver:
        webhooks = Webhooks(
            endpoints=(endpoint(receiver, events=("run.succeeded",)),),
            retry=RetrySchedule(first_delay=60, max_attempts=3),
        )
        thread_id = refund(desk)
        dispatcher = Dispatcher(desk.store, webhooks, clock=clock, rand=lambda: 0.0)
        drain(dispatcher, clock)
        (dead,) = desk.store.list_deliveries(DeliveryQuery(status="dead"))
        assert dead.event.type == "run.succeeded"
        assert dead.attempts == 3
        assert dead.last_error == "gave up after 3 sends: HTTP 500"
        assert dead.last_status == 500

        runner = CliRunner()
        listed = runner.invoke(
            cli, ["webhooks", "deliveries", "--status", "dead", "--db", desk.db, "--json"]
        )
        assert listed.exit_code == 0, listed.output
        assert [(d["event_id"], d["status"], d["attempts"]) for d in json.loads(listed.stdout)] == [
            (dead.event.id, "dead", 3)
        ]
        again = runner.invoke(
            cli, ["webhooks", "retry", dead.event.id, "--endpoint", "ops", "--db", desk.db]
        )
        assert again.exit_code == 0, again.output
        refused = runner.invoke(
            cli, ["webhooks", "retry", dead.event.id, "--endpoint", "ops", "--db", desk.db]
        )
        assert refused.exit_code == 2
        assert "is pending, not dead" in refused.output
        assert dispatcher.deliver_due().delivered == 1  # the receiver works again

    assert receiver.accepted() == [dead.event.id]
    assert desk.store.list_deliveries(DeliveryQuery(status="dead")) == []
    # No line told the secret or the endpoint's URL (its path may hold a token).
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "dead" in logged
    assert SECRET not in logged
    assert receiver.path not in logged
    assert thread_id  # the run's id may be logged; it is not a secret


def test_a_bad_webhooks_file_names_the_line_and_what_to_do(tmp_path: Path) -> None:
    text = """
public_url: https://agents.example.com
endpoints:
  - name: ops
    url: https://hooks.example.com/agentrt
    secret_env: OPS_WEBHOOK_SECRET
    events: ["approval.*"]
"""
    with pytest.raises(ConfigError, match=r"webhooks.yaml:4: endpoints\.0\.tenant: Field required"):
        Webhooks.from_yaml(text, source="webhooks.yaml", environ={})
    fixed = text.replace("    events:", "    tenant: acme\n    events:")
    with pytest.raises(ConfigError, match="'OPS_WEBHOOK_SECRET' holding its secret is not set"):
        Webhooks.from_yaml(fixed, source="webhooks.yaml", environ={})
    loaded = Webhooks.from_yaml(fixed, environ={"OPS_WEBHOOK_SECRET": SECRET})
    (ops,) = loaded.endpoints
    assert (ops.name, ops.tenant, ops.events) == ("ops", "acme", ("approval.*",))
    assert SECRET not in repr(loaded)
    assert "hooks.example.com" not in repr(loaded)
    with pytest.raises(ConfigError, match=r"'approvals\.\*' matches no event type"):
        Webhooks.from_yaml(
            fixed.replace("approval.*", "approvals.*"), environ={"OPS_WEBHOOK_SECRET": SECRET}
        )
    with pytest.raises(ConfigError, match="tenant must name a tenant, or be '\\*'"):
        WebhookEndpoint(name="x", url="https://h.example.com", secret=SECRET, tenant="")


def test_a_webhook_url_that_is_no_plain_url_is_refused_with_its_line() -> None:
    # A YAML block (url: |) ends the URL with a line break, which urlsplit drops without a
    # word and the HTTP client then refuses at every send; a bracket left open is no URL.
    text = (
        "endpoints:\n"
        "  - name: ops\n"
        "    url: |\n"
        "      https://hooks.example.com/agentrt\n"
        "    secret_env: S\n"
        "    tenant: acme\n"
    )
    # The URL is shown as its scheme and host only (its path may hold a token), with the
    # character that is wrong and where.
    with pytest.raises(
        ConfigError,
        match=r"webhooks.yaml:2: endpoints\[0\]: webhook endpoint 'ops': url "
        r"'https://hooks.example.com/...' holds a space or a control character "
        r"\('\\n' at character 34; a line break\?\)",
    ):
        Webhooks.from_yaml(text, source="webhooks.yaml", environ={"S": SECRET})
    for url in ("https://hooks.example.com/a b", "https://hooks.example.com/\tx"):
        with pytest.raises(ConfigError, match="holds a space or a control character"):
            WebhookEndpoint(name="x", url=url, secret=SECRET, tenant="acme")
    with pytest.raises(ConfigError, match=r"url 'http://...' is not a URL \(Invalid IPv6"):
        WebhookEndpoint(name="x", url="http://[::1/x", secret=SECRET, tenant="acme")
    with pytest.raises(
        ConfigError, match=r"url 'http://h.example.com/...' is not a URL \(Port could not"
    ):
        WebhookEndpoint(name="x", url="http://h.example.com:port", secret=SECRET, tenant="acme")


PASSWORD = "hunter2-s3cret"


@pytest.mark.parametrize(
    ("url_yaml", "hidden"),
    [
        # A block scalar keeps its line break; the token in the path stays out of the error.
        ("|\n      https://hooks.example.com/services/T0/B0/TOKENabc123xyz\n", "TOKENabc123xyz"),
        (f"https://bot:{PASSWORD}@hooks.example.com:80a/x\n", PASSWORD),
        (f"'http://bot:{PASSWORD}@[::1/x'\n", PASSWORD),
        (f"'https://hooks.example.com/{PASSWORD} x'\n", PASSWORD),
    ],
    ids=["token-in-path", "password-bad-port", "password-bad-host", "space-after-token"],
)
def test_a_webhook_url_refused_is_shown_without_its_token_or_password(
    url_yaml: str, hidden: str
) -> None:
    text = f"endpoints:\n  - name: ops\n    url: {url_yaml}    secret_env: S\n    tenant: acme\n"
    with pytest.raises(ConfigError) as caught:
        Webhooks.from_yaml(text, source="hooks.yaml", environ={"S": SECRET})
    assert str(caught.value).startswith("hooks.yaml:2: endpoints[0]: webhook endpoint 'ops': url")
    assert hidden not in str(caught.value)


def test_a_public_url_refused_is_shown_with_its_password_hidden() -> None:
    with pytest.raises(ConfigError) as caught:
        Webhooks.from_yaml(f"public_url: ftp://ops:{PASSWORD}@review.example.com/\n")
    assert str(caught.value) == (
        "webhooks public_url must be the service's http(s) address, got "
        "'ftp://ops:***@review.example.com/'"
    )


def test_a_webhooks_file_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    path = tmp_path / "hooks.yaml"
    path.write_text("endpoints: []\n", encoding="utf-16")  # as some Windows editors save
    with pytest.raises(ConfigError) as caught:
        Webhooks.from_file(path, environ={})
    assert str(caught.value) == (
        f"webhooks file {str(path)!r} is not UTF-8 text (byte 0); save it as UTF-8"
    )


def test_a_webhooks_key_given_twice_is_refused_at_its_line() -> None:
    # YAML keeps the last silently: events would go to the second URL without a word.
    text = (
        "endpoints:\n"
        "  - name: ops\n"
        "    url: https://a.example.com/hook\n"
        "    url: https://b.example.com/hook\n"
        "    secret_env: S\n"
        "    tenant: acme\n"
    )
    with pytest.raises(ConfigError) as caught:
        Webhooks.from_yaml(text, source="hooks.yaml", environ={"S": SECRET})
    assert str(caught.value) == (
        "hooks.yaml:4: endpoints.0: duplicate key 'url' (first at line 3, column 5); YAML "
        "would keep only the last one, so say it once"
    )
    with pytest.raises(ConfigError, match=r"^hooks.yaml:2: file: duplicate key 'public_url'"):
        Webhooks.from_yaml(
            "public_url: https://a.example.com\npublic_url: https://b.example.com\n",
            source="hooks.yaml",
        )


def test_an_endpoint_or_a_retry_schedule_that_could_never_work_is_refused() -> None:
    # NaN compares false with everything, so "> 0" let it through; an empty filter would
    # receive nothing, silently.
    def made(**kw: object) -> WebhookEndpoint:
        return WebhookEndpoint(name="x", url="https://h.example.com", secret=SECRET, **kw)  # type: ignore[arg-type]

    with pytest.raises(
        ConfigError, match="timeout must be a finite number of seconds > 0, got nan"
    ):
        made(tenant="acme", timeout=float("nan"))
    with pytest.raises(ConfigError, match="events is empty, so it would receive nothing"):
        made(tenant="acme", events=())
    for field in ("first_delay", "factor", "max_delay"):
        with pytest.raises(ConfigError, match=f"retry needs finite numbers, got .*{field}=nan"):
            RetrySchedule(**{field: float("nan")})  # type: ignore[arg-type]
    assert made(tenant="acme", timeout=2.5).timeout == 2.5


def test_a_send_that_cannot_go_out_is_a_failed_attempt_and_holds_no_other_endpoint_up(
    desk: AgentRuntime, clock: FakeClock
) -> None:
    # Whatever the client raises before a send goes out (a URL it refuses, say), the
    # delivery is settled as a failed send, retried, then dead; the pass goes on.
    class Refusing:
        def __init__(self, real: httpx.Client, bad: str) -> None:
            self.real, self.bad = real, bad

        def post(self, url: str, **kw: object) -> httpx.Response:
            if url == self.bad:
                raise httpx.InvalidURL("the client refuses this URL")
            return self.real.post(url, **kw)  # type: ignore[arg-type]

    with Receiver() as receiver, httpx.Client() as client:
        refused = WebhookEndpoint(
            name="refused", url="https://refused.example.com/h", secret=SECRET, tenant="acme"
        )
        endpoints = (refused, endpoint(receiver, name="good"))
        webhooks = Webhooks(endpoints=endpoints, retry=RetrySchedule(max_attempts=2))
        thread_id = refund(desk)
        sender = Refusing(client, refused.url)
        dispatcher = Dispatcher(desk.store, webhooks, clock=clock, rand=lambda: 0.5, sender=sender)
        drain(dispatcher, clock)
    ids = [e.id for e in desk.store.outbox_events(thread_id=thread_id)]
    assert receiver.accepted() == ids  # the good endpoint got every event
    dead = desk.store.list_deliveries(DeliveryQuery(status="dead"))
    assert {(d.endpoint, d.attempts) for d in dead} == {("refused", 2)}
    assert {d.last_error for d in dead} == {"gave up after 2 sends: could not send: InvalidURL"}


PIN = "otter-40917-copper"  # no detector knows its shape: only its field says it is secret


@tool(effect="read", sensitive=["pin"])
def check_door(door: str, pin: str) -> dict[str, Any]:
    """Check that a door opens to a pin."""
    return {"door": door, "opens": True}


def _provider_quotes_the_prompt(messages: list[BaseMessage]) -> Any:
    raise RuntimeError(f"the provider refused a prompt holding {PIN}")


def door_desk(db: Path, clock: FakeClock, webhooks: Webhooks) -> AgentRuntime:
    """Runs whose goal names the pin a tool is given, and that fail with an error quoting it."""
    model = ScriptedChatModel(
        [ai("", tool_call("check_door", {"door": "back", "pin": PIN})), _provider_quotes_the_prompt]
    )
    return AgentRuntime(
        model,
        tools=[check_door],
        policy=Policy.allow_all(),
        db=db,
        clock=clock,
        tracing=None,
        webhooks=webhooks,
        model_retry=RetryPolicy(max_attempts=1),  # the provider's error is final at once
    )


def test_a_runs_goal_and_error_reach_a_receiver_masked_as_the_service_shows_them(
    tmp_path: Path, clock: FakeClock
) -> None:
    with Receiver() as receiver:
        webhooks = Webhooks(endpoints=(endpoint(receiver, events=("run.*",)),))
        with door_desk(tmp_path / "doors.db", clock, webhooks) as rt:
            run = rt.start(f"Open the back door with pin {PIN}.", principal=OPERATOR)
            assert run.status == "failed"
            dispatcher = rt.dispatcher()
            try:
                drain(dispatcher, clock)
            finally:
                dispatcher.close()
            shown = run_out(rt, rt.get(run.thread_id))
    (sent,) = receiver.received
    assert sent.document["type"] == "run.failed"
    assert PIN.encode() not in sent.body
    assert b"40917" not in sent.body  # nor a part of it
    data = sent.document["data"]
    assert data["goal"] == "Open the back door with pin [REDACTED:field]."
    assert data["error"] == "RuntimeError: the provider refused a prompt holding [REDACTED:field]"
    assert (data["goal"], data["error"]) == (shown.goal, shown.error)  # as the API shows it


def test_a_run_event_whose_log_cannot_be_read_is_never_sent_unmasked(
    tmp_path: Path, clock: FakeClock
) -> None:
    def locked(thread_id: str) -> list[Any]:
        raise sqlite3.OperationalError("database is locked")

    with Receiver() as receiver:
        webhooks = Webhooks(
            endpoints=(endpoint(receiver, events=("run.*",)),),
            retry=RetrySchedule(first_delay=60, max_attempts=3),
        )
        with door_desk(tmp_path / "doors.db", clock, webhooks) as rt:
            rt.start(f"Open the back door with pin {PIN}.", principal=OPERATOR)
            # The log unreadable (the database away): a failed attempt, tried again later.
            blind = Dispatcher(rt.store, webhooks, clock=clock, rand=lambda: 0.0, secrets_of=locked)
            assert blind.deliver_due().retrying == 1
            (waiting,) = rt.store.list_deliveries(DeliveryQuery(status="pending"))
            assert waiting.last_error == "could not send: OperationalError"
            assert receiver.received == []
            # Readable again at the next try: sent, masked.
            clock.advance(60)
            dispatcher = rt.dispatcher()
            try:
                assert dispatcher.deliver_due().delivered == 1
            finally:
                dispatcher.close()
    (sent,) = receiver.received
    assert sent.document["data"]["goal"] == "Open the back door with pin [REDACTED:field]."
    assert PIN.encode() not in sent.body


def test_a_slow_receiver_lets_no_second_dispatcher_send_an_event_again(
    desk: AgentRuntime, clock: FakeClock
) -> None:
    # Each send takes the endpoint's whole timeout (10 s), and a second dispatcher passes
    # after every send. The first claims only what it can send within its claim (60 s),
    # and starts no send its claim may not outlast, so the second never takes over a
    # delivery the first is still going to send: each event arrives once.
    class Slow:
        def __init__(self, real: httpx.Client) -> None:
            self.real = real
            self.other: Dispatcher | None = None

        def post(self, url: str, **kw: object) -> httpx.Response:
            answer = self.real.post(url, **kw)  # type: ignore[arg-type]
            clock.now += 10.0
            if self.other is not None:
                self.other.deliver_due()
            return answer

    threads = [refund(desk) for _ in range(8)]
    with Receiver() as receiver, httpx.Client() as client:
        webhooks = Webhooks(endpoints=(endpoint(receiver, timeout=10.0),))
        slow = Slow(client)
        first = Dispatcher(desk.store, webhooks, clock=clock, sender=slow, owner="first")
        slow.other = Dispatcher(desk.store, webhooks, clock=clock, sender=client, owner="second")
        drain(first, clock)
    ids = [e.id for t in threads for e in desk.store.outbox_events(thread_id=t)]
    assert sorted(receiver.ids()) == sorted(ids)  # every event, none twice
    assert Counter(r.headers["webhook-id"] for r in receiver.received).most_common(1)[0][1] == 1


NOTIFY_APP = "tests.webhook_app:build_runtime"
WEBHOOKS_YAML = """
public_url: https://agents.example.com
endpoints:
  - name: ops
    url: {url}
    secret_env: OPS_WEBHOOK_SECRET
    tenant: acme
"""


def test_a_stop_from_the_dispatchers_own_thread_takes_no_lock(desk: AgentRuntime) -> None:
    # A signal's handler runs on run()'s thread, between any two of its bytecodes: inside
    # the Event's wait, say, holding its lock. stop() there must not take that lock again.
    dispatcher = Dispatcher(desk.store, Webhooks(endpoints=()), poll=3600)
    passes: list[int] = []

    def a_pass_a_signal_interrupts() -> Any:
        passes.append(1)
        with dispatcher._stop._cond:  # where a handler may find the loop
            dispatcher.stop()
        return None

    dispatcher.deliver_due = a_pass_a_signal_interrupts  # type: ignore[method-assign]
    loop = threading.Thread(target=dispatcher.run, daemon=True)
    loop.start()
    loop.join(30)
    assert not loop.is_alive(), "stop() from the loop's own thread waited on the Event's lock"
    assert passes == [1]  # and run() ended after that pass, without its hour's wait


def test_a_stop_from_another_thread_wakes_the_dispatchers_wait_at_once(
    desk: AgentRuntime,
) -> None:
    dispatcher = Dispatcher(desk.store, Webhooks(endpoints=()), poll=3600)
    waiting = threading.Event()
    dispatcher.deliver_due = waiting.set  # type: ignore[assignment,method-assign]
    loop = threading.Thread(target=dispatcher.run, daemon=True)
    loop.start()
    assert waiting.wait(30)
    dispatcher.stop()
    loop.join(30)
    assert not loop.is_alive()


@pytest.mark.subprocess
def test_a_dispatcher_killed_between_sending_and_marking_loses_nothing(
    desk: AgentRuntime, tmp_path: Path
) -> None:
    thread_id = refund(desk)
    ids = [e.id for e in desk.store.outbox_events(thread_id=thread_id)]
    with Receiver() as receiver:
        config = tmp_path / "webhooks.yaml"
        config.write_text(WEBHOOKS_YAML.format(url=receiver.url))
        receiver.hold = True  # the first request is held unanswered: sent, never marked
        log = (tmp_path / "notify.log").open("w")
        process = subprocess.Popen(
            [sys.executable, "-m", "agentrt", "notify", "--app", NOTIFY_APP, "--db", desk.db],
            cwd=ROOT,
            env=os.environ | {"WEBHOOKS_FILE": str(config), "OPS_WEBHOOK_SECRET": SECRET},
            stdout=log,
            stderr=log,
        )
        try:
            assert receiver.arrived.wait(60), (tmp_path / "notify.log").read_text()
            process.send_signal(signal.SIGKILL)
            assert process.wait(30) == -signal.SIGKILL
        finally:
            if process.poll() is None:
                process.kill()
            log.close()
        receiver.release.set()
        (held,) = desk.store.list_deliveries(DeliveryQuery(event_id=ids[0]))
        assert (held.status.value, held.attempts) == ("pending", 0)  # sent, never marked

        # The next dispatcher (here, on a clock past the dead one's claim) sends it again.
        later = FakeClock(time.time() + 120)
        webhooks = Webhooks.from_file(config, environ={"OPS_WEBHOOK_SECRET": SECRET})
        drain(Dispatcher(desk.store, webhooks, clock=later), later)

    assert receiver.ids() == [ids[0], *ids]  # the first again, with the same id
    assert receiver.accepted() == ids  # and every event taken, in order
    assert {r.headers["webhook-id"] for r in receiver.received[:2]} == {ids[0]}
    for r in receiver.received:
        verify(SECRET, r.headers, r.body, now=int(r.headers["webhook-timestamp"]))


async def test_serve_sends_the_runtimes_webhooks_from_its_own_thread(
    tmp_path: Path, clock: FakeClock
) -> None:
    with Receiver() as receiver:
        webhooks = Webhooks(endpoints=(endpoint(receiver, events=("approval.requested",)),))
        rt = refund_desk.build_runtime(
            tmp_path / "agentrt.db", clock=clock, tracing=None, webhooks=webhooks
        )
        app = create_app(rt, sweep_every=None)
        try:
            async with app.router.lifespan_context(app):
                run = await rt.astart(GOAL, principal=OPERATOR)
                assert run.pending_approval is not None
                got = await asyncio.to_thread(receiver.arrived_any.wait, 60)
                assert got, "the service's dispatcher sent nothing"
        finally:
            rt.close()
    (sent,) = receiver.received
    assert sent.document["data"]["approval_id"] == run.pending_approval.id


def test_the_readmes_webhooks_file_loads_as_printed() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (block,) = [b for b in re.findall(r"```yaml\n(.*?)```", readme, re.S) if "webhooks.yaml" in b]
    secrets = {"ACME_WEBHOOK_SECRET": SECRET, "OPS_WEBHOOK_SECRET": GLOBEX_SECRET}
    loaded = Webhooks.from_yaml(block, source="README.md", environ=secrets)
    assert [(e.name, e.tenant, e.events) for e in loaded.endpoints] == [
        ("acme-reviewers", "acme", ("approval.*", "run.failed")),
        ("ops", "*", ("run.failed", "run.budget_exceeded")),
    ]
    assert loaded.public_url == "https://agents.example.com"
    assert loaded.retry == RetrySchedule()  # the defaults, as the README says them


def test_the_cli_shows_endpoints_without_their_secrets_and_sends_one_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = str(tmp_path / "agentrt.db")
    with Receiver() as receiver:
        config = tmp_path / "webhooks.yaml"
        config.write_text(WEBHOOKS_YAML.format(url=receiver.url))
        monkeypatch.setenv("WEBHOOKS_FILE", str(config))
        monkeypatch.setenv("OPS_WEBHOOK_SECRET", SECRET)
        with refund_desk.build_runtime(db, tracing=None) as rt:
            refund(rt)
        runner = CliRunner()
        shown = runner.invoke(cli, ["webhooks", "endpoints", "--app", NOTIFY_APP, "--db", db])
        assert shown.exit_code == 0, shown.output
        assert "ops" in shown.output
        assert "acme" in shown.output
        assert "127.0.0.1" in shown.output
        assert receiver.path not in shown.output
        assert SECRET not in shown.output
        sent = runner.invoke(cli, ["notify", "--once", "--app", NOTIFY_APP, "--db", db])
        assert sent.exit_code == 0, sent.output
        assert "delivered 3, to retry 0, dead 0" in sent.output
    assert len(receiver.accepted()) == 3
    demo = "agentrt.examples.refund_desk:build_runtime"
    none = runner.invoke(cli, ["notify", "--once", "--app", demo, "--db", db])
    assert none.exit_code == 2
    assert "names no webhook endpoints" in none.output


@pytest.mark.subprocess
def test_a_worker_sends_the_webhooks_of_the_runs_it_drives(tmp_path: Path) -> None:
    db = tmp_path / "agentrt.db"
    with Receiver() as receiver:
        config = tmp_path / "webhooks.yaml"
        config.write_text(WEBHOOKS_YAML.format(url=receiver.url))
        env = {"WEBHOOKS_FILE": str(config), "OPS_WEBHOOK_SECRET": SECRET}
        with refund_desk.build_runtime(db, tracing=None) as rt:
            created = rt.create(GOAL, principal=OPERATOR)  # left for a worker to drive
        with worker(NOTIFY_APP, db, tmp_path / "worker.log", env=env) as process:
            assert receiver.arrived_any.wait(60), process.text()
            assert process.terminate() == 0  # SIGTERM: the dispatcher stops with the pool
    (sent,) = receiver.received
    assert sent.document["type"] == "approval.requested"
    assert sent.document["thread_id"] == created.thread_id


def test_the_run_link_quotes_a_thread_id_that_holds_a_slash_or_hash() -> None:
    # An app's own thread ids ("acme/42", "ticket#42") are one segment of the run's page.
    from agentrt.store.outbox import OutboxEvent
    from agentrt.webhooks.dispatcher import body_of

    for thread_id, shown in (("acme/42", "acme%2F42"), ("ticket#42?x", "ticket%2342%3Fx")):
        event = OutboxEvent(
            id="evt_1",
            type="run.ended",
            thread_id=thread_id,
            tenant="acme",
            data={},
            created_at=1_800_000_000.0,
        )
        links = json.loads(body_of(event, "https://agents.example.com/desk/"))["links"]
        assert links["run"] == f"https://agents.example.com/desk/ui/runs/{shown}"
