"""Model resolution: a BaseChatModel as given, or a "provider:name" string via langchain."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel, BaseLanguageModel
from langchain_core.messages import AIMessage, BaseMessage

from agentrt.errors import ConfigError
from agentrt.logs import get_logger

__all__ = [
    "CAP_FIELDS",
    "approximate_tokens",
    "count_prompt_tokens",
    "model_name_of",
    "output_cap",
    "output_cap_field",
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


def approximate_tokens(messages: Sequence[BaseMessage], tools: Sequence[Any] = ()) -> int:
    """A token estimate for models that cannot count: about four characters a token, plus
    four tokens a message for the role and separators, plus the tool schemas as JSON."""
    chars = 0
    for message in messages:
        content = message.content
        chars += len(content) if isinstance(content, str) else len(json.dumps(content))
        if isinstance(message, AIMessage) and message.tool_calls:
            chars += len(json.dumps(message.tool_calls, sort_keys=True, default=str))
    if tools:
        chars += len(json.dumps(list(tools), sort_keys=True, default=str))
    return math.ceil(chars / 4) + 4 * len(messages)


def count_prompt_tokens(
    model: BaseChatModel, messages: Sequence[BaseMessage], tools: Sequence[Any] = ()
) -> int:
    """The prompt's token count: the model's own counter if its class has one, else
    approximate_tokens (also when the counter fails, e.g. an unknown encoding)."""
    method = type(model).get_num_tokens_from_messages
    if method is not BaseLanguageModel.get_num_tokens_from_messages:
        try:
            return int(model.get_num_tokens_from_messages(list(messages), tools=list(tools)))
        except Exception:  # an estimate must never stop a run; the approximation stands in
            logger.warning("%s could not count tokens; approximating", type(model).__name__)
    return approximate_tokens(messages, tools)


def was_cut(response: AIMessage) -> bool:
    """True if the provider says the answer stopped at the output cap."""
    meta = response.response_metadata
    return bool({meta.get("finish_reason"), meta.get("stop_reason")} & _CUT_REASONS)
