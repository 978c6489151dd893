"""A webhook send bounded as a whole: a receiver on 127.0.0.1 that trickles its answer (its
head or its body, a byte at a time, never silent for a whole timeout) is cut off at the
endpoint's timeout, a failed send retried with backoff as any other, and holds no other
endpoint up; of an answer's body no more than ``MAX_ANSWER`` bytes are read.

The receivers here are real sockets, so these tests measure wall time: a 1 s timeout
against an 8 s trickle, with seconds of slack.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentrt import AgentRuntime
from agentrt.examples import refund_desk
from agentrt.examples.refund_desk import GOAL, OPERATOR
from agentrt.store.outbox import DeliveryQuery
from agentrt.webhooks import Dispatcher, RetrySchedule, Webhooks
from agentrt.webhooks.sending import MAX_ANSWER, BoundedSender
from tests.conftest import FakeClock
from tests.test_webhooks import endpoint
from tests.webhook_receiver import Receiver

_HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n"


class Slow:
    """A receiver on 127.0.0.1 that reads a request, then answers as ``how`` says:
    "body" a head, then its body a byte every ``every`` s; "head" its head so; "flood" a
    head and a body of ``flood`` bytes, as fast as it is taken. ``sent``: bytes of the
    answer that went out."""

    def __init__(self, how: str, *, every: float = 0.2, total: float = 8.0) -> None:
        self.how, self.every, self.total = how, every, total
        self.flood = 64 * MAX_ANSWER
        self.sent = 0
        self.done = threading.Event()
        """Set when an answer has ended (cut off, or all of it sent)."""
        self._stop = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}/hook"
        self._threads = [threading.Thread(target=self._serve, daemon=True)]
        self._threads[0].start()

    def __enter__(self) -> Slow:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in list(self._threads):
            thread.join(30)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            answering = threading.Thread(target=self._answer, args=(conn,), daemon=True)
            self._threads.append(answering)
            answering.start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(30)
            try:
                conn.recv(65536)
                if self.how == "flood":
                    conn.sendall(_HEAD.replace(b"100000", str(self.flood).encode()))
                    piece = b"x" * 4096
                    while self.sent < self.flood:
                        self.sent += conn.send(piece)
                    return
                said = b"" if self.how == "head" else _HEAD
                conn.sendall(said)
                end = time.monotonic() + self.total
                # stop: the test ended; the trickle never ends the answer either way.
                while time.monotonic() < end and not self._stop.wait(self.every):
                    conn.sendall(b"x")
                    self.sent += 1
            except OSError:
                pass  # cut off by the sender
            finally:
                self.done.set()


@pytest.fixture
def desk(tmp_path: Path, clock: FakeClock) -> Iterator[AgentRuntime]:
    rt = refund_desk.build_runtime(tmp_path / "agentrt.db", clock=clock, tracing=None)
    yield rt
    rt.close()


@pytest.mark.parametrize("how", ["body", "head"])
def test_a_receiver_that_trickles_its_answer_is_cut_off_at_the_endpoints_timeout(
    desk: AgentRuntime, clock: FakeClock, how: str
) -> None:
    run = desk.start(GOAL, principal=OPERATOR)  # one event: the request for approval
    with Slow(how) as slow, Receiver() as good:
        webhooks = Webhooks(
            endpoints=(endpoint(slow, name="slow", timeout=1.0), endpoint(good, name="good")),
            retry=RetrySchedule(first_delay=30, max_attempts=3),
        )
        dispatcher = Dispatcher(desk.store, webhooks, clock=clock, rand=lambda: 0.5)
        try:
            began = time.monotonic()
            done = dispatcher.deliver_due()
            took = time.monotonic() - began
        finally:
            dispatcher.close()
        cut = slow.done.wait(30)
    # The whole exchange within its 1 s (with slack), not the receiver's 8 s of trickle.
    assert took < 4.0, f"one send of a 1 s endpoint took {took:.1f} s ({done})"
    assert cut  # the receiver was cut off, not left answering
    # A send cut off is a failed attempt, tried again after the backoff as any other...
    (waiting,) = desk.store.list_deliveries(DeliveryQuery(status="pending"))
    assert (waiting.endpoint, waiting.attempts) == ("slow", 1)
    assert waiting.last_error == "timed out after 1 s"
    assert waiting.next_at == clock.now + webhooks.retry.delay(1, 0.5)
    # ... and the endpoint after it got its event in the same pass.
    assert good.ids() == [e.id for e in desk.store.outbox_events(thread_id=run.thread_id)]


def test_no_more_of_an_answer_is_read_than_max_answer() -> None:
    with Slow("flood") as flood:
        sender = BoundedSender()
        try:
            answer = sender.post(flood.url, content=b"{}", headers={}, timeout=10.0)
        finally:
            sender.close()
        assert flood.done.wait(30)
    assert answer.status_code == 200
    assert len(answer.content) == MAX_ANSWER
    # The rest was never taken: the receiver could not send it all.
    assert flood.sent < flood.flood


def test_a_sender_that_would_read_a_negative_amount_is_refused() -> None:
    with pytest.raises(ValueError, match="max_answer must be a number of bytes >= 0, got -1"):
        BoundedSender(max_answer=-1)
