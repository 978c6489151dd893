"""The garbage collector of a process that drives runs for a living (`agentrt serve`,
`agentrt worker`), set for that work once the process has started.

CPython collects its youngest generation every 700 new container objects and, every so
often, walks every object it tracks. A run allocates thousands of containers a step that
all die young, and a serving process holds a quarter of a million that never die: the
modules, classes and compiled graph loaded at start-up. Over 100 runs at once through
`agentrt serve` (bench/service.py, four batches with and without this, interleaved), the
server's CPU per run was 21 ms against 25.5 (medians; bench/README.md, service).

Only for processes agentrt owns: a library call inside someone's app leaves their
collector as they set it.
"""

from __future__ import annotations

import gc

__all__ = ["THRESHOLDS", "tune_for_serving"]

THRESHOLDS = (20_000, 20, 20)
"""Container allocations between young collections (CPython's default is 700), then young
collections between middle ones and middle between full ones (its 10 and 10). Garbage in
cycles waits longer to be freed; a run makes little (a few hundred objects a run)."""


def tune_for_serving() -> None:
    """Freeze what start-up made, so no collection walks it again, and collect less often.
    Call once the app is loaded, before the first run."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
