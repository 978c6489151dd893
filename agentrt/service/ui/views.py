"""What the review page's templates get: the Jinja environment, its filters, and the rows
the pages list (a run's steps), formatted for a person."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape

from agentrt.events import describe
from agentrt.readable import iso, span, usd
from agentrt.service import auth
from agentrt.service.paths import quoted
from agentrt.tracing.view import format_seconds

__all__ = ["STEP_WIDTH", "page", "step", "templates"]

_HERE = Path(__file__).parent

templates = Jinja2Templates(
    env=Environment(
        loader=FileSystemLoader(_HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
)

STEP_WIDTH = 240
"""Where a step's line cuts a long text (a result, the model's words); its details hold it
all."""


def page(
    request: Request,
    name: str,
    context: dict[str, Any],
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """The template ``name`` rendered for ``request``, never cached."""
    now = auth.service_of(request).runtime.clock()
    return templates.TemplateResponse(
        request,
        name,
        {"now": now, "query": request.query_params, **context},
        status_code=status,
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def step(index: int, event: Mapping[str, Any]) -> dict[str, Any]:
    """One entry of a run's event log (as shown, masked): the line that says what happened
    (the same words as the CLI and replay), and its data in full."""
    return {
        "index": index,
        "type": event.get("type"),
        "step_id": event.get("step_id", ""),
        "line": describe(event, width=STEP_WIDTH),
        "json": _pretty(event.get("data", {})),
    }


def _when(epoch: float | None) -> str:
    if epoch is None:
        return ""
    try:
        return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, ValueError, OSError):
        # A time no date can show (kept before such were refused): the page still renders.
        return iso(epoch)


def _ago(seconds: float) -> str:
    """A span of time as a person reads it: 45s, 12m, 5h 20m, 2d 23h."""
    if not math.isfinite(seconds):
        return span(seconds)  # "forever", or 0s for what is not a span
    whole = int(max(0.0, seconds))
    days, hours, minutes = whole // 86400, whole % 86400 // 3600, whole % 3600 // 60
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    return f"{minutes}m" if minutes else f"{whole}s"


def _spent(value: Any, name: str) -> str:
    """One field of a run's usage or budget, in its unit."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if name == "deadline":
            return _when(value)
        if name.endswith("seconds"):
            return format_seconds(float(value))
        if name.endswith("usd"):
            return usd(value)
    return str(value)


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, default=str, ensure_ascii=False)


def _combine_query(query: Mapping[str, str], **more: str) -> str:
    """A query string of ``query`` and ``more`` (the queue's filters kept across pages)."""
    return urlencode({**query, **more})


templates.env.filters.update(
    when=_when,
    ago=_ago,
    secs=format_seconds,
    pretty=_pretty,
    spent=_spent,
    combine_query=_combine_query,
    # An id in an address: a thread id may hold '/', '#' or '?'.
    segment=quoted,
)
