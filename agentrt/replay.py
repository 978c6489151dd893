"""Record and replay: every model response is kept; a run can be re-run from its recordings.

At the model call, the plan node records the response in model_calls (with a digest of
the messages sent). ``replay_run`` re-runs a run in a scratch database with today's code
and policy: the model's answers come from model_calls, a side-effecting tool's result
from the ledger, a read tool's from the event log, an irreversible tool's preview from its
own prepare hook (which has no side effect by contract). Approvals the run got are given
again as recorded. Nothing real is called and the run's own database is not written.

The replay's event log is compared with the run's: the report says "identical" or names
the first divergence, e.g. "step 2.0: policy now requires approval for 'issue_refund'".
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Protocol

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, messages_from_dict
from langgraph.types import RetryPolicy
from pydantic import SkipValidation

from agentrt.budget import Budget, ModelPrice
from agentrt.digests import effect_key, request_digest
from agentrt.errors import ConfigError
from agentrt.events import describe
from agentrt.logs import quiet
from agentrt.models import count_prompt_tokens, output_cap
from agentrt.nodes.deps import RunDeps
from agentrt.policies import Policy
from agentrt.principal import Principal
from agentrt.records import ModelCall
from agentrt.redaction import Redactor
from agentrt.state import Event, RunStatus
from agentrt.store.protocols import Store
from agentrt.summaries import Summarize
from agentrt.testing.scripted import ScriptedChatModel, ScriptExhausted
from agentrt.tools.contract import ToolContext, ToolError, ToolSpec
from agentrt.tools.credentials import Credentials
from agentrt.tools.registry import ToolRegistry
from agentrt.tracing.shown import shown_events

__all__ = ["ReplayReport", "Replayed", "recorded_model", "replay_logs", "replay_run"]

_VERBS = {
    "allow": "allows",
    "deny": "denies",
    "require_approval": "requires approval for",
}


class AgentRuntime(Protocol):
    """What replay reads of the runtime whose run it re-runs (agentrt.AgentRuntime)."""

    db: str
    store: Store
    tools: ToolRegistry
    model_name: str | None
    model_price: ModelPrice | None
    summarize: Summarize | None
    deps: RunDeps
    clock: Callable[[], float]
    redactor: Redactor

    @property
    def policy(self) -> Policy: ...

    @property
    def budget(self) -> Budget: ...

    def get(self, thread_id: str) -> Any: ...

    def events(self, thread_id: str) -> list[Event]: ...

    def messages(self, thread_id: str) -> list[Any]: ...


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """What a replay found: identical, or the first place the re-run went another way."""

    thread_id: str
    """The run that was replayed."""
    identical: bool
    """True if the re-run produced the same events, decisions and outcome."""
    divergence: str | None
    """The first difference, in words, e.g. "step 2.0: policy now denies 'issue_refund'"."""
    step_id: str | None
    """The plan step where it diverged, if the divergence is at a step."""
    events: int
    """How many events of the original run matched before the divergence."""
    note: str | None = None
    """What an identical replay could not cover, e.g. a model call the run never got an
    answer to (its provider failed): the replay matches up to it."""

    def __str__(self) -> str:
        if not self.identical:
            return f"diverged: {self.divergence}"
        return f"identical ({self.note})" if self.note else "identical"


@dataclass(frozen=True, slots=True)
class Replayed:
    """A replay with both logs it compared: what a caller needs beyond the verdict (the
    evals' what-if counts the policy's decisions in them)."""

    report: ReplayReport
    """Identical, or the first divergence."""
    original: list[Event]
    """The run's own event log."""
    replayed: list[Event]
    """The re-run's event log; it matches ``original`` up to ``report.events``."""


class _Recording:
    """What the original run left behind, looked up by step."""

    def __init__(self, rt: AgentRuntime, thread_id: str, events: list[Event]) -> None:
        self.rt = rt
        self.thread_id = thread_id
        self.actions: dict[str, dict[str, Any]] = {}
        self.observations: dict[str, dict[str, Any]] = {}
        self.approvals: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.first_limits: dict[str, Any] = {}
        for event in events:
            data = event["data"]
            if event["type"] == "plan":
                for action in data["actions"]:
                    self.actions[action["step_id"]] = action
            elif event["type"] == "observation":
                self.observations[data["step_id"]] = data
            elif event["type"] == "approval":
                key = (event["step_id"] or "", data.get("kind", "action"))
                self.approvals.setdefault(key, []).append(data)
                if key[1] == "budget":
                    self.first_limits.setdefault(data["args"]["limit"], data["args"]["allowed"])
        self.misses: dict[str, str] = {}

    def result(self, spec: ToolSpec, args: dict[str, Any], ctx: ToolContext) -> Any:
        """The recorded result of this call, or raise: the replay never calls a real tool."""
        step = ctx.step_id
        effect = self.rt.store.get_effect(effect_key(self.thread_id, step, spec.name, args))
        if effect is not None and effect.status == "done":
            return effect.result
        if effect is not None and effect.status == "failed":
            raise ToolError(effect.error or "failed")
        seen = self.observations.get(step)
        action = self.actions.get(step)
        if (
            effect is None
            and seen is not None
            and seen["tool"] == spec.name
            and action is not None
            and action["args"] == args
        ):
            if seen["kind"] != "ok":
                raise ToolError(seen["content"])
            try:
                return json.loads(seen["content"])
            except ValueError:
                return seen["content"]
        self.misses[step] = f"{spec.name!r} was called with arguments {args!r}, never recorded"
        raise ToolError(f"replay: no recorded result for {spec.name!r} at step {step}")

    def decision_for(self, request: Any) -> dict[str, Any] | None:
        """The next recorded decision on a request like this one (same step and kind)."""
        waiting = self.approvals.get((request.step_id, request.kind))
        return waiting.pop(0) if waiting else None

    def initial_budget(self, budget: Budget) -> Budget:
        """The budget the run started with: the runs row holds it as people raised it."""
        start = dataclasses.replace(budget, **self.first_limits)
        # Time is not replayed: the replay runs now, in its own time.
        return dataclasses.replace(start, deadline=None, max_active_seconds=None)

    def stub(self, spec: ToolSpec) -> ToolSpec:
        """``spec`` with its function replaced by the recording (prepare stays real)."""

        def recorded(**kwargs: Any) -> Any:
            ctx = kwargs.pop("ctx")
            return self.result(spec, spec.validate_args(kwargs), ctx)

        return dataclasses.replace(spec, fn=recorded, ctx_param="ctx")


class _ReplayChatModel(ScriptedChatModel):
    """The recorded answers, in order; it counts a prompt's tokens as the run's own model
    did for the same request (recorded with each call), so the pre-flight sets the same
    caps and stops where the run stopped. A request never recorded is counted as the
    scripted model counts."""

    prompt_counts: dict[str, int] = {}
    """Prompt tokens by request digest, as the run's pre-flight counted them."""

    counter: Annotated[BaseChatModel | None, SkipValidation] = None
    """The run's own model, to count what no recording has (a call the budget refused)."""

    def get_num_tokens_from_messages(
        self, messages: list[BaseMessage], tools: Sequence[Any] | None = None
    ) -> int:
        counted = self.prompt_counts.get(request_digest(messages))
        if counted is not None:
            return counted
        if self.counter is not None:
            return count_prompt_tokens(self.counter, messages, tools or ())
        return super().get_num_tokens_from_messages(messages, tools)


def _replay_model(calls: list[ModelCall], asked: dict[int, str], rt: AgentRuntime) -> Any:
    # A run that summarized asked with fewer turns in its messages than it had taken (and
    # its summaries with none), so an answer is found by the request it answered first,
    # and by its place in the order only for a request the run never made.
    by_request = {c.request_digest: c for c in calls}

    def turn(call: ModelCall) -> Any:
        def answer(messages: list[BaseMessage]) -> AIMessage:
            digest = request_digest(messages)
            chosen = by_request.get(digest, call)
            asked[chosen.revision] = digest
            message = messages_from_dict([chosen.response])[0]
            assert isinstance(message, AIMessage)
            return message

        return answer

    # Same name and output cap as the run's model, so prices and budget pre-flight match.
    return _ReplayChatModel(
        steps=tuple(turn(c) for c in calls),
        model_name=rt.model_name or "replay",
        max_tokens=output_cap(rt.deps.model),
        prompt_counts={
            c.request_digest: c.prompt_tokens for c in calls if c.prompt_tokens is not None
        },
        counter=rt.deps.model,
    )


def _decision(request: Any, recorded: dict[str, Any]) -> Any:
    from agentrt.approvals import Decision

    # The decider as the record has it: the roles and tenant the request asked for.
    by = Principal(
        recorded.get("decided_by") or "replay", roles=request.roles, tenant=request.tenant
    )
    status = recorded["status"]
    if status == "approved":
        return Decision.approve(request.id, by=by)
    if status == "edited":
        return Decision.edit(request.id, args=recorded["edited_args"], by=by)
    return Decision.reject(request.id, by=by, reason=recorded.get("comment") or status)


def recorded_model(rt: AgentRuntime, thread_id: str) -> BaseChatModel:
    """A chat model that gives run ``thread_id``'s recorded answers, turn by turn, with the
    run's model name and output cap: the run's model as it answered, to run again live."""
    calls = rt.store.model_calls(thread_id)
    if not calls:
        raise ConfigError(
            f"run {thread_id!r} has no recorded model calls in {rt.store.location!r}; "
            "give a run that asked its model at least once"
        )
    model: BaseChatModel = _replay_model(calls, {}, rt)
    return model


def replay_run(
    rt: AgentRuntime, thread_id: str, *, build: Callable[..., Any], policy: Policy | None = None
) -> ReplayReport:
    """Re-run ``thread_id`` from its recordings in a scratch database and compare.

    ``build`` makes the scratch runtime (AgentRuntime itself: replay is below it);
    ``policy``: decide the re-run's actions by this policy rather than the runtime's (a
    what-if for a policy not yet live)."""
    return replay_logs(rt, thread_id, build=build, policy=policy).report


def replay_logs(
    rt: AgentRuntime, thread_id: str, *, build: Callable[..., Any], policy: Policy | None = None
) -> Replayed:
    """``replay_run``, with the two event logs it compared."""
    record = rt.store.get_run(thread_id)
    run = rt.get(thread_id)
    assert record is not None
    calls = rt.store.model_calls(thread_id)
    original = rt.events(thread_id)
    if not calls:
        if any(e["type"] == "plan" for e in original):
            raise ConfigError(
                f"run {thread_id!r} has no recorded model calls in {rt.store.location!r}, so "
                "it cannot be replayed: it ran on a version of agentrt that did not record them"
            )
        ended = f"it is {run.status.value}" + (f": {run.error}" if run.error else "")
        raise ConfigError(
            f"run {thread_id!r} never got an answer from its model ({ended}), so there is "
            "nothing to replay"
        )
    recording = _Recording(rt, thread_id, original)
    asked: dict[int, str] = {}
    budget = recording.initial_budget(Budget.from_dict(record.budget))
    with tempfile.TemporaryDirectory(prefix="agentrt-replay-") as scratch:
        replica = build(
            _replay_model(calls, asked, rt),
            tools=[recording.stub(spec) for spec in rt.tools],
            policy=rt.policy if policy is None else policy,
            db=Path(scratch) / "replay.db",
            tracing=None,
            metrics=False,
            # The recorded answers write the summaries too, where the run summarized.
            summarize=None
            if rt.summarize is None
            else dataclasses.replace(rt.summarize, model=None),
            budget=rt.budget,
            prices={rt.model_name: rt.model_price} if rt.model_name and rt.model_price else None,
            instructions=rt.deps.instructions,
            clock=rt.clock,
            new_id=lambda: f"replay-{thread_id}",
            model_retry=RetryPolicy(max_attempts=1),
            # Nothing real is called: a tool's credentials are stand-ins, never the secrets.
            credentials=Credentials.from_callable(lambda name, _: f"agentrt-replay-{name}-0x5e"),
        )
        try:
            with quiet():  # where the recordings end the replica fails, by design
                again = replica.start(run.goal, principal=run.principal, budget=budget)
                # Each follow-up the thread took, in the order taken, sent as it was.
                taken = sorted(
                    (m for m in rt.messages(thread_id)[1:] if m.started_at is not None),
                    key=lambda m: (m.started_at, m.index),
                )
                for message in [None, *taken]:
                    if message is not None:
                        again = replica.send(
                            again.thread_id,
                            message.text,
                            principal=message.principal,
                            budget=message.budget,
                            double_texting="interrupt" if message.interrupt else "enqueue",
                        )
                    gates = 0
                    while again.pending_approval is not None and gates <= len(original):
                        gates += 1
                        request = again.pending_approval
                        recorded = recording.decision_for(request)
                        if (
                            request.kind not in ("action", "budget")  # a reconcile: the world's
                            or recorded is None
                            or recorded["status"] not in ("approved", "edited", "rejected")
                        ):
                            break  # a gate the run did not meet: the comparison names it
                        again = replica.decide(_decision(request, recorded))
            replayed = replica.events(again.thread_id)
        finally:
            replica.close()
    # Asked for an answer the run never got (its provider failed, or it waits to retry):
    # the replay ends there; whether the run ended there too is the comparison's to say.
    ran_out = again.status is RunStatus.FAILED and (again.error or "").startswith(
        ScriptExhausted.__name__
    )
    if ran_out and replayed and replayed[-1]["type"] == "finish":
        replayed = replayed[:-1]

    def said(log: list[Event], index: int) -> str:
        """The event at ``index`` of ``log`` in words, masked as every surface shows it."""
        return describe(shown_events(log, rt.redactor, rt.tools.sensitive_of, start=index)[0])

    report = _compare(
        thread_id,
        original=original,
        replayed=replayed,
        asked=asked,
        calls=calls,
        misses=recording.misses,
        said=said,
        unanswered=run.status.value if ran_out else None,
    )
    return Replayed(report, original, replayed)


def _compare(
    thread_id: str,
    *,
    original: list[Event],
    replayed: list[Event],
    asked: dict[int, str],
    calls: list[ModelCall],
    misses: dict[str, str],
    said: Callable[[list[Event], int], str],
    unanswered: str | None = None,
) -> ReplayReport:
    """``said(log, index)`` puts an event in words for the report. ``unanswered`` (the
    run's status) says the replay stopped at a model call the run has no answer to."""
    digests = {c.revision: c.request_digest for c in calls}
    tools = {
        a["step_id"]: a["tool"]
        for e in (*original, *replayed)
        if e["type"] == "plan"
        for a in e["data"]["actions"]
    }
    for index, (was, now) in enumerate(zip(original, replayed, strict=False)):
        if was["type"] == "plan" and now["type"] == "plan":
            revision = now["data"]["revision"]
            if asked.get(revision, digests.get(revision)) != digests.get(revision):
                return _diverged(
                    thread_id,
                    index,
                    None,
                    f"plan {revision}: the model is now asked something other than what was "
                    "recorded (instructions or history changed)",
                )
        if _key(was) != _key(now):
            step = now.get("step_id") or was.get("step_id")
            words = (said(original, index), said(replayed, index))
            text = _difference(was, now, misses, tools, words)
            return _diverged(thread_id, index, step, text)
    rest = original[len(replayed) :]
    if unanswered is not None and (
        not rest
        or (
            len(rest) == 1
            and rest[0]["type"] == "finish"
            and rest[0]["data"]["status"] in ("failed", "cancelled")
        )
    ):
        # The run stopped at the same call: it failed there, or waits to retry it.
        note = (
            f"as far as the recordings go: the run got no answer to its next model call "
            f"(it is {unanswered})"
        )
        return ReplayReport(thread_id, True, None, None, len(replayed), note)
    if len(original) != len(replayed):
        index = min(len(original), len(replayed))
        if len(replayed) < len(original):
            nxt = original[index]
            text = f"the replay stopped where the run went on to {said(original, index)}"
            return _diverged(thread_id, index, nxt.get("step_id"), _prefix(nxt, text))
        extra = replayed[index]
        text = f"the replay went on to {said(replayed, index)} where the run had ended"
        return _diverged(thread_id, index, extra.get("step_id"), _prefix(extra, text))
    return ReplayReport(thread_id, True, None, None, len(original))


def _diverged(thread_id: str, index: int, step: str | None, text: str) -> ReplayReport:
    return ReplayReport(thread_id, False, text, step, index)


def _prefix(event: Event, text: str) -> str:
    step = event.get("step_id")
    return f"step {step}: {text}" if step else text


def _key(event: Event) -> Any:
    data = event["data"]
    kind = event["type"]
    if kind == "plan":
        return (kind, data["content"], [(a["tool"], a["args"]) for a in data["actions"]])
    if kind == "policy":
        return (kind, event.get("step_id"), data["outcome"], data["rule_id"])
    if kind == "approval":
        return (kind, event.get("step_id"), data["status"], data.get("edited_args"))
    if kind == "observation":
        return (kind, data["step_id"], data["tool"], data["kind"], data["content"])
    return (kind, event.get("step_id"), data)  # finish, policy_changed: all of it


def _difference(
    was: Event, now: Event, misses: dict[str, str], tools: dict[str, str], words: tuple[str, str]
) -> str:
    """The first difference between two events at the same place, in words; ``words`` are
    the two events described (as shown)."""
    step = now.get("step_id") or was.get("step_id")
    if step is not None and step in misses:
        return f"step {step}: {misses[step]}"
    if was["type"] == now["type"] == "policy":
        tool = tools.get(step or "", "?")
        verb = _VERBS.get(now["data"]["outcome"], now["data"]["outcome"])
        return (
            f"step {step}: policy now {verb} {tool!r} (rule {now['data']['rule_id']}); "
            f"the run had {was['data']['outcome']} (rule {was['data']['rule_id']})"
        )
    if was["type"] == now["type"] == "observation":
        return (
            f"step {step}: {now['data']['tool']} now gives [{now['data']['kind']}] "
            f"{now['data']['content'][:120]!r}; the run had [{was['data']['kind']}] "
            f"{was['data']['content'][:120]!r}"
        )
    if was["type"] == now["type"] == "finish":
        return (
            f"the run now ends {now['data']['status']} ({now['data'].get('error') or 'no error'}); "
            f"it had ended {was['data']['status']}"
        )
    return _prefix(now, f"the replay has {words[1]} where the run had {words[0]}")
