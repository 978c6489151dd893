"""Values as a person reads them: an instant, a span of time, an amount of money.

Every message and screen that shows a time or a cost to people goes through here, so a
lease's expiry reads "2026-12-01T08:16:37Z (in 29s)" and not "1796112997", and a cost of
4.9e-05 reads "$0.000049" and not "$0.0000".
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

__all__ = ["LAST_INSTANT", "iso", "moment", "span", "usd"]

LAST_INSTANT = 253_402_300_799.0
"""9999-12-31T23:59:59Z in epoch seconds, the last instant a date can show: a time given
past it (a deadline, an expiry) is refused where it is given."""


def iso(epoch: float) -> str:
    """An instant as ISO 8601 in UTC, to the second: "2026-12-01T08:16:37Z"; one no date
    can show (NaN, past the year 9999) as its epoch seconds: "epoch 1e+300"."""
    when = _date(epoch)
    if when is None:
        return f"epoch {epoch!r}"
    return when.isoformat(timespec="seconds").replace("+00:00", "Z")


def _date(epoch: float) -> datetime | None:
    try:
        return datetime.fromtimestamp(epoch, UTC)
    except (OverflowError, ValueError, OSError):
        # A time kept before times were checked where they are given: shown as a number,
        # never a crash of the page or command that shows it.
        return None


def moment(epoch: float, *, now: float | None = None) -> str:
    """An instant and how far it is from ``now`` (default: the wall clock):
    "2026-12-01T08:16:37Z (in 29s)", "... (3h 5m ago)", "... (now)"; one no date can
    show, as ``iso`` shows it."""
    if _date(epoch) is None:
        return iso(epoch)
    delta = epoch - (time.time() if now is None else now)
    if abs(delta) < 1:
        relative = "now"
    elif delta > 0:
        relative = f"in {span(delta)}"
    else:
        relative = f"{span(-delta)} ago"
    return f"{iso(epoch)} ({relative})"


def span(seconds: float) -> str:
    """A span of time in its two largest units: 45s, 12m, 5h 20m, 2d 23h ("forever" for
    an infinite one)."""
    if math.isinf(seconds) and seconds > 0:
        return "forever"
    whole = int(max(0.0, seconds))  # NaN: max keeps 0.0
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
