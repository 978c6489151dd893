"""A real webhook receiver on 127.0.0.1 for the tests: it keeps every request it gets,
fails the first tries of each event id if told to, and can hold a request unanswered
(so a test can kill the sender between sending and marking).
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

__all__ = ["Received", "Receiver"]


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def event_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def document(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


class Receiver:
    """Answers 204, or ``fail_status`` to the first ``fail_first`` tries of each event."""

    def __init__(
        self, *, fail_first: int = 0, fail_status: int = 503, path: str = "/hooks/T0K3N-path"
    ) -> None:
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.path = path
        self.received: list[Received] = []
        self.hold = False
        """True: the next request is held unanswered until ``release`` is set."""
        self.arrived = threading.Event()
        """Set when a held request has come."""
        self.arrived_any = threading.Event()
        """Set when any request has come."""
        self.release = threading.Event()
        self._tries: Counter[str] = Counter()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver._lock:
                    event = headers.get("webhook-id", "")
                    receiver._tries[event] += 1
                    tries = receiver._tries[event]
                    status = receiver.fail_status if tries <= receiver.fail_first else 204
                    held = receiver.hold
                    receiver.hold = False
                    # A held request's sender is killed before any answer reaches it: 0.
                    kept = 0 if held else status
                    receiver.received.append(Received(self.path, headers, body, kept))
                receiver.arrived_any.set()
                if held:
                    receiver.arrived.set()
                    receiver.release.wait(60)
                try:
                    self.send_response(status)
                    self.send_header("content-length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the sender is gone (killed mid-request)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{self.path}"

    def accepted(self) -> list[str]:
        """Event ids answered 2xx, in the order they came."""
        with self._lock:
            return [r.event_id for r in self.received if 200 <= r.status < 300]

    def ids(self) -> list[str]:
        with self._lock:
            return [r.event_id for r in self.received]

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
