"""LangChain tools as agentrt tools: BaseTool, StructuredTool and langchain_core's @tool.

The schema the LangChain tool offers a model (its tool_call_schema) becomes the argument
schema, with extra fields forbidden as for every agentrt tool. Nothing in a LangChain tool
says whether it has a side effect, so it is "write" (through the ledger) unless declared.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.types import RetryPolicy
from pydantic import BaseModel, ConfigDict

from agentrt.errors import ConfigError
from agentrt.tools.contract import Effect, ToolContext, ToolSpec, returns_schema, tool

__all__ = ["as_tool"]


def as_tool(
    lc_tool: BaseTool,
    *,
    effect: Effect | str = Effect.WRITE,
    scopes: Iterable[str] = (),
    idempotent: bool = False,
    cost_usd: float = 0.0,
    sensitive: Iterable[str] = (),
    timeout: float | None = None,
    retry: RetryPolicy | None = None,
    reconcile_role: str | None = None,
) -> ToolSpec:
    """Wrap a LangChain tool, declaring what LangChain cannot say: effect, scopes, ...

    The call gets the idempotency key, thread and step in its RunnableConfig metadata
    (``agentrt_idempotency_key``, ...), so an idempotent LangChain tool can pass it on.
    """
    if not isinstance(lc_tool, BaseTool):
        raise ConfigError(f"{lc_tool!r} is not a LangChain BaseTool; as_tool() takes one")
    schema = lc_tool.tool_call_schema
    if not (isinstance(schema, type) and issubclass(schema, BaseModel)):
        raise ConfigError(
            f"LangChain tool {lc_tool.name!r} has a JSON-schema dict as its args_schema; "
            "give it a pydantic model (args_schema=...) so arguments can be validated"
        )
    args_model = type(
        f"{lc_tool.name}_args",
        (schema,),
        {"model_config": ConfigDict(extra="forbid"), "__module__": __name__},
    )
    func = getattr(lc_tool, "func", None)
    is_async = func is None and getattr(lc_tool, "coroutine", None) is not None

    def config(ctx: ToolContext) -> RunnableConfig:
        return {
            "metadata": {
                "agentrt_idempotency_key": ctx.idempotency_key,
                "agentrt_thread_id": ctx.thread_id,
                "agentrt_step_id": ctx.step_id,
            }
        }

    def call(ctx: ToolContext, **kwargs: Any) -> Any:
        return lc_tool.invoke(kwargs, config=config(ctx))

    async def acall(ctx: ToolContext, **kwargs: Any) -> Any:
        return await lc_tool.ainvoke(kwargs, config=config(ctx))

    # @tool checks the declared options exactly as for a function tool.
    template = tool(
        name=lc_tool.name,
        description=lc_tool.description or lc_tool.name,
        effect=effect,
        scopes=list(scopes),
        idempotent=idempotent,
        cost_usd=cost_usd,
        sensitive=list(sensitive),
        timeout=timeout,
        retry=retry,
        reconcile_role=reconcile_role,
    )(_no_args)
    return replace(
        template,
        fn=acall if is_async else call,
        args_model=args_model,
        ctx_param="ctx",
        output=returns_schema(func, lc_tool.name) if func is not None else None,
    )


def _no_args() -> Any:
    """Placeholder the options are validated against; never called."""
