"""Counters whose sums agentrt keeps itself, read by OpenTelemetry whenever it collects.

OpenTelemetry's synchronous counter checks and hashes a point's attributes and finds its
aggregation under a lock at every ``add``: 7-8 µs in a loop of its own, 22-35 µs inside a
run (bench/README.md, eleventh stop), where a run counts a model call, a tool call and a
policy decision at every action. Here an ``add`` is one dict update under a lock, and the
sums reach the meter through observable counters, OpenTelemetry's instrument for values a
program keeps itself. The meter reads them when it collects: ``rt.metrics()``, an
exporter's interval, the provider's shutdown.

The points are the same monotonic sums, under the same names, units and attributes, with
one difference a backend may see: a series starts at the first collection that finds it,
not at its first count.

Only for the MeterProvider agentrt builds itself (``metrics=True``), and only while its
readers take counters as totals (``MetricsSetup.summed``): OpenTelemetry picks temporality
and views by the instrument's kind, so a caller's provider, whose views and readers are
the caller's, gets the synchronous counters it was configured for.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Mapping
from functools import partial
from typing import Any

from opentelemetry.metrics import CallbackOptions, Meter, Observation

__all__ = ["Summed", "summed_counter"]

_Key = tuple[tuple[str, Any], ...]


class _Tally:
    """The sums of one meter's counters, by name, then by attributes. Every counter of
    one name on one meter shares its sums: OpenTelemetry keeps the first instrument
    registered under a name, and so only the first one's callback."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sums: dict[str, dict[_Key, float]] = {}

    def observe(self, name: str, options: CallbackOptions) -> Iterable[Observation]:
        with self.lock:
            sums = list(self.sums[name].items())
        points: dict[_Key, float] = {}
        for key, value in sums:  # one point an attribute set, whatever order it came in
            point = tuple(sorted(key))
            points[point] = points.get(point, 0) + value
        return [Observation(value, dict(key)) for key, value in points.items()]


# A meter's tally lives as long as the meter: its instruments' callbacks hold the tally,
# and nothing here holds the meter.
_tallies: weakref.WeakKeyDictionary[Meter, _Tally] = weakref.WeakKeyDictionary()
_tallies_lock = threading.Lock()


def summed_counter(meter: Meter, name: str, unit: str, description: str) -> Summed:
    """A counter called ``name`` on ``meter`` whose sums agentrt keeps: an observable
    counter, registered with the meter the first time the name is asked for."""
    with _tallies_lock:
        tally = _tallies.get(meter)
        if tally is None:
            tally = _tallies[meter] = _Tally()
    with tally.lock:
        sums = tally.sums.get(name)
        new = sums is None
        if sums is None:
            sums = tally.sums[name] = {}
    if new:
        # Outside the tally's lock: a collection holds the SDK's lock while it calls
        # observe, which takes the tally's, and registering takes the SDK's.
        meter.create_observable_counter(name, [partial(tally.observe, name)], unit, description)
    return Summed(sums, tally.lock)


class Summed:
    """One counter of a tally: ``add`` as OpenTelemetry's Counter takes it."""

    __slots__ = ("_lock", "_sums")

    def __init__(self, sums: dict[_Key, float], lock: threading.Lock) -> None:
        self._sums = sums
        self._lock = lock

    def add(self, amount: float, attributes: Mapping[str, Any]) -> None:
        """Add ``amount`` to the sum of the point with these ``attributes`` (kept in the
        order given, which costs no sort here; collecting merges the orders). A negative
        amount is dropped, as OpenTelemetry's Counter drops it (and NaN, which would spoil
        the sum for good): the sums only grow."""
        if not amount >= 0:
            return
        key = tuple(attributes.items())
        with self._lock:
            self._sums[key] = self._sums.get(key, 0) + amount
