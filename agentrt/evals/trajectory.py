"""What a run did, read from its event log: the thing every scorer looks at.

A Trajectory lists the run's tool calls in order, each with the policy's verdict, the rule
that gave it and what came back; the approvals it asked for and how they were decided; the
denials; and the outcome (status, output, usage). ``activation()`` is the same as plain
data, which CEL conditions in a dataset (``expect.where``) read:

    calls.exists(c, c.tool == "issue_refund" && c.args.amount <= 50.0)
    size(approvals) == 1 && approvals[0].rule == "large-refunds"
    usage.tokens < 5000
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agentrt.runs.record import Run
from agentrt.state import Event

__all__ = ["NO_RULE", "Call", "Trajectory"]

NO_RULE = "(no rule)"
"""The rule of a verdict no rule gave: the scopes check, or the policy's default."""


@dataclass(frozen=True, slots=True)
class Call:
    """One tool call the model asked for, and what became of it."""

    step_id: str
    tool: str
    args: dict[str, Any]
    decision: str | None
    """The policy's outcome: allow, deny or require_approval (None: never checked)."""
    rule: str | None
    """The rule behind the decision; NO_RULE for scopes or the default."""
    result: str | None
    """What the planner was told: ok, denied, rejected, error, ... (None: nothing yet)."""
    content: str | None
    """The observation's content (a result as JSON text, or an error)."""
    approval: str | None = None
    """For an action sent to a person: approved, rejected, edited, ..., or pending."""

    def as_data(self) -> dict[str, Any]:
        return {
            "step_id": self.step_id,
            "tool": self.tool,
            "args": self.args,
            "decision": self.decision or "",
            "rule": self.rule or "",
            "result": self.result or "",
            "content": self.content or "",
            "approval": self.approval or "",
        }


@dataclass(frozen=True, slots=True)
class Trajectory:
    """A run as the eval sees it: the outcome and every call on the way."""

    thread_id: str
    goal: str
    status: str
    output: str | None
    error: str | None
    usage: dict[str, Any]
    """input_tokens, output_tokens, tokens (their sum), cost_usd, tool_calls, steps."""
    calls: tuple[Call, ...]
    latency_seconds: float
    """Wall time of the run's segments, decisions included."""
    events: Sequence[Event] = field(default=(), repr=False)
    """The run's event log as stored."""

    @property
    def approvals(self) -> tuple[Call, ...]:
        """Calls the policy sent to a person."""
        return tuple(c for c in self.calls if c.decision == "require_approval")

    @property
    def denials(self) -> tuple[Call, ...]:
        """Calls the policy denied."""
        return tuple(c for c in self.calls if c.decision == "deny")

    @property
    def tools(self) -> list[str]:
        """The tools called, in order (an action counts once the model asked for it)."""
        return [c.tool for c in self.calls]

    def activation(self) -> dict[str, Any]:
        """The trajectory as CEL variables: calls, approvals, denials, status, output,
        error, usage, goal."""
        return {
            "calls": [c.as_data() for c in self.calls],
            "approvals": [c.as_data() for c in self.approvals],
            "denials": [c.as_data() for c in self.denials],
            "status": self.status,
            "output": self.output or "",
            "error": self.error or "",
            "usage": self.usage,
            "goal": self.goal,
        }

    @classmethod
    def of(cls, run: Run, events: Sequence[Event], *, latency_seconds: float) -> Trajectory:
        """The trajectory of ``run`` from its event log."""
        order: list[str] = []
        actions: dict[str, dict[str, Any]] = {}
        verdicts: dict[str, dict[str, Any]] = {}
        observations: dict[str, dict[str, Any]] = {}
        decided: dict[str, str] = {}
        for event in events:
            data = event["data"]
            kind = event["type"]
            if kind == "plan":
                for action in data["actions"]:
                    if action["step_id"] not in actions:
                        order.append(action["step_id"])
                    actions[action["step_id"]] = action  # an edit replaces the arguments
            elif kind == "policy":
                verdicts[data["step_id"]] = data
            elif kind == "observation":
                observations[data["step_id"]] = data
            elif kind == "approval" and data.get("kind", "action") == "action":
                decided[data["step_id"]] = data["status"]
        calls = []
        for step in order:
            action, verdict, seen = actions[step], verdicts.get(step), observations.get(step)
            outcome = verdict["outcome"] if verdict else None
            calls.append(
                Call(
                    step_id=step,
                    tool=action["tool"],
                    args=dict(action["args"]),
                    decision=outcome,
                    rule=(verdict["rule_id"] or NO_RULE) if verdict else None,
                    result=seen["kind"] if seen else None,
                    content=seen["content"] if seen else None,
                    approval=decided.get(step, "pending")
                    if outcome == "require_approval"
                    else None,
                )
            )
        u = run.usage
        usage = {
            "input_tokens": u["input_tokens"],
            "output_tokens": u["output_tokens"],
            "tokens": u["input_tokens"] + u["output_tokens"],
            "cost_usd": float(u["cost_usd"]),
            "tool_calls": u["tool_calls"],
            "steps": u["steps"],
        }
        return cls(
            thread_id=run.thread_id,
            goal=run.goal,
            status=run.status.value,
            output=run.output,
            error=run.error,
            usage=usage,
            calls=tuple(calls),
            latency_seconds=latency_seconds,
            events=tuple(events),
        )
