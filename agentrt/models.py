"""Model resolution: a BaseChatModel as given, or a "provider:name" string via langchain."""

from __future__ import annotations

import contextlib
import json
import math
import warnings
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel, BaseLanguageModel
from langchain_core.messages import AIMessage, BaseMessage
from langgraph.types import RetryPolicy

from agentrt.budget import ModelPrice, find_price
from agentrt.errors import ConfigError
from agentrt.faults import retryable_model_error
from agentrt.logs import get_logger
from agentrt.model_names import by_model_name

__all__ = [
    "CAP_FIELDS",
    "MAX_OUTPUT_TOKENS",
    "approximate_tokens",
    "count_prompt_tokens",
    "default_model_retry",
    "estimated_usage",
    "model_name_of",
    "output_cap",
    "output_cap_field",
    "output_limit",
    "priced",
    "reporting_usage",
    "resolve_model",
    "was_cut",
]

logger = get_logger()

CAP_FIELDS = ("max_tokens", "max_completion_tokens", "max_output_tokens", "num_predict")
"""Names chat model classes give their output cap (OpenAI, Anthropic, Google, Ollama...)."""

_CUT_REASONS = frozenset({"length", "max_tokens", "MAX_TOKENS"})


def resolve_model(model: str | BaseChatModel, **kwargs: Any) -> BaseChatModel:
    """Return a chat model that can call tools, or raise ConfigError saying what to install."""
    if isinstance(model, BaseChatModel):
        chat = model
    elif isinstance(model, str):
        provider, sep, name = model.partition(":")
        if not sep or not provider or not name:
            raise ConfigError(
                f"model {model!r} is not of the form 'provider:name' (e.g. 'openai:gpt-4.1'); "
                "pass a string of that form or a langchain BaseChatModel"
            )
        try:
            from langchain.chat_models import init_chat_model  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            raise ConfigError(
                f"model {model!r} is a 'provider:name' string, which needs the 'models' extra: "
                "pip install 'agentrt[models]' plus the provider's package "
                f"(e.g. langchain-{provider}); or pass a BaseChatModel instance"
            ) from None
        try:
            chat = init_chat_model(model, **kwargs)
        except (ImportError, ValueError) as exc:
            raise ConfigError(f"cannot load model {model!r}: {exc}") from None
    else:
        raise ConfigError(
            f"model must be a 'provider:name' string or a langchain BaseChatModel, got {model!r}"
        )
    if type(chat).bind_tools is BaseChatModel.bind_tools:
        raise ConfigError(
            f"model {chat!r} does not support tool calling (its class does not implement "
            "bind_tools); agentrt plans with tool calls, so pick a model that does"
        )
    return chat


def model_name_of(model: BaseChatModel) -> str | None:
    """The model's name as its provider knows it (e.g. "gpt-4o"), used to look up its price."""
    for attr in ("model_name", "model", "model_id"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    return None


def output_cap_field(model: BaseChatModel) -> str | None:
    """The field that caps the model's output, if its class has one agentrt can set per call."""
    declared = type(model).model_fields
    return next((name for name in CAP_FIELDS if name in declared), None)


def output_cap(model: BaseChatModel) -> int | None:
    """The output cap the model is configured with, or None if it has none."""
    field = output_cap_field(model)
    value = getattr(model, field, None) if field else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


MAX_OUTPUT_TOKENS: dict[str, int] = {
    # OpenAI.
    "gpt-5": 128_000,
    "gpt-4.1": 32_768,
    "gpt-4o": 16_384,
    "gpt-4o-2024-05-13": 4_096,
    "gpt-4o-mini": 16_384,
    "gpt-4-turbo": 4_096,
    "gpt-4": 8_192,
    "gpt-3.5-turbo": 4_096,
    "o1": 100_000,
    "o1-mini": 65_536,
    "o3": 100_000,
    "o3-mini": 100_000,
    "o4-mini": 100_000,
    # Anthropic.
    "claude-opus-4-5": 64_000,
    "claude-opus-4-1": 32_000,
    "claude-opus-4": 32_000,
    "claude-sonnet-4-5": 64_000,
    "claude-sonnet-4": 64_000,
    "claude-3-7-sonnet": 64_000,
    "claude-haiku-4-5": 64_000,
    "claude-3-5-sonnet": 8_192,
    "claude-3-5-haiku": 8_192,
    "claude-3-opus": 4_096,
    "claude-3-haiku": 4_096,
    # Google.
    "gemini-2.5-pro": 65_536,
    "gemini-2.5-flash": 65_536,
    "gemini-2.0-flash": 8_192,
    "gemini-1.5-pro": 8_192,
    "gemini-1.5-flash": 8_192,
}
"""The largest answer (output tokens) of common models, by name or name prefix.

A provider refuses a call whose output cap is past its model's largest ("max_tokens is
too large"), so a budget's cap is sent only below it; above it the model's own limit
already keeps the answer within the budget. Set the model's own cap (``max_tokens=``) for
a model not listed here.
"""


def output_limit(model: BaseChatModel) -> int | None:
    """The most the model answers in one call: its configured cap, else the largest answer
    of its model family (MAX_OUTPUT_TOKENS); None if neither is known."""
    return output_cap(model) or by_model_name(model_name_of(model), MAX_OUTPUT_TOKENS)


def approximate_tokens(messages: Sequence[BaseMessage], tools: Sequence[Any] = ()) -> int:
    """A token estimate for models that cannot count: the text (each message's content,
    its tool calls and the tool schemas as JSON) at _text_units' rate, plus four tokens a
    message for the role and separators."""
    units = 0
    for message in messages:
        content = message.content
        units += _text_units(content if isinstance(content, str) else _json(content))
        if isinstance(message, AIMessage) and message.tool_calls:
            units += _text_units(_json(message.tool_calls))
    if tools:
        units += _text_units(_json(list(tools)))
    return math.ceil(units / 4) + 4 * len(messages)


_ASCII = bytes(range(128))


def _text_units(text: str) -> int:
    """Quarter tokens ``text`` is counted as: an ASCII character one (English runs about
    four characters a token), any other character two for each of its UTF-8 bytes.

    Tokenizers learnt mostly on English give other scripts far fewer characters a token: a
    CJK character (three bytes, 1.5 tokens here) is about one to one and a half in
    OpenAI's cl100k, less in o200k; a Cyrillic or Greek one (two bytes, one token here)
    about half. Counting by characters alone took a Chinese prompt for a quarter of its
    size and sent it past its budget; this counts high instead, as a pre-flight must (too
    high stops a run early, too low overruns its limit)."""
    encoded = text.encode("utf-8", "surrogatepass")  # a lone surrogate is three bytes
    ascii_chars = len(encoded) - len(encoded.translate(None, _ASCII))
    return ascii_chars + 2 * (len(encoded) - ascii_chars)


def _json(value: Any) -> str:
    # As written, not escaped: a character outside ASCII counts by its own bytes.
    return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)


def count_prompt_tokens(
    model: BaseChatModel, messages: Sequence[BaseMessage], tools: Sequence[Any] = ()
) -> int:
    """The prompt's token count, the tool schemas included: the model's own counter if its
    class has one, else approximate_tokens (also when the counter fails, e.g. an unknown
    encoding offline). A counter that says it left the schemas out (ChatOpenAI's) has them
    approximated on top: they are sent with every call, and a budget counts them."""
    method = type(model).get_num_tokens_from_messages
    if method is not BaseLanguageModel.get_num_tokens_from_messages:
        counted, said = _counted(model, messages, tools)
        if said:
            # e.g. "counting tokens in tool schemas is not yet supported": once, not per call.
            _once(model, "warned", "%s counting tokens: %s", type(model).__name__, said[0].message)
        if counted is not None:
            if tools and said and _left_out_tools(model, messages, counted):
                counted += approximate_tokens([], tools)
            return counted
        _once(
            model, "approximating", "%s could not count tokens; approximating", type(model).__name__
        )
    return approximate_tokens(messages, tools)


def _counted(
    model: BaseChatModel, messages: Sequence[BaseMessage], tools: Sequence[Any] | None
) -> tuple[int | None, list[warnings.WarningMessage]]:
    """The model's own count (None if it failed) and what it warned while counting."""
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        try:
            if tools is None:
                return int(model.get_num_tokens_from_messages(list(messages))), said
            return int(model.get_num_tokens_from_messages(list(messages), tools=list(tools))), said
        except Exception:  # an estimate must never stop a run; the approximation stands in
            return None, said


def _left_out_tools(model: BaseChatModel, messages: Sequence[BaseMessage], counted: int) -> bool:
    """True if a counter that warned while handed the tools counted the messages alone:
    its count without them is no smaller (or cannot be had: the schemas are added, as
    counting low overruns a budget and counting high only stops a run early)."""
    bare, _ = _counted(model, messages, None)
    return bare is None or bare >= counted


# What was already said about a model, by its id: a runtime's model speaks once, not at
# every call. (Chat models are not hashable; the entry goes when the model does.)
_SAID: dict[int, set[str]] = {}


def _once(model: Any, what: str, message: str, *args: Any) -> None:
    key = id(model)
    if key not in _SAID:
        _SAID[key] = set()
        # An object without weak references keeps its entry: it is one small set.
        with contextlib.suppress(TypeError):
            weakref.finalize(model, _SAID.pop, key, None)
    if what not in _SAID[key]:
        _SAID[key].add(what)
        logger.warning(message, *args)


def estimated_usage(
    model: BaseChatModel, messages: Sequence[BaseMessage], tools: Sequence[Any], answer: AIMessage
) -> tuple[int, int]:
    """Input and output tokens estimated for an answer that reported none (a stream whose
    client asked for no usage): never a silent zero against a token or cost limit."""
    _once(
        model,
        "no-usage",
        "%s reported no token usage; agentrt estimates it (usage['estimated_tokens'])",
        type(model).__name__,
    )
    output = approximate_tokens([answer]) - 4  # the answer's own tokens, not a message's
    return approximate_tokens(messages, tools), max(1, output)


def reporting_usage(model: BaseChatModel) -> BaseChatModel:
    """``model`` set to report token usage when it streams, where its class can
    (``stream_usage``, as OpenAI's): a copy, the caller's model is left as it was."""
    if (
        "stream_usage" in type(model).model_fields
        and getattr(model, "stream_usage", None) is not True
    ):
        return model.model_copy(update={"stream_usage": True})
    return model


def default_model_retry(model: BaseChatModel) -> RetryPolicy:
    """How the planner's call is retried within its step: only errors that may pass (a rate
    limit, a 5xx, a dropped connection), never a bad request; and not at all when the
    model's client retries those itself (OpenAI's and Anthropic's do: retrying on top
    multiplies the requests a rate limit sees). Past the retries the run waits to retry."""
    own = "max_retries" in type(model).model_fields and getattr(model, "max_retries", 1) != 0
    return RetryPolicy(max_attempts=1 if own else 3, retry_on=retryable_model_error)


def was_cut(response: AIMessage) -> bool:
    """True if the provider says the answer stopped at the output cap."""
    meta = response.response_metadata
    return bool({meta.get("finish_reason"), meta.get("stop_reason")} & _CUT_REASONS)


def priced(model_name: str | None, table: Mapping[str, ModelPrice]) -> ModelPrice | None:
    """The runtime's model's price in ``table`` (find_price), said in the log when there is
    none: its tokens are counted, never its cost, and a cost limit is refused."""
    price = find_price(model_name, table)
    if price is None:
        logger.info(
            "no price for model %r: usage counts its tokens but no cost, and a "
            "max_cost_usd limit is refused; pass prices={%r: (input, output)} in USD "
            "per million tokens",
            model_name,
            model_name,
        )
    return price
