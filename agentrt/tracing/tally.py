"""Counters whose sums agentrt keeps itself, read by OpenTelemetry whenever it collects.

OpenTelemetry's synchronous counter checks and hashes a point's attributes and finds its
aggregation under a lock at every ``add``: about 7 µs alone, and 30 µs or more inside a run,
where a run counts a model call, a tool call and a policy decision at every action (about
2% of a 20-action run's time, bench/README.md). Here an ``add`` is one dict update under a
lock, and the sums reach the meter through observable counters, OpenTelemetry's instrument
for values a program keeps itself. It reads them when it collects: ``rt.metrics()``, an
exporter's interval, the provider's shutdown. The points are the same monotonic sums,
under the same names, units and attributes.

Every ``RunMetrics`` on one meter shares one tally: OpenTelemetry keeps the first
instrument registered under a name, and so the first one's callback, so a second runtime
on the caller's MeterProvider adds to the same sums, as two synchronous counters of one
name would.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Mapping
from functools import partial
from typing import Any

from opentelemetry.metrics import CallbackOptions, Meter, Observation

__all__ = ["Summed", "Tally"]

_Key = tuple[tuple[str, Any], ...]


class Tally:
    """The sums of one meter's counters, by name, then by attributes."""

    _of: weakref.WeakKeyDictionary[Meter, Tally] = weakref.WeakKeyDictionary()
    _of_lock = threading.Lock()

    def __init__(self, meter: Meter) -> None:
        # The meter is not kept: its instruments keep this tally through their callbacks,
        # and the table above keeps it only while the meter lives.
        self._create = weakref.WeakMethod(meter.create_observable_counter)
        self._lock = threading.Lock()
        self._sums: dict[str, dict[_Key, float]] = {}

    @classmethod
    def of(cls, meter: Meter) -> Tally:
        """The tally of ``meter``, made on first use."""
        with cls._of_lock:
            tally = cls._of.get(meter)
            if tally is None:
                tally = cls._of[meter] = cls(meter)
            return tally

    def counter(self, name: str, unit: str, description: str) -> Summed:
        """A counter called ``name``, registered with the meter once."""
        with self._lock:
            if name not in self._sums:
                self._sums[name] = {}
                create = self._create()
                if create is not None:
                    create(name, [partial(self._observe, name)], unit, description)
        return Summed(self._sums[name], self._lock)

    def _observe(self, name: str, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            sums = list(self._sums[name].items())
        points: dict[_Key, float] = {}
        for key, value in sums:  # one point an attribute set, whatever order it came in
            point = tuple(sorted(key))
            points[point] = points.get(point, 0) + value
        return [Observation(value, dict(key)) for key, value in points.items()]


class Summed:
    """One counter of a tally: ``add`` as OpenTelemetry's Counter takes it."""

    __slots__ = ("_lock", "_sums")

    def __init__(self, sums: dict[_Key, float], lock: threading.Lock) -> None:
        self._sums = sums
        self._lock = lock

    def add(self, amount: float, attributes: Mapping[str, Any]) -> None:
        """Add ``amount`` to the sum of the point with these ``attributes`` (kept in the
        order given, which costs no sort here; collecting merges the orders)."""
        key = tuple(attributes.items())
        with self._lock:
            self._sums[key] = self._sums.get(key, 0) + amount
