"""The replaying chat model: a run's recorded answers, given again for the requests they
answered, with the run's model name, output cap and token counts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Protocol

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, messages_from_dict
from pydantic import SkipValidation

from agentrt.digests import request_digest
from agentrt.errors import ConfigError
from agentrt.models import count_prompt_tokens, output_cap
from agentrt.nodes.deps import RunDeps
from agentrt.records import ModelCall
from agentrt.store.protocols import Store
from agentrt.testing.scripted import ScriptedChatModel

__all__ = ["Recorded", "ReplayChatModel", "recorded_model", "replay_model"]


class Recorded(Protocol):
    """What the replaying model reads of the runtime whose run it answers."""

    store: Store
    model_name: str | None
    deps: RunDeps


class ReplayChatModel(ScriptedChatModel):
    """The recorded answers, in order; it counts a prompt's tokens as the run's own model
    did for the same request (recorded with each call), so the pre-flight sets the same
    caps and stops where the run stopped. A request never recorded is counted as the
    scripted model counts."""

    prompt_counts: dict[str, int] = {}
    """Prompt tokens by request digest, as the run's pre-flight counted them."""

    counter: Annotated[BaseChatModel | None, SkipValidation] = None
    """The run's own model, to count what no recording has (a call the budget refused)."""

    def get_num_tokens_from_messages(
        self, messages: list[BaseMessage], tools: Sequence[Any] | None = None
    ) -> int:
        counted = self.prompt_counts.get(request_digest(messages))
        if counted is not None:
            return counted
        if self.counter is not None:
            return count_prompt_tokens(self.counter, messages, tools or ())
        return super().get_num_tokens_from_messages(messages, tools)


def replay_model(calls: list[ModelCall], asked: dict[int, str], rt: Recorded) -> ReplayChatModel:
    """The model of a replay: ``calls``' answers; ``asked`` gets, by revision, the digest
    of the request each answer was given for (the report compares them)."""
    # A run that summarized asked with fewer turns in its messages than it had taken (and
    # its summaries with none), so an answer is found by the request it answered first,
    # and by its place in the order only for a request the run never made.
    by_request = {c.request_digest: c for c in calls}

    def turn(call: ModelCall) -> Any:
        def answer(messages: list[BaseMessage]) -> AIMessage:
            digest = request_digest(messages)
            chosen = by_request.get(digest, call)
            asked[chosen.revision] = digest
            message = messages_from_dict([chosen.response])[0]
            assert isinstance(message, AIMessage)
            return message

        return answer

    # Same name and output cap as the run's model, so prices and budget pre-flight match.
    return ReplayChatModel(
        steps=tuple(turn(c) for c in calls),
        model_name=rt.model_name or "replay",
        max_tokens=output_cap(rt.deps.model),
        prompt_counts={
            c.request_digest: c.prompt_tokens for c in calls if c.prompt_tokens is not None
        },
        counter=rt.deps.model,
    )


def recorded_model(rt: Recorded, thread_id: str) -> BaseChatModel:
    """A chat model that gives run ``thread_id``'s recorded answers, turn by turn, with the
    run's model name and output cap: the run's model as it answered, to run again live."""
    calls = rt.store.model_calls(thread_id)
    if not calls:
        raise ConfigError(
            f"run {thread_id!r} has no recorded model calls in {rt.store.location!r}; "
            "give a run that asked its model at least once"
        )
    model: BaseChatModel = replay_model(calls, {}, rt)
    return model
