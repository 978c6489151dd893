"""The CEL engine policies and evals compile their conditions with, without its command line.

``import cel`` (common-expression-language) runs the package's ``__init__``, which imports
its interactive command line too: typer, prompt_toolkit, rich and pygments, about 190
modules, 80 ms of every process's start-up, and 11,000 objects the garbage collector walks
at each full collection for as long as the process lives. The engine is the package's Rust
extension, ``cel.cel``. Where no one has imported the package yet, it is loaded here with
the package's ``__init__`` put off: the package stands in ``sys.modules`` unrun, and the
first name read from it that agentrt did not load (``cel.cli``, ``cel.stdlib``, a user's
``from cel import evaluate``) runs it whole, as ``import cel`` would have, before answering.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from functools import partial
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

__all__ = ["cel"]


def _whole(package: ModuleType, spec: ModuleSpec, name: str) -> Any:
    """``name`` of the package, once its ``__init__`` has run (PEP 562's module
    ``__getattr__``, asked only for a name the package does not hold yet)."""
    if package.__dict__.pop("__getattr__", None) is not None:
        assert spec.loader is not None
        spec.loader.exec_module(package)
    return getattr(package, name)


def _engine() -> ModuleType:
    if "cel" in sys.modules:
        return importlib.import_module("cel.cel")
    spec = importlib.util.find_spec("cel")
    if spec is None or spec.loader is None or not spec.submodule_search_locations:
        return importlib.import_module("cel.cel")  # not the package as known: as it is
    package = importlib.util.module_from_spec(spec)
    package.__dict__["__getattr__"] = partial(_whole, package, spec)
    sys.modules["cel"] = package
    try:
        return importlib.import_module("cel.cel")
    except BaseException:
        # Left unrun, the package would answer no one: gone, as if never imported.
        sys.modules.pop("cel", None)
        sys.modules.pop("cel.cel", None)
        raise


cel = _engine()
"""The extension: ``cel.compile``, ``cel.Context``, what ``import cel`` gives of it."""
