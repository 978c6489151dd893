"""Which limits a run gets, and whether this model lets them be enforced before the spend."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from agentrt.budget import Budget, ModelPrice
from agentrt.errors import ConfigError
from agentrt.models import model_name_of
from agentrt.principal import Principal
from agentrt.summaries import Summarizing

__all__ = ["DEFAULT_BUDGET", "BudgetLayers"]

DEFAULT_BUDGET = Budget(max_steps=100)
"""What a run may spend when neither the runtime nor the call says otherwise."""


@dataclass(frozen=True, kw_only=True)
class BudgetLayers:
    """The runtime's default budget, each tenant's, and what the model can enforce."""

    default: Budget
    """Every run's limits (already over DEFAULT_BUDGET)."""
    tenants: Mapping[str, Budget] = field(default_factory=dict)
    """Per tenant: limits layered over the default for that tenant's runs."""
    model_name: str | None = None
    model_price: ModelPrice | None = None
    """None: the model is unpriced, so a cost limit cannot hold."""
    can_cap: bool = True
    """Whether the model's output can be capped (the pre-flight lowers the cap)."""
    summarizing: Summarizing | None = None
    """The summarize step's model and its price (None: runs are never summarized)."""

    def __post_init__(self) -> None:
        for tenant, budget in self.tenants.items():
            if not isinstance(budget, Budget):
                raise ConfigError(
                    f"tenant_budgets[{tenant!r}] must be an agentrt Budget, got {budget!r}"
                )
        self.check(self.default, "the runtime's budget")
        for tenant, budget in self.tenants.items():
            self.check(budget.over(self.default), f"tenant {tenant!r}'s budget")

    def for_run(self, principal: Principal, budget: Budget | None = None) -> Budget:
        """The limits a run of ``principal`` gets: the runtime's default, then the tenant's,
        then ``budget``, each set field replacing the one before (None inherits)."""
        layered = self.default
        tenant_budget = self.tenants.get(principal.tenant or "")
        if tenant_budget is not None:
            layered = tenant_budget.over(layered)
        return budget.over(layered) if budget is not None else layered

    def check(self, budget: Budget, where: str) -> None:
        """ConfigError if a limit cannot be enforced before the spend with this model."""
        if budget.max_cost_usd is not None and self.model_price is None:
            raise ConfigError(
                f"{where} sets max_cost_usd={budget.max_cost_usd!r}, but model "
                f"{self.model_name!r} has no price, so its calls would count as free; pass "
                f"prices={{{self.model_name!r}: (input_usd, output_usd)}} per million tokens"
            )
        writer = self.summarizing
        if budget.max_cost_usd is not None and writer is not None and writer.price is None:
            name = model_name_of(writer.model)
            raise ConfigError(
                f"{where} sets max_cost_usd={budget.max_cost_usd!r}, but the summarizer "
                f"(Summarize.model) {name!r} has no price, so its summaries would count as "
                f"free; pass prices={{{name!r}: (input_usd, output_usd)}} per million tokens"
            )
        limited = budget.max_tokens is not None or budget.max_cost_usd is not None
        if limited and not self.can_cap:
            raise ConfigError(
                f"{where} limits tokens or cost, but model {self.model_name!r} has no output "
                "cap agentrt can set (none of max_tokens, max_output_tokens, ...), so no call "
                "could be checked before it spends; use a model class that has one"
            )
