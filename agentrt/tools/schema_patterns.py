"""JSON Schema validation whose regular expressions run in linear time, on RE2.

jsonschema searches ``pattern`` and the keys of ``patternProperties`` with Python's ``re``,
a backtracking engine that holds the GIL while it searches. A schema from outside (an MCP
server's outputSchema; any tool's inputSchema, filled in by the model) with ``^(a|a)*$``
and a value of forty a's and a "!" would stop every thread of the process for hours. The
validator classes made here search with RE2 (google-re2) instead, whose time grows with
the text and the pattern, never exponentially: ``pattern``, ``patternProperties`` and the
two keywords that read patternProperties (``additionalProperties``,
``unevaluatedProperties``). A pattern RE2 cannot run (a lookaround, a backreference, a
repeat past {1000}: ``^.{1,5000}$`` is common in servers' schemas) is searched on the
backtracking ``regex`` engine with a time limit (``BACKTRACKING_SECONDS``): a value it cannot
decide by then is refused, saying so, and nothing holds the process. ``check_schema``
refuses a pattern neither engine can read.

JSON Schema's rules stay: a pattern is searched for, not matched whole, ECMA-262's
``\\uXXXX`` escape is read as RE2's ``\\x{XXXX}``, and ``\\s`` is ECMA-262's whitespace
(the no-break space, U+2028, U+3000 and the rest besides ASCII's), where RE2's is ASCII's
alone: a "no whitespace" field (``^\\S+$``, or ``^[\\S]+$``) refuses them as it did on
Python's ``re``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

__all__ = [
    "UnrunnablePattern",
    "bounded_validator",
    "check_schema",
    "extra_keys",
    "local_validator",
    "search",
]

_TOKENS = re.compile(r"\\u([0-9a-fA-F]{4})|(\\.)|(\[)|(\])|.", re.DOTALL)
"""A pattern's parts that its reading for RE2 looks at: escapes and the class brackets."""
_ECMA_SPACE_RANGES = (
    (0x9, 0xD),
    (0x20, 0x20),
    (0xA0, 0xA0),
    (0x1680, 0x1680),
    (0x2000, 0x200A),
    (0x2028, 0x2029),
    (0x202F, 0x202F),
    (0x205F, 0x205F),
    (0x3000, 0x3000),
    (0xFEFF, 0xFEFF),
)
"""ECMA-262's WhiteSpace and LineTerminator, what its ``\\s`` matches: first, last code point."""


def _complement(ranges: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
    """The code points no range of ``ranges`` (in order, apart) holds, as ranges."""
    starts = [0, *(last + 1 for _, last in ranges)]
    ends = [*(first - 1 for first, _ in ranges), 0x10FFFF]
    return tuple((start, end) for start, end in zip(starts, ends, strict=True) if start <= end)


def _members(ranges: tuple[tuple[int, int], ...], *, re2: bool) -> str:
    """``ranges`` as a character class's members, as RE2 (``\\x{...}``) or ``regex``
    (``\\uXXXX``, ``\\UXXXXXXXX``: it has no ``\\x{...}``) writes them."""

    def one(code: int) -> str:
        if re2:
            return f"\\x{{{code:x}}}"
        return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"

    return "".join(one(a) if a == b else f"{one(a)}-{one(b)}" for a, b in ranges)


_ECMA_MEMBERS = {
    # (re2, negated): \s's members, or \S's spelt out: [^...] cannot be a class's member,
    # and [\S\d] must hold what \S holds, the no-break space and U+2028 left out.
    (re2, negated): _members(
        _complement(_ECMA_SPACE_RANGES) if negated else _ECMA_SPACE_RANGES, re2=re2
    )
    for re2 in (True, False)
    for negated in (True, False)
}
"""What ECMA-262's ``\\s`` (negated: ``\\S``) matches, as a class's members, for each engine."""

BACKTRACKING_SECONDS = 0.05
"""How long a pattern RE2 cannot run may search one value on the backtracking engine."""


class UnrunnablePattern(ValueError):
    """A pattern no engine can read, or one that could not decide a value in its time."""


@functools.lru_cache(maxsize=128)
def _compiled(pattern: str) -> Callable[[str], bool]:
    """Whether ``pattern`` is found in a text: on RE2, within its default memory bound (8
    MiB), or, for a pattern RE2 cannot run, on ``regex`` with a time limit. The last 128 are
    kept, so a server listing many cannot grow the cache."""
    import re2  # type: ignore[import-untyped]

    options = re2.Options()
    options.log_errors = False  # RE2 would print the pattern on stderr, past every redactor
    try:
        program = re2.compile(_as_ecma(pattern, re2=True), options)
    except (re2.error, UnicodeEncodeError):  # (a lone surrogate: UTF-8 cannot carry it)
        return _backtracking(pattern)
    # surrogatepass: JSON may carry a lone surrogate ("\\ud800"), which UTF-8 cannot.
    return lambda text: program.search(text.encode("utf-8", "surrogatepass")) is not None


def _backtracking(pattern: str) -> Callable[[str], bool]:
    """``pattern`` on the backtracking ``regex`` engine, each search cut at
    ``BACKTRACKING_SECONDS``; UnrunnablePattern if it cannot read it either."""
    import regex

    try:
        # ASCII: \d, \w and \b are ECMA-262's (and RE2's), not every script's digits.
        program = regex.compile(_as_ecma(pattern, re2=False), flags=regex.ASCII)
    except regex.error as exc:
        raise UnrunnablePattern(f"pattern {pattern!r} is not a regular expression: {exc}") from None

    def found(text: str) -> bool:
        try:
            return program.search(text, timeout=BACKTRACKING_SECONDS) is not None
        except TimeoutError:
            raise UnrunnablePattern(
                f"pattern {pattern!r} could not decide this value within "
                f"{BACKTRACKING_SECONDS} s (it has a lookaround, a backreference or a repeat "
                "past {1000}, so it runs on a backtracking engine): the value is refused"
            ) from None

    return found


def _as_ecma(pattern: str, *, re2: bool) -> str:
    """``pattern`` as RE2 (or ``regex``) reads ECMA-262's: ``\\uXXXX`` as RE2's
    ``\\x{XXXX}``, ``\\s`` and ``\\S`` as ECMA-262's whitespace and the rest, in a class
    too, and for ``regex`` a ``$`` as ``\\Z``: ECMA-262's ``$`` (and RE2's) is the end of the
    text, where ``regex``'s is also just before a final newline ("bob\\n" would pass
    ``^[a-z]+$``)."""
    out: list[str] = []
    in_class = False
    previous = None
    for part in _TOKENS.finditer(pattern):
        code, escape, opens, closes = part.groups()
        if code is not None:
            out.append(f"\\x{{{code}}}" if re2 else part[0])
        elif escape in ("\\s", "\\S"):
            if in_class and out[-1] == "-":
                # ECMA-262 reads "[!-\s]" as "!", "-" and \s, not a range to the first member.
                out[-1] = "\\-"
            members = _ECMA_MEMBERS[re2, escape == "\\S"]
            out.append(members if in_class else f"[{members}]")
        elif in_class and part[0] == "-" and previous in ("\\s", "\\S"):
            out.append("\\-")  # "[\s-~]" likewise: \s, "-" and "~"
        elif part[0] == "$" and not in_class and not re2:
            out.append("\\Z")
        else:
            in_class = (in_class or opens is not None) and closes is None
            out.append(part[0])
        previous = escape
    return "".join(out)


def search(pattern: str, text: str) -> bool:
    """True if ``pattern`` is found anywhere in ``text`` (JSON Schema's rule), in time linear
    in the text on RE2, or cut short on the backtracking engine: UnrunnablePattern then, or
    for a pattern no engine reads."""
    return _compiled(pattern)(text)


def extra_keys(instance: Mapping[str, Any], schema: Any) -> list[str]:
    """The keys of ``instance`` that neither ``properties`` nor ``patternProperties`` name."""
    if not isinstance(schema, Mapping):
        return []
    named = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    return [
        key for key in instance if key not in named and not any(search(p, key) for p in patterns)
    ]


def bounded_validator(schema: Mapping[str, Any]) -> type[Validator]:
    """The validator class of ``schema``'s dialect (2020-12 if it names none), its patterns
    searched by RE2."""
    from jsonschema.validators import Draft202012Validator, validator_for

    return _bounded(validator_for(schema, default=Draft202012Validator))


def local_validator(cls: type[Validator], schema: Mapping[str, Any]) -> Validator:
    """``cls(schema)`` (a class of ``bounded_validator``), its references resolved within
    the schema and the meta-schemas: a value checked never makes it fetch a URL."""
    from agentrt.tools.schema_refs import local_registry

    return cls(schema, registry=local_registry())


def check_schema(cls: type[Validator], schema: Mapping[str, Any]) -> None:
    """``cls.check_schema(schema)``, every pattern the meta-schema points at compiled by RE2
    as well: SchemaError (its message saying why) if one cannot be run. A ``$ref`` that
    resolves to nothing is a SchemaError too (its ``validator`` "$ref"), not an exception
    at the first value checked."""
    from jsonschema import FormatChecker
    from jsonschema.exceptions import SchemaError

    from agentrt.tools.schema_refs import unresolved_ref

    checker = FormatChecker(formats=())
    checker.checkers = dict(cls.FORMAT_CHECKER.checkers)
    checker.checks("regex", raises=UnrunnablePattern)(_runnable)
    try:
        # format_checker= is jsonschema's (4.17+), not yet its protocol's.
        cast(Any, cls).check_schema(schema, format_checker=checker)
    except SchemaError as exc:
        if isinstance(exc.cause, UnrunnablePattern):
            exc.message = str(exc.cause)
        raise
    unresolved = unresolved_ref(cls, schema)
    if unresolved is not None:
        ref, why = unresolved
        raise SchemaError(
            f"$ref {ref!r} points nowhere ({why}); define what it names (under $defs, or "
            "definitions before draft 2019-09), or write that subschema in its place",
            validator="$ref",
            validator_value=ref,
        )


def _runnable(instance: object) -> bool:
    if isinstance(instance, str):
        _compiled(instance)
    return True


@functools.cache
def _bounded(base: type[Validator]) -> type[Validator]:
    from jsonschema.validators import extend

    ours = {
        "pattern": _pattern,
        "patternProperties": _pattern_properties,
        "additionalProperties": _additional_properties,
        "unevaluatedProperties": _unevaluated_properties,
    }
    kept = {keyword: fn for keyword, fn in ours.items() if keyword in base.VALIDATORS}
    return cast("type[Validator]", cast(Any, extend)(base, kept))


# The keywords, as jsonschema writes them (same messages), searching with RE2 ----------------
# A pattern RE2 cannot run is an error of the value checked, never an exception out of
# iter_errors; check_schema refuses most such patterns before a validator is made.

Errors = Iterator[Any]


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Errors:
    from jsonschema.exceptions import ValidationError

    if not validator.is_type(instance, "string"):
        return
    try:
        found = search(pattern, instance)
    except UnrunnablePattern as exc:
        yield ValidationError(str(exc))
        return
    if not found:
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(validator: Any, patterns: Any, instance: Any, schema: Any) -> Errors:
    from jsonschema.exceptions import ValidationError

    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        try:
            keys = [key for key in instance if search(pattern, key)]
        except UnrunnablePattern as exc:
            yield ValidationError(str(exc))
            continue
        for key in keys:
            yield from validator.descend(instance[key], subschema, path=key, schema_path=pattern)


def _additional_properties(validator: Any, allowed: Any, instance: Any, schema: Any) -> Errors:
    from jsonschema.exceptions import ValidationError

    if not validator.is_type(instance, "object"):
        return
    try:
        extras = extra_keys(instance, schema)
    except UnrunnablePattern as exc:
        yield ValidationError(str(exc))
        return
    if validator.is_type(allowed, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], allowed, path=extra)
    elif not allowed and extras:
        if "patternProperties" in schema:
            verb = "does" if len(extras) == 1 else "do"
            joined = ", ".join(repr(each) for each in sorted(extras))
            patterns = ", ".join(repr(each) for each in sorted(schema["patternProperties"]))
            yield ValidationError(f"{joined} {verb} not match any of the regexes: {patterns}")
        else:
            yield ValidationError(
                f"Additional properties are not allowed ({_listed(sorted(extras, key=str))} "
                "unexpected)"
            )


def _unevaluated_properties(validator: Any, allowed: Any, instance: Any, schema: Any) -> Errors:
    from jsonschema.exceptions import ValidationError

    if not validator.is_type(instance, "object"):
        return
    try:
        evaluated = set(_evaluated_keys(validator, instance, schema))
    except UnrunnablePattern as exc:
        yield ValidationError(str(exc))
        return
    unevaluated = [
        key
        for key in instance
        if key not in evaluated
        and next(validator.descend(instance[key], allowed, path=key, schema_path=key), None)
        is not None
    ]
    if not unevaluated:
        return
    if allowed is False:
        yield ValidationError(
            f"Unevaluated properties are not allowed ({_listed(sorted(unevaluated, key=str))} "
            "unexpected)"
        )
    else:
        yield ValidationError(
            "Unevaluated properties are not valid under the given schema "
            f"({_listed(unevaluated)} unevaluated and invalid)"
        )


def _listed(keys: list[Any]) -> str:
    return ", ".join(repr(key) for key in keys) + (" was" if len(keys) == 1 else " were")


def _evaluated_keys(validator: Any, instance: Any, schema: Any) -> list[Any]:
    """The keys of ``instance`` some keyword of ``schema`` evaluates (what
    unevaluatedProperties leaves alone): jsonschema's own walk of draft 2020-12, its
    patternProperties searched by RE2. A 2019-09 schema is walked the same way (with its
    $recursiveRef), where jsonschema's walk for it miscounts additionalProperties."""
    if validator.is_type(schema, "boolean"):
        return []
    keys: list[Any] = []
    for keyword in ("$ref", "$dynamicRef", "$recursiveRef"):
        if keyword not in schema:
            continue
        if keyword == "$recursiveRef":
            from referencing.jsonschema import lookup_recursive_ref

            resolved = lookup_recursive_ref(validator._resolver)
        else:
            resolved = validator._resolver.lookup(schema[keyword])
        inner = validator.evolve(schema=resolved.contents, _resolver=resolved.resolver)
        keys += _evaluated_keys(inner, instance, resolved.contents)
    properties = schema.get("properties")
    if validator.is_type(properties, "object"):
        keys += properties.keys() & instance.keys()
    for keyword in ("additionalProperties", "unevaluatedProperties"):
        if (subschema := schema.get(keyword)) is not None:
            keys += [key for key, value in instance.items() if _valid(validator, value, subschema)]
    for pattern in schema.get("patternProperties", {}):
        keys += [key for key in instance if search(pattern, key)]
    for key, subschema in schema.get("dependentSchemas", {}).items():
        if key in instance:
            keys += _evaluated_keys(validator, instance, subschema)
    for keyword in ("allOf", "oneOf", "anyOf"):
        for subschema in schema.get(keyword, []):
            if _valid(validator, instance, subschema):
                keys += _evaluated_keys(validator, instance, subschema)
    if "if" in schema:
        if validator.evolve(schema=schema["if"]).is_valid(instance):
            keys += _evaluated_keys(validator, instance, schema["if"])
            if "then" in schema:
                keys += _evaluated_keys(validator, instance, schema["then"])
        elif "else" in schema:
            keys += _evaluated_keys(validator, instance, schema["else"])
    return keys


def _valid(validator: Any, instance: Any, schema: Any) -> bool:
    return next(validator.descend(instance, schema), None) is None
