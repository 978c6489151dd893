"""Budgets: the limits a run may spend up to, and the checks made before each spend (model
prices: agentrt.prices).

A run's budget is layered: the runtime's default, then its tenant's default, then the one
given to ``start``. Each layer's limits replace the ones above it field by field; a limit
left None in a layer is inherited, so a per-run budget can raise or lower a tenant's limit
but never silently drop it (see ``Budget.over``). A caller who may only tighten the
limits above it (a request over HTTP) gets ``Budget.tightened`` instead.

Every check is made before the spend (pre-flight): counts and money are refused if the next
action would go past the limit; a model call is refused when the prompt plus the smallest
answer does not fit, and otherwise its output cap is lowered to what remains.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Literal, cast

from agentrt.errors import BudgetExceeded, ConfigError
from agentrt.prices import DEFAULT_PRICES, ModelPrice, find_price, price_table
from agentrt.readable import LAST_INSTANT, iso
from agentrt.state import BudgetReport, Usage

__all__ = [
    "DEFAULT_PRICES",
    "MAX_LIMIT",
    "MIN_OUTPUT_TOKENS",
    "OUTPUT_CEILING",
    "Budget",
    "BudgetExceeded",
    "ModelCallPlan",
    "ModelPrice",
    "budget_attributes",
    "empty_usage",
    "find_price",
    "first_exceeded",
    "plan_model_call",
    "price_table",
    "raised_budget",
    "remaining",
    "report",
]

OnExceed = Literal["stop", "ask"]

MIN_OUTPUT_TOKENS = 1
"""A model call needs room for at least this many output tokens, or it is not made."""

MAX_LIMIT = 2**63 - 1
"""The largest whole number a limit may be: a run's checkpoint and rows store 64-bit
integers, so a larger one would be accepted and then fail the run when it is saved."""

# Floats add up with rounding error (0.1 + 0.2 > 0.3): money is compared to a nano-dollar.
_USD_EPSILON = 1e-9

_UNLIMITED = 2**62
OUTPUT_CEILING = 2**31 - 1
"""An output cap no model reaches: a limit leaving this much room or more sets no cap."""
_TOO_LARGE = f"past the largest limit a run can store ({MAX_LIMIT}, 2**63 - 1)"

_LIMITS = ("max_tokens", "max_cost_usd", "max_tool_calls", "max_steps", "max_active_seconds")
_COUNTS = ("max_tokens", "max_tool_calls", "max_steps")


@dataclass(frozen=True, kw_only=True, slots=True)
class Budget:
    """Limits on what one run may spend. None means no limit (or, in a layer, inherit)."""

    max_tokens: int | None = None
    """Input plus output tokens over all model calls."""
    max_cost_usd: float | None = None
    """Money: model tokens at the model's price, plus declared tool costs."""
    max_tool_calls: int | None = None
    """Tool executions, counted before each call."""
    max_steps: int | None = None
    """Plan steps, i.e. model turns."""
    max_active_seconds: float | None = None
    """Time spent in the runtime's nodes; time waiting for a person does not count."""
    deadline: float | None = None
    """Epoch seconds after which no further model or tool call starts."""
    on_exceed: OnExceed | None = None
    """"stop" (the default): the run ends budget_exceeded. "ask": a person may raise the limit."""
    approver_role: str | None = None
    """With on_exceed="ask": the role a person needs to raise a limit; None lets anyone."""

    def __post_init__(self) -> None:
        for name in (*_LIMITS, "deadline"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"Budget.{name} must be a number or None, got {value!r}")
            if isinstance(value, int) and value > MAX_LIMIT:
                raise ConfigError(
                    f"Budget.{name} is {value!r}, {_TOO_LARGE}; use None for no limit"
                )
            if value < 0 or not math.isfinite(value):  # a negative int past floats too
                raise ConfigError(
                    f"Budget.{name} must be a finite number >= 0, got {value!r}; "
                    "use None for no limit"
                )
            if name == "deadline" and value > LAST_INSTANT:
                # Accepted, it would be a time no page or command could show.
                raise ConfigError(
                    f"Budget.deadline is {value!r}, past {iso(LAST_INSTANT)} (epoch seconds "
                    f"{LAST_INSTANT:.0f}), the last time a date shows; give epoch seconds "
                    "before it (e.g. time.time() + 3600), or None for no deadline"
                )
        for name in _COUNTS:
            value = getattr(self, name)
            if value is not None and not isinstance(value, int):
                raise ConfigError(f"Budget.{name} counts whole units, got {value!r}")
        if self.on_exceed not in (None, "stop", "ask"):
            raise ConfigError(f"Budget.on_exceed must be 'stop' or 'ask', got {self.on_exceed!r}")
        if self.approver_role is not None and (
            not isinstance(self.approver_role, str) or not self.approver_role
        ):
            raise ConfigError(
                f"Budget.approver_role must be a role name or None, got {self.approver_role!r}"
            )

    @property
    def asks(self) -> bool:
        """True if a person is asked to raise a limit instead of the run ending."""
        return self.on_exceed == "ask"

    def over(self, base: Budget | None) -> Budget:
        """This budget layered over ``base``: every field set here wins, None inherits."""
        if base is None:
            return self
        return replace(
            base, **{f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not None}
        )

    def tightened(self, by: Budget | None) -> Budget:
        """This budget with ``by`` applied only where it is stricter: what a caller who may
        not loosen this budget (e.g. over HTTP) gets when it asks for ``by``.

        - Each limit (and the deadline) is the smaller of the two; a limit this budget
          leaves unset is taken from ``by``; one ``by`` leaves unset stays as it is.
        - ``on_exceed``: "stop" is always accepted (it ends the run at its limit, the
          strictest answer); "ask" only if this budget already asks, since asking lets a
          person raise a limit.
        - ``approver_role``: only the value this budget already has, since it says who may
          raise a limit, and no role is ordered above another.

        A ``by`` that would loosen either of the last two is a ConfigError naming the field.
        """
        if by is None:
            return self
        if by.on_exceed == "ask" and not self.asks:
            raise ConfigError(
                f"on_exceed='ask' would let a person raise the limits set for you (in force: "
                f"on_exceed={self.on_exceed!r}); leave on_exceed out, or ask for 'stop'"
            )
        if by.approver_role is not None and by.approver_role != self.approver_role:
            raise ConfigError(
                f"approver_role={by.approver_role!r} would change who may raise your limits "
                f"(in force: {self.approver_role!r}); it is set by the runtime or your tenant "
                "only: leave it out"
            )
        tighter: dict[str, Any] = {}
        for name in (*_LIMITS, "deadline"):
            asked, current = getattr(by, name), getattr(self, name)
            if asked is not None:
                tighter[name] = asked if current is None else min(asked, current)
        if by.on_exceed == "stop":
            tighter["on_exceed"] = "stop"
        return replace(self, **tighter)

    def limits(self) -> dict[str, float]:
        """The limits that are set, by field name (deadline included)."""
        return {
            name: value
            for name in (*_LIMITS, "deadline")
            if (value := getattr(self, name)) is not None
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON form, as stored in the run's state and row."""
        # Each field is a number, a string or None: ``asdict``, which recurses into and
        # deep-copies each, cost every look at a run through the API several times this.
        return {name: getattr(self, name) for name in _FIELDS}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Budget:
        """Inverse of to_dict; unknown keys are a ConfigError. A deadline past the last
        date (LAST_INSTANT), kept before such were refused, is read as that date: it comes
        no sooner, and the run it belongs to can still be shown and driven."""
        last = _last_read
        if last is not None and last[0] is data and last[1] == data:
            return last[2]
        given = data
        data = dict(data or {})
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown Budget fields {sorted(unknown)!r}")
        deadline = data.get("deadline")
        if isinstance(deadline, int | float) and LAST_INSTANT < deadline < math.inf:
            data["deadline"] = LAST_INSTANT
        budget = cls(**data)
        if given is not None:
            _remember(given, budget)
        return budget


_FIELDS = tuple(f.name for f in fields(Budget))

_last_read: tuple[Mapping[str, Any], dict[str, Any], Budget] | None = None
"""The last dict Budget.from_dict read, as it was then, and its Budget: a run's nodes read
the same state dict once a node or more (its checks, its span), and a Budget checks each
limit as it is made. A dict changed since (the same object) is read again."""


def _remember(data: Mapping[str, Any], budget: Budget) -> None:
    global _last_read  # noqa: PLW0603  # one tuple swapped whole: threads read it whole
    _last_read = (data, dict(data), budget)


def empty_usage() -> Usage:
    """Usage of a run that has not spent anything yet."""
    return Usage(
        input_tokens=0, output_tokens=0, cost_usd=0.0, tool_calls=0, steps=0, active_seconds=0.0
    )


def tokens_used(usage: Usage) -> int:
    """Input plus output tokens, the quantity max_tokens limits."""
    return usage["input_tokens"] + usage["output_tokens"]


# checks ------------------------------------------------------------------------------------


def first_exceeded(
    budget: Budget,
    usage: Usage,
    *,
    now: float,
    next_steps: int = 0,
    next_tool_calls: int = 0,
    next_cost_usd: float = 0.0,
) -> BudgetExceeded | None:
    """The first limit that the next spend would break, or None if it fits.

    Called before the spend (pre-flight): ``next_*`` is what is about to be spent.
    """
    # Counts and money are known before the spend: stop if it would go past the limit.
    spends: list[tuple[str, float, float, float | None, float]] = [
        ("max_steps", usage["steps"], next_steps, budget.max_steps, 0.0),
        ("max_tool_calls", usage["tool_calls"], next_tool_calls, budget.max_tool_calls, 0.0),
        ("max_cost_usd", usage["cost_usd"], next_cost_usd, budget.max_cost_usd, _USD_EPSILON),
    ]
    for name, used, requested, allowed, slack in spends:
        if allowed is not None and used + requested > allowed + slack:
            return BudgetExceeded(name, used, allowed, requested=requested)
    # Tokens and time are only known after the spend: once the limit is reached, stop.
    measured: list[tuple[str, float, float | None]] = [
        ("max_tokens", tokens_used(usage), budget.max_tokens),
        ("max_active_seconds", usage["active_seconds"], budget.max_active_seconds),
    ]
    for name, used, allowed in measured:
        if allowed is not None and used >= allowed:
            return BudgetExceeded(name, used, allowed)
    if budget.deadline is not None and now >= budget.deadline:
        return BudgetExceeded("deadline", now, budget.deadline)
    return None


@dataclass(frozen=True, slots=True)
class ModelCallPlan:
    """The pre-flight verdict on one model call."""

    exceeded: BudgetExceeded | None
    """Set if the call must not be made."""
    cap: int | None
    """The output cap to ask the model for; None leaves the model's own setting."""
    capped_by: str | None
    """The limit that lowered the cap below the model's own (max_tokens or max_cost_usd)."""


def plan_model_call(
    budget: Budget,
    usage: Usage,
    *,
    now: float,
    prompt_tokens: int,
    model_cap: int | None,
    can_cap: bool,
    price: ModelPrice | None,
) -> ModelCallPlan:
    """Pre-flight for one model turn: may it run, and with what output cap.

    The call costs the prompt's tokens plus up to the output cap. If the cap can be set,
    it is lowered to what the token and money limits leave after the prompt; the call is
    refused when that is below MIN_OUTPUT_TOKENS. If it cannot be set, the model's own cap
    must fit whole.
    """
    exceeded = first_exceeded(budget, usage, now=now, next_steps=1)
    if exceeded is not None:
        return ModelCallPlan(exceeded, None, None)
    # Per limit: what is used, what it allows, and the output tokens it leaves room for.
    rooms: list[tuple[str, float, float, int]] = []
    if budget.max_tokens is not None:
        used = tokens_used(usage)
        rooms.append(
            ("max_tokens", used, budget.max_tokens, budget.max_tokens - used - prompt_tokens)
        )
    if budget.max_cost_usd is not None and price is not None:
        left = budget.max_cost_usd - usage["cost_usd"] - price.cost(prompt_tokens, 0)
        per_token = price.output_per_mtok / 1e6
        # Free output: only the prompt must fit. Else a millionth of a token of float slack.
        units = left / per_token + 1e-6 if per_token > 0 else None
        if units is None:
            room = _UNLIMITED if left >= -_USD_EPSILON else 0
        else:
            # A limit of more tokens than a 64-bit cap can say (or a float's range) leaves
            # the answer uncapped, as free output does.
            room = _UNLIMITED if units >= _UNLIMITED else math.floor(units)
        rooms.append(("max_cost_usd", usage["cost_usd"], budget.max_cost_usd, room))
    cap, capped_by = model_cap, None
    needs = MIN_OUTPUT_TOKENS if can_cap else (model_cap or MIN_OUTPUT_TOKENS)
    for name, spent, allowed, room in rooms:
        if room < needs:
            requested: float = prompt_tokens + needs
            if name == "max_cost_usd" and price is not None:
                requested = price.cost(prompt_tokens, needs)
            exceeded = BudgetExceeded(name, spent, allowed, requested=requested)
            return ModelCallPlan(exceeded, None, None)
        # A room past any answer a model gives is not sent: a provider may refuse a cap
        # that large (past 32 bits) as it refuses one past the model's own largest.
        if can_cap and room < OUTPUT_CEILING and (cap is None or room < cap):
            cap, capped_by = room, name
    return ModelCallPlan(None, cap, capped_by)


def remaining(budget: Budget, usage: Usage, *, now: float) -> dict[str, float]:
    """What is left of each limit that is set, keyed by limit name; never below zero."""
    used = {
        "max_tokens": tokens_used(usage),
        "max_cost_usd": usage["cost_usd"],
        "max_tool_calls": usage["tool_calls"],
        "max_steps": usage["steps"],
        "max_active_seconds": usage["active_seconds"],
        "deadline": now,
    }
    return {name: max(0.0, allowed - used[name]) for name, allowed in budget.limits().items()}


_ATTRIBUTE_NAMES = {
    "max_tokens": "agentrt.budget.tokens_remaining",
    "max_cost_usd": "agentrt.budget.cost_usd_remaining",
    "max_tool_calls": "agentrt.budget.tool_calls_remaining",
    "max_steps": "agentrt.budget.steps_remaining",
    "max_active_seconds": "agentrt.budget.active_seconds_remaining",
    "deadline": "agentrt.budget.seconds_to_deadline",
}


def budget_attributes(budget: Budget, usage: Usage, *, now: float) -> dict[str, float]:
    """remaining() under the span attribute names (agentrt.budget.*_remaining)."""
    return {_ATTRIBUTE_NAMES[k]: v for k, v in remaining(budget, usage, now=now).items()}


def report(
    exceeded: BudgetExceeded, usage: Usage, *, action: str, node: str, step_id: str, tool: str
) -> BudgetReport:
    """The structured record of a stop: which limit, the usage, the action it stopped before."""
    return BudgetReport(
        limit=exceeded.limit,
        allowed=exceeded.allowed,
        used=exceeded.used,
        requested=exceeded.requested,
        action=action,
        node=node,
        step_id=step_id,
        tool=tool,
        usage=usage,
        message=f"{exceeded}; stopped before {action}",
    )


def raised_budget(
    budget: Budget, limit: str, new_value: Any, *, used: float = 0.0, requested: float = 0.0
) -> Budget:
    """``budget`` with ``limit`` raised to ``new_value``, or ConfigError saying why not:
    also when it still stops the run that spent ``used`` before a spend of ``requested``."""
    current = getattr(budget, limit, None) if limit in (*_LIMITS, "deadline") else None
    if current is None:
        raise ConfigError(f"{limit!r} is not a limit this run has; raise one of its set limits")
    if isinstance(new_value, bool) or not isinstance(new_value, int | float):
        raise ConfigError(f"the new {limit} must be a number, got {new_value!r}")
    value: float = new_value
    if limit in _COUNTS and isinstance(value, float) and value.is_integer():
        value = int(value)  # "30" from a CLI arrives as 30.0
    if isinstance(value, int) and value > MAX_LIMIT:
        raise ConfigError(f"the new {limit} {new_value!r} is {_TOO_LARGE}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"the new {limit} must be a finite number, got {new_value!r}")
    if not value > current:
        raise ConfigError(
            f"the new {limit} must be higher than the current {current!r}, got {new_value!r}"
        )
    # As first_exceeded and plan_model_call judge it: a spend known before (a count, money,
    # a model call's prompt) must fit; tokens and time stop the run once the limit is reached.
    if requested or limit in ("max_steps", "max_tool_calls", "max_cost_usd"):
        slack = _USD_EPSILON if limit == "max_cost_usd" else 0.0
        if used + requested > value + slack:
            needs = f" and the next action needs {requested:.10g} more" if requested else ""
            raise ConfigError(
                f"the new {limit} {new_value!r} would stop the run again: the run has used "
                f"{used:.10g}{needs}; give at least {used + requested:.10g}"
            )
    elif value <= used:
        said = "the run stopped at" if limit == "deadline" else "the run has used"
        raise ConfigError(
            f"the new {limit} {new_value!r} would stop the run again: {said} {used:.10g}; "
            f"give more than {used:.10g}"
        )
    return replace(budget, **cast(dict[str, Any], {limit: value}))
