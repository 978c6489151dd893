"""The review page's helpers for deciding quickly: the queue's filters (tool, rule, tenant,
age), the context of each pending request on its run's page, and the landing page a
notification's link opens.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agentrt.approvals import ApprovalRequest
from agentrt.policies import Policy
from agentrt.records import ApiKey
from agentrt.runtime import AgentRuntime, Run
from agentrt.service.context import picks_tenant, tenant_listed
from agentrt.service.schemas import ApprovalOut, approval_out
from agentrt.service.ui.context import DecisionContext, decision_context

__all__ = ["AGES", "QueueFilters", "contexts_of", "filter_choices", "queue_filters", "tenant_of"]

AGES: dict[str, float] = {"5m": 300.0, "1h": 3600.0, "1d": 86400.0}
"""The queue's age filter: requests waiting at least this long."""

_AGE_WORDS = {"5m": "over 5 minutes", "1h": "over an hour", "1d": "over a day"}


@dataclass(frozen=True, slots=True)
class QueueFilters:
    """What the queue is narrowed to, as the form sends it and the store is asked."""

    tool: str | None = None
    rule: str | None = None
    tenant: str | None = None
    age: str | None = None

    @property
    def active(self) -> bool:
        return any((self.tool, self.rule, self.tenant, self.age))

    def query(self) -> dict[str, str]:
        """The filters as a query string's fields (for the pages' links)."""
        return {k: v for k in ("tool", "rule", "tenant", "age") if (v := getattr(self, k))}

    def requested_before(self, now: float) -> float | None:
        return None if self.age is None else now - AGES[self.age]


def queue_filters(key: ApiKey, params: Mapping[str, str]) -> QueueFilters:
    """The filters a request asks for. A key of one tenant sees only that tenant, whatever
    is asked (``tenant_of``); an unknown age is no filter."""
    age = params.get("age") or None
    return QueueFilters(
        tool=params.get("tool") or None,
        rule=params.get("rule") or None,
        tenant=params.get("tenant") or None if picks_tenant(key.principal) else None,
        age=age if age in AGES else None,
    )


def tenant_of(key: ApiKey, filters: QueueFilters) -> str | None:
    """Whose requests the queue lists: the key's own tenant, or the one a key of every
    tenant chose (None: every tenant's)."""
    return tenant_listed(key.principal, filters.tenant)


def filter_choices(rt: AgentRuntime) -> dict[str, Any]:
    """What the filter form offers: the app's tools, the rules that ask people, the ages."""
    rules = [r.rule.id for r in rt.policy.rules if r.rule.decision == "require_approval"]
    return {
        "tools": sorted(rt.tools.names()),
        "rules": rules,
        "ages": _AGE_WORDS,
    }


def contexts_of(
    rt: AgentRuntime,
    run: Run,
    shown: Sequence[ApprovalOut],
    events: Sequence[Mapping[str, Any]],
    *,
    policy: Policy,
) -> dict[str, DecisionContext]:
    """The context of each pending request ``shown`` on ``run``'s page, by request id."""
    found: dict[str, DecisionContext] = {}
    stored = {r.id: r for r in run.pending_approvals}
    for request in shown:
        before = _original(rt, stored[request.id])
        found[request.id] = decision_context(
            request,
            stored[request.id],
            run,
            events,
            policy,
            now=rt.clock(),
            original=approval_out(rt, before) if before is not None else None,
            original_stored=before,
        )
    return found


def _original(rt: AgentRuntime, request: ApprovalRequest) -> ApprovalRequest | None:
    """The request an edit made this one from, as kept (what the edit changed is compared
    on its real arguments, and shown as the page may show them)."""
    if request.edited_from is None:
        return None
    return rt.store.get_approval(request.edited_from)
