"""The service's moving-window rate limiter, on an injected clock."""

from __future__ import annotations

import pytest

from agentrt.errors import ConfigError
from agentrt.service.problems import Problem
from agentrt.service.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_at_most_the_rate_in_any_window_and_retry_after_names_when_one_frees() -> None:
    clock = Clock()
    limiter = RateLimiter("3/minute", clock=clock)
    for step in (0, 10, 20):
        clock.now = 1000 + step
        limiter.hit("k")
    clock.now = 1030
    with pytest.raises(Problem) as refused:
        limiter.hit("k")
    assert refused.value.status == 429
    assert refused.value.headers == {"Retry-After": "30"}  # the first hit leaves at 1060
    clock.now = 1060  # a moving window: the first hit is out, one more may go
    limiter.hit("k")
    with pytest.raises(Problem):
        limiter.hit("k")
    limiter.hit("other")  # each key has its own window


def test_a_refused_hit_is_not_counted() -> None:
    clock = Clock()
    limiter = RateLimiter("1/second", clock=clock)
    limiter.hit("k")
    for _ in range(5):
        with pytest.raises(Problem):
            limiter.hit("k")
    clock.now += 1.0
    limiter.hit("k")


def test_failures_noted_refuse_their_address_until_the_window_moves() -> None:
    clock = Clock()
    limiter = RateLimiter("2/minute", clock=clock)
    limiter.refuse_if_over("10.0.0.1")  # nothing noted: nothing refused, nothing kept
    for _ in range(5):
        limiter.note("10.0.0.1")
    with pytest.raises(Problem) as refused:
        limiter.refuse_if_over("10.0.0.1")
    assert refused.value.headers == {"Retry-After": "60"}
    clock.now += 60
    limiter.refuse_if_over("10.0.0.1")


def test_keys_with_nothing_in_their_window_are_forgotten() -> None:
    clock = Clock()
    limiter = RateLimiter("5/second", clock=clock)
    for n in range(1000):
        limiter.note(f"10.0.{n // 256}.{n % 256}")
    clock.now += 2
    limiter.hit("k")
    assert list(limiter._events) == ["k"]


def test_a_rate_it_cannot_read_or_that_lets_nothing_through_names_the_setting() -> None:
    with pytest.raises(ConfigError, match="'fast' is not understood; write it like '120/minute'"):
        RateLimiter("fast")
    with pytest.raises(ConfigError, match="login limit '0/minute' lets no request through"):
        RateLimiter("0/minute", setting="login limit")
