"""Model prices: what a model charges, the table agentrt knows, and finding a model's entry.

A run's spend is counted in money at these prices (agentrt.budget checks it against the
run's limits); a runtime takes its own table over the defaults (``price_table``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from agentrt.errors import ConfigError
from agentrt.model_names import by_model_name

__all__ = ["DEFAULT_PRICES", "ModelPrice", "find_price", "price_table"]


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelPrice:
    """What a model charges, in US dollars per million tokens."""

    input_per_mtok: float
    """USD per million input (prompt) tokens."""
    output_per_mtok: float
    """USD per million output (completion) tokens."""

    def __post_init__(self) -> None:
        for name in ("input_per_mtok", "output_per_mtok"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value < 0
            ):
                raise ConfigError(f"ModelPrice.{name} must be a number >= 0, got {value!r}")

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """USD for one call with these token counts."""
        return (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1e6


def _p(input_per_mtok: float, output_per_mtok: float) -> ModelPrice:
    return ModelPrice(input_per_mtok=input_per_mtok, output_per_mtok=output_per_mtok)


DEFAULT_PRICES: Mapping[str, ModelPrice] = {
    # OpenAI, standard tier list prices.
    "gpt-5": _p(1.25, 10.0),
    "gpt-5-mini": _p(0.25, 2.0),
    "gpt-5-nano": _p(0.05, 0.40),
    "gpt-4.1": _p(2.0, 8.0),
    "gpt-4.1-mini": _p(0.40, 1.60),
    "gpt-4.1-nano": _p(0.10, 0.40),
    "gpt-4o": _p(2.50, 10.0),
    "gpt-4o-mini": _p(0.15, 0.60),
    "o3": _p(2.0, 8.0),
    "o3-mini": _p(1.10, 4.40),
    "o4-mini": _p(1.10, 4.40),
    # Anthropic.
    "claude-opus-4-5": _p(5.0, 25.0),
    "claude-opus-4-1": _p(15.0, 75.0),
    "claude-opus-4": _p(15.0, 75.0),
    "claude-sonnet-4-5": _p(3.0, 15.0),
    "claude-sonnet-4": _p(3.0, 15.0),
    "claude-3-7-sonnet": _p(3.0, 15.0),
    "claude-haiku-4-5": _p(1.0, 5.0),
    "claude-3-5-haiku": _p(0.80, 4.0),
    # Google (prompts up to 200k tokens).
    "gemini-2.5-pro": _p(1.25, 10.0),
    "gemini-2.5-flash": _p(0.30, 2.50),
    "gemini-2.5-flash-lite": _p(0.10, 0.40),
    "gemini-2.0-flash": _p(0.10, 0.40),
    "gemini-2.0-flash-lite": _p(0.075, 0.30),
}
"""List prices (USD per million tokens) of common models, by name or name prefix.

Providers change prices: pass your own with AgentRuntime(prices={...}), which is layered
over this table.
"""


def price_table(
    overrides: Mapping[str, ModelPrice | tuple[float, float]] | None = None,
) -> dict[str, ModelPrice]:
    """DEFAULT_PRICES with ``overrides`` on top; a tuple is (input, output) USD per million."""
    table = dict(DEFAULT_PRICES)
    for name, given in (overrides or {}).items():
        if not isinstance(name, str) or not name:
            raise ConfigError(f"a price is keyed by a model name, got {name!r}")
        price = _p(*given) if isinstance(given, tuple) and len(given) == 2 else given
        if not isinstance(price, ModelPrice):
            raise ConfigError(
                f"price of {name!r} must be a ModelPrice or (input, output) USD per million "
                f"tokens, got {given!r}"
            )
        table[name] = price
    return table


def find_price(model_name: str | None, table: Mapping[str, ModelPrice]) -> ModelPrice | None:
    """The price of ``model_name``: an exact entry, else the longest entry it starts with.

    Dated snapshots ("gpt-4o-2024-08-06", "claude-sonnet-4-5-20250929") find their family,
    and a "provider:" prefix is ignored, as is a router's "vendor/" ("openai/gpt-4o-mini",
    as OpenRouter names models, is OpenAI's gpt-4o-mini).
    """
    return by_model_name(model_name, table)
