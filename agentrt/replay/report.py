"""What a replay found: the run's event log and the re-run's compared, the first difference
put in words ("step 2.0: policy now requires approval for 'issue_refund' ...")."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from agentrt.records import ModelCall
from agentrt.state import Event

__all__ = ["ReplayReport", "Replayed", "compare"]

_VERBS = {
    "allow": "allows",
    "deny": "denies",
    "require_approval": "requires approval for",
}


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


def compare(
    thread_id: str,
    *,
    original: list[Event],
    replayed: list[Event],
    asked: dict[int, str],
    calls: list[ModelCall],
    misses: Mapping[str, str],
    said: Callable[[list[Event], int], str],
    unanswered: str | None = None,
) -> ReplayReport:
    """The two logs compared. ``misses``: by step, why the replay could not follow the
    recordings there (a call never recorded, a decision today's checks refuse), which
    names a difference at that step better than the events do. ``said(log, index)`` puts
    an event in words for the report. ``unanswered`` (the run's status) says the replay
    stopped at a model call the run has no answer to."""
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
            if _cancelled(original, index):
                return _cancelled_there(thread_id, index, said(original, index))
            step = now.get("step_id") or was.get("step_id")
            words = (said(original, index), said(replayed, index))
            text = _difference(was, now, misses, tools, words)
            return _diverged(thread_id, index, step, text)
    if len(replayed) == len(original) - 1 and _cancelled(original, len(replayed)):
        # The replay stopped where the run was cancelled (out of answers, or at its gate).
        return _cancelled_there(thread_id, len(replayed), said(original, len(replayed)))
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
            step = nxt.get("step_id")
            if step is not None and step in misses:  # why the replay could not go on
                return _diverged(thread_id, index, step, f"step {step}: {misses[step]}")
            text = f"the replay stopped where the run went on to {said(original, index)}"
            return _diverged(thread_id, index, step, _prefix(nxt, text))
        extra = replayed[index]
        text = f"the replay went on to {said(replayed, index)} where the run had ended"
        return _diverged(thread_id, index, extra.get("step_id"), _prefix(extra, text))
    return ReplayReport(thread_id, True, None, None, len(original))


def _cancelled(log: list[Event], index: int) -> bool:
    """Whether ``log`` ends at ``index`` cancelled: by rt.cancel, or a request someone
    cancelled. Either is an input from outside the run, as a decision is."""
    event = log[index]
    return (
        index == len(log) - 1
        and event["type"] == "finish"
        and event["data"]["status"] == "cancelled"
    )


def _cancelled_there(thread_id: str, index: int, words: str) -> ReplayReport:
    """The replay matched the run up to where someone cancelled it (``words``: its finish
    as shown): identical, as far as the run went. Past the cancel nothing vouches for what
    the replay does (no answer the run got, no call it made), so it is not compared: the
    cancel is taken as given, as a decision is."""
    note = f"compared as far as the run went: {words}"
    return ReplayReport(thread_id, True, None, None, index, note)


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
    was: Event,
    now: Event,
    misses: Mapping[str, str],
    tools: dict[str, str],
    words: tuple[str, str],
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
