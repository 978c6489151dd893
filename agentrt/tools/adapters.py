"""LangChain tools as agentrt tools: BaseTool, StructuredTool and langchain_core's @tool.

The schema the LangChain tool offers a model (its tool_call_schema) becomes the argument
schema, with extra fields forbidden as for every agentrt tool: a pydantic model as it is, a
JSON-Schema dict through agentrt.tools.jsonargs (LangChain itself does not check those).
Nothing in a LangChain tool says whether it has a side effect, so it is "write" (through
the ledger) unless declared.
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
from agentrt.tools.jsonargs import schema_tool

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

    # The context goes in as "_ctx": a pydantic field cannot start with "_", so no argument
    # of the tool can take its place.
    def call(_ctx: ToolContext, **kwargs: Any) -> Any:
        return lc_tool.invoke(kwargs, config=config(_ctx))

    async def acall(_ctx: ToolContext, **kwargs: Any) -> Any:
        return await lc_tool.ainvoke(kwargs, config=config(_ctx))

    output = returns_schema(func, lc_tool.name) if func is not None else None
    if isinstance(schema, dict):

        def call_dict(args: dict[str, Any], ctx: ToolContext) -> Any:
            return lc_tool.invoke(args, config=config(ctx))

        async def acall_dict(args: dict[str, Any], ctx: ToolContext) -> Any:
            return await lc_tool.ainvoke(args, config=config(ctx))

        spec = schema_tool(
            acall_dict if is_async else call_dict,
            name=lc_tool.name,
            description=lc_tool.description or lc_tool.name,
            schema=_without_description(schema, lc_tool.description),
            effect=effect,
            scopes=scopes,
            idempotent=idempotent,
            cost_usd=cost_usd,
            sensitive=sensitive,
            timeout=timeout,
            retry=retry,
            reconcile_role=reconcile_role,
        )
        return replace(spec, output=output)
    if not (isinstance(schema, type) and issubclass(schema, BaseModel)):
        raise ConfigError(
            f"LangChain tool {lc_tool.name!r} has an args_schema of type "
            f"{type(schema).__name__!r}; give it a pydantic model or a JSON Schema dict"
        )
    args_model = type(
        f"{lc_tool.name}_args",
        (schema,),
        {"model_config": ConfigDict(extra="forbid"), "__module__": __name__},
    )
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
        ctx_param="_ctx",
        output=output,
    )


def _without_description(schema: dict[str, Any], description: str | None) -> dict[str, Any]:
    """The schema without the tool's description LangChain copies into it: the model reads
    that once, as the function's description, not twice."""
    if description and schema.get("description") == description:
        return {k: v for k, v in schema.items() if k != "description"}
    return schema


def _no_args() -> Any:
    """Placeholder the options are validated against; never called."""
