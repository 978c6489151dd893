"""Reading policy files: YAML in, PolicyFile out, every error placed at file:line:column."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from agentrt.errors import ConfigError
from agentrt.policies.model import FROM_YAML, PolicyFile

__all__ = [
    "DuplicateKey",
    "PolicyFileError",
    "duplicate_key",
    "load_policy_text",
    "locate",
    "read_policy_file",
    "rule_at_yaml_error",
    "validate_policy_data",
]


class PolicyFileError(ConfigError):
    """A policy file that cannot be used; the message names file:line:column."""

    def __init__(self, source: str, line: int | None, column: int | None, message: str) -> None:
        self.source = source
        self.line = line
        self.column = column
        self.message = message
        """The problem without its place."""
        where = source if line is None else f"{source}:{line}:{column}"
        super().__init__(f"{where}: {message}")


def locate(
    node: yaml.Node | None, path: Sequence[str | int], *, at_key: bool = False
) -> yaml.Node | None:
    """The YAML node at a pydantic error location, or the deepest one that exists.

    at_key: point at the last key itself rather than its value (for an unknown key).
    """
    for index, part in enumerate(path):
        if isinstance(node, yaml.MappingNode):
            pair = next(((k, v) for k, v in node.value if k.value == part), None)
            if pair is None:
                return node
            if at_key and index == len(path) - 1:
                key: yaml.Node = pair[0]
                return key
            node = pair[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return node
            node = node.value[part]
        else:
            return node
    return node


def _rule_id(data: Any, path: Sequence[str | int]) -> str | None:
    """How an error names the rule it is in: its id quoted, or #N when it has none."""
    if len(path) >= 2 and path[0] == "rules" and isinstance(path[1], int):
        try:
            rule = data["rules"][path[1]]
        except (KeyError, IndexError, TypeError):
            return None
        if isinstance(rule, dict) and rule.get("id") is not None:
            return repr(str(rule["id"]))
        return f"#{path[1] + 1}"
    return None


def rule_at_yaml_error(text: str) -> str | None:
    """The rule a YAML syntax error sits in, read from the events parsed before it.

    The file cannot be loaded, so the rule's id comes from the part that parsed: the
    parser's events are followed down ``rules: [ {id: ...} ]`` until the error.
    """
    # Each open container: [kind, key of the value being read (maps), next index (seqs),
    # expecting a key (maps)], with the path of keys/indices that leads to it.
    stack: list[list[Any]] = []
    path: list[str | int] = []
    ids: dict[int, str] = {}
    current: int | None = None

    def place() -> tuple[list[str | int] | None, bool]:
        """Where the next node goes: its path, or None for a mapping key."""
        if not stack:
            return [], False
        top = stack[-1]
        if top[0] == "map":
            if top[3]:
                return None, True
            return [*path, top[1]], False
        return [*path, top[2]], False

    def done_value() -> None:
        if stack:
            top = stack[-1]
            if top[0] == "map":
                top[3] = True
            else:
                top[2] += 1

    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.ScalarEvent | yaml.AliasEvent):
                at, is_key = place()
                if is_key:
                    stack[-1][1] = getattr(event, "value", None)
                    stack[-1][3] = False
                    continue
                if at is not None and len(at) == 3 and at[0] == "rules" and at[2] == "id":
                    ids[int(at[1])] = str(getattr(event, "value", ""))
                done_value()
            elif isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
                at, is_key = place()
                if is_key or at is None:
                    return None  # a complex key: not a policy file's shape
                if len(at) == 2 and at[0] == "rules":
                    current = int(at[1])
                path[:] = at
                kind = "map" if isinstance(event, yaml.MappingStartEvent) else "seq"
                stack.append([kind, None, 0, True, list(at)])
            elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                closed = stack.pop()
                if len(closed[4]) == 2 and closed[4][0] == "rules":
                    current = None
                path[:] = stack[-1][4] if stack else []
                done_value()
    except yaml.YAMLError:
        pass
    if current is None:
        return None
    return repr(ids[current]) if current in ids else f"#{current + 1}"


@dataclass(frozen=True, slots=True)
class DuplicateKey:
    """A key given twice in one mapping of a YAML file. A YAML loader silently keeps the
    last, so every agentrt file (policies, webhooks, eval datasets) refuses it."""

    path: tuple[str | int, ...]
    """The mapping's place: its keys and list indices from the top."""
    again: yaml.ScalarNode
    """The key the second time."""
    first: yaml.ScalarNode
    """The key the first time."""

    @property
    def line(self) -> int:
        return self.again.start_mark.line + 1

    @property
    def column(self) -> int:
        return self.again.start_mark.column + 1

    def problem(self) -> str:
        """The problem, placed in the file by the mapping's path, without file:line."""
        dotted = ".".join(str(p) for p in self.path) or "file"
        first = self.first.start_mark
        return (
            f"{dotted}: duplicate key {self.again.value!r} (first at line {first.line + 1}, "
            f"column {first.column + 1}); YAML would keep only the last one, so say it once"
        )


def duplicate_key(node: yaml.Node | None) -> DuplicateKey | None:
    """The first key given twice in one mapping of the document ``node``, in document
    order, or None."""
    found = _duplicate_key(node, [], set())
    return None if found is None else DuplicateKey(tuple(found[0]), found[1], found[2])


def _duplicate_key(
    node: yaml.Node | None, path: list[str | int], seen: set[int]
) -> tuple[list[str | int], yaml.ScalarNode, yaml.ScalarNode] | None:
    if node is None or id(node) in seen:  # an alias of a node already walked
        return None
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        keys: dict[tuple[str, str], yaml.ScalarNode] = {}
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                first = keys.setdefault((key.tag, key.value), key)
                if first is not key:
                    return path, key, first
            found = _duplicate_key(
                value, [*path, key.value if isinstance(key.value, str) else "?"], seen
            )
            if found is not None:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            found = _duplicate_key(item, [*path, index], seen)
            if found is not None:
                return found
    return None


def load_policy_text(text: str, source: str = "<string>") -> tuple[PolicyFile, yaml.Node | None]:
    """Parse and validate policy YAML; raise PolicyFileError at the first problem's place."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        rule = rule_at_yaml_error(text)
        where = f"rule {rule}, " if rule else ""
        raise PolicyFileError(
            source,
            mark.line + 1 if mark else None,
            mark.column + 1 if mark else None,
            f"{where}not valid YAML: {exc.problem}",
        ) from None
    duplicate = duplicate_key(node)
    if duplicate is not None:
        rule = _rule_id(data, duplicate.path)
        where = f"rule {rule}, " if rule else ""
        raise PolicyFileError(
            source, duplicate.line, duplicate.column, f"{where}{duplicate.problem()}"
        )
    if data is None:
        # Nothing at all (empty, blank or only comments): a file truncated on deploy, or the
        # wrong one. Loaded, it would deny every action; a file that means no rules says so
        # (`rules: []`, or its name and default alone).
        raise PolicyFileError(
            source,
            None,
            None,
            "the policy file holds nothing, and as a policy it would deny every action; "
            "write its rules, or `rules: []` for a policy that is its default alone",
        )
    if not isinstance(data, dict):
        raise PolicyFileError(source, 1, 1, f"a policy file is a mapping, got {data!r}")
    return validate_policy_data(data, source, node, from_yaml=True), node


def validate_policy_data(
    data: dict[str, Any], source: str, node: yaml.Node | None = None, *, from_yaml: bool = False
) -> PolicyFile:
    """Validate parsed policy data; the first problem becomes a PolicyFileError.

    With the YAML ``node`` the error is placed at file:line:column; without it (rules
    built in Python) it names the rule and the field. ``from_yaml``: the data is a YAML
    file's, whose nulls are keys given no value (refused where they would mean "any");
    in Python, None is a field left out.
    """
    try:
        return PolicyFile.model_validate(data, context={FROM_YAML: from_yaml})
    except ValidationError as exc:
        errors = exc.errors()
        # A misspelt key also makes the real one "missing"; the typo is the useful report.
        err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        path = [p for p in err["loc"] if isinstance(p, str | int)]
        target = locate(node, path, at_key=err["type"] == "extra_forbidden")
        line = target.start_mark.line + 1 if target is not None else None
        column = target.start_mark.column + 1 if target is not None else None
        rule = _rule_id(data, path)
        dotted = ".".join(str(p) for p in path)
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = f"unknown key {path[-1]!r}"
        where = f"rule {rule}, " if rule else ""
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        raise PolicyFileError(
            source,
            line,
            column,
            f"{where}{dotted or 'file'}: {msg} (got {err.get('input')!r}){more}",
        ) from None


def read_policy_file(path: str | Path) -> tuple[PolicyFile, yaml.Node | None, str]:
    """Read and parse a policy file from disk."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read policy file {str(p)!r}: {exc.strerror}; check the path"
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"policy file {str(p)!r} is not UTF-8 text (byte {exc.start}); save it as UTF-8"
        ) from None
    parsed, node = load_policy_text(text, str(p))
    return parsed, node, text
