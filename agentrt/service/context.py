"""What every route of one app shares: the runtime, the background worker, the limits."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from agentrt.approvals import ApprovalRequest
from agentrt.errors import UnknownRun
from agentrt.principal import Principal
from agentrt.runtime import AgentRuntime, Run
from agentrt.service.problems import Problem
from agentrt.service.ratelimit import RateLimiter
from agentrt.service.worker import RunWorker

__all__ = ["Service", "ServiceSettings"]


@dataclass(frozen=True, kw_only=True)
class ServiceSettings:
    """The knobs of create_app; see its docstring."""

    rate_limit: str = "600/minute"
    max_body_bytes: int = 256 * 1024
    max_concurrent_runs: int = 64
    executor_threads: int | None = None
    sweep_every: float | None = 30.0
    resume_stopped: bool = True
    poll_interval: float = 0.5
    shutdown_grace: float = 10.0


@dataclass(eq=False)
class Service:
    runtime: AgentRuntime
    settings: ServiceSettings
    worker: RunWorker
    rate_limiter: RateLimiter

    async def run_for(self, principal: Principal, thread_id: str) -> Run:
        """The run, if it belongs to the caller's tenant; 404 (as for no run) otherwise."""
        try:
            run = await asyncio.to_thread(self.runtime.get, thread_id)
        except UnknownRun:
            run = None
        if run is None or run.principal.tenant != principal.tenant:
            raise Problem(
                404,
                f"no run with thread id {thread_id!r} in your tenant; list yours with GET /runs",
                type="unknown-run",
            )
        return run

    async def approval_for(self, principal: Principal, approval_id: str) -> ApprovalRequest:
        """The request, if it belongs to the caller's tenant; 404 otherwise."""
        found = await asyncio.to_thread(self.runtime.store.get_approval, approval_id)
        if found is None or found.tenant != principal.tenant:
            raise Problem(
                404,
                f"no approval request with id {approval_id!r} in your tenant; list the "
                "pending ones with GET /approvals",
                type="unknown-approval",
            )
        return found
