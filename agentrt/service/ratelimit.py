"""How often one API key may call: a moving window per key, kept in memory."""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse, storage, strategies

from agentrt.errors import ConfigError
from agentrt.service.problems import Problem

__all__ = ["RateLimiter"]


class RateLimiter:
    """A moving-window request budget per API key, e.g. "120/minute".

    Kept in this process's memory: each server process counts its own requests, so behind
    several processes a key may send up to that many times the rate.
    """

    def __init__(self, rate: str) -> None:
        try:
            self.item: RateLimitItem = parse(rate)
        except ValueError:
            raise ConfigError(
                f"rate limit {rate!r} is not understood; write it like '120/minute', "
                "'10/second' or '5000/hour'"
            ) from None
        self.rate = rate
        self._limiter = strategies.MovingWindowRateLimiter(storage.MemoryStorage())

    def hit(self, key: str) -> None:
        """Count one request for ``key``; a 429 Problem if it is over its rate."""
        if self._limiter.hit(self.item, key):
            return
        reset = self._limiter.get_window_stats(self.item, key).reset_time
        retry_after = max(1, math.ceil(reset - time.time()))
        raise Problem(
            429,
            f"this API key is over its rate of {self.rate}; retry in {retry_after} s",
            type="rate-limited",
            headers={"Retry-After": str(retry_after)},
            retry_after=retry_after,
        )
