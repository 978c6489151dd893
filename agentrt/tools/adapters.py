"""Tools described by something other than a Python signature: LangChain tools (BaseTool,
StructuredTool, langchain_core's @tool) through ``as_tool``, and tools whose arguments a JSON
Schema describes (an MCP server's, a LangChain tool with a dict schema) through
``schema_tool``.

The schema a LangChain tool offers a model (its tool_call_schema) becomes the argument
schema, with extra fields forbidden as for every agentrt tool: a pydantic model as it is, a
JSON-Schema dict through agentrt.tools.jsonargs (LangChain itself does not check those).
Nothing in such a description says whether the tool has a side effect, so it is "write"
(through the ledger) unless declared. Either way, the options are checked exactly as @tool
checks them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from pydantic import BaseModel, ConfigDict
from typing_extensions import Unpack

from agentrt.errors import ConfigError
from agentrt.tools.contract import (
    Effect,
    SchemaToolOptions,
    ToolContext,
    ToolOptions,
    ToolSpec,
    refuse_unknown,
    returns_schema,
    tool,
)
from agentrt.tools.jsonargs import JsonSchemaArgs

__all__ = ["as_tool", "schema_tool"]


def as_tool(lc_tool: BaseTool, **options: Unpack[ToolOptions]) -> ToolSpec:
    """Wrap a LangChain tool, declaring what LangChain cannot say: effect, scopes, ...
    (ToolOptions; the effect is "write" unless said).

    The call gets the idempotency key, thread and step in its RunnableConfig metadata
    (``agentrt_idempotency_key``, ...), so an idempotent LangChain tool can pass it on.
    """
    refuse_unknown(options, ToolOptions.__optional_keys__, "as_tool")
    if not isinstance(lc_tool, BaseTool):
        raise ConfigError(f"{lc_tool!r} is not a LangChain BaseTool; as_tool() takes one")
    schema = lc_tool.tool_call_schema
    func = getattr(lc_tool, "func", None)
    is_async = func is None and getattr(lc_tool, "coroutine", None) is not None
    description = lc_tool.description or lc_tool.name

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
            description=description,
            schema=_without_description(schema, lc_tool.description),
            **options,
        )
        return replace(spec, output=output, source="langchain")
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
    return replace(
        _declared(lc_tool.name, description, options),
        fn=acall if is_async else call,
        args_model=args_model,
        ctx_param="_ctx",
        output=output,
        source="langchain",
    )


def schema_tool(
    fn: Callable[..., Any],
    *,
    name: str,
    description: str,
    schema: Mapping[str, Any],
    **options: Unpack[SchemaToolOptions],
) -> ToolSpec:
    """A tool whose arguments a JSON Schema describes, done by ``fn(args, ctx)``.

    ``fn`` (sync, or async: then it runs on the tool loop) gets the validated arguments as
    one dict (JSON-Schema property names need not be Python identifiers) and the call's
    ToolContext. Its options (SchemaToolOptions) are checked exactly as @tool checks them;
    the effect is "write" (through the ledger) unless said, since nothing in a schema says
    otherwise.
    """
    refuse_unknown(options, SchemaToolOptions.__optional_keys__, "schema_tool")
    declared = _declared(name, description, options)
    return replace(
        declared,
        fn=fn,
        args_model=None,
        args_schema=JsonSchemaArgs(schema, tool=name),
        ctx_param="ctx",
        output=declared.output if options.get("output") is not None else None,
        source="schema",
    )


def _declared(name: str, description: str, options: ToolOptions) -> ToolSpec:
    """A spec carrying ``options`` (ToolOptions, or schema_tool's) as @tool checks them, for
    a tool whose work and argument schema come from elsewhere: the caller puts those in.
    Its effect is "write" unless said."""
    unless_said: ToolOptions = {"effect": Effect.WRITE}
    return tool(name=name, description=description, **(unless_said | options))(_no_work)


def _no_work() -> Any:
    """Stands in for the tool's work while its options are checked; never called."""


def _without_description(schema: dict[str, Any], description: str | None) -> dict[str, Any]:
    """The schema without the tool's description LangChain copies into it: the model reads
    that once, as the function's description, not twice."""
    if description and schema.get("description") == description:
        return {k: v for k, v in schema.items() if k != "description"}
    return schema
