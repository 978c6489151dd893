"""Every hash agentrt keys a record by, in one low module.

Each is sha256 over one canonical JSON spelling of its parts, so the same call, request or
question gets the same id in any process and any version: a re-run of a node finds what
the first run wrote, and two processes agree on what they are looking at.
"""

from __future__ import annotations

import hashlib
import json
import operator
import threading
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "GrowingRequest",
    "approval_id",
    "args_digest",
    "canonical_json",
    "effect_key",
    "request_digest",
]


def canonical_json(value: Any) -> str:
    """One spelling per value: sorted keys, no spaces, so digests are stable."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _sha256(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


def args_digest(args: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of a tool call's arguments."""
    return _sha256(dict(args))


def effect_key(thread_id: str, step_id: str, tool: str, args: Mapping[str, Any]) -> str:
    """The idempotency key of one call: the same for every attempt of that step."""
    return _sha256([thread_id, step_id, tool, dict(args)])


def approval_id(thread_id: str, step_id: str, kind: str) -> str:
    """Deterministic id, so a re-run of a gate node finds its own request again."""
    return f"apr_{_sha256([thread_id, step_id, kind])[:20]}"


def request_digest(messages: Sequence[Any]) -> str:
    """sha256 of what a model was asked: each message's role, text and tool calls."""
    return _sha256([_asked(m) for m in messages])


class GrowingRequest:
    """``request_digest`` of a conversation that grows between calls, working out only the
    messages added since the last call: a run's planner is asked its whole conversation
    each turn, which made digesting it quadratic in the run's length.

    The digest is the same as ``request_digest``'s: the canonical JSON of a list is its
    items' canonical JSON between brackets and commas, so the hash is fed item by item and
    a copy of it is finished for each call. Messages are matched by identity: a list that
    is not the one digested before plus new messages is digested from the start.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fed: list[Any] = []
        self._hash = hashlib.sha256(b"[")

    def digest(self, messages: Sequence[Any]) -> str:
        # One is kept per thread id in a process: two replays of a run may digest at once.
        with self._lock:
            fed = len(self._fed)
            if len(messages) < fed or not all(map(operator.is_, messages, self._fed)):
                self._fed, self._hash, fed = [], hashlib.sha256(b"["), 0
            for message in messages[fed:]:
                # Spelled out first: a message that cannot be digested leaves the hash as
                # it was, without a comma fed for it.
                item = canonical_json(_asked(message)).encode()
                if self._fed:
                    self._hash.update(b",")
                self._hash.update(item)
                self._fed.append(message)
            finished = self._hash.copy()
        finished.update(b"]")
        return finished.hexdigest()


def _asked(message: Any) -> list[Any]:
    """What of a message a request digest covers."""
    return [
        message.type,
        message.content,
        [[c["name"], c["args"]] for c in _tool_calls(message)],
    ]


def _tool_calls(message: Any) -> Any:
    """A message's tool calls, or none. Read from the instance's fields: ``getattr`` with a
    default on a message that has no such field goes through pydantic's ``__getattr__``,
    which raises and catches, and a plan step asks that of every message so far."""
    fields = getattr(message, "__dict__", None)
    if fields is None:
        return getattr(message, "tool_calls", [])
    return fields.get("tool_calls", [])
