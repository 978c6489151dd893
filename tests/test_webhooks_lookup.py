"""A webhook send's name lookup within its endpoint's timeout: a host name that never
resolves (a DNS server that does not answer) fails the send as timed out at its deadline,
retried with backoff as any timeout, and the lookup left behind holds up no other send; a
name that resolves is sent to at the address found, with the name in the Host header and,
over https, in TLS's server name and the certificate's check.

No lookup here reaches a DNS server: each sender is given its resolver, which blocks on an
Event or answers 127.0.0.x. The receivers are real sockets on 127.0.0.1.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentrt import AgentRuntime
from agentrt.examples import refund_desk
from agentrt.examples.refund_desk import GOAL, OPERATOR
from agentrt.store.outbox import DeliveryQuery
from agentrt.webhooks import Dispatcher, RetrySchedule, WebhookEndpoint, Webhooks
from agentrt.webhooks.sending import BoundedSender
from tests.conftest import FakeClock
from tests.test_webhooks import SECRET, endpoint
from tests.webhook_receiver import Receiver

_NEVER = "hooks.unanswered.test"
"""A name whose lookup never ends (until the test lets it)."""


class Names:
    """A resolver (``socket.getaddrinfo``'s shape): ``_NEVER`` blocks until ``release``,
    every other name it knows answers its addresses at once. ``asked``: the names looked
    up, in order."""

    def __init__(self, known: dict[str, list[str]] | None = None) -> None:
        self.known = known or {}
        self.asked: list[str] = []
        self.release = threading.Event()

    def __call__(self, host: str, port: int, **kw: Any) -> list[tuple[Any, ...]]:
        self.asked.append(host)
        if host == _NEVER:
            self.release.wait()
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return [
            info
            for address in self.known[host]
            for info in socket.getaddrinfo(address, port, type=socket.SOCK_STREAM)
        ]


@pytest.fixture
def names() -> Iterator[Names]:
    resolver = Names()
    yield resolver
    resolver.release.set()  # the lookups left behind end with the test


@pytest.fixture
def desk(tmp_path: Path, clock: FakeClock) -> Iterator[AgentRuntime]:
    rt = refund_desk.build_runtime(tmp_path / "agentrt.db", clock=clock, tracing=None)
    yield rt
    rt.close()


def _port(receiver: Receiver) -> int:
    return int(receiver.url.split(":")[2].split("/")[0])


def test_a_name_that_never_resolves_fails_the_send_as_timed_out_at_the_endpoints_timeout(
    desk: AgentRuntime, clock: FakeClock, names: Names
) -> None:
    run = desk.start(GOAL, principal=OPERATOR)  # one event: the request for approval
    with Receiver() as good:
        lost = WebhookEndpoint(
            name="lost",
            url=f"http://{_NEVER}:{_port(good)}/hook",
            secret=SECRET,
            tenant="acme",
            timeout=0.3,
        )
        webhooks = Webhooks(
            endpoints=(lost, endpoint(good, name="good")),
            retry=RetrySchedule(first_delay=30, max_attempts=3),
        )
        sender = BoundedSender(resolver=names)
        dispatcher = Dispatcher(desk.store, webhooks, clock=clock, rand=lambda: 0.5, sender=sender)
        try:
            began = time.monotonic()
            done = dispatcher.deliver_due()
            took = time.monotonic() - began
        finally:
            sender.close()
    # Within its 0.3 s (with slack for a loaded machine), where the lookup never ends.
    assert took < 5.0, f"one send of a 0.3 s endpoint took {took:.1f} s ({done})"
    assert names.asked == [_NEVER]  # the good endpoint's 127.0.0.1 was not looked up
    # A timeout as any other: tried again after the backoff, not given up.
    (waiting,) = desk.store.list_deliveries(DeliveryQuery(status="pending"))
    assert (waiting.endpoint, waiting.attempts) == ("lost", 1)
    assert waiting.last_error == "timed out after 0.3 s"
    assert waiting.next_at == clock.now + webhooks.retry.delay(1, 0.5)
    assert good.ids() == [e.id for e in desk.store.outbox_events(thread_id=run.thread_id)]


def test_a_lookup_left_behind_holds_up_no_other_send_and_is_not_started_twice(
    names: Names,
) -> None:
    names.known["receiver.test"] = ["127.0.0.1"]
    sender = BoundedSender(resolver=names)
    try:
        with Receiver() as good:
            port = _port(good)
            for _ in range(2):  # the second joins the first's lookup, still out
                began = time.monotonic()
                with pytest.raises(httpx.TimeoutException):
                    sender.post(f"http://{_NEVER}:{port}/", content=b"{}", headers={}, timeout=0.3)
                assert time.monotonic() - began < 5.0
            answer = sender.post(
                f"http://receiver.test:{port}/hooks/T0K3N-path",
                content=b"{}",
                headers={"webhook-id": "msg_1"},
                timeout=5.0,
            )
    finally:
        sender.close()
    assert answer.status_code == 204
    assert names.asked == [_NEVER, "receiver.test"]


def test_a_name_is_sent_to_at_an_address_it_resolves_to_and_named_in_the_host_header(
    names: Names,
) -> None:
    # 127.0.0.2 first, where nothing listens: the next address is tried, as
    # socket.create_connection tries each (a name's ::1, a receiver on IPv4 only).
    names.known["receiver.test"] = ["127.0.0.2", "127.0.0.1"]
    sender = BoundedSender(resolver=names)
    try:
        with Receiver() as good:
            port = _port(good)
            answer = sender.post(
                f"http://receiver.test:{port}/hooks/T0K3N-path",
                content=b"{}",
                headers={"webhook-id": "msg_1"},
                timeout=5.0,
            )
    finally:
        sender.close()
    assert answer.status_code == 204
    assert names.asked == ["receiver.test"]
    (got,) = good.received
    assert (got.path, got.headers["host"]) == ("/hooks/T0K3N-path", f"receiver.test:{port}")


def test_a_proxy_the_environment_names_is_still_used_and_its_name_looked_up_so(
    names: Names, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    names.known["proxy.test"] = ["127.0.0.1"]
    with Receiver() as proxy:  # a forward proxy's request is a request all the same
        monkeypatch.setenv("HTTP_PROXY", f"http://proxy.test:{_port(proxy)}")
        monkeypatch.delenv("http_proxy", raising=False)
        sender = BoundedSender(resolver=names)
        try:
            answer = sender.post(
                f"http://{_NEVER}/hook", content=b"{}", headers={"webhook-id": "m"}, timeout=5.0
            )
        finally:
            sender.close()
    assert answer.status_code == 204
    # The proxy's name looked up, the receiver's left to the proxy.
    assert names.asked == ["proxy.test"]
    (got,) = proxy.received
    assert (got.path, got.headers["host"]) == (f"http://{_NEVER}/hook", _NEVER)


class _TlsReceiver:
    """An https receiver on 127.0.0.1 whose certificate is for ``hooks.test``: it keeps the
    server name each client gave TLS and the Host each request said, answering 204."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.server_names: list[str | None] = []
        self.hosts: list[str] = []
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        context.sni_callback = lambda _sock, name, _context: self.server_names.append(name)
        self._context = context
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> _TlsReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            conn.settimeout(10)
            try:
                with self._context.wrap_socket(conn, server_side=True) as tls:
                    said = b""
                    while b"\r\n\r\n" not in said:
                        said += _more(tls)
                    head, body = said.split(b"\r\n\r\n", 1)
                    lines = head.decode().lower().split("\r\n")[1:]
                    fields = dict(line.split(": ", 1) for line in lines)
                    # The whole body read: a socket closed with bytes unread resets the
                    # connection, and the answer with it.
                    while len(body) < int(fields.get("content-length", "0")):
                        body += _more(tls)
                    self.hosts.append(fields["host"])
                    tls.sendall(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
            except OSError:  # the client refused the certificate
                conn.close()


def _more(tls: ssl.SSLSocket) -> bytes:
    got = tls.recv(65536)
    if not got:
        raise ConnectionError("the client closed mid-request")
    return got


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for ``hooks.test`` and its key, made by openssl."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    made = ("-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=hooks.test")
    name = ("-addext", "subjectAltName=DNS:hooks.test")
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", *made, *name],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_over_https_the_name_is_tls_server_name_and_the_certificate_is_checked_against_it(
    names: Names, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = certificate
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the sender's client trusts it alone
    names.known.update({"hooks.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    sender = BoundedSender(resolver=names)
    try:
        with _TlsReceiver(cert, key) as receiver:
            answer = sender.post(
                f"https://hooks.test:{receiver.port}/hook", content=b"{}", headers={}, timeout=5.0
            )
            # The same address under a name the certificate is not for: refused.
            with pytest.raises(httpx.ConnectError):
                sender.post(
                    f"https://other.test:{receiver.port}/hook",
                    content=b"{}",
                    headers={},
                    timeout=5.0,
                )
    finally:
        sender.close()
    assert answer.status_code == 204
    assert receiver.server_names == ["hooks.test", "other.test"]
    assert receiver.hosts == [f"hooks.test:{receiver.port}"]


def test_an_httpcore_whose_pool_keeps_no_backend_is_said_once_and_sends_still_go(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A later httpcore that keeps its network backend elsewhere: the sender is still made
    (webhooks go, their lookup unbounded as before) and a warning says why."""
    import httpcore

    made = httpcore.ConnectionPool.__init__

    class Elsewhere:  # what the pool keeps there is no NetworkBackend agentrt knows
        def __init__(self, backend: Any) -> None:
            self.backend = backend

        def __getattr__(self, name: str) -> Any:
            return getattr(self.backend, name)

    def without_backend(self: Any, *args: Any, **kwargs: Any) -> None:
        made(self, *args, **kwargs)
        self._network_backend = Elsewhere(self._network_backend)

    monkeypatch.setattr(httpcore.ConnectionPool, "__init__", without_backend)
    with caplog.at_level("WARNING", logger="agentrt.webhooks"), Receiver() as receiver:
        sender = BoundedSender()
        try:
            answer = sender.post(receiver.url, content=b"{}", headers={}, timeout=5)
        finally:
            sender.close()
    assert answer.status_code == 204
    assert [r.getMessage() for r in caplog.records if "network backend" in r.getMessage()] == [
        f"httpcore {httpcore.__version__}'s connection pool keeps its network backend "
        "elsewhere: webhook sends look host names up outside their timeout"
    ]


@pytest.fixture
def stuck() -> Iterator[threading.Event]:
    release = threading.Event()
    yield release
    release.set()


def _lookup_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "agentrt-webhook-lookup")


def test_a_name_that_never_resolves_holds_one_thread_however_many_ports_it_is_sent_to(
    stuck: threading.Event,
) -> None:
    """Endpoints on one host at several ports (or a URL whose port a user edits while its
    DNS is down) share the one lookup in flight: the port changes nothing of a name's
    addresses. Keyed by host and port, each left a thread blocked for as long as the DNS
    server stayed silent. Found by a review."""

    def resolver(host: str, port: int, **kw: Any) -> list[tuple[Any, ...]]:
        stuck.wait()
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    sender = BoundedSender(resolver=resolver)
    before = _lookup_threads()
    try:
        for port in range(9101, 9105):
            with pytest.raises(httpx.TimeoutException):
                sender.post(
                    f"http://{'stuck.review.test'}:{port}/h", content=b"{}", headers={}, timeout=0.1
                )
        assert _lookup_threads() - before == 1
    finally:
        sender.close()
