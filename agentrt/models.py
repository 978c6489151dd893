"""Model resolution: a BaseChatModel as given, or a "provider:name" string via langchain."""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel

from agentrt.errors import ConfigError

__all__ = ["resolve_model"]


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
