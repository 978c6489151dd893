"""A JSON Schema's references, each resolved before the schema is used.

jsonschema's meta-schema check does not follow ``$ref``: a schema whose ``$ref`` points
nowhere (``#/$defs/order`` with no ``$defs``, a name misspelt, a URL no one fetches)
passes it, and the validator raises at the first value it checks, an error that is no
ValidationError. A tool with such an input schema would be made, offered, and then fail
every run that calls it. Each reference is looked up here, from where it stands (under
the nearest ``$id``), as the validator would look it up.

Nothing is fetched, ever: a reference resolves within its schema (or to a JSON Schema
meta-schema) or not at all. jsonschema's default registry would fetch any URL a ``$ref``
names (with no timeout): an MCP server's tool list could make the runtime request internal
addresses, or hang it. Here, and in every validator the tools make (``local_registry``),
the registry is one that cannot retrieve: a ``$ref`` to another document is refused when
the tool is made.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jsonschema.protocols import Validator
    from referencing import Registry

__all__ = ["REFERENCE_KEYWORDS", "local_registry", "unresolved_ref"]

REFERENCE_KEYWORDS = ("$ref", "$dynamicRef")
"""The keywords whose value is a reference looked up as it stands ($recursiveRef is "#",
the schema's own root, always there)."""


@functools.cache
def local_registry() -> Registry[Any]:
    """The registry a validator looks references up in: the JSON Schema meta-schemas (the
    schema itself is added as its root), and no way to retrieve anything else."""
    from jsonschema_specifications import REGISTRY  # type: ignore[import-untyped]
    from referencing import Registry
    from referencing.exceptions import NoSuchResource

    def refuse(uri: str) -> Any:
        # The point of this registry: spelt out, not left to the library's default.
        raise NoSuchResource(uri)

    meta_schemas: Registry[Any] = REGISTRY
    return meta_schemas.combine(Registry(retrieve=refuse))  # type: ignore[call-arg]


def unresolved_ref(cls: type[Validator], schema: Mapping[str, Any]) -> tuple[str, str] | None:
    """The first reference of ``schema`` that resolves to nothing, and why in words, or None
    if each resolves.

    ``cls`` is the validator class the schema is checked with: its dialect says which
    keywords hold subschemas and where ``$id`` moves the base.
    """
    import referencing
    import referencing.jsonschema
    from referencing.exceptions import Unresolvable

    # ID_OF and the resolver are jsonschema's (4.18+), not yet its protocol's.
    validator: Any = cls
    dialect = validator.ID_OF(cls.META_SCHEMA) or "urn:unknown-dialect"
    specification = referencing.jsonschema.specification_with(
        dialect_id=dialect, default=referencing.Specification.OPAQUE
    )
    # The resolver of the validator the tools make: the same registry, which fetches nothing.
    root = validator(schema, registry=local_registry())._resolver
    # A stack, not recursion: a schema nested deeper than Python's limit is walked too.
    pending: list[tuple[Any, Any]] = [(specification.create_resource(schema), root)]
    walked: set[int] = set()
    while pending:
        resource, outer = pending.pop()
        contents = resource.contents
        if id(contents) in walked:
            continue
        walked.add(id(contents))
        here = outer.in_subresource(resource)
        if isinstance(contents, Mapping):
            for keyword in REFERENCE_KEYWORDS:
                ref = contents.get(keyword)
                if not isinstance(ref, str):
                    continue
                try:
                    found = here.lookup(ref)
                except Unresolvable as exc:
                    # Unresolvable itself, no subclass: no document has that URI.
                    if type(exc) is Unresolvable:
                        return ref, "it names another document, and nothing is fetched"
                    return ref, "no such place in the schema, and nothing is fetched"
                # What it points at is walked too: "#/x" may name a place no keyword makes a
                # subschema (under an unknown keyword), whose own $ref the validator follows.
                if isinstance(found.contents, Mapping):
                    # A meta-schema is of its own dialect ($schema: a text, if it is one).
                    named = found.contents.get("$schema")
                    of = (
                        referencing.jsonschema.specification_with(
                            dialect_id=named, default=specification
                        )
                        if isinstance(named, str)
                        else specification
                    )
                    pending.append((of.create_resource(found.contents), found.resolver))
        pending.extend((sub, here) for sub in reversed(list(resource.subresources())))
    return None
