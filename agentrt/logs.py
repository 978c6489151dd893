"""agentrt's loggers, each of them redacted: ``get_logger`` makes them, ``redact_logs``
says which Redactor applies.

A logging filter applies only to the records of the logger it is on, never to those of its
children: a record of "agentrt.service" reaches the handlers of "agentrt" (and the
root's) without passing the filters of "agentrt". So the redaction is a filter on every
agentrt logger, the same object on each, added once:

- every agentrt module makes its logger with ``get_logger``, which adds the filter as the
  logger is made, whenever that is (before or after any runtime exists);
- ``redact_logs`` (called as each runtime is built) adds it to any "agentrt" or
  "agentrt.*" logger that something made with plain ``logging.getLogger`` before.

No handler is involved, so it holds whatever handlers an app configures, and nothing
global (the logger class, the record factory) is replaced for other libraries.

Which Redactor: the records of a process are not a run's, so the filter applies the
Redactor of every open runtime (each one's mode and salt; equal ones once) and, before
any runtime is built or after all are closed, the default one.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentrt.redaction import Redactor

__all__ = ["ROOT", "get_logger", "masking", "quiet", "redact_logs", "stop_redacting_logs"]

ROOT = "agentrt"
"""The name every agentrt logger is under."""

# Open runtimes' Redactors by id, with the ids of the runtimes that use each; one whose
# runtimes are all closed, or that is gone (a runtime never closed), drops out.
_LIVE: dict[int, tuple[weakref.ref[Redactor], set[int]]] = {}
_DEFAULT: list[Redactor] = []


# Set inside ``quiet``: agentrt's records made in this context are dropped.
_QUIET: ContextVar[bool] = ContextVar("agentrt_logs_quiet", default=False)

# Set inside ``masking``: secret values cut out of agentrt's records made in this context.
# Held here, never on the record: a handler that writes a record's every attribute (a JSON
# formatter) would write them in clear.
_KNOWN: ContextVar[tuple[object, ...]] = ContextVar("agentrt_logs_known", default=())


class _Redacting(logging.Filter):
    """Redacts a record in place (message, exception and its causes); drops only what is
    made inside ``quiet``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _QUIET.get():
            return False
        known = _KNOWN.get()
        for redactor in _redactors():
            redactor.redact_record(record, known=known)
        return True


@contextmanager
def quiet() -> Iterator[None]:
    """Drop agentrt's log records made in this context (this thread, and the tasks and
    worker threads it starts with its context): a replay's scratch run fails where the
    recordings end by design, and says what it found in its report, not as an ERROR."""
    token = _QUIET.set(True)
    try:
        yield
    finally:
        _QUIET.reset(token)


@contextmanager
def masking(known: Collection[object]) -> Iterator[None]:
    """Cut the ``known`` secret values out of agentrt's log records made in this context
    too, their tracebacks included: a run's (``tracing.shown.log_secrets``, what its tools
    were given or gave back in a sensitive field), whose error may quote one in a shape no
    detector knows."""
    token = _KNOWN.set((*_KNOWN.get(), *known))
    try:
        yield
    finally:
        _KNOWN.reset(token)


_FILTER = _Redacting("redact")


def get_logger(name: str = ROOT) -> logging.Logger:
    """The logger ``name`` (under "agentrt"), with the redacting filter on it."""
    if name != ROOT and not name.startswith(f"{ROOT}."):
        raise ValueError(f"agentrt loggers are named {ROOT!r} or {ROOT}.*, got {name!r}")
    logger = logging.getLogger(name)
    logger.addFilter(_FILTER)  # a no-op when it is there already
    return logger


def redact_logs(redactor: Redactor, owner: object = None) -> None:
    """Redact agentrt's log records with ``redactor`` too, until its ``owner`` (a runtime)
    calls ``stop_redacting_logs``, and put the filter on every agentrt logger there is."""
    key = id(redactor)
    ref, owners = _LIVE.get(key) or (weakref.ref(redactor, lambda _: _LIVE.pop(key, None)), set())
    _LIVE[key] = (ref, owners | {id(owner)})
    for name in list(logging.Logger.manager.loggerDict):
        if name == ROOT or name.startswith(f"{ROOT}."):
            get_logger(name)
    get_logger(ROOT)


def stop_redacting_logs(redactor: Redactor, owner: object = None) -> None:
    """``owner`` no longer uses ``redactor`` (it was closed); calling it twice is harmless."""
    key = id(redactor)
    ref, owners = _LIVE.get(key) or (None, set())
    if ref is not None and owners - {id(owner)}:
        _LIVE[key] = (ref, owners - {id(owner)})
    else:
        _LIVE.pop(key, None)


def _redactors() -> list[Redactor]:
    found: dict[Any, Redactor] = {}
    for ref, _ in list(_LIVE.values()):
        redactor = ref()
        if redactor is not None:
            # The salt matters only to hashes: masking with two salts masks the same.
            salt = redactor.salt if redactor.mode == "hash" else None
            found.setdefault(
                (redactor.mode, redactor.key_patterns, redactor.detectors, salt), redactor
            )
    if found:
        return list(found.values())
    if not _DEFAULT:
        from agentrt.redaction import Redactor  # here: agentrt.tracing imports this module

        _DEFAULT.append(Redactor())
    return _DEFAULT
