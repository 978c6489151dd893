"""Budgets: the limits a run may spend up to, and the check made before each spend."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from agentrt.errors import BudgetExceeded, ConfigError
from agentrt.state import Usage

__all__ = ["Budget", "BudgetExceeded", "empty_usage", "first_exceeded"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Budget:
    """Limits on what one run may spend. None means no limit."""

    max_tokens: int | None = None
    """Input plus output tokens over all model calls."""
    max_cost_usd: float | None = None
    """Money, from declared tool costs (model prices join with the budgets work)."""
    max_tool_calls: int | None = None
    """Tool executions, counted before each call."""
    max_steps: int | None = None
    """Plan steps, i.e. model turns."""
    max_active_seconds: float | None = None
    """Time spent in the runtime's nodes; time waiting for a person does not count."""
    deadline: float | None = None
    """Epoch seconds after which no further model or tool call starts."""

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"Budget.{name} must be a number or None, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ConfigError(
                    f"Budget.{name} must be a finite number >= 0, got {value!r}; "
                    "use None for no limit"
                )
        for name in ("max_tokens", "max_tool_calls", "max_steps"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, int):
                raise ConfigError(f"Budget.{name} counts whole units, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON form, as stored in the run's state and row."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Budget:
        """Inverse of to_dict; unknown keys are a ConfigError."""
        data = dict(data or {})
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown Budget fields {sorted(unknown)!r}")
        return cls(**data)


def empty_usage() -> Usage:
    """Usage of a run that has not spent anything yet."""
    return Usage(
        input_tokens=0, output_tokens=0, cost_usd=0.0, tool_calls=0, steps=0, active_seconds=0.0
    )


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
    spends: list[tuple[str, float, float, float | None]] = [
        ("max_steps", usage["steps"], next_steps, budget.max_steps),
        ("max_tool_calls", usage["tool_calls"], next_tool_calls, budget.max_tool_calls),
        ("max_cost_usd", usage["cost_usd"], next_cost_usd, budget.max_cost_usd),
    ]
    for name, used, requested, allowed in spends:
        if allowed is not None and used + requested > allowed:
            return BudgetExceeded(name, used, allowed, requested=requested)
    # Tokens and time are only known after the spend: once the limit is reached, stop.
    measured: list[tuple[str, float, float | None]] = [
        ("max_tokens", usage["input_tokens"] + usage["output_tokens"], budget.max_tokens),
        ("max_active_seconds", usage["active_seconds"], budget.max_active_seconds),
    ]
    for name, used, allowed in measured:
        if allowed is not None and used >= allowed:
            return BudgetExceeded(name, used, allowed)
    if budget.deadline is not None and now >= budget.deadline:
        return BudgetExceeded("deadline", now, budget.deadline)
    return None
