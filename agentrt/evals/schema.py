"""What a dataset file may say: the pydantic models its YAML (or each JSONL line) is
validated against. Every model refuses unknown fields, so a typo is an error, not a
silently ignored expectation."""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agentrt.evals.json_schemas import schema_problem
from agentrt.principal import Principal
from agentrt.state import RunStatus

__all__ = [
    "CaseSpec",
    "DatasetFile",
    "DecideSpec",
    "Defaults",
    "Expect",
    "JudgeConfig",
    "JudgeSpec",
    "ModelSpec",
    "OutputExpect",
    "PrincipalSpec",
    "ToolsExpect",
    "TurnSpec",
    "judge_limit_problem",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PrincipalSpec(_Strict):
    """Who a run acts for (or who decides at a gate)."""

    id: str
    roles: list[str] = []
    tenant: str | None = None
    scopes: list[str] = []

    def principal(self) -> Principal:
        return Principal(self.id, roles=self.roles, tenant=self.tenant, scopes=self.scopes)


class CallSpec(_Strict):
    """One tool call of a scripted answer."""

    name: str
    args: dict[str, Any] = {}


class TurnSpec(_Strict):
    """One scripted answer: text, tool calls, or both."""

    content: str = ""
    tool_calls: list[CallSpec] = []


class ModelSpec(_Strict):
    """The model's answers for this case, instead of the app's model."""

    script: list[str | TurnSpec] | None = None
    """Answers in turn order (agentrt.testing.ScriptedChatModel); a string is a final answer."""
    recorded: str | None = None
    """A run's thread id: its recorded answers, in order."""
    name: str | None = None
    """The scripted model's name, as prices are looked up (default: the app model's)."""

    @model_validator(mode="after")
    def _one_source(self) -> ModelSpec:
        if (self.script is None) == (self.recorded is None):
            raise ValueError("give exactly one of script (a list of answers) or recorded")
        return self


class DecideSpec(_Strict):
    """What a person says at every approval gate the run meets."""

    decision: Literal["approve", "reject"]
    by: PrincipalSpec
    reason: str = "rejected by the eval"

    @field_validator("reason")
    @classmethod
    def _in_words(cls, value: str) -> str:
        if not value.strip():
            raise ValueError(
                f"a rejection needs a reason in words, got {value!r}; write one, or leave "
                "reason out"
            )
        return value


class ToolsExpect(_Strict):
    """Which tools the run called."""

    called: list[str] | None = None
    """Each was called at least once."""
    not_called: list[str] | None = None
    """None of these was called."""
    only: list[str] | None = None
    """The set of tools called is exactly this."""
    sequence: list[str] | None = None
    """Called in this order (other calls may come between)."""
    counts: dict[str, int] | None = None
    """How many times each was called."""

    @field_validator("counts")
    @classmethod
    def _countable(cls, value: dict[str, int] | None) -> dict[str, int] | None:
        below = {name: n for name, n in (value or {}).items() if n < 0}
        if below:
            raise ValueError(
                f"no tool is called fewer than 0 times, got {below!r}: every run would fail; "
                "give each a count of 0 or more"
            )
        return value


class OutputExpect(_Strict):
    """What the run's final answer says."""

    contains: list[str] = []
    not_contains: list[str] = []
    regex: str | None = None
    """A regular expression that must match somewhere in the output."""
    json_schema: dict[str, Any] | None = None
    """The output parses as JSON and is valid against this schema."""

    @field_validator("contains", "not_contains", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value == "":
            raise ValueError("the regex '' matches every output; give a pattern to look for")
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression {value!r}: {exc}") from None
        return value

    @field_validator("json_schema")
    @classmethod
    def _schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        problem = schema_problem(value) if value is not None else None
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("contains", "not_contains")
    @classmethod
    def _no_empty_text(cls, value: list[str]) -> list[str]:
        if "" in value:
            # "" is in every output: contains would always pass, not_contains always fail.
            raise ValueError("'' is in every output; give the text to look for")
        return value


_COUNTS = ("max_tokens", "max_steps", "max_tool_calls", "approvals", "denials")
"""Expect's fields that are (or may be) a count."""


def _refuse_below_0(value: object) -> None:
    """ValueError for a number below 0, which no run's count or cost is."""
    if isinstance(value, int | float) and value < 0:
        raise ValueError(f"{value!r} is below 0, so every run would fail; give 0 or more")


class Expect(_Strict):
    """What a case's run must show: its outcome and its trajectory."""

    status: RunStatus | list[RunStatus] | None = None
    tools: ToolsExpect | None = None
    where: list[str] = []
    """CEL conditions over the trajectory (calls, approvals, denials, status, output,
    usage, goal); each must be true."""
    approvals: int | list[str] | None = None
    """Approvals requested: how many, or the rule ids that asked (as a set)."""
    denials: int | list[str] | None = None
    """Actions denied: how many, or the rule ids that denied (as a set; "(no rule)" for a
    denial by scopes or the policy's default)."""
    max_cost_usd: float | None = None
    max_tokens: int | None = None
    max_steps: int | None = None
    max_tool_calls: int | None = None
    output: OutputExpect | None = None

    @field_validator("where", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator(*_COUNTS, "max_cost_usd", mode="before")
    @classmethod
    def _not_a_truth(cls, value: Any) -> Any:
        # YAML's true is an int to pydantic: `max_steps: true` would be a limit of 1 step.
        if isinstance(value, bool):
            raise ValueError(f"{value!r} is no number; give a number, or leave the field out")
        return value

    @field_validator("max_cost_usd")
    @classmethod
    def _a_cost(cls, value: float | None) -> float | None:
        # No run's cost is over NaN or over infinity: such a limit passes any run.
        if value is not None and (math.isnan(value) or value == math.inf):
            raise ValueError(
                f"{value!r} checks nothing: no run's cost is over it, so every run would "
                "pass, a failed one too; give the most dollars the run may spend, or leave "
                "it out"
            )
        _refuse_below_0(value)
        return value

    @field_validator(*_COUNTS)
    @classmethod
    def _a_count(cls, value: Any) -> Any:
        _refuse_below_0(value)
        return value

    @field_validator("status")
    @classmethod
    def _some_status(cls, value: RunStatus | list[RunStatus] | None) -> Any:
        if value == []:
            raise ValueError("no run's status is in an empty list; give one status or several")
        return value


class JudgeSpec(_Strict):
    """An LLM-as-judge check: the judge model grades the run against a rubric."""

    rubric: str
    pass_score: float = Field(default=0.5, ge=0.0, le=1.0)
    """A score at or above this passes, when the judge gives one."""


class CaseSpec(_Strict):
    """One case as the file writes it."""

    name: str
    goal: str
    principal: PrincipalSpec | None = None
    budget: dict[str, Any] | None = None
    model: ModelSpec | None = None
    decide: DecideSpec | None = None
    expect: Expect = Expect()
    scorers: list[str] = []
    """Custom scorers, "module:function": called with the Trajectory, they return a bool,
    a score from 0 to 1 (0.5 and up passes) or an agentrt.evals.Score."""
    judge: str | JudgeSpec | None = None
    """A rubric (or {rubric, pass_score}) for the LLM judge."""


class Defaults(_Strict):
    """What every case has unless it says otherwise."""

    principal: PrincipalSpec | None = None
    budget: dict[str, Any] | None = None
    decide: DecideSpec | None = None


class JudgeConfig(_Strict):
    """The judge model and its own budget, for every case with a `judge` rubric."""

    model: str | None = None
    """A "provider:name" chat model (the models extra); `--judge module:attr` overrides."""
    max_tokens: int | None = 200_000
    max_cost_usd: float | None = None
    max_calls: int | None = None

    @field_validator("max_tokens", "max_cost_usd", "max_calls", mode="before")
    @classmethod
    def _a_limit(cls, value: Any) -> Any:
        problem = judge_limit_problem(value)
        if problem is not None:
            raise ValueError(f"{problem}; give a number above 0, or leave the field out")
        return value


def judge_limit_problem(value: object) -> str | None:
    """What is wrong with ``value`` as a limit of the judge's budget, or None (no limit
    is fine). A limit no spending reaches (NaN, infinity) never stops the judge; one
    reached before it starts (0 or below) fails every judged case "not judged"."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        # YAML's true is an int to pydantic: `max_calls: true` would be a limit of 1.
        return f"{value!r} is no number"
    if not math.isfinite(value):
        return f"{value!r} never stops the judge: no spending reaches it"
    if value <= 0:
        return (
            f"{value!r} is spent before the first judgement: every judged case would fail "
            "'not judged'"
        )
    return None


class DatasetFile(_Strict):
    """A YAML dataset file."""

    name: str | None = None
    defaults: Defaults = Defaults()
    judge: JudgeConfig = JudgeConfig()
    cases: list[CaseSpec]
