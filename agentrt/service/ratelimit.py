"""How often one API key may call, and one client address may fail to authenticate or
sign in: a moving window per key (or address), kept in memory."""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse, storage, strategies

from agentrt.errors import ConfigError
from agentrt.service.problems import Problem

__all__ = ["RateLimiter"]


class RateLimiter:
    """A moving-window budget of events per key (an API key, a client address), e.g.
    "120/minute".

    Kept in this process's memory: each server process counts its own requests, so behind
    several processes a key may send up to that many times the rate.
    """

    def __init__(
        self,
        rate: str,
        *,
        setting: str = "rate limit",
        over: str = "this API key is over its rate of {rate}",
    ) -> None:
        """``setting`` names the option in a refused rate's message; ``over`` is what a 429
        says (``{rate}`` is filled in), before "retry in N s"."""
        try:
            self.item: RateLimitItem = parse(rate)
        except ValueError:
            raise ConfigError(
                f"{setting} {rate!r} is not understood; write it like '120/minute', "
                "'10/second' or '5000/hour'"
            ) from None
        self.rate = rate
        self.over = over
        self._limiter = strategies.MovingWindowRateLimiter(storage.MemoryStorage())

    def hit(self, key: str) -> None:
        """Count one request for ``key``; a 429 Problem if it is over its rate."""
        if not self._limiter.hit(self.item, key):
            raise self._refusal(key)

    def refuse_if_over(self, key: str) -> None:
        """A 429 Problem if ``key`` has used up its rate; counts nothing."""
        if not self._limiter.test(self.item, key):
            raise self._refusal(key)

    def note(self, key: str) -> None:
        """Count one event for ``key`` (a failure), without refusing anything now."""
        self._limiter.hit(self.item, key)

    def _refusal(self, key: str) -> Problem:
        reset = self._limiter.get_window_stats(self.item, key).reset_time
        retry_after = max(1, math.ceil(reset - time.time()))
        return Problem(
            429,
            f"{self.over.format(rate=self.rate)}; retry in {retry_after} s",
            type="rate-limited",
            headers={"Retry-After": str(retry_after)},
            retry_after=retry_after,
        )
