"""Options that several commands take, declared once: option groups.

typer reads a command's options from its parameters, so options that many commands share
(--app and --db; who decides, with --as, --role and --tenant) would be written out again in
each command. An option group declares them once, as the fields of a frozen dataclass,
each with the annotation and default it would have as a parameter. A command takes the
group as one parameter (``app_options: AppOptions``); ``grouped`` puts the group's options
in that place of the signature typer reads, and calls the command with the group built
from them. A group may hold groups.
"""

import dataclasses
import functools
import inspect
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Annotated, Any, get_type_hints

import typer

from agentrt.cli.common import AppOption, DbOption, runtime_from

if TYPE_CHECKING:
    from agentrt.runtime import AgentRuntime

__all__ = [
    "LIMIT_MAX",
    "AppOptions",
    "OptionGroup",
    "ThreadArgument",
    "grouped",
    "one_of",
    "within",
]

ThreadArgument = Annotated[str, typer.Argument(help="The run's thread id.")]

LIMIT_MAX = 10_000
"""The most rows a command's --limit may ask for: as many as rt.approvals pages at once.
Unbounded, a number past SQLite's integers reached the database as an OverflowError."""


def within(low: int, high: int) -> Callable[[int], int]:
    """A typer callback for an int option: its value, or a usage error (exit 2) naming the
    option, the value and the range. typer's own max= does not say the value it refuses."""

    def check(value: int) -> int:
        if not low <= value <= high:
            raise typer.BadParameter(f"{value} is not from {low} to {high}")
        return value

    return check


def one_of(choices: tuple[str, ...]) -> Callable[[str], str]:
    """A typer callback for a word option: the choice it names (in any case), or a usage
    error (exit 2) naming the option, the value and the choices."""

    def check(value: str) -> str:
        if value.lower() not in choices:
            raise typer.BadParameter(
                f"{value!r} is not one of {', '.join(repr(c) for c in choices)}"
            )
        return value.lower()

    return check


_Build = Callable[[dict[str, Any]], Any]


@dataclasses.dataclass(frozen=True)
class OptionGroup:
    """Base of an option group: a frozen dataclass whose fields are a command's options."""


@dataclasses.dataclass(frozen=True)
class AppOptions(OptionGroup):
    """--app and --db: the app whose runtime a command works on."""

    app_spec: AppOption = None
    db: DbOption = None

    def runtime(
        self, *, db_only: bool = False, create: bool = False, app_only: bool = False
    ) -> "AbstractContextManager[AgentRuntime]":
        """The app's runtime for one command (``runtime_from``: what the flags mean)."""
        return runtime_from(
            self.app_spec, self.db, db_only=db_only, create=create, app_only=app_only
        )


def grouped(command: Callable[..., None]) -> Callable[..., None]:
    """``command`` as typer is to see it: each parameter that is an option group replaced
    by the group's options, in its place, and the group built from them for the call.

    Options without a default come first, in the order they stand, then those with one:
    the order Python asks of a signature, so ``--help`` lists a command's required options
    first whichever group holds them.
    """
    signature = inspect.signature(command, eval_str=True)
    options: list[inspect.Parameter] = []
    groups: dict[str, _Build] = {}
    for param in signature.parameters.values():
        if _is_group(param.annotation):
            groups[param.name] = _expand(param.annotation, options)
        else:
            options.append(param.replace(kind=inspect.Parameter.POSITIONAL_OR_KEYWORD))
    names = [p.name for p in options]
    if len(set(names)) < len(names):
        raise TypeError(f"command {command.__name__!r} has two options named alike: {names}")
    options.sort(key=lambda p: p.default is not inspect.Parameter.empty)

    @functools.wraps(command)
    def run(**given: Any) -> None:
        for name, build in groups.items():
            given[name] = build(given)
        command(**given)

    run.__signature__ = signature.replace(parameters=options)  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in options}
    return run


def _is_group(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, OptionGroup)


def _expand(group: type[OptionGroup], into: list[inspect.Parameter]) -> _Build:
    """Add ``group``'s options to ``into``; return what makes the group from the values
    given for them (taking those values out)."""
    hints = get_type_hints(group, include_extras=True)
    parts: dict[str, _Build] = {}
    for field in dataclasses.fields(group):
        hint = hints[field.name]
        if _is_group(hint):
            parts[field.name] = _expand(hint, into)
            continue
        default = inspect.Parameter.empty if field.default is dataclasses.MISSING else field.default
        into.append(
            inspect.Parameter(
                field.name,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                default=default,
                annotation=hint,
            )
        )
        parts[field.name] = functools.partial(_take, field.name)

    def build(given: dict[str, Any]) -> OptionGroup:
        return group(**{name: part(given) for name, part in parts.items()})

    return build


def _take(name: str, given: dict[str, Any]) -> Any:
    return given.pop(name)
