"""What a reviewer needs beside a pending request to decide it quickly: the run's goal, what
the model said and planned just before asking, the observations so far, the rule and why
it asked, the budget used and left, and for an edited request what the edit changed.

Built from what the page already reads (the run, its masked event log, the policy), so it
shows nothing the page would not: arguments, results and text pass the same masking.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentrt.approvals.display import changed_args
from agentrt.approvals.model import ApprovalRequest
from agentrt.budget import remaining, tokens_used
from agentrt.policies import Policy
from agentrt.runs.record import Run
from agentrt.service.schemas import ApprovalOut
from agentrt.state import Usage

__all__ = ["BudgetLine", "Change", "DecisionContext", "decision_context", "diff_args"]

_OBSERVATION_CHARS = 400
"""An observation is cut to this many characters on the card; the run's steps hold it all."""


def _used(usage: Usage) -> dict[str, float]:
    """What the run has spent of each limit that has a quantity."""
    return {
        "max_tokens": tokens_used(usage),
        "max_cost_usd": usage["cost_usd"],
        "max_tool_calls": usage["tool_calls"],
        "max_steps": usage["steps"],
        "max_active_seconds": usage["active_seconds"],
    }


@dataclass(frozen=True, slots=True)
class BudgetLine:
    """One limit of the run's budget: what was spent of it and what is left."""

    name: str
    used: float | int
    limit: float | int
    left: float | int

    @property
    def percent(self) -> int:
        """How much of the limit is spent, 0-100."""
        return 100 if self.limit <= 0 else min(100, round(100 * self.used / self.limit))


@dataclass(frozen=True, slots=True)
class Change:
    """One argument an edit changed: added, removed or changed."""

    field: str
    before: Any
    after: Any
    how: str
    """"added", "removed" or "changed"."""


@dataclass(frozen=True, slots=True)
class DecisionContext:
    """Everything shown beside one pending request."""

    goal: str
    said: str | None
    """The model's text in the plan that asked for this action."""
    plan: list[dict[str, Any]]
    """That plan's actions (tool, args masked), the one asked about marked ``this``."""
    observations: list[dict[str, Any]]
    """What the run has seen so far: tool, kind, what it said (cut)."""
    rule_id: str | None
    reason: str
    when: str | None
    """The rule's condition that matched (a CEL expression), if it has one."""
    budget: list[BudgetLine]
    edited_from: str | None = None
    """The request this one was edited from, and by whom."""
    edited_by: str | None = None
    changes: list[Change] = field(default_factory=list)
    """For an edited request: what the edit changed in the arguments."""


def diff_args(
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    seen_before: Mapping[str, Any] | None = None,
    seen_after: Mapping[str, Any] | None = None,
) -> list[Change]:
    """The arguments an edit changed, in the order of the original's then the new keys:
    compared on the values that run (``before``, ``after``), each change shown with its
    values as a person may see them (``seen_before``, ``seen_after``; the real ones if not
    given). A masked field that changed is listed, its values still masked."""
    was = before if seen_before is None else seen_before
    now = after if seen_after is None else seen_after
    changes = []
    for key in changed_args(before, after):
        if key not in after:
            changes.append(Change(key, was.get(key, _HIDDEN), None, "removed"))
        elif key not in before:
            changes.append(Change(key, None, now.get(key, _HIDDEN), "added"))
        else:
            changes.append(Change(key, was.get(key, _HIDDEN), now.get(key, _HIDDEN), "changed"))
    return changes


_HIDDEN = "(hidden)"
"""A changed value the view leaves out (a Redactor that drops sensitive fields)."""


def _changes(
    request: ApprovalOut,
    stored: ApprovalRequest,
    original: ApprovalOut | None,
    original_stored: ApprovalRequest | None,
) -> list[Change]:
    """What the edit that made ``stored`` changed: compared on the real arguments, shown
    as the page shows them (a change to a masked field is one too)."""
    if original is None:
        return []
    if original_stored is None:  # the original is not at hand: only what the page shows
        return diff_args(_view(original.args), _view(request.args))
    return diff_args(original_stored.args, stored.args, _view(original.args), _view(request.args))


def _view(args: Any) -> Mapping[str, Any]:
    """Shown arguments as a mapping; none for arguments hidden whole (an unknown tool)."""
    return args if isinstance(args, Mapping) else {}


def decision_context(
    request: ApprovalOut,
    stored: ApprovalRequest,
    run: Run,
    events: Sequence[Mapping[str, Any]],
    policy: Policy,
    *,
    now: float,
    original: ApprovalOut | None = None,
    original_stored: ApprovalRequest | None = None,
) -> DecisionContext:
    """The context of ``request`` (masked, as the page shows it; ``stored`` as kept) in
    ``run``, from its masked event log; ``original`` is the request it was edited from
    (``original_stored`` as kept)."""
    revision = _revision(request.step_id)
    plans = [e for e in events if e.get("type") == "plan"]
    plan = next(
        (p for p in reversed(plans) if p.get("data", {}).get("revision") == revision),
        plans[-1] if plans else None,
    )
    data = plan.get("data", {}) if plan else {}
    actions = [
        {
            "tool": a.get("tool"),
            "args": a.get("args"),
            "this": a.get("step_id") == request.step_id,
        }
        for a in data.get("actions", [])
    ]
    observations = [
        {
            "tool": e["data"].get("tool"),
            "kind": e["data"].get("kind"),
            "content": _cut(str(e["data"].get("content", ""))),
        }
        for e in events
        if e.get("type") == "observation"
    ]
    rule = next((r for r in policy.rules if r.rule.id == request.rule_id), None)
    budget = run.budget
    left = remaining(budget, run.usage, now=now)
    used = _used(run.usage)
    lines = [
        BudgetLine(name, _plain(used[name]), _plain(limit), _plain(left[name]))
        for name, limit in budget.limits().items()
        if name in used
    ]
    return DecisionContext(
        goal=run.goal,
        said=str(data.get("content") or "") or None,
        plan=actions,
        observations=observations,
        rule_id=request.rule_id,
        reason=request.reason,
        when=rule.rule.when if rule else None,
        budget=lines,
        edited_from=stored.edited_from,
        edited_by=stored.edited_by,
        changes=_changes(request, stored, original, original_stored),
    )


def _plain(value: float) -> float | int:
    """A count as a whole number, an amount as it is."""
    return int(value) if float(value).is_integer() else value


def _revision(step_id: str) -> int | None:
    head = step_id.split(".", 1)[0]
    return int(head) if head.isdigit() else None


def _cut(text: str) -> str:
    return text if len(text) <= _OBSERVATION_CHARS else text[: _OBSERVATION_CHARS - 1] + "…"
