"""What a person or a log sees: content through the Redactor, one path for every surface.

Spans (with content capture on or off), log lines, runs and event logs as the service, the
review page and the CLI show them, and approval requests in the queue all pass ``shown``
with the runtime's Redactor and the tool's declared sensitive fields; so a detector added
to the Redactor applies everywhere at once. What a run executes from (the checkpoint, the
ledger, the approvals table) is never masked: only what leaves for a person or a log.

Beyond the Redactor's own work, ``shown`` knows that a secret given in one place is
repeated in others: a tool's error quotes its sensitive argument, a result echoes it. The
values of sensitive fields are collected first and cut out of every text shown with them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Protocol, TypeVar

from agentrt.json_text import NOT_JSON, read_json
from agentrt.redaction import MAX_DEPTH, Redactor
from agentrt.tracing.messages import input_message, output_message

_R = TypeVar("_R", bound="_Shown")


class _Shown(Protocol):
    """A dataclass with a goal, an output and an error to show (a Run)."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    @property
    def goal(self) -> str: ...

    @property
    def output(self) -> str | None: ...

    @property
    def error(self) -> str | None: ...


__all__ = [
    "MessagesShown",
    "SensitiveOf",
    "ShownConversation",
    "log_secrets",
    "secret_values",
    "shown",
    "shown_again",
    "shown_events",
    "shown_live",
    "shown_messages",
    "shown_run",
]

SensitiveOf = Callable[[str], Collection[str]]
"""A tool's declared sensitive fields, by tool name (none for a tool the app lacks)."""

_DEFAULT = Redactor()


def shown(
    value: Any,
    redactor: Redactor | None = None,
    *,
    sensitive: Collection[str] = (),
    known: Collection[Any] = (),
) -> Any:
    """``value`` as a person or a log may see it: a redacted copy (dicts, lists, JSON text
    inside strings, free text). ``sensitive`` are the tool's declared field names; the
    values of sensitive fields in ``value`` and the ``known`` secret values are also cut
    out wherever text repeats them. None stays None."""
    if value is None:
        return None
    r = redactor or _DEFAULT
    found = secret_values(value, r, sensitive)
    return r.redact(value, sensitive=sensitive, known=[*known, *found])


def secret_values(value: Any, redactor: Redactor, sensitive: Collection[str] = ()) -> list[Any]:
    """The values held by sensitive fields of ``value``, at any depth (JSON text included,
    read no deeper than the Redactor reads it: ``MAX_DEPTH``)."""
    found: list[Any] = []
    # A stack, not recursion: content nested thousands deep must not make showing it fail.
    todo: list[tuple[Any, bool]] = [(value, False)]
    while todo:
        item, secret = todo.pop()
        if isinstance(item, str) and item.strip()[:1] in ("{", "["):
            parsed = read_json(item.strip(), MAX_DEPTH, None)
            item = item if parsed is NOT_JSON else parsed
        if isinstance(item, Mapping):
            todo += [
                (inner, secret or redactor.sensitive_key(str(key), sensitive))
                for key, inner in reversed(list(item.items()))
            ]
        elif isinstance(item, list | tuple):
            todo += [(inner, secret) for inner in reversed(item)]
        elif secret and isinstance(item, str | int | float) and not isinstance(item, bool):
            found.append(item)
    return found


def shown_events(
    events: Sequence[Mapping[str, Any]],
    redactor: Redactor | None,
    sensitive_of: SensitiveOf,
    *,
    start: int = 0,
) -> list[dict[str, Any]]:
    """A run's event log from ``start`` on, as shown: the tool's own content (each
    action's arguments, a result, a request's arguments) masked by its tool's sensitive
    fields, and every event masked with the secret values any of them held (an error that
    quotes one, a result or an answer that repeats it)."""
    r = redactor or _DEFAULT
    known = log_secrets(events, r, sensitive_of)
    return [_shown_event(event, r, sensitive_of, known) for event in events[start:]]


def log_secrets(
    events: Sequence[Mapping[str, Any]], redactor: Redactor | None, sensitive_of: SensitiveOf
) -> list[Any]:
    """The secret values a run's log holds: what its tools were given or gave back in a
    sensitive field. A value is secret wherever the run repeats it, so every text shown of
    the run (its entries, its output and error, its messages, a streamed answer) is masked
    with them."""
    r = redactor or _DEFAULT
    known: list[Any] = []
    for event in events:
        for tool, content in _tool_content(event):
            known += secret_values(content, r, sensitive_of(tool))
    return known


def shown_live(
    event: Mapping[str, Any],
    log: Sequence[Mapping[str, Any]],
    redactor: Redactor | None,
    sensitive_of: SensitiveOf,
) -> dict[str, Any]:
    """A streamed event the log does not keep (a token, a tool call, a gate, ...) as
    shown: masked as a log entry is, with the secret values ``log`` (the run's log so far)
    holds."""
    if event.get("type") != "gate":
        return shown_events([*log, event], redactor, sensitive_of, start=len(log))[0]
    # A gate holds requests: each is masked as the log's approval entries are.
    asked = [{"type": "approval", "data": a} for a in _data(event).get("approvals") or ()]
    masked = shown_events([*log, *asked], redactor, sensitive_of, start=len(log))
    head = shown_events([*log, {**event, "data": {}}], redactor, sensitive_of, start=len(log))
    return {**head[0], "data": {"approvals": [m["data"] for m in masked]}}


# Where an event holds what a tool was given or gave back: the part its declared sensitive
# fields are about. Everything else (ids, kinds, reasons) is the runtime's own words.
_TOOL_KEYS = {
    "observation": ("content",),
    "approval": ("args", "edited_args", "result"),
    # streamed only (agentrt.events.LIVE_KINDS), never in a log
    "tool_call": ("args",),
    "tool_result": ("content",),
}


def _tool_content(event: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """(tool name, content) for each part of ``event`` that is a tool's content."""
    data = _data(event)
    if event.get("type") == "plan":
        return [(str(a.get("tool", "")), a.get("args")) for a in _actions(data)]
    keys = _TOOL_KEYS.get(str(event.get("type")), ())
    return [(str(data.get("tool", "")), data[k]) for k in keys if data.get(k) is not None]


def _shown_event(
    event: Mapping[str, Any], r: Redactor, sensitive_of: SensitiveOf, known: list[Any]
) -> dict[str, Any]:
    data = dict(_data(event))
    if event.get("type") == "plan":
        data["actions"] = [
            {
                **shown({k: v for k, v in a.items() if k != "args"}, r, known=known),
                "args": shown(
                    a.get("args"), r, sensitive=sensitive_of(str(a.get("tool", ""))), known=known
                ),
            }
            for a in _actions(data)
        ]
    else:
        fields = sensitive_of(str(data["tool"])) if data.get("tool") else ()
        for key in _TOOL_KEYS.get(str(event.get("type")), ()):
            if data.get(key) is not None:
                data[key] = shown(data[key], r, sensitive=fields, known=known)
    # The rest of the event: detectors and the known secret values only.
    rest = shown(
        {k: v for k, v in data.items() if k != "actions" and k not in _tool_keys(event)},
        r,
        known=known,
    )
    kept = {k: v for k, v in data.items() if k == "actions" or k in _tool_keys(event)}
    head = shown({k: v for k, v in event.items() if k != "data"}, r, known=known)
    return {**head, "data": {**rest, **kept}}


def _tool_keys(event: Mapping[str, Any]) -> tuple[str, ...]:
    return _TOOL_KEYS.get(str(event.get("type")), ())


def _data(event: Mapping[str, Any]) -> Mapping[str, Any]:
    data = event.get("data")
    return data if isinstance(data, Mapping) else {}


def _actions(data: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [a for a in data.get("actions") or () if isinstance(a, Mapping)]


def shown_messages(
    messages: Sequence[Any],
    redactor: Redactor | None,
    sensitive_of: SensitiveOf,
    *,
    output: bool = False,
) -> list[dict[str, Any]]:
    """Chat messages in the GenAI conventions' shape (``agentrt.tracing.messages``: role,
    parts; with ``output``, each with its finish_reason), as shown: each tool call's
    arguments and each tool result masked by that tool's sensitive fields, and every
    message by the secret values those arguments hold (a result or an answer may repeat
    one)."""
    return MessagesShown(redactor, sensitive_of, size=0)(messages, output=output)


class ShownConversation(list[dict[str, Any]]):
    """Messages as ``shown_messages`` shows them: shown again, they are as they are."""


def shown_again(
    value: Any, redactor: Redactor, sensitive: Collection[str], known: Collection[Any]
) -> Any:
    """``shown``, but for a conversation shown already with nothing more to cut out of it:
    as it is (showing is the same again; a long one costs its length a model call)."""
    if isinstance(value, ShownConversation) and not sensitive and not known:
        return value
    return shown(value, redactor, sensitive=sensitive, known=known)


@dataclass(slots=True)
class _Seen:
    message: Any
    """Kept, so that its id is not another message's while it is remembered."""
    calls: list[tuple[Any, str, list[Any]]]
    """Its tool calls: id, tool name, the secret values their arguments hold."""
    gave: list[Any] = field(default_factory=list)
    """For a tool's result: the secret values it gave back in a sensitive field."""
    shown: dict[tuple[Any, ...], dict[str, Any]] = field(default_factory=dict)
    """The message as shown, by what showing it depends on besides itself."""


class MessagesShown:
    """``shown_messages`` for conversations that grow: a run's next model call repeats every
    message before it, so each message is shown once and remembered (the last ``size``)
    while what showing it depends on stays the same (the secret values known from the
    conversation's tool calls, the tool a result answers)."""

    def __init__(self, redactor: Redactor | None, sensitive_of: SensitiveOf, size: int = 4096):
        self.redactor = redactor or _DEFAULT
        self.sensitive_of = sensitive_of
        self.size = size
        self._seen: OrderedDict[int, _Seen] = OrderedDict()
        self._lock = threading.Lock()  # runs in many threads share one

    def __call__(
        self, messages: Sequence[Any], *, output: bool = False, known: Collection[Any] = ()
    ) -> ShownConversation:
        """``messages`` as shown; ``known``: secret values from elsewhere (for an answer,
        those of the conversation it answers: ``secrets``)."""
        seen = [self._remembered(message) for message in messages]
        tools: dict[Any, str] = {}  # tool call id -> tool name: a result is masked as its call
        known = list(known)
        for entry in seen:
            known += entry.gave
            for call_id, name, secrets in entry.calls:
                tools[call_id] = name
                known += secrets
        known_key = tuple(map(repr, known))
        out = ShownConversation()
        for entry in seen:
            message = entry.message
            called = tools.get(getattr(message, "tool_call_id", None))
            key = (output, known_key, called)
            item = entry.shown.get(key)
            if item is None:
                item = self._shown(message, output, tools, known)
                entry.shown = {key: item}  # the newest only: the conversation grows
            out.append(item)
        return out

    def secrets(self, messages: Sequence[Any]) -> list[Any]:
        """The secret values ``messages`` hold as a run's log holds them (``log_secrets``):
        what their tool calls were given, and their tools' results gave back, in a sensitive
        field. An answer to them may repeat any: it is shown with them."""
        known: list[Any] = []
        for entry in map(self._remembered, messages):
            known += entry.gave
            for _, _, secrets in entry.calls:
                known += secrets
        return known

    def _remembered(self, message: Any) -> _Seen:
        with self._lock:
            entry = self._seen.get(id(message))
            if entry is not None and entry.message is message:
                self._seen.move_to_end(id(message))
                return entry
        calls = [
            (call.get("id"), name, secret_values(call.get("args"), self.redactor, fields))
            for call in getattr(message, "tool_calls", None) or ()
            for name in [str(call.get("name"))]
            for fields in [self.sensitive_of(name)]
        ]
        gave: list[Any] = []
        tool = getattr(message, "name", None) if getattr(message, "type", None) == "tool" else None
        if tool:  # a tool's result (a run's always names its tool), read as its log entry is
            gave = secret_values(message.content, self.redactor, self.sensitive_of(str(tool)))
        entry = _Seen(message, calls, gave)
        if self.size:
            with self._lock:
                self._seen[id(message)] = entry
                while len(self._seen) > self.size:
                    self._seen.popitem(last=False)
        return entry

    def _shown(
        self, message: Any, output: bool, tools: Mapping[Any, str], known: list[Any]
    ) -> dict[str, Any]:
        r = self.redactor
        item = output_message(message) if output else input_message(message)
        for part in item["parts"]:
            if part["type"] == "tool_call":
                fields: Collection[str] = self.sensitive_of(part["name"])
                part["arguments"] = shown(part["arguments"], r, sensitive=fields, known=known)
            elif part["type"] == "tool_call_response":
                called = tools.get(part["id"])
                fields = self.sensitive_of(called or str(getattr(message, "name", "") or ""))
                part["response"] = shown(part["response"], r, sensitive=fields, known=known)
        result: dict[str, Any] = shown(item, r, known=known)
        return result


def shown_run(run: _R, redactor: Redactor | None = None, *, known: Collection[Any] = ()) -> _R:
    """``run`` with its goal, output and error as shown, masked too with the ``known`` secret
    values (``log_secrets`` of the run's log: an answer may repeat a sensitive argument);
    the rest is kept (its pending requests' arguments are shown through
    ``approvals.display.shown_args``)."""
    return replace(
        run,
        goal=shown(run.goal, redactor, known=known),
        output=shown(run.output, redactor, known=known),
        error=shown(run.error, redactor, known=known),
    )
