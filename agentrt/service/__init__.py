"""agentrt.service: the runtime behind an HTTP API, with a review page for approvers.

    from agentrt.service import create_app, issue_key
    key = issue_key(rt, Principal("bob", roles=["refund-approver"], tenant="acme"))
    app = create_app(rt)            # a FastAPI app; or `agentrt serve --app module:rt`
    # mounted in your own app: enter agentrt_lifespan(your_app) in your app's lifespan

Needs the service extra: ``pip install 'agentrt[service]'``.
"""

from __future__ import annotations

try:
    import fastapi  # noqa: F401
except ImportError as exc:  # pragma: no cover - only without the extra
    raise ImportError(
        f"agentrt.service needs the service extra ({exc.name} is missing): "
        "pip install 'agentrt[service]'"
    ) from exc

from agentrt.principal import Principal
from agentrt.records import ApiKey
from agentrt.runtime import AgentRuntime
from agentrt.service.app import agentrt_lifespan, create_app
from agentrt.service.context import ServiceSettings

__all__ = ["ApiKey", "ServiceSettings", "agentrt_lifespan", "create_app", "issue_key"]


def issue_key(runtime: AgentRuntime, principal: Principal, *, label: str | None = None) -> str:
    """Make an API key acting as ``principal`` in the runtime's database; returns the key.

    Only its hash is stored: keep the key, it is never shown again. The principal needs a
    tenant, since the service shows each key its own tenant's runs only
    (``Principal.ALL_TENANTS``: every tenant's, to read and decide only).
    """
    return runtime.keys.create(principal, label=label)[1]
