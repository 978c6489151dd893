"""Arguments that come as a JSON Schema: those of LangChain tools with a dict args_schema,
MCP tools, anything described over the wire rather than by a Python signature (such a tool
is made with agentrt.tools.adapters.schema_tool).

The schema is what the model is offered and what arguments are checked against (with the
``jsonschema`` library, its patterns searched in linear time: ``schema_patterns``), with
the pydantic path's rules: an object of named arguments, extra properties refused unless
the schema allows them, NaN and infinities refused unless the tool allows them, every
problem reported with the path of the field it is about.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Collection, Iterator, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from agentrt.errors import ConfigError
from agentrt.tools.errors import ToolArgsError
from agentrt.tools.schema_patterns import (
    UnrunnablePattern,
    bounded_validator,
    check_schema,
    extra_keys,
    local_validator,
)
from agentrt.tools.schemas import non_finite

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError
    from jsonschema.protocols import Validator

__all__ = ["JsonSchemaArgs"]

# Keywords that put properties in subschemas, where a top-level additionalProperties
# cannot see them: such a schema is closed with unevaluatedProperties instead.
_COMPOSITION = ("allOf", "anyOf", "oneOf", "$ref", "$dynamicRef", "if", "dependentSchemas")


class JsonSchemaArgs:
    """A tool's arguments as a JSON Schema: the schema offered to the model, and its check."""

    def __init__(self, schema: Mapping[str, Any], *, tool: str) -> None:
        # jsonschema is imported here, not at module level: `import agentrt` stays light.
        from jsonschema.exceptions import SchemaError

        if not isinstance(schema, Mapping):
            raise ConfigError(
                f"tool {tool!r}: its argument schema must be a JSON Schema object (a dict), "
                f"got {schema!r}"
            )
        try:
            own: dict[str, Any] = json.loads(json.dumps(schema))
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"tool {tool!r}: its argument schema is not JSON ({exc}); give it as plain "
                "dicts, lists, strings, numbers and booleans"
            ) from None
        kind = own.setdefault("type", "object")
        if kind != "object":
            raise ConfigError(
                f"tool {tool!r}: its argument schema has type {kind!r}; a tool's arguments "
                "are a JSON object of named values, so the schema's type must be 'object'"
            )
        # Its patterns run on RE2 (or bounded in time): the model writes the values.
        cls = bounded_validator(own)
        try:
            check_schema(cls, own)
        except SchemaError as exc:
            if exc.validator == "$ref":
                raise ConfigError(f"tool {tool!r}: its argument schema's {exc.message}") from None
            where = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
            raise ConfigError(
                f"tool {tool!r}: its argument schema is not a valid JSON Schema at {where}: "
                f"{exc.message}"
            ) from None
        self.tool = tool
        self.schema: dict[str, Any] = _closed(
            own, open_ended="unevaluatedProperties" in cls.VALIDATORS
        )
        """The schema as offered to the model: closed to extra properties unless it said."""
        self._validator: Validator = local_validator(cls, self.schema)

    def offered(self) -> dict[str, Any]:
        """A copy of the schema, for the model's tool list (callers may change it)."""
        return copy.deepcopy(self.schema)

    def validate(
        self, args: Any, *, allow_non_finite: bool = False, sensitive: Collection[str] = ()
    ) -> dict[str, Any]:
        """The arguments in their JSON form, or ToolArgsError naming each bad field (and
        quoting no value of the tool's ``sensitive`` fields)."""
        refused = partial(ToolArgsError, self.tool, sensitive=sensitive)
        if not isinstance(args, Mapping):
            raise refused([{"loc": (), "msg": "arguments must be a JSON object", "input": args}])
        try:
            # JSON in, JSON out: tuples become lists, and a value JSON cannot carry (a set,
            # an object) is refused here rather than by the checkpoint later.
            data: dict[str, Any] = json.loads(json.dumps(dict(args)))
        except (TypeError, ValueError) as exc:
            raise refused(
                [{"loc": (), "msg": f"arguments must be JSON values ({exc})", "input": args}]
            ) from None
        errors: list[dict[str, Any]] = []
        for err in self._validator.iter_errors(data):
            # jsonschema reports each missing property as its own "required" error, where
            # _described names every missing one: keep each (field, problem) once.
            errors += [e for e in _described(err) if _key(e) not in map(_key, errors)]
        if errors:
            raise refused(errors)
        if not allow_non_finite:
            found = non_finite(data)
            if found is not None:
                where, value = found
                raise refused(
                    [{"loc": where, "msg": "Input should be a finite number", "input": value}]
                )
        return data

    def __repr__(self) -> str:
        return f"JsonSchemaArgs(tool={self.tool!r})"


def _closed(schema: dict[str, Any], *, open_ended: bool) -> dict[str, Any]:
    """``schema`` refusing properties it does not name, unless it says what to do with them.

    A plain object schema gets additionalProperties: false (what a pydantic tool's schema
    says too). One that composes subschemas gets unevaluatedProperties: false, which sees
    through them, where its draft has it; a draft-7 composite is left as it is, since
    closing it would refuse the very properties its subschemas name.
    """
    if "additionalProperties" in schema or "unevaluatedProperties" in schema:
        return schema
    if any(k in schema for k in _COMPOSITION):
        if open_ended:
            schema["unevaluatedProperties"] = False
        return schema
    schema["additionalProperties"] = False
    return schema


def _described(err: ValidationError) -> Iterator[dict[str, Any]]:
    """One jsonschema error as pydantic-shaped error dicts: loc, msg, input, type."""
    from jsonschema.exceptions import best_match

    if err.context:  # anyOf / oneOf: the branch that came closest says more
        err = best_match(err.context) or err
    where = tuple(err.absolute_path)
    instance = err.instance
    required = err.validator_value
    if err.validator == "required" and isinstance(instance, Mapping) and isinstance(required, list):
        for name in required:
            if name not in instance:
                yield {"loc": (*where, name), "msg": "Field required", "input": instance}
        return
    if err.validator == "additionalProperties" and isinstance(instance, Mapping):
        try:
            extras = extra_keys(instance, err.schema)
        except UnrunnablePattern:
            extras = []  # the error says which pattern, below
        for name in extras:
            yield {
                "loc": (*where, name),
                "msg": "Extra inputs are not permitted",
                "input": instance[name],
            }
        if extras:
            return
    message = err.message
    shown = repr(instance)
    if message.startswith(shown):  # "'abc' is not of type 'number'": the value is shown apart
        message = "Input" + message[len(shown) :]
    yield {"loc": where, "msg": message, "input": instance, "type": str(err.validator)}


def _key(error: Mapping[str, Any]) -> tuple[Any, ...]:
    return (error["loc"], error["msg"])
