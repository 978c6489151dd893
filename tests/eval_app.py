"""What the eval tests import by "module:attribute": apps, scorers and judge models.

- ``strict_runtime``: the refund desk whose policy sends every refund over $10 to a person,
  a policy change that makes a passing case regress;
- ``amount_runtime``: the refund desk whose scripted model refunds the amount its goal
  names ("Refund $30 on order 42."), to record many runs that differ;
- ``priced_runtime``: the refund desk whose scripted model has a price, so a cost
  ceiling (``expect.max_cost_usd``) counts;
- ``broken_runtime``: the refund desk whose model always fails, so its runs have no
  answer to replay;
- scorers of each kind a custom scorer may return, one that raises, and Scores a
  scorer must not return (a `passed` that is no bool, a value that is no number);
- judge models on a script: one that passes, one that fails, one that answers no JSON.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from agentrt import AgentRuntime, Policy
from agentrt.evals import Score, Trajectory
from agentrt.examples import refund_desk
from agentrt.examples.refund_desk import POLICY_FILE
from agentrt.testing import ScriptedChatModel, ai, tool_call

STRICT = POLICY_FILE.read_text(encoding="utf-8").replace("50.0", "10.0")
"""The desk's policy with the approval threshold at $10."""


def strict_runtime(db: str | Path = "agentrt.db", **kwargs: Any) -> AgentRuntime:
    return refund_desk.build_runtime(db, policy=Policy.from_yaml(STRICT), **kwargs)


def _amount(messages: list[BaseMessage]) -> float:
    goal = next(str(m.content) for m in messages if isinstance(m, HumanMessage))
    found = re.search(r"\$(\d+(?:\.\d+)?)", goal)
    assert found is not None, goal
    return float(found.group(1))


def amount_model() -> ScriptedChatModel:
    """Looks the order up, refunds the goal's amount, reports."""
    return ScriptedChatModel(
        [
            ai("Looking.", tool_call("lookup_order", {"order_id": "42"})),
            lambda m: ai(
                "Refunding.",
                tool_call("issue_refund", {"order_id": "42", "amount": _amount(m)}),
            ),
            lambda m: f"Refunded ${_amount(m):.2f}.",
        ],
        model_name="refund-desk-script",
    )


def amount_runtime(db: str | Path = "agentrt.db", **kwargs: Any) -> AgentRuntime:
    return refund_desk.build_runtime(db, model=amount_model(), **kwargs)


PRICE = (1000.0, 1000.0)
"""The desk's scripted model at $1000 per million tokens in and out: $0.001 a token."""


def priced_runtime(db: str | Path = "agentrt.db", **kwargs: Any) -> AgentRuntime:
    return refund_desk.build_runtime(db, prices={"refund-desk-script": PRICE}, **kwargs)


def broken_runtime(db: str | Path = "agentrt.db", **kwargs: Any) -> AgentRuntime:
    model = ScriptedChatModel([RuntimeError("provider down")] * 5 + ["unreached"])
    return refund_desk.build_runtime(db, model=model, **kwargs)


def says_amount(t: Trajectory) -> bool:
    return "$89.00" in (t.output or "")


def low_score(t: Trajectory) -> float:
    return 0.25


def full_score(t: Trajectory) -> Score:
    return Score("ignored", True, "every call was looked up first", 1.0)


def broken(t: Trajectory) -> bool:
    raise KeyError("amount")


def wrong_type(t: Trajectory) -> str:
    return "yes"


def partly(t: Trajectory) -> Score:
    """How far it got, in `passed`: a user's slip that, taken as it is, is truthy."""
    return Score("partly", 0.2, "20% of the refund was right")  # type: ignore[arg-type]


def says_no(t: Trajectory) -> Score:
    return Score("says_no", "no", "the refund was wrong")  # type: ignore[arg-type]


def unmeasured(t: Trajectory) -> Score:
    return Score("unmeasured", True, "no value to give", float("nan"))


NOT_A_FUNCTION = 42


def judge_pass() -> ScriptedChatModel:
    return ScriptedChatModel(
        ['Verdict: {"pass": true, "score": 0.9, "reason": "The refund amount is stated."}'],
        model_name="judge-script",
    )


def judge_fail() -> ScriptedChatModel:
    return ScriptedChatModel(
        ['{"pass": false, "score": 0.2, "reason": "No amount is given."}'],
        model_name="judge-script",
    )


def judge_rambles() -> ScriptedChatModel:
    return ScriptedChatModel([AIMessage("I think it is fine.")], model_name="judge-script")
