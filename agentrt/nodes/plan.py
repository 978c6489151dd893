"""plan: ask the model for the next steps, given the goal and everything observed so far."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, NamedTuple

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    messages_from_dict,
    messages_to_dict,
)
from langchain_core.runnables import Runnable

from agentrt.budget import Budget, ModelCallPlan, plan_model_call, tokens_used
from agentrt.digests import GrowingRequest, request_digest
from agentrt.errors import BudgetExceeded
from agentrt.events import as_messages, plan_event
from agentrt.models import (
    count_prompt_tokens,
    estimated_usage,
    output_cap,
    output_cap_field,
    output_limit,
    was_cut,
)
from agentrt.nodes.common import over_budget
from agentrt.nodes.deps import RunDeps
from agentrt.nodes.plan_answer import (
    AnswerTokens,
    answer_actions,
    answer_blocks,
    answer_text,
    answer_tokens,
    unusable,
)
from agentrt.nodes.spec import Node
from agentrt.principal import Principal
from agentrt.records import ModelCall
from agentrt.state import (
    Event,
    Plan,
    RunState,
    RunStatus,
    Stop,
    Usage,
)
from agentrt.steps import Step, Steps, blocking
from agentrt.store.protocols import RecordingStore
from agentrt.summaries import condensed_conversation, cut_point

__all__ = ["NODE", "answer_recorded", "build_messages", "forget_conversation", "plan"]


class _Conversation(NamedTuple):
    """A run's conversation as built at its last turn, and the log it was built from."""

    instructions: str
    goal: str
    seen: int
    """How many events the messages cover."""
    last: Event | None
    """The last of those events (the object itself, to tell this log from any other)."""
    messages: list[BaseMessage]
    request: GrowingRequest
    """The request digest of the messages, worked out as they were added."""


# The conversations of runs under way, by thread id. The log only grows, so a turn converts
# just the events appended since the run's previous turn instead of the whole log (which
# made a run's planning quadratic in its length). A run's entry goes when its segment ends
# (agentrt.runs.driver), when a node stops the graph (a gate, a failure: the run graph's
# node wrapper) and when it finishes: a run that goes on later reads its log back anew,
# so its conversation is rebuilt from it, as in a new process. The bound is a safety net
# above the runs a process drives at once: under it, concurrent runs push each other out,
# and every turn of every run starts over (at 256, each turn of 500 concurrent runs did).
_CONVERSATIONS: OrderedDict[str, _Conversation] = OrderedDict()
_CONVERSATIONS_MAX = 2048
_CONVERSATIONS_LOCK = threading.Lock()


def forget_conversation(thread_id: str) -> None:
    """Drop the run's kept conversation: its segment, or the run, ended."""
    with _CONVERSATIONS_LOCK:
        _CONVERSATIONS.pop(thread_id, None)


def build_messages(state: RunState, instructions: str) -> list[BaseMessage]:
    """The conversation the model sees, built from the event log.

    The log is the only record, so a resumed run in a new process asks the model exactly
    what the original process would have asked. Within a process a run's messages are
    kept between turns and extended with the events appended since, which gives the same
    list: reused only while the log is the same objects up to where it was read.
    """
    return _conversation(state, instructions)[0]


def _conversation(state: RunState, instructions: str) -> tuple[list[BaseMessage], str]:
    """``build_messages``, and the messages' request digest."""
    events = state.get("events", [])
    goal = state["goal"]
    if summary := state.get("summary"):
        # The older turns condensed: what is left verbatim is bounded, built afresh.
        head = [SystemMessage(instructions), HumanMessage(goal)]
        messages = [*head, *condensed_conversation(events, summary)]
        return messages, request_digest(messages)
    key = state.get("thread_id", "")
    with _CONVERSATIONS_LOCK:
        cached = _CONVERSATIONS.get(key)
    if (
        cached is not None
        and cached.instructions == instructions
        and cached.goal == goal
        and len(events) >= cached.seen
        and (cached.seen == 0 or events[cached.seen - 1] is cached.last)
    ):
        messages = [*cached.messages, *as_messages(events[cached.seen :])]
        request = cached.request
    else:
        messages = [SystemMessage(instructions), HumanMessage(goal), *as_messages(events)]
        request = GrowingRequest()
    digest = request.digest(messages)
    with _CONVERSATIONS_LOCK:
        _CONVERSATIONS[key] = _Conversation(
            instructions, goal, len(events), events[-1] if events else None, messages, request
        )
        _CONVERSATIONS.move_to_end(key)
        while len(_CONVERSATIONS) > _CONVERSATIONS_MAX:
            _CONVERSATIONS.popitem(last=False)
    # The caller may change its list; the kept one stays as built.
    return list(messages), digest


def record_response(
    deps: RunDeps, state: RunState, ask: _Ask, response: AIMessage, usage: Usage | None = None
) -> None:
    """Keep the model's response to this plan step: for resume, and for replay (with what
    the pre-flight counted and the cap it set, so a replay checks the same numbers); with
    ``usage``, the run's usage after it, in the same write."""
    call = ModelCall(
        revision=state["usage"]["steps"],
        model=getattr(deps.model, "model_name", None),
        request_digest=ask.digest,
        response=messages_to_dict([response])[0],
        prompt_tokens=ask.prompt_tokens,
        cap=ask.call.cap if ask.call.capped_by is not None else None,
    )
    deps.store.record_model_call(state["thread_id"], call, usage=usage)


def recorded_response(deps: RunDeps, state: RunState, digest: str) -> AIMessage | None:
    """The response already recorded for this plan step, if it answered the very messages
    whose request_digest is ``digest``.

    A plan step runs again when its process died after the model answered but before the
    step's checkpoint: the answer was paid for, so it is used rather than asked (and paid)
    for twice, and the resumed run goes on from the answer the original got.
    """
    found = deps.store.model_call(state["thread_id"], state["usage"]["steps"])
    if found is None or found.request_digest != digest:
        return None
    [message] = messages_from_dict([found.response])
    return message if isinstance(message, AIMessage) else None


def answer_recorded(store: RecordingStore, thread_id: str, steps: int) -> bool:
    """Whether plan step ``steps`` (the usage's step count before it) has its model answer
    recorded already: its process died after the model answered, before the step's
    checkpoint. Run again, the step plans from that answer (``recorded_response``), so a
    message waits until it has (agentrt.graphs.run_graph, agentrt.runs.taking): an answer
    paid for is neither asked for again nor lost."""
    return store.model_call(thread_id, steps) is not None


class _Ask(NamedTuple):
    """A model call, worked out and checked against the budget, not yet made."""

    model: Runnable[Any, Any]
    """The planner, bound to the offered tools and the output cap."""
    messages: list[BaseMessage]
    digest: str
    """What the call is recorded under."""
    recorded: AIMessage | None
    """The answer an earlier try of this step already got, if any: it is not asked again."""
    budget: Budget
    call: ModelCallPlan
    """The pre-flight verdict: the output cap, and the limit that lowered it."""
    offered: list[dict[str, Any]]
    """The tools' schemas the model is offered."""
    prompt_tokens: int | None
    """The prompt's tokens as the pre-flight counted them; None when no limit needed it."""


def plan(state: RunState, deps: RunDeps) -> Steps[dict[str, Any]]:
    """Ask the model for the next steps. Under the async runtime no thread is held while
    the model thinks; what comes before and after the call reads and writes the store, so
    it runs in a worker thread (a thousand runs waiting on their model need no thousand
    threads)."""
    ask: _Ask | dict[str, Any] = yield blocking(_ask, state, deps)
    if not isinstance(ask, _Ask):
        return ask
    cap = ask.call.cap if ask.call.capped_by is not None else output_cap(deps.model)
    # Shown masked with the log's secrets too: a summary in the prompt may repeat them.
    known = deps.tracing.log_secrets(state.get("events", ()))
    with deps.tracing.llm_call(
        deps.model, ask.messages, max_tokens=cap, tools=ask.offered, known=known
    ) as llm:
        response = ask.recorded
        if response is None:
            response = yield Step(
                lambda: ask.model.invoke(ask.messages), lambda: ask.model.ainvoke(ask.messages)
            )
        tokens = _tokens(response, deps, ask) if isinstance(response, AIMessage) else None
        price = deps.model_price
        # What the call cost by agentrt's own prices (those the budget counts with): a
        # tracing backend's own table may not know the model, or price it otherwise.
        cost = (price.cost(tokens[0], 0), price.cost(0, tokens[1])) if price and tokens else None
        llm.response(response, cost=cost)
    update: dict[str, Any] = yield blocking(_answered, state, deps, ask, response, tokens)
    return update


def _ask(state: RunState, deps: RunDeps) -> _Ask | dict[str, Any]:
    """The model call this step makes; or, if the budget cannot pay for one, the update
    that stops the run."""
    principal = Principal.from_dict(state["principal"])
    offered = [t.schema() for t in deps.tools.offered_to(principal)]
    messages, digest = _conversation(state, deps.instructions)
    budget = Budget.from_dict(state.get("budget"))
    cap_field = output_cap_field(deps.model)
    # Counting can cost a request (some providers count server-side): only when a limit
    # or the summarize threshold needs it.
    counted = (
        budget.max_tokens is not None
        or (budget.max_cost_usd is not None and deps.model_price is not None)
        or deps.summarize is not None
    )
    prompt_tokens = count_prompt_tokens(deps.model, messages, offered) if counted else None
    if _long(state, deps, prompt_tokens):
        return {"route": "summarize"}
    call = plan_model_call(
        budget,
        state["usage"],
        now=deps.clock(),
        prompt_tokens=prompt_tokens or 0,
        model_cap=output_limit(deps.model),
        can_cap=cap_field is not None,
        price=deps.model_price,
    )
    if call.exceeded is not None:
        return over_budget(state, call.exceeded, node="plan", action=None)
    model: Runnable[Any, Any] = deps.model.bind_tools(offered) if offered else deps.model
    if call.capped_by is not None and cap_field is not None:
        model = model.bind(**{cap_field: call.cap})
    model = deps.for_run(model, deps.model, state["thread_id"])
    return _Ask(
        model=model,
        messages=messages,
        digest=digest,
        recorded=recorded_response(deps, state, digest),
        budget=budget,
        call=call,
        offered=offered,
        prompt_tokens=prompt_tokens,
    )


def _long(state: RunState, deps: RunDeps, prompt_tokens: int | None) -> bool:
    """Whether the prompt passed Summarize.at_tokens with older turns left to condense."""
    if deps.summarize is None or prompt_tokens is None:
        return False
    if prompt_tokens <= deps.summarize.settings.at_tokens:
        return False
    summary = state.get("summary")
    start = summary["upto"] if summary else 0
    keep = deps.summarize.settings.keep_turns
    return cut_point(state.get("events", []), start, keep) is not None


def _answered(
    state: RunState, deps: RunDeps, ask: _Ask, response: Any, tokens: AnswerTokens | None
) -> dict[str, Any]:
    """The plan the model's answer makes (recorded, and its usage counted)."""
    if not isinstance(response, AIMessage):
        raise TypeError(f"the model returned {type(response).__name__}, expected an AIMessage")
    assert tokens is not None  # worked out for every AIMessage
    usage = _spent(state["usage"], tokens, deps)
    if ask.recorded is None:  # the answer and its cost kept in one transaction
        record_response(deps, state, ask, response, usage)
    else:
        deps.store.set_usage(state["thread_id"], usage)
    revision = state["usage"]["steps"]
    capped_by = ask.call.capped_by
    if capped_by is not None and was_cut(response):
        # The answer was cut at a cap the budget lowered: acting on half an answer is worse
        # than stopping, and the budget is now spent up to that limit.
        used = tokens_used(usage) if capped_by == "max_tokens" else usage["cost_usd"]
        cut = BudgetExceeded(capped_by, used, getattr(ask.budget, capped_by))
        what = f"acting on model answer {revision}, cut at {ask.call.cap} output tokens"
        return over_budget(state, cut, node="plan", action=None, usage=usage, what=what)

    if (why := unusable(response, revision)) is not None:
        # Recorded and counted as any answer; nothing of it is acted on or logged as a plan.
        return {"usage": usage, "stop": Stop(status="failed", reason=why), "route": "finish"}
    content = answer_text(response)
    actions = answer_actions(response, revision, deps.limits, deps.tools)
    new_plan = Plan(
        revision=revision,
        content=content,
        actions=actions,
        final=None if actions else content,
    )
    event = plan_event(revision, content, actions, blocks=answer_blocks(response))
    return {
        "plan": new_plan,
        "cursor": 0,
        "verdict": None,
        "outcome": None,
        "usage": usage,
        "status": RunStatus.RUNNING.value,
        "events": [event],
        "route": "policy" if actions else "finish",
    }


def _tokens(response: AIMessage, deps: RunDeps, ask: _Ask) -> AnswerTokens:
    return answer_tokens(
        response, lambda: estimated_usage(deps.model, ask.messages, ask.offered, response)
    )


def _spent(usage: Usage, tokens: AnswerTokens, deps: RunDeps) -> Usage:
    """Usage after one model call: its tokens (estimated, and said so, when the answer
    reports none), their price, one more step."""
    price = deps.model_price
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
    name="plan",
    steps=plan,
    routes=("policy", "summarize", "budget_gate", "finish"),
    # Only the planner talks to a remote service worth retrying at node level; tools have
    # their own error contract.
    retry="model",
    entry=True,
)
