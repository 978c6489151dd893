"""The MCP SDK's own log records, with what the app gave its servers cut out.

The SDK logs what a server sends where agentrt's redacting logger never sees it:
``mcp.client.stdio`` logs a stdout line that is not JSON-RPC with the parse error that
quotes it, its dispatcher logs the errors its transport yields, the HTTP transport logs
SSE messages at debug. A server that prints the token it was started with (a debug line)
would have it in the app's log in clear. So while a server that was given secrets is open,
a filter on the SDK's loggers cuts them out of every record: its message, its traceback,
its stack. A record is changed only when it held one; the records of a process with no such
server pass as they are.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

__all__ = ["SDK_LOGGERS", "scrub_sdk_logs", "stop_scrubbing"]

SDK_LOGGERS = ("mcp", "client")
"""The SDK's loggers: ``mcp`` and every logger under it (one a module), and ``client``, the
name its client session logs under."""


class _Scrubbing(logging.Filter):
    """Cuts the secrets of every open server out of a record (a record does not say which
    server it is about)."""

    def __init__(self) -> None:
        super().__init__()
        self._scrubs: dict[int, Callable[[str], str]] = {}
        self._lock = threading.Lock()

    def add(self, owner: object, scrub: Callable[[str], str]) -> None:
        with self._lock:
            self._scrubs[id(owner)] = scrub

    def remove(self, owner: object) -> None:
        with self._lock:
            self._scrubs.pop(id(owner), None)

    def _scrub(self, text: str) -> str:
        with self._lock:
            scrubs = list(self._scrubs.values())
        for scrub in scrubs:
            text = scrub(text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._scrubs:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a record logging cannot format: it reports that itself
            return True
        shown = self._scrub(message)
        if shown != message:
            record.msg, record.args = shown, None
        if record.exc_info:
            # Formatters print exc_text where a record has it: the traceback, cut.
            text = logging.Formatter().formatException(record.exc_info)
            cut = self._scrub(text)
            if cut != text:
                record.exc_info, record.exc_text = None, cut
        if record.stack_info:
            record.stack_info = self._scrub(record.stack_info)
        return True


_FILTER = _Scrubbing()


def scrub_sdk_logs(owner: object, scrub: Callable[[str], str]) -> None:
    """Cut what ``scrub`` cuts out of the SDK's records until ``stop_scrubbing(owner)``.

    The filter goes on each SDK logger that exists now (a filter of a logger sees only the
    records logged on it, not those of the loggers under it); called once the SDK's
    client and transport are imported, as a connection is made.
    """
    _FILTER.add(owner, scrub)
    loggers = logging.Logger.manager.loggerDict
    for name in list(loggers):
        if name in SDK_LOGGERS or name.startswith("mcp."):
            found = loggers[name]
            if isinstance(found, logging.Logger) and _FILTER not in found.filters:
                found.addFilter(_FILTER)


def stop_scrubbing(owner: object) -> None:
    """``owner``'s secrets are no longer looked for (its server is closed)."""
    _FILTER.remove(owner)
