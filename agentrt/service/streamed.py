"""What an event stream sends of the events the worker pushes for its run: each masked as
the run's log is, and a model's answer, token by token, as ``AnswerShown`` lets it go.

A planner's message carries its tool calls after its text, and a call may pass a value the
text repeats in a field its tool declares sensitive (or names as a secret: ``pin``,
``password``): the entry then masks the value in the text, and tokens sent before the call
came would have shown it. So where a run's tools can take a secret (``takes_secrets``), a
planner's answer is held until its entry ends it, and sent then as the entry shows it. A
summary carries no tool call, nor does a run whose tools take none: those go live.
"""

from __future__ import annotations

from typing import Any

from fastapi.sse import ServerSentEvent

from agentrt.events import StreamEvent
from agentrt.redaction import Redactor
from agentrt.runtime import AgentRuntime
from agentrt.service.answer_shown import AnswerShown
from agentrt.tools.registry import ToolRegistry
from agentrt.tracing.shown import log_secrets, shown, shown_events, shown_live

__all__ = ["Pushed", "takes_secrets"]

_NO_CALLS = ("summarize",)
"""Nodes whose model is given no tools: their answers carry no tool call."""


class Pushed:
    """The events the worker pushes for one stream's run, as the stream sends them: a log
    entry with its index as id, once; a live kind without one; a token as ``AnswerShown``
    lets it go. Everything masked as the log is."""

    def __init__(self, rt: AgentRuntime) -> None:
        self.rt = rt
        self.log: list[Any] = []
        """The run's log as far as the stream has read it or been told."""
        self._answer: AnswerShown | None = None
        self._node: str | None = None
        """The node seen to start and not yet to end: only its answers are sent in tokens.
        One begun before the stream watched is not (a secret may start in what it missed);
        its log entry brings it whole."""
        self._known: tuple[int, list[Any]] = (-1, [])
        self._secret_taking: bool | None = None
        """``takes_secrets`` of the runtime's tools, worked out at the first answer."""

    def known(self) -> list[Any]:
        """The secret values the log holds so far (worked out again only as it grows)."""
        if self._known[0] != len(self.log):
            found = log_secrets(self.log, self.rt.redactor, self.rt.tools.sensitive_of)
            self._known = (len(self.log), found)
        return self._known[1]

    def told(self, event: StreamEvent, sent: int) -> list[ServerSentEvent]:
        """What to send of ``event``; ``sent``: the index of the first entry not yet sent."""
        rt = self.rt
        if event.type == "token":
            return self._token(event)
        out = self._ended(event)
        if event.type in ("step_started", "step_ended"):
            self._node = str(event.data.get("node")) if event.type == "step_started" else None
        if event.index is None:
            data = shown_live(event.to_dict(), self.log, rt.redactor, rt.tools.sensitive_of)
            return [*out, ServerSentEvent(data=data, event=event.type)]
        if event.index != len(self.log):  # read from the checkpoint already, or some missed
            return out
        self.log.append({"type": event.type, "step_id": event.step_id, "data": dict(event.data)})
        if event.index >= sent:
            entry = shown_events(self.log, rt.redactor, rt.tools.sensitive_of, start=event.index)
            out.append(ServerSentEvent(data=entry[0], event=event.type, id=str(event.index)))
        return out

    def _token(self, event: StreamEvent) -> list[ServerSentEvent]:
        node = str(event.data.get("node", ""))
        if self._answer is None or self._answer.node != node:
            if node != self._node:
                return []
            if self._secret_taking is None:
                self._secret_taking = takes_secrets(self.rt.tools, self.rt.redactor)
            held = node not in _NO_CALLS and self._secret_taking
            self._answer = AnswerShown(node, self.rt.redactor, self.known(), held=held)
        return self._sent(event, node, self._answer.add(str(event.data.get("text", ""))))

    def _ended(self, event: StreamEvent) -> list[ServerSentEvent]:
        """The rest of the answer that ``event`` shows whole (its plan entry, or its node's
        end); nothing of one cut off (its node failed, or another began)."""
        answer = self._answer
        if answer is None or event.type not in ("plan", "step_ended", "step_started"):
            return []
        self._answer = None
        if event.type == "step_started" or event.data.get("error"):
            return []
        whole = None
        if event.type == "plan" and event.index is not None:
            rt = self.rt
            entry = {"type": "plan", "step_id": event.step_id, "data": dict(event.data)}
            log = [*self.log[: event.index], entry]
            shown_entry = shown_events(log, rt.redactor, rt.tools.sensitive_of, start=len(log) - 1)
            whole = str(shown_entry[0]["data"].get("content") or "")
        return self._sent(event, answer.node, answer.end(whole))

    def _sent(self, event: StreamEvent, node: str, text: str) -> list[ServerSentEvent]:
        """``text`` of the answer as a token event, if there is any."""
        if not text:
            return []
        token = StreamEvent(thread_id=event.thread_id, type="token", data={"node": node})
        # The text is shown already: masked again alone, it could differ from the entry's.
        head = shown(token.to_dict(), self.rt.redactor, known=self.known())
        data = {**head, "data": {"text": text, **head["data"]}}
        return [ServerSentEvent(data=data, event="token")]


def takes_secrets(tools: ToolRegistry, redactor: Redactor) -> bool:
    """True if a call of one of ``tools`` can make a secret of a value: a tool declares a
    sensitive field, or its arguments' schema has a field (at any depth) that ``redactor``
    takes for a secret by its name."""
    for name in tools.names():
        spec = tools.get(name)
        if spec is None:
            continue
        if spec.sensitive:
            return True
        if _names_a_secret(spec.schema()["function"].get("parameters"), redactor):
            return True
    return False


def _names_a_secret(schema: Any, redactor: Redactor) -> bool:
    """True if a JSON Schema holds a property, at any depth, named as a secret."""
    # A stack, not recursion: a schema an MCP server lists may nest deep.
    todo = [schema]
    while todo:
        item = todo.pop()
        if isinstance(item, dict):
            fields = item.get("properties")
            if isinstance(fields, dict) and any(redactor.sensitive_key(str(k)) for k in fields):
                return True
            todo += item.values()
        elif isinstance(item, list):
            todo += item
    return False
