"""Tests for agentrt.models.resolve_model."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from agentrt.errors import ConfigError
from agentrt.models import resolve_model
from agentrt.testing import ScriptedChatModel


class TextOnlyModel(BaseChatModel):
    """A chat model that cannot call tools: it does not implement bind_tools."""

    @property
    def _llm_type(self) -> str:
        return "text-only"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, **kwargs: Any) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content="hi"))])


def fake_langchain(monkeypatch: pytest.MonkeyPatch, init_chat_model: Any) -> None:
    package = types.ModuleType("langchain")
    package.__path__ = []
    chat_models = types.ModuleType("langchain.chat_models")
    chat_models.init_chat_model = init_chat_model  # type: ignore[attr-defined]
    package.chat_models = chat_models  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "langchain", package)
    monkeypatch.setitem(sys.modules, "langchain.chat_models", chat_models)


def test_a_chat_model_is_returned_as_is() -> None:
    model = ScriptedChatModel(["hello"])
    assert resolve_model(model) is model


def test_a_model_without_tool_calling_is_refused() -> None:
    model = TextOnlyModel()
    with pytest.raises(ConfigError) as info:
        resolve_model(model)
    assert str(info.value) == (
        f"model {model!r} does not support tool calling (its class does not implement "
        "bind_tools); agentrt plans with tool calls, so pick a model that does"
    )


@pytest.mark.parametrize("model", [42, None, object, b"openai:gpt-4.1"])
def test_a_non_model_is_refused(model: Any) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_model(model)
    assert str(info.value) == (
        f"model must be a 'provider:name' string or a langchain BaseChatModel, got {model!r}"
    )


@pytest.mark.parametrize("model", ["gpt-4", ":gpt-4", "openai:", ""])
def test_a_string_without_provider_and_name_is_refused(
    monkeypatch: pytest.MonkeyPatch, model: str
) -> None:
    calls: list[str] = []
    fake_langchain(monkeypatch, lambda m, **kw: calls.append(m))
    with pytest.raises(ConfigError) as info:
        resolve_model(model)
    assert str(info.value) == (
        f"model {model!r} is not of the form 'provider:name' (e.g. 'openai:gpt-4.1'); "
        "pass a string of that form or a langchain BaseChatModel"
    )
    assert calls == []  # refused before anything is loaded


def test_a_provider_string_without_langchain_names_the_models_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "langchain", None)
    monkeypatch.setitem(sys.modules, "langchain.chat_models", None)
    with pytest.raises(ConfigError) as info:
        resolve_model("openai:gpt-4.1")
    assert str(info.value) == (
        "model 'openai:gpt-4.1' is a 'provider:name' string, which needs the 'models' extra: "
        "pip install 'agentrt[models]' plus the provider's package (e.g. langchain-openai); "
        "or pass a BaseChatModel instance"
    )


def test_a_provider_string_resolves_through_init_chat_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = ScriptedChatModel(["hello"])
    seen: list[tuple[str, dict[str, Any]]] = []

    def init_chat_model(name: str, **kwargs: Any) -> BaseChatModel:
        seen.append((name, kwargs))
        return model

    fake_langchain(monkeypatch, init_chat_model)
    assert resolve_model("openai:gpt-4.1", temperature=0) is model
    assert seen == [("openai:gpt-4.1", {"temperature": 0})]


@pytest.mark.parametrize("error", [ImportError("no langchain-acme"), ValueError("bad provider")])
def test_init_chat_model_failures_become_config_errors(
    monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    def init_chat_model(name: str, **kwargs: Any) -> BaseChatModel:
        raise error

    fake_langchain(monkeypatch, init_chat_model)
    with pytest.raises(ConfigError) as info:
        resolve_model("acme:large")
    assert str(info.value) == f"cannot load model 'acme:large': {error}"


def test_a_resolved_model_without_tool_calling_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_langchain(monkeypatch, lambda name, **kw: TextOnlyModel())
    with pytest.raises(ConfigError, match="does not support tool calling"):
        resolve_model("acme:text")
