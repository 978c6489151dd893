"""Scorers: each expectation of a case checked against a Trajectory, one Score each.

A case's ``expect`` becomes one scorer per kind it uses (status, tools, where, approvals,
denials, limits, output), its ``scorers`` one each under their "module:function" name, so
the report can say how each kind fared across the whole dataset.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from agentrt.evals.dataset import Case
from agentrt.evals.json_schemas import validation_error
from agentrt.evals.schema import Expect, OutputExpect, ToolsExpect
from agentrt.evals.trajectory import NO_RULE, Trajectory
from agentrt.policies.cel_engine import cel

__all__ = ["Check", "Score", "checks_of", "custom_score"]


@dataclass(frozen=True, slots=True)
class Score:
    """One scorer's verdict on one run."""

    name: str
    """The scorer: status, tools, where, approvals, denials, limits, output, judge, or a
    custom scorer's "module:function"."""
    passed: bool
    reason: str = ""
    """What did not hold (or the judge's reason), in words."""
    value: float | None = None
    """A score from 0 to 1, for scorers that give one (the judge, custom scorers)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "reason": self.reason,
            "value": self.value,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Score:
        return cls(data["name"], data["passed"], data.get("reason", ""), data.get("value"))


Check = Callable[[Trajectory], Score]


def checks_of(case: Case) -> list[Check]:
    """The case's expectations and custom scorers, in the order the report lists them.
    A check that raises fails alone, saying what it raised: never the run, nor the eval."""
    expect = case.spec.expect
    found: list[tuple[str, Check]] = []
    if expect.status is not None:
        found.append(("status", lambda t: _status(expect, t)))
    if expect.tools is not None:
        tools = expect.tools
        found.append(("tools", lambda t: _tools(tools, t)))
    if case.where:
        where = case.where
        found.append(("where", lambda t: _where(where, t)))
    if expect.approvals is not None:
        approvals = expect.approvals
        found.append(
            ("approvals", lambda t: _rules("approvals", approvals, [c.rule for c in t.approvals]))
        )
    if expect.denials is not None:
        denials = expect.denials
        found.append(("denials", lambda t: _rules("denials", denials, [c.rule for c in t.denials])))
    if any(getattr(expect, f) is not None for f in _LIMITS):
        found.append(("limits", lambda t: _limits(expect, t)))
    if expect.output is not None:
        output = expect.output
        found.append(("output", lambda t: _output(output, t)))
    for name, fn in case.scorers:
        found.append((name, lambda t, name=name, fn=fn: custom_score(name, fn, t)))  # type: ignore[misc]
    return [_guarded(name, check) for name, check in found]


def _guarded(name: str, check: Check) -> Check:
    def guarded(t: Trajectory) -> Score:
        try:
            return check(t)
        except Exception as exc:  # an output no check foresaw (JSON nested past the
            # interpreter's depth, a schema that refers to itself): this scorer's verdict
            return Score(name, False, f"the check raised {type(exc).__name__}: {exc}")

    return guarded


def _status(expect: Expect, t: Trajectory) -> Score:
    wanted = expect.status if isinstance(expect.status, list) else [expect.status]
    names = [s.value for s in wanted if s is not None]
    if t.status in names:
        return Score("status", True)
    said = f" ({t.error})" if t.error else ""
    return Score("status", False, f"status is {t.status}{said}; expected {' or '.join(names)}")


def _tools(spec: ToolsExpect, t: Trajectory) -> Score:
    called = t.tools
    counts = Counter(called)
    problems: list[str] = []
    if spec.called is not None:
        missing = [name for name in spec.called if name not in counts]
        if missing:
            problems.append(f"never called {missing}")
    if spec.not_called is not None:
        unwanted = [name for name in spec.not_called if name in counts]
        if unwanted:
            problems.append(f"called {unwanted}, which it should not")
    if spec.only is not None and set(counts) != set(spec.only):
        problems.append(f"called the set {sorted(counts)}; expected exactly {sorted(spec.only)}")
    if spec.sequence is not None and not _in_order(spec.sequence, called):
        problems.append(f"did not call {spec.sequence} in that order")
    for name, count in (spec.counts or {}).items():
        if counts[name] != count:
            problems.append(f"called {name!r} {counts[name]} times; expected {count}")
    return _verdict("tools", problems, called)


def _in_order(wanted: Sequence[str], called: Sequence[str]) -> bool:
    remaining = iter(called)
    return all(any(name == c for c in remaining) for name in wanted)


def _verdict(name: str, problems: list[str], called: Sequence[str]) -> Score:
    if not problems:
        return Score(name, True)
    return Score(name, False, "; ".join(problems) + f" (calls: {list(called)})")


def _where(conditions: Sequence[tuple[str, Any]], t: Trajectory) -> Score:
    context = cel.Context(variables=t.activation())
    for expression, program in conditions:
        try:
            value = program.execute(context)
        except Exception as exc:  # any CEL runtime error: the condition does not hold
            return Score("where", False, f"{expression!r} failed to evaluate: {exc}")
        if value is not True:
            said = "is false" if value is False else f"gave {value!r}, not true or false"
            return Score("where", False, f"{expression!r} {said}")
    return Score("where", True)


def _rules(name: str, wanted: int | list[str], rules: list[str | None]) -> Score:
    got = [r or NO_RULE for r in rules]
    if isinstance(wanted, int):
        if len(got) == wanted:
            return Score(name, True)
        return Score(name, False, f"{len(got)} {name} ({got}); expected {wanted}")
    if set(got) == set(wanted):
        return Score(name, True)
    return Score(name, False, f"{name} by rules {sorted(set(got))}; expected {sorted(set(wanted))}")


_LIMITS = {
    "max_cost_usd": "cost_usd",
    "max_tokens": "tokens",
    "max_steps": "steps",
    "max_tool_calls": "tool_calls",
}


def _limits(expect: Expect, t: Trajectory) -> Score:
    over = [
        f"{used} {t.usage[used]:g} > {limit:g}"
        for field, used in _LIMITS.items()
        if (limit := getattr(expect, field)) is not None and t.usage[used] > limit
    ]
    return Score("limits", not over, "; ".join(over))


def _output(spec: OutputExpect, t: Trajectory) -> Score:
    text = t.output or ""
    problems = [f"does not contain {s!r}" for s in spec.contains if s not in text]
    problems += [f"contains {s!r}" for s in spec.not_contains if s in text]
    if spec.regex is not None and re.search(spec.regex, text) is None:
        problems.append(f"does not match /{spec.regex}/")
    if spec.json_schema is not None:
        try:
            value = json.loads(text)
        except ValueError as exc:
            problems.append(f"is not JSON: {exc}")
        else:
            unfit = validation_error(spec.json_schema, value)
            if unfit is not None:
                problems.append(f"does not fit the schema: {unfit}")
    if not problems:
        return Score("output", True)
    return Score("output", False, f"output {'; '.join(problems)}; it was {_quoted(text)}")


def _quoted(text: str, width: int = 160) -> str:
    return repr(text if len(text) <= width else text[: width - 3] + "...")


def _unfit(score: Score) -> str | None:
    """What is wrong with a Score a custom scorer returned, or None: the report counts
    `passed` as a verdict and writes `value` as JSON (where NaN is not a number)."""
    if not isinstance(score.passed, bool):
        return f"passed is {score.passed!r}; a Score passes with True or fails with False"
    value = score.value
    if value is not None and (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 <= value <= 1
    ):
        return f"value is {value!r}; a Score's value is None or a number from 0 to 1"
    if not isinstance(score.reason, str):
        return f"reason is {score.reason!r}; a Score's reason is text"
    return None


def custom_score(name: str, fn: Callable[..., Any], t: Trajectory) -> Score:
    """Call a custom scorer; its answer as a Score (0.5 and up passes a plain number)."""
    try:
        answer = fn(t)
    except Exception as exc:  # the user's code: its failure is this scorer's verdict
        return Score(name, False, f"raised {type(exc).__name__}: {exc}")
    if isinstance(answer, Score):
        wrong = _unfit(answer)
        if wrong is not None:
            # Taken as it is, a `passed` of 0.2 or "no" is truthy: the run would pass.
            return Score(name, False, f"returned a Score whose {wrong}")
        return Score(name, answer.passed, answer.reason, answer.value)
    if isinstance(answer, bool):
        return Score(name, answer)
    if isinstance(answer, int | float) and math.isfinite(answer) and 0 <= answer <= 1:
        return Score(name, answer >= 0.5, f"score {answer:g}", float(answer))
    return Score(
        name,
        False,
        f"returned {answer!r}; a scorer returns a bool, a number from 0 to 1 or a Score",
    )
