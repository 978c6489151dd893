"""What a run left behind, looked up by step: each tool call as the run saw it end, the
decisions its gates got, and the limits it started with.

A call is played back as the run's went, through today's tool runner and ledger: the
transient failures its retries passed, then its result (a str stays a str) or the
failure that ended it, of its kind and with its message word for word. A call whose
effect was in doubt (a reconcile gate met at its step) goes in doubt again first: a
non-idempotent call's as a timeout; an idempotent call's, which only the crash limit
sends to a person, by the replay's ledger holding the attempts that died with their
process (``prime``). The source is the ledger for a call with a side effect, and for any
other (a read) the outcome the run checkpointed after it: the event log keeps only its
text, which cannot tell "42" from 42.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from langgraph.checkpoint.base import BaseCheckpointSaver

from agentrt.approvals.model import ApprovalQuery
from agentrt.budget import Budget
from agentrt.digests import approval_id, args_digest, effect_key
from agentrt.state import Event, Outcome
from agentrt.store.protocols import EffectStore, Store
from agentrt.tools.contract import ToolContext, ToolError, ToolSpec
from agentrt.tools.execution import FailureKind
from agentrt.tools.ledger import CRASH_LIMIT, callable_again, failure_kind

__all__ = ["IN_DOUBT", "Recording", "failure_message"]

IN_DOUBT = "replay: the run's call at this step had no recorded outcome (its effect was in doubt)"
"""The message of an in-doubt call played again (the run's own is not kept once settled)."""


class Graph(Protocol):
    """The run graph, whose checkpointer holds each thread's checkpoints."""

    @property
    def checkpointer(self) -> Any: ...


class Recorded(Protocol):
    """What a recording reads of the runtime whose run it holds."""

    store: Store

    @property
    def graph(self) -> Graph: ...


@dataclass(frozen=True, slots=True)
class _Play:
    """One call of a tool's function as the run's call went: its result, or (``kind``
    set) a failure of that contract kind with ``message``."""

    result: Any = None
    kind: FailureKind | None = None
    message: str = ""


_RETRIED = _Play(kind="transient", message="replay: the run's call failed here and was tried again")
"""A failure the run's call got past by retrying: transient, so retried again."""


class _ReplayedFailure(ToolError):
    """A failure the run recorded, raised again by a replay's tool stub: its contract kind
    (timeout too, which a tool's own ToolError cannot claim) and its message as it was."""

    def __init__(self, kind: FailureKind, message: str) -> None:
        super().__init__(message)
        # The runner takes a ToolError's kind as the contract kind, and its text as the
        # message: so a timeout replays as a timeout (in doubt, for a non-idempotent write).
        self.kind = kind  # type: ignore[assignment]


class Recording:
    """What the original run left behind, looked up by step."""

    def __init__(self, rt: Recorded, thread_id: str, events: list[Event]) -> None:
        self.store = rt.store
        self.thread_id = thread_id
        self.decisions: dict[tuple[str, str], list[dict[str, Any]]] = {}
        """The decided requests of the run's log by (step, kind), in the order decided."""
        self.first_limits: dict[str, Any] = {}
        """Each limit of the thread's a person raised, as it was before the first raise."""
        self.reconciled: Counter[str] = Counter()
        """By step: how many times a person settled an effect in doubt there."""
        for event in events:
            if event["type"] != "approval":
                continue
            data = event["data"]
            key = (event["step_id"] or "", data.get("kind", "action"))
            self.decisions.setdefault(key, []).append(data)
            if key[1] == "budget" and _the_threads(thread_id, data):
                self.first_limits.setdefault(data["args"]["limit"], data["args"]["allowed"])
            if key[1] == "reconcile":
                self.reconciled[key[0]] += 1
        self.outcomes = checkpointed_outcomes(rt.graph.checkpointer, thread_id)
        """By step: (tool, arguments, outcome) of each call the run's checkpoints hold."""
        self.misses: dict[str, str] = {}
        """By step: why the replay could not follow the recordings there, for the report."""
        self.crashed: set[str] = set()
        """The steps whose first doubt the replay's ledger holds (``prime``)."""
        self._plays: dict[str, list[_Play]] = {}

    def prime(self, ledger: EffectStore, thread_id: str, tools: Iterable[ToolSpec]) -> None:
        """Make the replay's ``ledger`` (its run ``thread_id``) hold, at each step where the
        run asked a person to settle a call of an idempotent tool, the attempts that died
        with their process, as the run's ledger did when it asked.

        An idempotent call goes to a person only once its process died in it CRASH_LIMIT
        times (agentrt.tools.ledger.outcome_of), and a replay cannot die: played back as
        a timeout, the runner would retry it and the replay never reach the gate. With
        the attempts in its ledger, today's ledger finds the crash limit reached, as the
        run's did on resume, and asks a person without calling the tool."""
        idempotent = {spec.name for spec in tools if callable_again(spec)}
        asked = self.store.list_approvals(
            ApprovalQuery(status=None, thread_id=self.thread_id, limit=10_000)
        )
        for request in sorted(asked, key=lambda r: (r.requested_at, r.id)):
            step = request.step_id
            if request.kind != "reconcile" or request.tool not in idempotent:
                continue
            if step in self.crashed:
                # Asked again after a person said retry: its process died once more. The
                # replay cannot die, so it does not get there; the report says why.
                self.misses[step] = (
                    f"{request.tool!r} killed its process again after a person said retry; a "
                    "replay cannot play a process's death back"
                )
                continue
            self.crashed.add(step)
            key = effect_key(thread_id, step, request.tool, request.args)
            for seen in range(CRASH_LIMIT):
                ledger.start_effect(
                    key=key,
                    thread_id=thread_id,
                    step_id=step,
                    tool=request.tool,
                    args_digest=args_digest(request.args),
                    seen=seen,
                )

    def result(self, spec: ToolSpec, args: dict[str, Any], ctx: ToolContext) -> Any:
        """The next call of this step as the run's went, or raise: the replay never calls
        a real tool. Past the recording the last call is played again (today's tool
        settings retry more often than the run's did: the report says so)."""
        step = ctx.step_id
        key = effect_key(self.thread_id, step, spec.name, args)
        if key not in self._plays:
            self._plays[key] = self._script(spec, args, step, key)
        plays = self._plays[key]
        if not plays:
            self.misses[step] = f"{spec.name!r} was called with arguments {args!r}, never recorded"
            raise ToolError(f"replay: no recorded result for {spec.name!r} at step {step}")
        play = plays.pop(0) if len(plays) > 1 else plays[0]
        if play.kind is None:
            return play.result
        raise _ReplayedFailure(play.kind, play.message)

    def _script(self, spec: ToolSpec, args: dict[str, Any], step: str, key: str) -> list[_Play]:
        """How the run's calls of ``spec`` with ``args`` at ``step`` went, call by call."""
        effect = self.store.get_effect(key)
        if effect is not None:
            # The first doubt of a step ``prime`` made is the replay's ledger's to raise.
            doubts = max(0, self.reconciled[step] - (step in self.crashed))
            doubt = [_Play(kind="timeout", message=IN_DOUBT)] * doubts
            if effect.status == "done":
                return doubt + _ended(effect.retries, _Play(result=effect.result))
            if effect.status == "failed":
                kind = failure_kind(effect.error_kind)
                failed = _Play(kind=kind, message=effect.error or "failed")
                return doubt + _ended(effect.retries, failed)
            # Started, or to retry: the run met the gate last, or waits at it.
            return [*doubt, _Play(kind="timeout", message=effect.error or IN_DOUBT)]
        for tool, was, outcome in self.outcomes.get(step, ()):
            if tool == spec.name and was == args:
                retries = outcome.get("retries", 0)
                if outcome["kind"] == "ok":
                    return _ended(retries, _Play(result=outcome["data"]))
                kind = failure_kind(outcome["kind"])
                return _ended(retries, _Play(kind=kind, message=failure_message(outcome)))
        return []

    def stub(self, spec: ToolSpec) -> ToolSpec:
        """``spec`` with its function replaced by the recording (prepare stays real)."""
        return spec.calling(lambda args, ctx: self.result(spec, args, ctx))

    def initial_budget(self, budget: Budget) -> Budget:
        """The budget the run started with: the runs row holds the thread's as people
        raised it (a limit only one message set is that message's, never the row's)."""
        start = dataclasses.replace(budget, **self.first_limits)
        # Time is not replayed: the replay runs now, in its own time.
        return dataclasses.replace(start, deadline=None, max_active_seconds=None)


def _ended(retries: int, last: _Play) -> list[_Play]:
    return [_RETRIED] * retries + [last]


def _the_threads(thread_id: str, request: dict[str, Any]) -> bool:
    """Whether a budget request asked to raise a limit of the thread's (its row's) rather
    than one its message set: the id says which (agentrt.nodes.budget_gate keys a
    message's own with the message's number)."""
    args = request["args"]
    asked = f"budget:{args['limit']}:{args['allowed']!r}"
    return bool(request.get("id") == approval_id(thread_id, request["step_id"], asked))


def failure_message(outcome: Outcome) -> str:
    """The message of the failure ``outcome`` tells of, without what the tool node put in
    front of it (agentrt.nodes.tool.failed_outcome: its kind and retries)."""
    retries = outcome.get("retries", 0)
    tried = f" (after {retries} retries)" if retries else ""
    return outcome["content"].removeprefix(f"{outcome['kind']} error{tried}: ")


def checkpointed_outcomes(
    saver: Any, thread_id: str
) -> dict[str, list[tuple[str, dict[str, Any], Outcome]]]:
    """By step, each call's tool, arguments (as they ran: an edit's) and outcome, as the
    run's checkpoints in ``saver`` hold them, the latest first. Previews are left out:
    prepare runs again."""
    found: dict[str, list[tuple[str, dict[str, Any], Outcome]]] = {}
    if not isinstance(saver, BaseCheckpointSaver):
        return found  # a graph without checkpoints: only the ledger's calls replay
    # The saver's own listing: LangGraph's state history works out every checkpoint's
    # next tasks too, seconds on a long run's hundreds of checkpoints.
    for checkpoint in saver.list({"configurable": {"thread_id": thread_id}}):
        values = checkpoint.checkpoint["channel_values"]
        outcome, plan = values.get("outcome"), values.get("plan")
        if not outcome or outcome["phase"] != "done" or not plan:
            continue
        for action in plan["actions"]:
            if action["step_id"] == outcome["step_id"]:
                entry = (action["tool"], action["args"], outcome)
                kept = found.setdefault(outcome["step_id"], [])
                if entry not in kept:  # the same outcome, checkpoint after checkpoint
                    kept.append(entry)
    return found
