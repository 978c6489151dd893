"""The open spans a node records its outcome on: a model call, a tool call, a policy check.

Each handle sets attributes through ``RunTracing.set``, the one place they are set.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Protocol

from opentelemetry.trace import Span

from agentrt.tracing import attributes as A
from agentrt.tracing.metrics import RunMetrics

__all__ = ["ModelCallSpan", "PolicySpan", "ToolCallSpan"]


class Tracing(Protocol):
    """What a handle needs of RunTracing (agentrt.tracing.spans), which hands them out."""

    capture_content: bool
    metrics: RunMetrics

    def set(
        self,
        span: Span,
        attrs: Mapping[str, Any],
        *,
        sensitive: Collection[str] = (),
        known: Collection[Any] = (),
    ) -> None: ...

    def conversation(
        self, messages: list[Any], *, output: bool = False, known: Collection[Any] = ()
    ) -> list[dict[str, Any]]: ...


class _Handle:
    def __init__(
        self,
        tracing: Tracing,
        span: Span,
        sensitive: Collection[str] = (),
        known: Collection[Any] = (),
    ) -> None:
        self.tracing = tracing
        self.span = span
        self.sensitive = sensitive
        self.known = known

    def content(self, key: str, value: Any, *, known: Collection[Any] = ()) -> None:
        """Put content on the span (only with capture on, always as shown; ``known``:
        secret values to mask it with besides the call's own)."""
        self.tracing.set(
            self.span, {key: value}, sensitive=self.sensitive, known=[*self.known, *known]
        )


class ModelCallSpan(_Handle):
    """The open llm.call span; record the model's response on it."""

    asked: Collection[Any] = ()
    """The secret values the conversation the model was asked holds (set with capture on):
    its answer is shown with them."""
    answer: Any = None
    """The model's answer, once recorded (``response``)."""

    def response(self, message: Any, *, cost: tuple[float, float] | None = None) -> None:
        """The answer: its usage, model, id and finish reason; with capture on, the answer
        itself as an output message. ``cost``: what the call cost in USD by agentrt's own
        price table, for the prompt and the completion (None: the model has no price)."""
        self.answer = message
        meta = getattr(message, "usage_metadata", None) or {}
        info = getattr(message, "response_metadata", None) or {}
        finish = info.get("finish_reason") or info.get("stop_reason")
        self.tracing.set(
            self.span,
            {
                A.GEN_AI_INPUT_TOKENS: meta.get("input_tokens"),
                A.GEN_AI_OUTPUT_TOKENS: meta.get("output_tokens"),
                A.GEN_AI_RESPONSE_MODEL: info.get("model_name") or info.get("model"),
                A.GEN_AI_RESPONSE_ID: _response_id(message, info),
                A.GEN_AI_FINISH_REASONS: [str(finish)] if finish else None,
            },
        )
        self.tracing.metrics.model_call(
            meta.get("input_tokens") or 0,
            meta.get("output_tokens") or 0,
            None if cost is None else cost[0] + cost[1],
        )
        if cost is not None:
            prompt, completion = cost
            self.tracing.set(
                self.span,
                {
                    A.COST_USD: prompt + completion,
                    A.LLM_COST_PROMPT: prompt,
                    A.LLM_COST_COMPLETION: completion,
                    A.LLM_COST_TOTAL: prompt + completion,
                },
            )
        if self.tracing.capture_content:
            output = self.tracing.conversation([message], output=True, known=self.asked)
            self.content(A.GEN_AI_OUTPUT_MESSAGES, output)


class ToolCallSpan(_Handle):
    """The open tool.call span; record the result or the failure kind on it."""

    outcome = "ok"
    """How the call went, as counted when the span ends."""

    def result(self, value: Any, *, outcome: str = "ok", retries: int = 0) -> None:
        self.outcome = outcome
        self.tracing.set(self.span, {A.TOOL_OUTCOME: outcome, A.RETRY_COUNT: retries or None})
        self.content(A.GEN_AI_TOOL_RESULT, value)


class PolicySpan(_Handle):
    """The open policy.check span; record the decision on it."""

    def decision(self, decision: Any) -> None:
        self.tracing.metrics.policy_decision(decision.outcome, decision.rule_id)
        self.tracing.set(
            self.span,
            {
                A.POLICY_DECISION: decision.outcome,
                A.POLICY_RULE: decision.rule_id,
                A.POLICY_NAME: decision.policy,
                A.POLICY_VERSION: decision.policy_version,
                A.APPROVAL_ROLE: decision.required_role,
            },
        )


def _response_id(message: Any, info: Mapping[str, Any]) -> str | None:
    """The provider's id of the answer (chatcmpl-...), if the client carried it over. A
    message id LangChain made up (its run id, lc_run--...) names no response: left out."""
    given = info.get("id") or getattr(message, "id", None)
    return given if isinstance(given, str) and not given.startswith("lc_") else None
