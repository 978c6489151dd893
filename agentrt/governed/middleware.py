"""rt.middleware(): agentrt's guarantees as a langchain v1 AgentMiddleware for create_agent.

Around every tool call (``wrap_tool_call``) the Governor applies the policy, the human gate
with its approval records, the budget and the exactly-once ledger, as the run graph does;
around every model call (``wrap_model_call``) the budget is checked before the call (steps,
tokens, cost, time; the prompt counted with the agent's own model and its output cap
lowered to what the limits leave, as the run graph's plan does) and the call's usage
counted after it, with an llm span. Where
``HumanInTheLoopMiddleware`` is used today it drops in: the gate is a row in the review
queue with roles, four-eyes and expiry, not a bare interrupt.

langchain (v1) is an optional dependency: install ``agentrt[agents]``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, cast

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.config import get_config
from langgraph.types import Command

from agentrt.budget import Budget, ModelPrice, first_exceeded, plan_model_call
from agentrt.errors import ConfigError
from agentrt.governed.calls import Governor, segment, stop_thread
from agentrt.governed.threads import live_record, thread_id_of, to_running
from agentrt.governed.tool_node import ToolCallHandler, langchain_tools, offered_names
from agentrt.models import (
    count_prompt_tokens,
    model_name_of,
    output_cap,
    output_cap_field,
    output_limit,
)
from agentrt.nodes.deps import RunDeps
from agentrt.records import RunRecord
from agentrt.state import Usage
from agentrt.steps import Step, Steps, adrive, blocking, drive
from agentrt.tools.contract import ToolSpec
from agentrt.tools.registry import ToolRegistry

__all__ = ["governed_middleware"]

try:
    from langchain.agents.middleware import AgentMiddleware
    from langchain.agents.middleware.types import ModelRequest, ModelResponse
except ImportError:  # pragma: no cover - the extra says what to install
    AgentMiddleware = None  # type: ignore[assignment,misc]


def governed_middleware(
    governor: Governor,
    deps: Callable[[], RunDeps],
    registry: ToolRegistry,
    tools: Iterable[str | ToolSpec] | None,
    price_of: Callable[[BaseChatModel], ModelPrice | None],
) -> Any:
    """An AgentMiddleware instance for ``create_agent(..., middleware=[...])``."""
    if AgentMiddleware is None:
        raise ConfigError(
            "rt.middleware() is a langchain v1 AgentMiddleware for create_agent; install "
            "langchain with pip install 'agentrt[agents]'"
        )
    names = offered_names(registry, tools)
    return _Middleware(
        ToolCallHandler(governor, names),
        _ModelBudget(deps, price_of),
        langchain_tools(registry, names),
    )


if AgentMiddleware is not None:

    class _Middleware(AgentMiddleware):
        """agentrt around create_agent's tool calls and model calls."""

        def __init__(self, calls: ToolCallHandler, budget: _ModelBudget, tools: list[Any]) -> None:
            super().__init__()
            self._calls = calls
            self._budget = budget
            self.tools = tools

        @property
        def name(self) -> str:
            return "agentrt"

        def wrap_tool_call(
            self, request: Any, handler: Callable[[Any], ToolMessage | Command[Any]]
        ) -> ToolMessage | Command[Any]:
            return self._calls.wrap(request, handler)

        async def awrap_tool_call(
            self, request: Any, handler: Callable[[Any], Awaitable[ToolMessage | Command[Any]]]
        ) -> ToolMessage | Command[Any]:
            return await self._calls.awrap(request, handler)

        def wrap_model_call(
            self, request: ModelRequest, handler: Callable[[ModelRequest], ModelResponse]
        ) -> Any:
            return drive(self._budget.model_call(request, lambda r: Step(lambda: handler(r), _aio)))

        async def awrap_model_call(
            self,
            request: ModelRequest,
            handler: Callable[[ModelRequest], Awaitable[ModelResponse]],
        ) -> Any:
            return await adrive(
                self._budget.model_call(request, lambda r: Step(_sync, lambda: handler(r)))
            )


def _sync() -> Any:
    raise AssertionError("an async model call is awaited, never called in a thread")


async def _aio() -> Any:
    raise AssertionError("a sync model call is called, never awaited")


class _ModelBudget:
    """Model-call budgets of create_agent threads: checked before, counted after."""

    def __init__(
        self, deps: Callable[[], RunDeps], price_of: Callable[[BaseChatModel], ModelPrice | None]
    ) -> None:
        self._deps = deps
        self._price_of = price_of

    def model_call(self, request: Any, call: Callable[[Any], Step[Any]]) -> Steps[Any]:
        """One model call of a create_agent thread: budget first (the call refused, or its
        output cap lowered to what the limits leave), then the call in an llm span of the
        thread's trace, then its usage counted."""
        deps = self._deps()
        # The agent's own model, priced by its own name: it need not be the runtime's.
        price = self._price_of(request.model)
        record = yield from self.preflight(request.model, price, get_config())
        request = yield from self.capped(request, price, record)
        with (
            segment(deps, record),
            deps.tracing.step("plan", record.thread_id),
            deps.tracing.llm_call(
                request.model, list(request.messages), max_tokens=_cap_of(request)
            ) as llm,
        ):
            response = yield call(request)
            answers = [
                m for m in getattr(response, "result", [response]) if isinstance(m, AIMessage)
            ]
            if answers:
                llm.response(answers[-1], cost=_cost(price, *_tokens(answers[-1:])))
        yield from self.counted(record.thread_id, price, response)
        return response

    def preflight(
        self, model: BaseChatModel, price: ModelPrice | None, config: Any
    ) -> Steps[RunRecord]:
        """The thread's row, running; BudgetExceeded (the row ended so) if the next model
        call would break a limit; ConfigError (the row left as it was) if the thread has a
        cost limit and ``model`` no price."""
        deps = self._deps()
        thread_id = thread_id_of(config)
        found: RunRecord = yield blocking(live_record, deps.store, thread_id)
        limit = Budget.from_dict(found.budget).max_cost_usd
        if limit is not None and price is None:
            raise _unpriced(model, thread_id, limit)
        record: RunRecord = yield blocking(to_running, deps.store, found, now=deps.clock())
        exceeded = first_exceeded(
            Budget.from_dict(record.budget), record.usage, now=deps.clock(), next_steps=1
        )
        if exceeded is not None:
            step = str(record.usage["steps"])
            yield blocking(
                stop_thread,
                deps,
                record,
                exceeded,
                what=f"model call (step {step})",
                node="model",
                step_id=step,
                tool="",
            )
        return record

    def capped(self, request: Any, price: ModelPrice | None, record: RunRecord) -> Steps[Any]:
        """``request``, its output cap lowered to what the thread's token and cost limits
        leave after its prompt (counted with the agent's model, its tools and system message
        included), as the run graph's plan does; BudgetExceeded (the row ended so) if they
        leave no room for an answer. As it was when no such limit is set."""
        budget = Budget.from_dict(record.budget)
        if budget.max_tokens is None and (budget.max_cost_usd is None or price is None):
            return request  # nothing to count against: counting may cost a request
        model = request.model
        messages = [
            *([request.system_message] if request.system_message else ()),
            *request.messages,
        ]
        tools = [convert_to_openai_tool(t) for t in request.tools or ()]
        cap_field = output_cap_field(model)
        deps = self._deps()
        call = plan_model_call(
            budget,
            record.usage,
            now=deps.clock(),
            prompt_tokens=count_prompt_tokens(model, messages, tools),
            model_cap=output_limit(model),
            can_cap=cap_field is not None,
            price=price,
        )
        if call.exceeded is not None:
            step = str(record.usage["steps"])
            yield blocking(
                stop_thread,
                deps,
                record,
                call.exceeded,
                what=f"model call (step {step})",
                node="model",
                step_id=step,
                tool="",
            )
        if call.capped_by is None or cap_field is None:
            return request
        return request.override(model_settings={**request.model_settings, cap_field: call.cap})

    def counted(self, thread_id: str, price: ModelPrice | None, response: Any) -> Steps[None]:
        """Add one step and the answer's tokens and their cost at ``price`` to the
        thread's usage."""
        deps = self._deps()
        tokens_in, tokens_out = _tokens(getattr(response, "result", None) or [response])
        # Added with a conditional write (as a tool call's count is): another driver of the
        # thread may have counted since the read, and its counts are kept.
        while True:
            record = yield blocking(deps.store.get_run, thread_id)
            assert record is not None
            usage = record.usage
            added = {
                **usage,
                "input_tokens": usage["input_tokens"] + tokens_in,
                "output_tokens": usage["output_tokens"] + tokens_out,
                "cost_usd": usage["cost_usd"]
                + (price.cost(tokens_in, tokens_out) if price else 0.0),
                "steps": usage["steps"] + 1,
            }
            swapped = yield blocking(deps.store.swap_usage, thread_id, usage, cast(Usage, added))
            if swapped:
                return


def _cap_of(request: Any) -> int | None:
    """The output cap the call is made with: the one the budget set, else the model's."""
    field = output_cap_field(request.model)
    cap = request.model_settings.get(field) if field else None
    return cap if isinstance(cap, int) else output_cap(request.model)


def _tokens(messages: Iterable[Any]) -> tuple[int, int]:
    """The input and output tokens the answers among ``messages`` report."""
    tokens_in = tokens_out = 0
    for message in messages:
        meta = message.usage_metadata if isinstance(message, AIMessage) else None
        if meta:
            tokens_in += int(meta.get("input_tokens", 0))
            tokens_out += int(meta.get("output_tokens", 0))
    return tokens_in, tokens_out


def _cost(price: ModelPrice | None, tokens_in: int, tokens_out: int) -> tuple[float, float] | None:
    """What the prompt and the answer cost at ``price``; None for an unpriced model."""
    return None if price is None else (price.cost(tokens_in, 0), price.cost(0, tokens_out))


def _unpriced(model: BaseChatModel, thread_id: str, limit: float) -> ConfigError:
    """The refusal of a model call whose cost a thread's max_cost_usd cannot count."""
    name = model_name_of(model)
    if name is None:
        how = (
            f"it has no model name (none of model_name, model, model_id on "
            f"{type(model).__name__}) to look a price up by; give it one and pass "
            "AgentRuntime(prices={name: (input_usd, output_usd)}) per million tokens"
        )
    else:
        how = f"pass AgentRuntime(prices={{{name!r}: (input_usd, output_usd)}}) per million tokens"
    return ConfigError(
        f"thread {thread_id!r} sets max_cost_usd={limit!r}, but the agent's model "
        f"{name or type(model).__name__!r} has no price, so its calls would count as free; " + how
    )
