"""Eval datasets: cases in a YAML or JSONL file, validated before anything runs.

A case is a goal, who asks (principal), its limits (budget), optionally the model's
answers (a script, or a recorded run's), what to decide at approval gates, and what to
expect of the outcome and the trajectory. Every problem is reported before the first case
runs, naming the file, the line where YAML gives one, the case and the field, e.g.
``refunds.yaml:14: case 'big-refund', field expect.tols: unknown field; known fields: ...``.

CEL conditions are compiled, regular expressions and JSON schemas checked (every
``$ref`` resolved), custom scorers imported and the decider of the gates built here, so a
typo fails the load, not the fifth case of a CI run; and a case that expects nothing, or
an expectation with nothing in it, is refused: it would pass any run, a failed one too.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from agentrt.budget import Budget
from agentrt.errors import ConfigError
from agentrt.evals.schema import CaseSpec, DatasetFile, DecideSpec, Defaults, Expect, JudgeConfig
from agentrt.policies.cel_engine import cel
from agentrt.policies.loader import duplicate_key, locate
from agentrt.principal import Principal

__all__ = [
    "Case",
    "CaseSpec",
    "Dataset",
    "DatasetError",
    "Expect",
    "load_dataset",
    "parse_dataset",
]


class DatasetError(ConfigError):
    """A dataset the eval cannot run: the file, line, case and field, and what is wrong."""

    def __init__(
        self,
        source: str,
        message: str,
        *,
        case: str | None = None,
        field: str | None = None,
        line: int | None = None,
    ) -> None:
        self.source, self.case, self.field, self.line = source, case, field, line
        self.problem = message
        where = f"{source}:{line}" if line else source
        parts = [where]
        if case is not None:
            parts.append(f"case {case!r}")
        if field:
            parts.append(f"field {field}")
        super().__init__(", ".join(parts) + f": {message}")


Scorer = Callable[..., Any]


@dataclass(frozen=True, slots=True)
class Case:
    """A case ready to run: defaults applied, conditions compiled, scorers imported."""

    spec: CaseSpec
    principal: Principal
    budget: Budget | None
    decide: DecideSpec | None
    where: tuple[tuple[str, Any], ...]
    """Each CEL condition with its compiled program."""
    scorers: tuple[tuple[str, Scorer], ...]
    """Each custom scorer's "module:function" with the function."""
    decider: Principal | None = None
    """Who decides at the gates, as ``decide.by`` says (None without ``decide``)."""

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True, slots=True)
class Dataset:
    """The cases of one file, in order."""

    name: str
    source: str
    cases: tuple[Case, ...]
    judge: JudgeConfig

    def recorded_runs(self) -> list[str]:
        """Thread ids of the runs whose answers cases replay (`model: {recorded: ID}`)."""
        return [c.spec.model.recorded for c in self.cases if c.spec.model and c.spec.model.recorded]


def load_dataset(path: str | Path) -> Dataset:
    """Read and check a dataset: ``.jsonl`` is one case per line, anything else YAML."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise DatasetError(str(path), f"cannot read the dataset: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise DatasetError(str(path), "the dataset is not UTF-8 text") from None
    return parse_dataset(text, source=str(path), jsonl=p.suffix == ".jsonl", name=p.stem)


def parse_dataset(
    text: str, *, source: str = "<string>", jsonl: bool = False, name: str = "dataset"
) -> Dataset:
    """A dataset from its text; DatasetError at the first problem."""
    data, node, lines = _jsonl(text, source) if jsonl else _yaml(text, source)
    if not isinstance(data, dict):
        raise DatasetError(source, "a dataset is a mapping with a `cases:` list")
    try:
        parsed = DatasetFile.model_validate(data)
    except ValidationError as exc:
        raise _first_error(exc, data, source, node, lines) from None
    except RecursionError:
        raise _too_deep_case(data, source, node, lines) from None
    if not parsed.cases:
        raise DatasetError(source, "the dataset has no cases; add some under `cases:`")
    seen: set[str] = set()
    for index, spec in enumerate(parsed.cases):
        if spec.name in seen:
            place = _Place(source, spec.name, index, node, lines)
            raise place.error("name", f"two cases are named {spec.name!r}; names must be unique")
        seen.add(spec.name)
    ready = []
    for index, spec in enumerate(parsed.cases):
        place = _Place(source, spec.name, index, node, lines)
        try:
            ready.append(_ready(spec, parsed.defaults, place))
        except RecursionError:  # a JSON Schema or a script's arguments nested past reading
            line = _line(["cases", index], node, lines)
            raise _too_deep(source, line, case=spec.name) from None
    return Dataset(name=parsed.name or name, source=source, cases=tuple(ready), judge=parsed.judge)


def _jsonl(text: str, source: str) -> tuple[Any, None, list[int]]:
    """A JSONL dataset's data, one case a line, and each case's line number."""
    cases: list[Any] = []
    lines: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            cases.append(json.loads(line, object_pairs_hook=_once_each))
        except json.JSONDecodeError as exc:
            raise DatasetError(source, f"not a JSON object: {exc.msg}", line=number) from None
        except RecursionError:
            raise _too_deep(source, number) from None
        except _KeyTwice as exc:
            raise DatasetError(
                source,
                f"duplicate key {exc.key!r}; JSON would keep only the last one, so say it once",
                line=number,
            ) from None
        lines.append(number)
    return {"cases": cases}, None, lines


def _yaml(text: str, source: str) -> tuple[Any, yaml.Node | None, list[int]]:
    """A YAML dataset's data, and its node tree (to name the line of a problem)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
        duplicate = duplicate_key(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        at = mark.line + 1 if mark else None
        raise DatasetError(source, f"not valid YAML: {exc.problem}", line=at) from None
    except RecursionError:
        raise _too_deep(source, None) from None
    if duplicate is not None:
        raise DatasetError(source, duplicate.problem(), line=duplicate.line)
    return data, node, []


def _too_deep(source: str, line: int | None, case: str | None = None) -> DatasetError:
    """The error for a dataset nested past what the interpreter can read (lists in lists
    thousands deep): bad input, said as such, not a crash."""
    where = "the case" if line is not None or case is not None else "the dataset"
    return DatasetError(
        source,
        f"{where} is nested too deeply to read (lists or mappings inside each other, "
        "hundreds of levels down); no case needs that: look for a runaway bracket",
        case=case,
        line=line,
    )


def _too_deep_case(
    data: dict[str, Any], source: str, node: yaml.Node | None, lines: list[int]
) -> DatasetError:
    """``_too_deep`` naming the case whose fields are nested past checking, found by
    checking each case alone."""
    cases = data.get("cases")
    for index, raw in enumerate(cases if isinstance(cases, list) else []):
        try:
            CaseSpec.model_validate(raw)
        except RecursionError:
            name = raw.get("name") if isinstance(raw, dict) else None
            line = _line(["cases", index], node, lines)
            return _too_deep(source, line, case=name if isinstance(name, str) else None)
        except ValidationError:
            continue
    return _too_deep(source, None)


class _KeyTwice(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _once_each(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's pairs as a dict; _KeyTwice for a key given twice (json keeps the
    last silently)."""
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise _KeyTwice(key)
        data[key] = value
    return data


@dataclass(frozen=True, slots=True)
class _Place:
    """Where a case is in its file, to name it in an error."""

    source: str
    case: str
    index: int
    node: yaml.Node | None
    lines: list[int]

    def error(self, field: str, message: str) -> DatasetError:
        path: list[str | int] = ["cases", self.index]
        for part in re.split(r"[.\[\]]+", field):
            if part:
                path.append(int(part) if part.isdigit() else part)
        # A field the case leaves to defaults (or leaves out) is not in the file: the
        # case's own line then says which case.
        line = _line(path, self.node, self.lines) or _line(path[:2], self.node, self.lines)
        return DatasetError(self.source, message, case=self.case, field=field, line=line)


def _line(path: Sequence[str | int], node: yaml.Node | None, lines: list[int]) -> int | None:
    if node is not None:
        found = locate(node, path, at_key=True)
        return found.start_mark.line + 1 if found is not None else None
    if len(path) >= 2 and path[0] == "cases" and isinstance(path[1], int) and path[1] < len(lines):
        return lines[path[1]]
    return None


def _first_error(
    exc: ValidationError, data: Any, source: str, node: yaml.Node | None, lines: list[int]
) -> DatasetError:
    """The deepest validation error, by case name and dotted field: of a union's errors
    (one per member tried), the member that got furthest says what is wrong."""
    found = [(_in_file(e, data), e) for e in exc.errors()]
    path, error = max(found, key=lambda pe: len(pe[0]))
    case = None
    if len(path) >= 2 and path[0] == "cases" and isinstance(path[1], int):
        try:
            raw = data["cases"][path[1]]
            case = raw.get("name") if isinstance(raw, dict) else None
        except (IndexError, KeyError, TypeError):
            pass
        case = case or f"#{path[1] + 1}"
        field_path = path[2:]
    else:
        field_path = path
    field = "".join(
        f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p))
        for i, p in enumerate(field_path)
    )
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        known = _known_fields(DatasetFile, path[:-1])
        message = "unknown field" + (f"; known fields: {', '.join(known)}" if known else "")
    elif error["type"] == "missing":
        message = "required field missing"
    return DatasetError(
        source, message, case=case, field=field or None, line=_line(path, node, lines)
    )


def _in_file(error: Any, data: Any) -> list[str | int]:
    """An error's location as a path in the file: a union's member names (``str``,
    ``TurnSpec``) that pydantic puts in the location are not keys there."""
    loc = list(error["loc"])
    path: list[str | int] = []
    here = data
    for index, part in enumerate(loc):
        in_list = isinstance(part, int) and isinstance(here, list) and part < len(here)
        if in_list or (isinstance(part, str) and isinstance(here, dict) and part in here):
            path.append(part)
            here = here[part]
        elif index == len(loc) - 1 and error["type"] == "missing":
            path.append(part)
    return path


def _known_fields(model: Any, path: Sequence[str | int]) -> list[str]:
    """The field names of the model found at ``path`` under ``model``."""
    for part in path:
        if isinstance(part, int):
            continue
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return []
        model = _model_in(fields[part].annotation)
    fields = getattr(model, "model_fields", None)
    return list(fields) if fields else []


def _model_in(annotation: Any) -> Any:
    """The pydantic model inside an annotation (list[X], X | None, ...), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is not None:
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def _ready(spec: CaseSpec, defaults: Defaults, place: _Place) -> Case:
    who = spec.principal or defaults.principal
    if who is None:
        raise place.error("principal", "no principal: give the case one, or set defaults.principal")
    try:
        principal = who.principal()
    except ConfigError as exc:
        raise place.error("principal", str(exc)) from None
    limits = {**(defaults.budget or {}), **(spec.budget or {})}
    try:
        budget = Budget.from_dict(limits) if limits else None
    except (ConfigError, TypeError) as exc:
        raise place.error("budget", str(exc)) from None
    where: list[tuple[str, Any]] = []
    for index, expression in enumerate(spec.expect.where):
        try:
            where.append((expression, cel.compile(expression)))
        except ValueError as exc:
            found = re.search(r"<input>:\d+:\d+: (.*)", str(exc))
            detail = found.group(1) if found else str(exc).splitlines()[0]
            detail = re.sub(r" expecting \{.*\}$", "", detail)
            raise place.error(
                f"expect.where[{index}]",
                f"not a valid CEL expression {expression!r}: {detail}",
            ) from None
    scorers = [
        (name, _scorer(name, place, f"scorers[{index}]")) for index, name in enumerate(spec.scorers)
    ]
    _refuse_checking_nothing(spec, place)
    decide = spec.decide or defaults.decide
    try:
        decider = decide.by.principal() if decide is not None else None
    except ConfigError as exc:
        raise place.error("decide.by", str(exc)) from None
    return Case(
        spec=spec,
        principal=principal,
        budget=budget,
        decide=decide,
        where=tuple(where),
        scorers=tuple(scorers),
        decider=decider,
    )


def _refuse_checking_nothing(spec: CaseSpec, place: _Place) -> None:
    """An expectation with nothing in it can never fail, nor can a case without one: each
    would pass any run, a failed one too."""
    expect, tools = spec.expect, spec.expect.tools
    # only: [] does check something (that no tool was called); the others empty do not.
    if (
        tools is not None
        and tools.only is None
        and not any((tools.called, tools.not_called, tools.sequence, tools.counts))
    ):
        raise place.error(
            "expect.tools",
            f"{tools.model_dump(exclude_unset=True)!r} checks nothing; name tools under "
            "called, not_called, only, sequence or counts, or leave tools out",
        )
    output = expect.output
    if output is not None and not (
        output.contains or output.not_contains or output.regex or output.json_schema is not None
    ):
        raise place.error(
            "expect.output",
            f"{output.model_dump(exclude_unset=True)!r} checks nothing; give contains, "
            "not_contains, regex or json_schema, or leave output out",
        )
    given = [getattr(expect, name) for name in Expect.model_fields if name != "where"]
    if not (any(v is not None for v in given) or expect.where or spec.scorers or spec.judge):
        raise place.error(
            "expect",
            "the case expects nothing, so every run would pass it, a failed one too; give "
            "it an expectation (e.g. `expect: {status: succeeded}`), a scorer or a judge "
            "rubric",
        )


def _scorer(name: str, place: _Place, field: str) -> Scorer:
    """Import a custom scorer "module:function"."""
    module_name, sep, attr = name.partition(":")
    if not sep or not module_name or not attr:
        raise place.error(field, f"scorer {name!r} is not of the form module:function")
    sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise place.error(field, f"cannot import module {module_name!r}: {exc}") from None
    finally:
        sys.path.pop(0)
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise place.error(field, f"module {module_name!r} has no scorer {attr!r}")
        target = getattr(target, part)
    if not callable(target):
        raise place.error(field, f"scorer {name!r} is {target!r}, not a function")
    scorer: Scorer = target
    return scorer
