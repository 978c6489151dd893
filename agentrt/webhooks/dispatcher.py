"""The dispatcher: the outbox's events sent to each endpoint, at least once, in order per run.

One pass (``deliver_due``), for each endpoint: make its deliveries from the outbox past its
cursor (the events it takes: its tenant's, of the types it asked for), claim those due, and
send each, signed, with the event's stable id. A 2xx answer marks it delivered; anything
else (an error status, a timeout, a refused connection) schedules the next try with
exponential backoff and jitter, until the schedule's last attempt makes it dead.

A claim lasts a while (``claim_ttl``): a dispatcher killed between sending and marking
leaves its claim to run out, and the next pass (this process's, another's) sends the event
again with the same id. Receivers dedupe on ``webhook-id``. Any number of dispatchers may
share a database: the store hands each delivery to one of them at a time. A dispatcher
claims no more than it can send within the claim, each send taking at most the endpoint's
timeout (the whole exchange, its host's name lookup included, however slowly a receiver
trickles its answer: ``sending.BoundedSender``), and starts no send its claim may not
outlast: a slow receiver, or a DNS server that does not answer, does not let a second
dispatcher take over deliveries the first is still going to send.

Nothing it logs or stores holds a secret or an endpoint's URL; errors are said in words
(``HTTP 503``, ``timed out``, ``connection refused``).

What leaves is masked here, as it is sent (``shown_event``): a run's goal and error go to
a receiver as every other surface shows them, through the one masking path with the secret
values the run's log holds. The outbox keeps them exact, as the runs table does; the
store, which writes the event, knows neither the tools' sensitive fields nor the log.
"""

from __future__ import annotations

import json
import os
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from typing import Any, Protocol
from urllib.parse import quote

import httpx

from agentrt.logs import get_logger
from agentrt.processes import pause
from agentrt.readable import iso
from agentrt.redaction import Redactor
from agentrt.store.outbox import Delivery, DeliveryOutcome, DeliveryStatus, OutboxEvent
from agentrt.store.protocols import OutboxStore
from agentrt.tracing.shown import shown
from agentrt.webhooks.config import WebhookEndpoint, Webhooks
from agentrt.webhooks.sending import BoundedSender
from agentrt.webhooks.signing import signed_headers

__all__ = ["Dispatcher", "Pass", "SecretsOf", "Sender", "body_of", "shown_event"]

logger = get_logger("agentrt.webhooks")

_FAN_OUT = 500
"""Events looked at per endpoint and round when making deliveries."""

_ROUNDS = 20
"""Claims per endpoint and pass: a run's events go one after another, so a pass sends up
to this many of one run's."""

_WORDS = ("goal", "error")
"""A run event's texts that may repeat a secret: what was asked of the run, what stopped it."""

SecretsOf = Callable[[str], Collection[Any]]
"""The secret values a run's log holds, by its thread id (``tracing.shown.log_secrets``)."""


class Sender(Protocol):
    """Posts one request, the whole exchange within ``timeout`` seconds (as
    ``BoundedSender``, the default, does; an httpx.Client bounds each read only, which tests
    on a transport may pass)."""

    def post(
        self, url: str, *, content: bytes, headers: dict[str, str], timeout: float
    ) -> httpx.Response: ...


@dataclass(frozen=True, slots=True)
class Pass:
    """What one pass did."""

    delivered: int = 0
    """Sends a receiver took."""
    retrying: int = 0
    """Sends that failed and will be tried again."""
    dead: int = 0
    """Deliveries given up."""


def body_of(event: OutboxEvent, public_url: str | None) -> bytes:
    """The JSON an endpoint receives for ``event``: its id, type, time and data, and links
    to the review page (which asks the reviewer to sign in) when the public URL is known."""
    links: dict[str, str] = {}
    if public_url is not None:
        base = public_url.rstrip("/")
        # Quoted: a thread id may hold '/', '#' or '?' (service/paths.py).
        links["run"] = f"{base}/ui/runs/{quote(event.thread_id, safe='')}"
        approval = event.data.get("approval_id")
        if isinstance(approval, str):
            links["review"] = f"{base}/ui/approvals/{approval}"
    document: dict[str, Any] = {
        "id": event.id,
        "type": event.type,
        "timestamp": iso(event.created_at),
        "thread_id": event.thread_id,
        "tenant": event.tenant,
        "data": event.data,
        "links": links,
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def shown_event(
    event: OutboxEvent, redactor: Redactor | None, secrets_of: SecretsOf | None
) -> OutboxEvent:
    """``event`` as a receiver may see it: a run's goal and error masked as the service and
    the review page show them (``tracing.shown``), with the secret values its run's log
    holds (``secrets_of``: its tools' sensitive arguments and results) and the credentials
    ``redactor`` was told of cut out. A log is read only for an event with such words."""
    words = {k: v for k in _WORDS if isinstance(v := event.data.get(k), str)}
    if not words:
        return event
    known = secrets_of(event.thread_id) if secrets_of is not None else ()
    masked = {k: shown(v, redactor, known=known) for k, v in words.items()}
    return replace(event, data={**event.data, **masked})


class Dispatcher:
    """Sends the outbox's events to a runtime's webhook endpoints.

    ``deliver_due()`` is one pass (tests drive it with their own clock); ``run()`` passes
    until ``stop()``, waking every ``poll`` seconds. Each event goes as ``shown_event``
    shows it with ``redactor`` and ``secrets_of``, which ``AgentRuntime.dispatcher()`` gives
    from the runtime (without them, a goal or an error is masked by the Redactor's detectors
    alone).
    """

    def __init__(
        self,
        store: OutboxStore,
        webhooks: Webhooks,
        *,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
        sender: Sender | None = None,
        owner: str | None = None,
        claim_ttl: float = 60.0,
        batch: int = 50,
        poll: float = 1.0,
        redactor: Redactor | None = None,
        secrets_of: SecretsOf | None = None,
    ) -> None:
        self.store = store
        self.webhooks = webhooks
        self.clock = clock
        self.rand = rand
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        """Who holds this dispatcher's claims."""
        self.claim_ttl = claim_ttl
        self.batch = batch
        self.poll = poll
        self.redactor = redactor
        self.secrets_of = secrets_of
        """The secret values a run's log holds, that its goal and error are masked with."""
        self._own_sender: BoundedSender | None = None
        if sender is None:
            sender = self._own_sender = BoundedSender()
        self.sender: Sender = sender
        self._stop = threading.Event()
        self._asked = False
        self._loop: int | None = None
        """The thread in run(), where a signal's handler runs."""

    def deliver_due(self) -> Pass:
        """One pass over every endpoint: new deliveries made, due ones sent."""
        counts: Counter[DeliveryStatus] = Counter()
        for endpoint in self.webhooks.endpoints:
            self.fan_out(endpoint)
            # A claim holds each run's oldest pending event only (order per run); once
            # those are sent, the next of each run may go in the same pass.
            # A claim long enough for two sends at least, and as many claimed as it leaves
            # time to send, one endpoint timeout each.
            ttl = max(self.claim_ttl, 2 * endpoint.timeout)
            limit = max(1, min(self.batch, int(ttl // endpoint.timeout) - 1))
            for _ in range(_ROUNDS):
                now = self.clock()
                until = now + ttl
                claimed = self.store.claim_deliveries(
                    endpoint.name, owner=self.owner, now=now, until=until, limit=limit
                )
                if not claimed:
                    break
                for delivery in claimed:
                    if self.clock() + endpoint.timeout > until:
                        # Its claim may run out mid-send and another dispatcher send it
                        # too: left to be claimed again once the claim has run out.
                        break
                    counts[self._send(endpoint, delivery)] += 1
        return Pass(
            delivered=counts[DeliveryStatus.DELIVERED],
            retrying=counts[DeliveryStatus.PENDING],
            dead=counts[DeliveryStatus.DEAD],
        )

    def fan_out(self, endpoint: WebhookEndpoint) -> None:
        """Make ``endpoint``'s deliveries of the events past its cursor that it takes."""
        while True:
            cursor = self.store.outbox_cursor(endpoint.name)
            events = self.store.outbox_events(after=cursor, limit=_FAN_OUT)
            if not events:
                return
            taken = [e for e in events if endpoint.takes(e)]
            upto = events[-1].seq
            if not self.store.add_deliveries(
                endpoint.name, taken, cursor=cursor, upto=upto, now=self.clock()
            ):
                continue  # another dispatcher moved the cursor first: look again
            if len(events) < _FAN_OUT:
                return

    def _send(self, endpoint: WebhookEndpoint, delivery: Delivery) -> DeliveryStatus:
        event = delivery.event
        attempts = delivery.attempts + 1
        error: str | None
        code: int | None = None
        try:
            # Masked in the try: a log that cannot be read now (the database away; the run
            # pruned since the claim, its delivery with it) is a failed attempt, never a
            # send of the words unmasked.
            said = shown_event(event, self.redactor, self.secrets_of)
            body = body_of(said, self.webhooks.public_url)
            headers = signed_headers(endpoint.key, event.id, int(self.clock()), body)
            answer = self.sender.post(
                endpoint.url, content=body, headers=headers, timeout=endpoint.timeout
            )
            code = answer.status_code
            error = None if 200 <= code < 300 else f"HTTP {code}"
        except httpx.TimeoutException:
            error = f"timed out after {endpoint.timeout:g} s"
        except httpx.TransportError as exc:
            # The exception's text may hold the URL; its kind says enough.
            error = _kind_of(exc)
        except Exception as exc:  # a send that cannot even go out is an attempt too
            # Settled like any failed send (retried, then dead), not left pending: a pass
            # stopped here would never reach the endpoints after it.
            error = f"could not send: {type(exc).__name__}"
        now = self.clock()
        if error is None:
            outcome = DeliveryOutcome(
                status=DeliveryStatus.DELIVERED, attempts=attempts, now=now, http_status=code
            )
        elif attempts >= self.webhooks.retry.max_attempts:
            outcome = DeliveryOutcome(
                status=DeliveryStatus.DEAD,
                attempts=attempts,
                now=now,
                error=f"gave up after {attempts} sends: {error}",
                http_status=code,
            )
        else:
            wait = self.webhooks.retry.delay(attempts, self.rand())
            outcome = DeliveryOutcome(
                status=DeliveryStatus.PENDING,
                attempts=attempts,
                now=now,
                next_at=now + wait,
                error=error,
                http_status=code,
            )
        if not self.store.finish_delivery(
            endpoint.name, event.id, owner=self.owner, outcome=outcome
        ):
            logger.info(
                "delivery of %s to %r was taken over by another dispatcher", event.id, endpoint.name
            )
        elif outcome.status is DeliveryStatus.DEAD:
            logger.warning(
                "webhook %s (%s) to endpoint %r is dead: %s; `agentrt webhooks retry` sends it "
                "again",
                event.id,
                event.type,
                endpoint.name,
                outcome.error,
            )
        elif error is not None:
            logger.info(
                "webhook %s to endpoint %r failed (%s); try %d at %s",
                event.id,
                endpoint.name,
                error,
                attempts + 1,
                iso(outcome.next_at or now),
            )
        return outcome.status

    def run(self) -> None:
        """Pass after pass until stop(); a failed pass (the database away) is logged and
        the next one tried."""
        self._loop = threading.get_ident()
        try:
            while not self._asked:
                try:
                    self.deliver_due()
                except Exception:
                    logger.exception("a webhook pass failed; trying again in %s s", self.poll)
                self._pause()
        finally:
            self._loop = None

    def _pause(self) -> None:
        """Wait ``poll`` seconds, or until stop(), from any thread (processes.pause)."""
        pause(self._stop, self.poll, lambda: self._asked)

    def stop(self) -> None:
        """End run() after the pass in hand (safe from a signal's handler and any thread).

        On run()'s own thread, where a handler runs, it takes no lock: the handler may have
        interrupted the loop inside the Event's, which is not reentrant. From another thread
        it also wakes the loop's wait at once."""
        self._asked = True
        if threading.get_ident() != self._loop:
            self._stop.set()

    def close(self) -> None:
        """Close the HTTP client this dispatcher made."""
        if self._own_sender is not None:
            self._own_sender.close()


def _kind_of(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "could not connect"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the receiver broke the HTTP exchange"
    return type(exc).__name__
