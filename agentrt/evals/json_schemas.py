"""The JSON schemas of `expect.output.json_schema`: checked whole when the dataset loads,
and an output validated against one offline.

jsonschema checks a schema's shape but resolves its ``$ref``s only while validating, so a
``$ref`` to nowhere (``#/$defs/missing``) would pass the load and fail at scoring, in the
middle of an eval. Here every ``$ref`` must resolve within the schema itself (or to a
JSON Schema meta-schema): nothing is fetched from the network, at load or at scoring.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema
from jsonschema.validators import validator_for
from jsonschema_specifications import REGISTRY  # type: ignore[import-untyped]
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012, specification_with

__all__ = ["schema_problem", "validation_error"]

_META_SCHEMAS: Registry[Any] = REGISTRY
"""The JSON Schema meta-schemas, shipped with jsonschema: the only documents a reference
may name besides its own schema."""

_LATEST = "https://json-schema.org/draft/2020-12/schema"
"""The dialect of a schema that names none (`$schema`), as jsonschema takes it."""


def schema_problem(schema: dict[str, Any]) -> str | None:
    """What is wrong with ``schema`` in words, or None: an unknown ``$schema``, a shape
    its dialect refuses, or a ``$ref`` that resolves to nothing."""
    dialect = schema.get("$schema", _LATEST)
    cls = _validator_class(schema)
    if cls is None:
        return (
            f"$schema {dialect!r} is not a JSON Schema dialect jsonschema knows; leave it "
            f"out (draft 2020-12) or write {_LATEST!r}"
        )
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        return f"not a valid JSON schema: {exc.message}"
    resource = specification_with(dialect, default=DRAFT202012).create_resource(schema)
    for ref, resolver in _refs(resource, _META_SCHEMAS.resolver_with_root(resource)):
        try:
            resolver.lookup(ref)
        except (Unresolvable, ValueError) as exc:
            return (
                f"$ref {ref!r} resolves to nothing ({type(exc).__name__}); point it at a "
                "part of this schema, e.g. '#/$defs/NAME' with NAME under $defs (other "
                "documents are not fetched)"
            )
    return None


def validation_error(schema: dict[str, Any], instance: Any) -> str | None:
    """Why ``instance`` does not fit ``schema`` (one that ``schema_problem`` passed), or None."""
    cls = _validator_class(schema) or jsonschema.Draft202012Validator
    validator = cls(schema, registry=_META_SCHEMAS)
    error = jsonschema.exceptions.best_match(validator.iter_errors(instance))
    return None if error is None else error.message


def _validator_class(schema: dict[str, Any]) -> Any:
    """The validator of the schema's dialect (draft 2020-12 when it names none); None for
    a ``$schema`` jsonschema does not know (it would warn, then guess)."""
    dialect = schema.get("$schema")
    if dialect is None:
        return jsonschema.Draft202012Validator
    if not isinstance(dialect, str):
        return None
    return validator_for(schema, default=None)  # type: ignore[arg-type]


def _refs(resource: Resource[Any], resolver: Any) -> Iterator[tuple[str, Any]]:
    """Every reference of the schema with the resolver of the place it is written at (a
    subschema's ``$id`` moves the base a relative reference resolves against)."""
    contents = resource.contents
    if isinstance(contents, dict):
        for keyword in ("$ref", "$dynamicRef", "$recursiveRef"):
            ref = contents.get(keyword)
            if isinstance(ref, str):
                yield ref, resolver
    for sub in resource.subresources():
        yield from _refs(sub, resolver.in_subresource(sub))
