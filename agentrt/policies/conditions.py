"""Which names a rule's CEL condition may read, checked when the policy loads.

A condition sees six variables: ``args``, ``tool``, ``principal``, ``run``, ``usage`` and
``budget``. One that names anything else (``arg.amount``, ``princpal.roles``) cannot be
evaluated; at run time it fails closed (an allow rule never matches, a deny rule always
applies), so a typo would quietly deny or never allow. It is refused at load instead.

Names a condition binds itself are not variables: a macro's loop variable
(``args.items.exists(i, i.price > 10)``, two of them in ``all(k, v, ...)``) and
``cel.bind(name, value, expr)``. They are found by their shape, a call whose first
arguments are bare names followed by a comma; that can let through a typo passed first to
a function of several arguments, never refuse a condition that works.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["CONDITION_VARIABLES", "unknown_variables"]

CONDITION_VARIABLES = ("args", "budget", "principal", "run", "tool", "usage")
"""What a rule's ``when`` may read (agentrt.policies.engine builds them for each action)."""

_BOUND = re.compile(r"\(\s*([A-Za-z_]\w*)\s*,(?:\s*([A-Za-z_]\w*)\s*,)?")
_NAMESPACES = frozenset({"cel"})  # cel.bind: a function's namespace, not a variable


def unknown_variables(program: Any, expression: str) -> list[str]:
    """The variables ``program`` (compiled from ``expression``) reads that a condition
    does not have, in the order the library lists them."""
    bound = {name for found in _BOUND.finditer(expression) for name in found.groups() if name}
    known = set(CONDITION_VARIABLES) | bound | _NAMESPACES
    return [name for name in program.variables() if name not in known]
