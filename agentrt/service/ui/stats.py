"""The review app's stats page (/ui/stats): `agentrt stats` for admins, in a browser.

A key whose principal holds the role ``admin`` sees its tenant's runs (a key of every tenant:
every tenant's, or one it picks) over a window: runs by status and cost by day as bars,
where a table would be harder to read; spend by tenant, approval waits, denials, budget
stops and the slowest tools as tables. The figures are rt.stats(), read off the event loop.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from agentrt.errors import ConfigError
from agentrt.readable import usd
from agentrt.service.context import picks_tenant, tenant_listed
from agentrt.service.ui import views
from agentrt.service.ui.routes import Caller, PageError, ServiceDep

__all__ = ["ADMIN_ROLE", "WINDOWS", "router"]

ADMIN_ROLE = "admin"
"""The role a key's principal needs to see the stats page."""

WINDOWS: dict[str, float | None] = {
    "1d": 86400.0,
    "7d": 7 * 86400.0,
    "30d": 30 * 86400.0,
    "all": None,
}
"""The windows the page offers, by how the query names them (runs created, and what was
spent, within)."""

router = APIRouter(prefix="/ui", include_in_schema=False)


@router.get("/stats", response_class=HTMLResponse)
async def stats_page(
    request: Request,
    key: Caller,
    service: ServiceDep,
    since: str = "7d",
    tenant: str | None = None,
) -> Response:
    if ADMIN_ROLE not in key.principal.roles:
        raise PageError(
            403,
            f"The stats page is for admins: {key.principal.id!r} does not hold the role "
            f"{ADMIN_ROLE!r}. Sign in with a key made with --role {ADMIN_ROLE}.",
        )
    if since not in WINDOWS:
        raise PageError(400, f"{since!r} is not a window of this page; use one of {list(WINDOWS)}")
    rt = service.runtime
    whose = tenant_listed(key.principal, tenant)
    window = WINDOWS[since]
    # On the store's clock, which wrote the runs' created_at (on PostgreSQL the server's).
    start = None if window is None else rt.store.clock() - window
    try:
        figures = await asyncio.to_thread(rt.stats, since=start, tenant=whose)
    except ConfigError as exc:
        raise PageError(400, str(exc)) from None
    by_day = figures.by_day()
    most = max((d.cost_usd for d in by_day), default=0.0) or 1.0
    runs = max(figures.runs_by_status.values(), default=0) or 1
    return views.page(
        request,
        "stats.html",
        {
            "key": key,
            "figures": figures,
            "since": since,
            "windows": list(WINDOWS),
            "tenant": whose,
            "pick_tenant": picks_tenant(key.principal),
            "start": start,
            "total_cost": usd(figures.cost_usd),
            "status_bars": [
                (status, count, round(100 * count / runs))
                for status, count in figures.runs_by_status.items()
            ],
            "day_bars": [(d, usd(d.cost_usd), round(100 * d.cost_usd / most)) for d in by_day],
            "by_tenant": [(s, usd(s.cost_usd)) for s in figures.by_tenant()],
        },
    )
