"""The review page at /ui: where approvers see what runs wait for, and decide.

Server-rendered HTML with a little JavaScript, every file served by the app itself (no
CDN), since the service often runs on closed networks. ``install(app)`` adds it;
create_app does.
"""

from fastapi import FastAPI

from agentrt.service.ui import answers, artifacts, deciding, live, routes, stats

__all__ = ["install"]


def install(app: FastAPI) -> None:
    """Add the review page to ``app``: the queue, runs and deciding, each run's live feed,
    and the stats page."""
    answers.install(app)
    app.include_router(routes.router)
    app.include_router(deciding.router)
    app.include_router(stats.router)
    app.include_router(live.router)
    app.include_router(artifacts.router)
