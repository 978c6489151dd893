"""Processes: whether one of this host still runs (how a dead owner is told from a busy
one), what an object redoes in a forked child, a long-lived loop's wait that a stop ends
(``pause``), and a start-up's waits that a stop ends (``stop_start_up``)."""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable
from functools import partial

__all__ = [
    "STOP_CHECK",
    "in_forked_child",
    "pause",
    "pid_alive",
    "start_up_stopped",
    "stop_start_up",
]

STOP_CHECK = 0.25
"""Seconds at most between a loop's looks at a stop asked on its own thread (a signal's
handler's): the most such a stop waits before the loop acts on it."""


def pause(wake: threading.Event, seconds: float, asked: Callable[[], bool]) -> None:
    """Wait ``seconds``, or until ``wake`` is set or ``asked()`` (a worker's, a webhook
    dispatcher's loop). A stop from another thread sets ``wake`` and ends it at once; one
    asked on the loop's own thread, by a signal's handler that may take no lock (the
    Event's may be held by the very wait it interrupted), only sets what ``asked`` reads,
    and is seen within STOP_CHECK seconds."""
    until = time.monotonic() + seconds
    while not asked() and (left := until - time.monotonic()) > 0:
        if wake.wait(min(left, STOP_CHECK)):
            return


class _StartUp:
    """This process's start-up: whether it is to stop."""

    stopped = False


_start_up = _StartUp()


def stop_start_up() -> None:
    """Give up the waits of this process's start-up: ``agentrt worker`` told to stop while
    its store opens, which may wait minutes for a server not up yet (a unit whose database
    never came up, stopped by systemd). Nothing is claimed yet, so nothing is left to finish.

    A flag, taking no lock: a signal's handler calls it. The handler raises nothing into
    the code it interrupted (a connect, a migration); each wait that may be given up
    (``pause(..., start_up_stopped)``) ends within STOP_CHECK seconds, and its own loop
    raises ``StartupStopped`` between two tries, where nothing is half done.
    """
    _start_up.stopped = True


def start_up_stopped() -> bool:
    """True once ``stop_start_up()`` was called: a wait of start-up gives up."""
    return _start_up.stopped


def in_forked_child(method: Callable[[], None]) -> None:
    """Call the bound ``method`` in every child this process forks from now on, while its
    object lives: a child has none of its parent's threads (the hook outlives the object,
    so it holds it weakly)."""
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=partial(_if_alive, weakref.WeakMethod(method)))


def _if_alive(method: weakref.WeakMethod[Callable[[], None]]) -> None:
    found = method()
    if found is not None:
        found()


def pid_alive(pid: int) -> bool:
    """True if process ``pid`` of this host runs (a zombie, killed but not reaped, does not;
    a process of another user does)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A killed child that its parent has not reaped yet still answers kill(0).
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
