"""An MCP server's tool list as agentrt's tools: picked, named, scrubbed and bounded.

What a server lists reaches the model at every call and the database with every run: each
string is cut of what the app gave the server (``Secrets.scrub``), a tool whose name holds
such a value is left out, and so is one whose schema is past ``SCHEMA_BYTES`` (a server's
mistake, or one that would fill every prompt); a description past ``DESCRIPTION_CHARS`` is
cut. Each is said in the log.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import TYPE_CHECKING, cast

from agentrt.errors import ConfigError
from agentrt.logs import get_logger
from agentrt.tools.contract import ToolSpec
from agentrt.tools.credentials import Secrets
from agentrt.tools.mcp.contracts import effect_of, function_names, output_type
from agentrt.tools.overrides import ToolOverride, unknown_names
from agentrt.tools.toolset import Toolset, toolset_tool

if TYPE_CHECKING:
    from mcp.types import Tool

__all__ = ["DESCRIPTION_CHARS", "SCHEMA_BYTES", "Listing"]

logger = get_logger("agentrt.mcp")

DESCRIPTION_CHARS = 8_192
"""The most of a tool's description offered to the model; the rest is cut, said in the log."""

SCHEMA_BYTES = 256 * 1024
"""The largest inputSchema or outputSchema (as JSON) a tool may have to be offered."""


class Listing:
    """Mixed into MCPServer: its tool list made into specs."""

    _name: str
    _given: Secrets
    _prefix: str | None
    _overrides: dict[str, ToolOverride]
    _include: tuple[str, ...] | None
    _exclude: tuple[str, ...]
    _call_timeout: float | None
    _remote: dict[str, str]
    _specs: dict[str, tuple[str, ToolSpec]]

    def _specs_of(self, tools: list[Tool]) -> list[ToolSpec]:
        tools = [t for t in tools if not self._holds_secret(t.name) and self._bounded(t)]
        listed = [t.name for t in tools]
        for label, names in (("include", self._include or ()), ("exclude", self._exclude)):
            unknown = unknown_names(names, listed)
            if unknown:
                raise ConfigError(
                    f"MCP server {self._name!r}: {label} names tools it does not list: "
                    f"{unknown!r}; it lists {sorted(listed)!r}"
                )
        kept = [
            t
            for t in tools
            if (self._include is None or t.name in self._include) and t.name not in self._exclude
        ]
        offered = function_names(self._name, [t.name for t in kept], self._prefix)
        unknown = unknown_names(self._overrides, offered)
        if unknown:
            raise ConfigError(
                f"MCP server {self._name!r}: overrides name tools it does not offer: "
                f"{unknown!r}; it offers {sorted(offered)!r}"
            )
        by_remote = {t.name: t for t in kept}
        specs: dict[str, tuple[str, ToolSpec]] = {}
        for name, remote in offered.items():
            tool = by_remote[remote]
            # One spec object while its definition stays the same: a refresh then reports
            # only what changed.
            key = json.dumps(tool.model_dump(mode="json", by_alias=True), sort_keys=True)
            cached = self._specs.get(name)
            specs[name] = (
                cached if cached is not None and cached[0] == key else (key, self._spec(name, tool))
            )
        self._specs = specs
        self._remote = offered
        return [spec for _, spec in specs.values()]

    def _holds_secret(self, remote: str) -> bool:
        """True (said in the log) if a tool's name holds a secret the app gave the server:
        it cannot be offered or called without showing it."""
        held = self._given.held_in(remote)
        if held:
            logger.warning(
                "MCP server %r lists a tool whose name holds the value of %s, which the app "
                "gave it; the tool is left out",
                self._name,
                " and ".join(held),
            )
        return bool(held)

    def _bounded(self, tool: Tool) -> bool:
        """True if the tool's schemas are within SCHEMA_BYTES; else False, said in the log."""
        for label, schema in (
            ("inputSchema", tool.input_schema),
            ("outputSchema", tool.output_schema),
        ):
            size = len(json.dumps(schema, default=str).encode()) if schema is not None else 0
            if size > SCHEMA_BYTES:
                logger.warning(
                    "MCP server %r lists tool %r with an %s of %d bytes, past the %d agentrt "
                    "offers a model; the tool is left out",
                    self._name,
                    tool.name,
                    label,
                    size,
                    SCHEMA_BYTES,
                )
                return False
        return True

    def _spec(self, name: str, tool: Tool) -> ToolSpec:
        effect, idempotent = effect_of(tool.annotations)
        # Offered to the model, stored, quoted by verify: every string cut as an answer's is.
        scrub = self._given.scrub
        description = scrub(
            tool.description
            or (tool.annotations.title if tool.annotations else None)
            or tool.title
            or tool.name
        )
        if len(description) > DESCRIPTION_CHARS:
            logger.warning(
                "MCP server %r: the description of tool %r is %d characters; the first %d "
                "are offered to the model",
                self._name,
                tool.name,
                len(description),
                DESCRIPTION_CHARS,
            )
            description = description[:DESCRIPTION_CHARS]
        output = (
            output_type(self._name, tool.name, scrub(tool.output_schema))
            if tool.output_schema is not None
            else None
        )
        try:
            spec = toolset_tool(
                cast("Toolset", self),  # the MCPServer this is mixed into
                name=name,
                description=description,
                schema=scrub(tool.input_schema),
                effect=effect,
                idempotent=idempotent,
                output=output,
                timeout=self._call_timeout,
            )
        except ConfigError as exc:
            raise ConfigError(
                f"MCP server {self._name!r}, tool {tool.name!r}: {exc}; leave it out with "
                f"exclude=[{tool.name!r}]"
            ) from None
        spec = replace(spec, source="mcp", server=self._name)
        override = self._overrides.get(name)
        return override.apply(spec) if override is not None else spec
