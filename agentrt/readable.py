"""Values as a person reads them: an instant, a span of time, an amount of money.

Every message and screen that shows a time or a cost to people goes through here, so a
lease's expiry reads "2026-12-01T08:16:37Z (in 29s)" and not "1796112997", and a cost of
4.9e-05 reads "$0.000049" and not "$0.0000".
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

__all__ = ["iso", "moment", "span", "usd"]


def iso(epoch: float) -> str:
    """An instant as ISO 8601 in UTC, to the second: "2026-12-01T08:16:37Z"."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def moment(epoch: float, *, now: float | None = None) -> str:
    """An instant and how far it is from ``now`` (default: the wall clock):
    "2026-12-01T08:16:37Z (in 29s)", "... (3h 5m ago)", "... (now)"."""
    delta = epoch - (time.time() if now is None else now)
    if abs(delta) < 1:
        relative = "now"
    elif delta > 0:
        relative = f"in {span(delta)}"
    else:
        relative = f"{span(-delta)} ago"
    return f"{iso(epoch)} ({relative})"


def span(seconds: float) -> str:
    """A span of time in its two largest units: 45s, 12m, 5h 20m, 2d 23h."""
    whole = int(max(0.0, seconds))
    days, hours, minutes = whole // 86400, whole % 86400 // 3600, whole % 3600 // 60
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m {whole % 60}s" if whole % 60 else f"{minutes}m"
    return f"{whole}s"


def usd(value: float) -> str:
    """An amount in US dollars: cents and up to four decimals from a cent up ($89.00,
    $0.0123), two significant digits below one ($0.000049), and $0 for nothing."""
    if value == 0 or not math.isfinite(value):
        return "$0" if value == 0 else f"${value}"
    sign = "-" if value < 0 else ""
    amount = abs(value)
    if amount >= 0.01:
        whole, _, fraction = f"{amount:.4f}".rstrip("0").partition(".")
        return f"{sign}${whole}.{fraction.ljust(2, '0')}"
    decimals = 1 - math.floor(math.log10(amount))
    return f"{sign}${amount:.{decimals}f}"
