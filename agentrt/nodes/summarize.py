"""summarize: condense a long run's older turns, so the planner's prompt stays in bounds.

The plan node routes here when its prompt passes ``Summarize.at_tokens`` and there are
turns to condense (agentrt.summaries says which). The summary is a model call like a
plan's: checked against the budget first, its tokens and cost counted, recorded before
it is used (a re-run after a crash reuses the answer; replay gives it back), and traced
under this node's ``agent.step kind=summarize`` span. The log keeps every event; state
keeps the summary and how much of the log it covers.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from langchain_core.messages import AIMessage, BaseMessage, messages_to_dict

from agentrt.budget import Budget, plan_model_call
from agentrt.digests import request_digest
from agentrt.models import (
    count_prompt_tokens,
    estimated_usage,
    output_cap,
    output_cap_field,
    output_limit,
)
from agentrt.nodes.common import over_budget
from agentrt.nodes.deps import RunDeps
from agentrt.nodes.plan import recorded_response
from agentrt.nodes.plan_answer import AnswerTokens, answer_text, answer_tokens
from agentrt.nodes.spec import Node
from agentrt.records import ModelCall
from agentrt.state import RunState, Summary, Usage
from agentrt.steps import Step, Steps, blocking
from agentrt.summaries import Summarizing, cut_point, kept_decisions, summary_request

__all__ = ["NODE", "summarize"]


class _Fold(NamedTuple):
    """One summary to write: the turns it folds in, the request, the answer if recorded."""

    cut: int
    messages: list[BaseMessage]
    digest: str
    recorded: AIMessage | None
    cap: int | None
    bound: Any
    """The summarizer, with the output cap the budget set."""


def summarize(state: RunState, deps: RunDeps) -> Steps[dict[str, Any]]:
    fold: _Fold | dict[str, Any] = yield blocking(_prepare, state, deps)
    if not isinstance(fold, _Fold):
        return fold
    writer = _writer(deps)
    # The turns it condenses are prose here, their tool calls' sensitive fields no longer
    # fields: masked with the secret values the run's log holds.
    known = deps.tracing.log_secrets(state.get("events", ()))
    with deps.tracing.llm_call(
        writer.model, fold.messages, max_tokens=fold.cap, known=known
    ) as llm:
        response = fold.recorded
        if response is None:
            response = yield Step(
                lambda: fold.bound.invoke(fold.messages), lambda: fold.bound.ainvoke(fold.messages)
            )
        if not isinstance(response, AIMessage):
            raise TypeError(f"the summarizer returned {type(response).__name__}, not a message")
        tokens = _tokens(response, writer, fold.messages)
        price = writer.price
        llm.response(
            response,
            cost=(price.cost(tokens.input, 0), price.cost(0, tokens.output)) if price else None,
        )
    update: dict[str, Any] = yield blocking(_folded, state, deps, fold, response, tokens)
    return update


def _writer(deps: RunDeps) -> Summarizing:
    assert deps.summarize is not None, "the graph routes here only with Summarize set"
    return deps.summarize


def _prepare(state: RunState, deps: RunDeps) -> _Fold | dict[str, Any]:
    writer = _writer(deps)
    events = state.get("events", [])
    previous = state.get("summary")
    start = previous["upto"] if previous else 0
    cut = cut_point(events, start, writer.settings.keep_turns)
    if cut is None:  # nothing left to condense (plan checked; a resume may differ)
        return {"route": "plan"}
    messages = summary_request(events[start:cut], previous, writer.settings.instructions)
    call = plan_model_call(
        Budget.from_dict(state.get("budget")),
        state["usage"],
        now=deps.clock(),
        prompt_tokens=count_prompt_tokens(writer.model, messages),
        model_cap=output_limit(writer.model),
        can_cap=output_cap_field(writer.model) is not None,
        price=writer.price,
    )
    if call.exceeded is not None:
        what = f"summarizing the run (model call {state['usage']['steps']})"
        return over_budget(state, call.exceeded, node="plan", action=None, what=what)
    bound: Any = writer.model
    field = output_cap_field(writer.model)
    if call.capped_by is not None and field is not None:
        bound = bound.bind(**{field: call.cap})
    bound = deps.for_run(bound, writer.model, state["thread_id"])
    digest = request_digest(messages)
    return _Fold(
        cut=cut,
        messages=messages,
        digest=digest,
        recorded=recorded_response(deps, state, digest),
        cap=call.cap if call.capped_by is not None else output_cap(writer.model),
        bound=bound,
    )


def _tokens(response: AIMessage, writer: Summarizing, messages: list[BaseMessage]) -> AnswerTokens:
    # As the planner's: a usage of zeros is no more believed here than there.
    return answer_tokens(response, lambda: estimated_usage(writer.model, messages, [], response))


def _folded(
    state: RunState,
    deps: RunDeps,
    fold: _Fold,
    response: AIMessage,
    tokens: AnswerTokens,
) -> dict[str, Any]:
    """Keep the answer (for a re-run and for replay), count what it cost, and hand the
    planner the summary in place of the turns it covers."""
    writer = _writer(deps)
    usage = _spent(state["usage"], tokens, writer)
    if fold.recorded is None:  # the answer and its cost kept in one transaction
        call = ModelCall(
            revision=state["usage"]["steps"],
            model=getattr(writer.model, "model_name", None),
            request_digest=fold.digest,
            response=messages_to_dict([response])[0],
            prompt_tokens=None,
            cap=None,
        )
        deps.store.record_model_call(state["thread_id"], call, usage=usage)
    else:
        deps.store.set_usage(state["thread_id"], usage)
    previous = state.get("summary")
    start = previous["upto"] if previous else 0
    events = state.get("events", [])
    summary = Summary(
        text=answer_text(response),  # its text: never its reasoning blocks as JSON
        upto=fold.cut,
        kept=[*(previous["kept"] if previous else []), *kept_decisions(events[start : fold.cut])],
    )
    return {"summary": summary, "usage": usage, "route": "plan"}


def _spent(usage: Usage, tokens: AnswerTokens, writer: Summarizing) -> Usage:
    """Usage after the summary: its tokens and their price, one more model call (step)."""
    price = writer.price
    spent: Usage = {
        **usage,
        "input_tokens": usage["input_tokens"] + tokens.input,
        "output_tokens": usage["output_tokens"] + tokens.output,
        "cost_usd": usage["cost_usd"] + (price.cost(tokens.input, tokens.output) if price else 0.0),
        "steps": usage["steps"] + 1,
    }
    if tokens.estimated:
        spent["estimated_tokens"] = usage.get("estimated_tokens", 0) + tokens.estimated
    return spent


NODE = Node(
    name="summarize",
    steps=summarize,
    routes=("plan", "budget_gate", "finish"),
    retry="model",
)
