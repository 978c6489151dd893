"""The registry's part in toolsets whose tools change: overrides that hold across listings,
a changed list picked up as a plan is made, and a removed tool still found for the runs
that planned with it. A toolset of the test's own stands in for a server."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from agentrt import ConfigError, Effect, Principal, tool
from agentrt.tools import ToolContext, ToolOverride, ToolRegistry, ToolSpec, toolset_tool

SCHEMA = {"type": "object", "properties": {"text": {"type": "string"}}}


class Shelf:
    """A remote-like toolset: lists what ``names`` holds, says when that changed."""

    kind = "MCP server"

    def __init__(self, *names: str) -> None:
        self.names = list(names)
        self.changed = False
        self.listings = 0
        self.broken = False
        self._specs: dict[str, ToolSpec] = {}

    @property
    def name(self) -> str:
        return "shelf"

    async def list_tools(self) -> list[ToolSpec]:
        if self.broken:
            raise ConnectionError("the shelf is down")
        self.listings += 1
        self.changed = False
        for n in self.names:
            if n not in self._specs:
                spec = toolset_tool(self, name=n, description=n, schema=SCHEMA)
                self._specs[n] = spec
        return [self._specs[n] for n in self.names]

    async def call(self, spec: ToolSpec, args: dict[str, Any], ctx: ToolContext) -> Any:
        return spec.name


def test_overrides_replace_what_tools_say_and_hold_across_listings() -> None:
    shelf = Shelf("put", "peek")
    registry = ToolRegistry([shelf])
    registry.start()
    registry.override({"peek": {"effect": "read", "scopes": ["shelf:read"]}})
    peek = registry.get("peek")
    assert peek is not None
    assert (peek.effect, peek.scopes) == (Effect.READ, ("shelf:read",))
    assert registry.refresh().replaced == ()  # the same listing: the same objects
    assert registry.get("peek") is peek
    registry.override(None)
    assert registry.get("peek").effect is Effect.WRITE  # type: ignore[union-attr]
    with pytest.raises(ConfigError) as caught:
        registry.override({"poke": ToolOverride(effect="read")})
    assert str(caught.value) == (
        "overrides name tools this runtime does not have: ['poke']; its tools are ['peek', 'put']"
    )
    with pytest.raises(ConfigError, match="timeout must be a number of seconds > 0"):
        registry.override({"put": {"timeout": -1}})
    assert registry.get("put").timeout is None  # type: ignore[union-attr]


def test_an_override_cannot_take_a_prepare_step_from_an_irreversible_tool() -> None:
    def preview(amount: float) -> str:
        return f"would pay {amount}"

    @tool(effect="irreversible", prepare=preview)
    def pay(amount: float) -> str:
        """Pay."""
        return "paid"

    registry = ToolRegistry([pay])
    with pytest.raises(ConfigError, match="an override cannot make it 'write'"):
        registry.override({"pay": {"effect": "write"}})


def test_a_changed_list_is_picked_up_as_a_plan_is_made(caplog: pytest.LogCaptureFixture) -> None:
    shelf = Shelf("put", "peek")
    registry = ToolRegistry([shelf])
    registry.start()
    planned = registry.get("peek")
    shelf.names = ["put", "shout"]
    assert [t.name for t in registry.offered_to(Principal("p"))] == ["put", "peek"]  # unsaid

    shelf.changed = True
    assert [t.name for t in registry.offered_to(Principal("p"))] == ["put", "shout"]
    assert registry.get("peek") is planned  # a run that planned with it still finds it
    assert "peek" not in registry.names()

    shelf.names, shelf.changed, shelf.broken = ["put"], True, True
    caplog.set_level(logging.WARNING, logger="agentrt.tools")
    assert [t.name for t in registry.offered_to(Principal("p"))] == ["put", "shout"]
    assert "listing them again failed: the shelf is down" in caplog.text
    assert shelf.listings == 2
    registry.close()
