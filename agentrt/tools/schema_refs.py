"""A JSON Schema's references, each resolved before the schema is used.

jsonschema's meta-schema check does not follow ``$ref``: a schema whose ``$ref`` points
nowhere (``#/$defs/order`` with no ``$defs``, a name misspelt, a URL no one fetches)
passes it, and the validator raises at the first value it checks, an error that is no
ValidationError. A tool with such an input schema would be made, offered, and then fail
every run that calls it. Each reference is looked up here, from where it stands (under
the nearest ``$id``), as the validator would look it up; nothing is fetched, as the
validator fetches nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

__all__ = ["REFERENCE_KEYWORDS", "unresolved_ref"]

REFERENCE_KEYWORDS = ("$ref", "$dynamicRef")
"""The keywords whose value is a reference looked up as it stands ($recursiveRef is "#",
the schema's own root, always there)."""


def unresolved_ref(cls: type[Validator], schema: Mapping[str, Any]) -> str | None:
    """The first reference of ``schema`` that resolves to nothing, or None if each does.

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
    # The validator's own resolver: the same registry (the meta-schemas, nothing fetched).
    root = validator(schema)._resolver
    # A stack, not recursion: a schema nested deeper than Python's limit is walked too.
    pending: list[tuple[Any, Any]] = [(specification.create_resource(schema), root)]
    while pending:
        resource, outer = pending.pop()
        here = outer.in_subresource(resource)
        contents = resource.contents
        if isinstance(contents, Mapping):
            for keyword in REFERENCE_KEYWORDS:
                ref = contents.get(keyword)
                if not isinstance(ref, str):
                    continue
                try:
                    here.lookup(ref)
                except Unresolvable:
                    return ref
        pending.extend((sub, here) for sub in reversed(list(resource.subresources())))
    return None
