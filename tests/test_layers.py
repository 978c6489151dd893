"""The house rules of agentrt's layout (ARCHITECTURE.md), checked on the code's imports.

Every import counts, at the top of a module or inside a function or a TYPE_CHECKING block:
a lower layer never imports a higher one, no modules import each other in a circle, and
only the store opens a database.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "agentrt"

# Top to bottom. A module belongs to the longest prefix that names it; a module may import
# its own layer or any below it. (agentrt/__init__.py, the public door, re-exports lazily
# from every layer and is left out.)
LAYERS: tuple[tuple[str, ...], ...] = (
    (
        "agentrt.cli",
        "agentrt.service",
        "agentrt.__main__",
        "agentrt.examples",
        "agentrt.evals",  # runs cases through the runtime's door, as a user's code would
    ),
    ("agentrt.runtime",),
    (
        "agentrt.runs",
        "agentrt.replay",
        "agentrt.apikeys",
        "agentrt.testing",
        "agentrt.approvals.display",
        "agentrt.graphs",
        "agentrt.webhooks",  # the outbox's events to endpoints: signed, retried, dead-lettered
        "agentrt.governed",  # the run graph's parts inside an app's own graph
    ),
    ("agentrt.nodes",),
    ("agentrt.tools", "agentrt.policies", "agentrt.tracing"),
    ("agentrt.store",),
    (
        "agentrt.state",
        "agentrt.events",
        "agentrt.live_kinds",  # what only a live stream yields, beside the log's kinds
        "agentrt.wording",  # the pieces an event's line for a person is made of
        "agentrt.digests",
        "agentrt.budget",
        "agentrt.prices",  # what a model charges, the default table, a model's entry
        "agentrt.errors",
        "agentrt.principal",
        "agentrt.records",
        "agentrt.artifacts",  # an artifact's reference, its digest and name rules
        "agentrt.limits",
        "agentrt.faults",
        "agentrt.steps",
        "agentrt.processes",
        "agentrt.collector",  # the garbage collector of a process that serves runs
        "agentrt.logs",
        "agentrt.models",
        "agentrt.model_names",  # a model's entry in a table by name: prices, largest answers
        "agentrt.approvals",  # requests and decisions, their checks, the queue, expiry
        "agentrt.redaction",  # the Redactor: log lines pass it too, from every layer
        "agentrt.checksums",  # what a detector's candidate must pass: Luhn, mod-97, AWS
        "agentrt.detectors",  # what a Redactor looks for in text, each in linear time
        "agentrt.json_text",  # JSON text read for masking, however deep: never a RecursionError
        "agentrt.readable",  # times and money as people read them, in messages and screens
        "agentrt.urls",  # a URL as messages show it: its password hidden
        "agentrt.summaries",  # when a long run's older turns are condensed, and which
        "agentrt.message_budget",  # a follow-up's own limits, and whose limit tripped
    ),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> int:
    best, depth = -1, -1
    for index, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > depth:
                best, depth = index, len(name)
    return best


def imports_of(module: str, path: Path, known: set[str]) -> Iterator[tuple[str, int]]:
    """The agentrt modules ``module`` imports, with the line of each import."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            # "from agentrt.x import y": y may be a module of its own.
            names = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names
            ]
        else:
            continue
        for imported in names:
            target = imported
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target.startswith("agentrt") and target != module:
                yield target, node.lineno


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {
        m: {target for target, _ in imports_of(m, p, known)} - {"agentrt"} for m, p in found.items()
    }


def test_every_module_has_a_layer() -> None:
    homeless = [m for m in modules() if m != "agentrt" and layer_of(m) < 0]
    assert homeless == [], "give these a layer in LAYERS and ARCHITECTURE.md"


def test_no_module_imports_a_higher_layer() -> None:
    found = modules()
    known = set(found)
    upward = [
        f"{m}:{line} imports {target} (layer {layer_of(target)} above {layer_of(m)})"
        for m, p in found.items()
        if m != "agentrt"
        for target, line in imports_of(m, p, known)
        if target != "agentrt" and layer_of(target) < layer_of(m)
    ]
    assert upward == []


def test_no_modules_import_each_other_in_a_circle() -> None:
    edges = graph()
    edges.pop("agentrt", None)
    state: dict[str, int] = {}  # 1: on the path, 2: done
    circles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                circles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for start in sorted(edges):
        if start not in state:
            visit(start, [start])
    assert circles == []


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=module_name)
def test_only_the_store_opens_a_database(path: Path) -> None:
    module = module_name(path)
    if module.startswith(("agentrt.store", "agentrt.examples")):
        return  # the store; and the demo's own "payment system", which is not agentrt's
    source = path.read_text(encoding="utf-8")
    assert "sqlite3.connect(" not in source
    assert "psycopg" not in source
