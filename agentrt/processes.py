"""Processes: whether one of this host still runs (how a dead owner is told from a busy
one), and what an object redoes in a forked child."""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable
from functools import partial

__all__ = ["in_forked_child", "pid_alive"]


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
