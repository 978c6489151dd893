"""The tool contract: @tool, ToolSpec and ToolContext.

A tool is a plain function with typed parameters. @tool derives a pydantic model from its
signature (and the "Args:" section of its docstring), so arguments from a model are
validated before anything runs, and the same schema is what the model is offered. A tool
described over the wire (an MCP tool, a LangChain tool with a dict schema) has a JSON
Schema instead (agentrt.tools.jsonargs), checked by the same rules.
"""

from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any, TypedDict, get_type_hints, overload

from langgraph.types import RetryPolicy
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError, create_model
from pydantic.fields import FieldInfo
from typing_extensions import Unpack

from agentrt.artifacts import ArtifactRef, is_artifact_ref
from agentrt.errors import ConfigError
from agentrt.principal import Principal
from agentrt.tools.artifacts import ToolArtifacts
from agentrt.tools.credentials import Secrets
from agentrt.tools.errors import ToolArgsError, ToolError
from agentrt.tools.memory import Memory
from agentrt.tools.schemas import (
    docstring_parts,
    non_finite,
    result_adapter,
    returns_schema,
    to_json_text,
)

if TYPE_CHECKING:
    from agentrt.tools.jsonargs import JsonSchemaArgs

__all__ = [
    "Effect",
    "FunctionToolOptions",
    "SchemaToolOptions",
    "ToolArgsError",
    "ToolContext",
    "ToolError",
    "ToolOptions",
    "ToolSpec",
    "non_finite",
    "returns_schema",
    "to_json_text",
    "tool",
]


class Effect(StrEnum):
    """What calling a tool does to the world outside the run."""

    READ = "read"
    """No side effect: safe to call again."""
    WRITE = "write"
    """A side effect that can be undone or is harmless to record once more."""
    IRREVERSIBLE = "irreversible"
    """A side effect that cannot be taken back: prepared, verified, then committed once."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolContext:
    """What a tool may know about the call it serves."""

    thread_id: str
    """The run's identity."""
    step_id: str
    """Deterministic id of the plan step: '<plan revision>.<index>'."""
    idempotency_key: str
    """Stable across retries and resumes of this one call; pass it to the system you call."""
    principal: Principal
    """Who the run acts for."""
    deadline: float | None = None
    """Epoch seconds after which the run's budget stops further work, if it has one."""
    artifacts: ToolArtifacts = field(default_factory=lambda: ToolArtifacts(None, ""))
    """The run's artifacts: ``put(name, data, media_type=..., preview=...)`` keeps a file
    and gives its ArtifactRef (return it, or pass it on), ``get(name)`` gives its bytes."""
    memory: Memory = field(default_factory=lambda: Memory(None, tenant=None))
    """The run's tenant's long-term memory, shared across its threads (``.personal``: the
    principal's own); read-only for a tool declared effect="read"."""
    credentials: Secrets = field(default_factory=Secrets, repr=False)
    """The credentials the tool declared, resolved for this call: ``ctx.credentials["crm"]``."""


@dataclass(frozen=True, kw_only=True)
class ToolSpec:
    """A tool as the runtime sees it: its schema, effect class, scopes and behaviour."""

    name: str
    """Name the model calls it by; unique within a runtime."""
    description: str
    """What the model is told the tool is for."""
    fn: Callable[..., Any]
    """The function that does the work: called with the arguments as keywords, or, for a
    tool with ``args_schema``, as ``fn(args=<dict>, ctx=<ToolContext>)``."""
    args_model: type[BaseModel] | None = None
    """Pydantic model of the arguments, derived from the signature; extra fields forbidden.
    None for a tool whose arguments a JSON Schema describes (``args_schema``)."""
    args_schema: JsonSchemaArgs | None = None
    """The arguments' JSON Schema, for a tool described over the wire (an MCP tool, a
    LangChain tool with a dict schema); None for a tool with ``args_model``."""
    effect: Effect = Effect.READ
    """read, write or irreversible."""
    scopes: tuple[str, ...] = ()
    """Scopes a principal must hold, all of them, for the tool to be offered or run."""
    idempotent: bool = False
    """True if the tool passes ctx.idempotency_key on, so calling it twice is safe."""
    cost_usd: float = 0.0
    """Declared price of one call, counted against Budget.max_cost_usd."""
    sensitive: tuple[str, ...] = ()
    """Argument and result field names to mask wherever they are shown."""
    credentials: tuple[str, ...] = ()
    """Credentials the tool needs, by name: resolved at each call by the runtime's provider
    and given in ``ctx.credentials``, never to the model, the state or the ledger."""
    verify: Callable[[dict[str, Any], Any], bool | str | None] | None = None
    """Postcondition on (args, result): False or a message string fails the step.

    For an irreversible tool it checks the preview first (before anything happens), then
    the committed result."""
    prepare: Callable[..., Any] | None = None
    """For an irreversible tool: returns a preview of the effect without causing it."""
    ctx_param: str | None = field(default=None)
    """Name of the parameter that receives the ToolContext, if the function takes one."""
    output: TypeAdapter[Any] | None = None
    """Schema of the result (from the return annotation or output=); None: unchecked."""
    preview_output: TypeAdapter[Any] | None = None
    """Schema of prepare()'s preview, from its return annotation; None: unchecked."""
    timeout: float | None = None
    """Seconds one attempt may take; None: no limit (the run's deadline still bounds it)."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    """How transient failures are retried: backoff, jitter, attempts, which errors."""
    reconcile_role: str | None = None
    """Role a person must hold to settle a call of this tool that is in doubt; None: anyone
    of the run's tenant."""
    allow_non_finite: bool = False
    """True if the tool takes NaN and infinities as numbers; otherwise any argument that is
    one, at any depth, is invalid (a refund of -inf is not a refund)."""
    source: str = "function"
    """What described the tool: "function" (@tool), "langchain" (as_tool), "schema"
    (schema_tool) or "mcp" (an MCP server's listing)."""
    server: str | None = None
    """The MCP server that runs the tool, by its name in the runtime; None for a tool this
    process runs. Policy rules match it (``match: {servers: [...]}``)."""

    def __post_init__(self) -> None:
        if (self.args_model is None) == (self.args_schema is None):
            raise ConfigError(
                f"tool {self.name!r}: describe its arguments once, as a pydantic model "
                "(args_model) or as a JSON Schema (args_schema), not both or neither"
            )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the underlying function directly, as if it were not decorated."""
        return self.fn(*args, **kwargs)

    def validate_args(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """Validate arguments against the schema; return them in their JSON form."""
        if self.args_schema is not None:
            return self.args_schema.validate(
                args, allow_non_finite=self.allow_non_finite, sensitive=self.sensitive
            )
        assert self.args_model is not None  # one of the two, as __post_init__ checked
        refused = partial(ToolArgsError, self.name, sensitive=self.sensitive)
        if not isinstance(args, Mapping):
            raise refused([{"loc": (), "msg": "arguments must be a JSON object", "input": args}])
        try:
            model = self.args_model.model_validate(dict(args))
        except ValidationError as exc:
            raise refused([dict(e) for e in exc.errors()]) from None
        if not self.allow_non_finite:
            # The args model refuses them in its own float fields; this catches the rest
            # (nested models, dicts, Any), whatever their declared type.
            found = non_finite(model.model_dump())
            if found is not None:
                where, value = found
                raise refused(
                    [{"loc": where, "msg": "Input should be a finite number", "input": value}]
                )
        return model.model_dump(mode="json")

    def call(self, args: Mapping[str, Any], ctx: ToolContext) -> Any:
        """Run the tool on validated arguments, once, with no timeout or retry."""
        return self.fn(**self.bind(args, ctx))

    def to_json(self, result: Any, *, preview: bool = False) -> Any:
        """The result (or preview) in its JSON form, as the ledger records it and the
        planner reads it."""
        if isinstance(result, ArtifactRef):
            return result.to_json()
        if is_artifact_ref(result):
            return result  # already a reference's JSON form (a recording, a replay)
        adapter = self.preview_output if preview else self.output
        if adapter is not None:
            try:
                return adapter.dump_python(result, mode="json")
            except Exception:  # a result off its schema is verify's to report, as it is
                pass
        if isinstance(result, BaseModel):
            return result.model_dump(mode="json")
        return result

    def check_output(self, data: Any, *, preview: bool = False) -> str | None:
        """None if ``data`` (JSON form) fits the result (or preview) schema, else why not."""
        adapter = self.preview_output if preview else self.output
        if adapter is None:
            return None
        try:
            adapter.validate_python(data)
        except ValidationError as exc:
            what = "preview" if preview else "result"
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(value)'}: {e['msg']}"
                for e in exc.errors()[:5]
            )
            return f"the {what} of {self.name!r} does not match its schema: {problems}"
        return None

    def bind(
        self, args: Mapping[str, Any], ctx: ToolContext, fn: Callable[..., Any] | None = None
    ) -> dict[str, Any]:
        """Keyword arguments for the tool (or its hook ``fn``), with the context if it wants one."""
        if self.args_schema is not None:
            # JSON-Schema property names need not be Python identifiers: one dict, copied so
            # the tool cannot change the arguments the run keeps.
            kwargs: dict[str, Any] = {"args": copy.deepcopy(dict(args))}
        else:
            assert self.args_model is not None
            model = self.args_model.model_validate(dict(args))
            kwargs = {name: getattr(model, name) for name in type(model).model_fields}
        target = fn or self.fn
        ctx_param = self.ctx_param if fn is None else _ctx_param(target)
        if ctx_param:
            kwargs[ctx_param] = ctx
        return kwargs

    def calling(self, call: Callable[[dict[str, Any], ToolContext], Any]) -> ToolSpec:
        """This tool with its work done by ``call(args, ctx)`` instead (a replay's
        recording, a test double): ``args`` validated, in their JSON form, for either kind
        of schema. Everything else, prepare included, stays."""
        if self.args_schema is not None:

            def by_dict(args: dict[str, Any], ctx: ToolContext) -> Any:
                return call(args, ctx)

            return replace(self, fn=by_dict, ctx_param="ctx")

        def by_keywords(_ctx: ToolContext, **kwargs: Any) -> Any:
            return call(self.validate_args(kwargs), _ctx)

        # "_ctx" cannot be an argument's name: pydantic fields never start with "_".
        return replace(self, fn=by_keywords, ctx_param="_ctx")

    def schema(self) -> dict[str, Any]:
        """The OpenAI-style function schema offered to the model through bind_tools."""
        # Built once a tool: pydantic's JSON schema, built at every plan step, was a tenth
        # of agentrt's time per action. Each caller gets a copy of its own to change.
        return copy.deepcopy(self._schema)

    @cached_property
    def _schema(self) -> dict[str, Any]:
        if self.args_schema is not None:
            return {
                "type": "function",
                "function": {
                    "name": self.name,
                    "description": self.description,
                    "parameters": self.args_schema.offered(),
                },
            }
        assert self.args_model is not None
        params = self.args_model.model_json_schema()
        params.pop("title", None)
        if self.args_model.model_config.get("extra") == "forbid":
            # Said explicitly: a model derived from a LangChain schema inherits its parent's
            # JSON schema, which does not say it.
            params["additionalProperties"] = False
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": params},
        }


def _ctx_param(fn: Callable[..., Any]) -> str | None:
    hints = get_type_hints(fn)
    for name in inspect.signature(fn).parameters:
        if hints.get(name) is ToolContext:
            return name
    return None


def _args_model(
    fn: Callable[..., Any], name: str, arg_docs: Mapping[str, str], *, allow_non_finite: bool
) -> type[BaseModel]:
    try:
        hints = get_type_hints(fn)
    except NameError as exc:
        raise ConfigError(
            f"tool {name!r}: cannot resolve a type annotation ({exc}); "
            "import the type at module level"
        ) from None
    fields: dict[str, Any] = {}
    for pname, param in inspect.signature(fn).parameters.items():
        if hints.get(pname) is ToolContext:
            continue
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ConfigError(
                f"tool {name!r}: parameter {pname!r} is *args/**kwargs; "
                "a tool's arguments must be named so they can be validated"
            )
        if pname not in hints:
            raise ConfigError(
                f"tool {name!r}: parameter {pname!r} has no type annotation; "
                "annotate it so its arguments can be validated"
            )
        default = ... if param.default is param.empty else param.default
        fields[pname] = (hints[pname], FieldInfo(default=default, description=arg_docs.get(pname)))
    model: type[BaseModel] = create_model(
        f"{name}_args",
        __config__=ConfigDict(extra="forbid", allow_inf_nan=allow_non_finite),
        **fields,
    )
    return model


class ToolOptions(TypedDict, total=False):
    """What a tool declares about its effect and its calls, whatever describes its
    arguments: as_tool's options, and part of schema_tool's and @tool's. Wherever they are
    given, they are checked as @tool checks them."""

    effect: Effect | str
    """read, write or irreversible. @tool's default is read; a LangChain or JSON-Schema
    tool's is write, since nothing in a schema says it has no side effect."""
    scopes: Iterable[str]
    """Scopes a principal must hold, all of them, for the tool to be offered or run."""
    idempotent: bool
    """True if the tool passes ctx.idempotency_key on, so calling it twice is safe."""
    cost_usd: float
    """Declared price of one call, counted against Budget.max_cost_usd."""
    sensitive: Iterable[str]
    """Argument and result field names to mask wherever they are shown."""
    credentials: Iterable[str]
    """Credentials the tool needs, by name (``ctx.credentials[name]`` in the call)."""
    timeout: float | None
    """Seconds one attempt may take; None: no limit (the run's deadline still bounds it)."""
    retry: RetryPolicy | None
    """How transient failures are retried (LangGraph's RetryPolicy); None: 3 attempts."""
    reconcile_role: str | None
    """Role a person must hold to settle a call of it that is in doubt; None: anyone of
    the run's tenant."""


class SchemaToolOptions(ToolOptions, total=False):
    """schema_tool's options: ToolOptions, and how the arguments and the result are checked."""

    allow_non_finite: bool
    """True if the tool takes NaN and infinities as numbers; otherwise any argument that is
    one, at any depth, is invalid."""
    output: Any
    """The result's schema, a type or pydantic model; None: unchecked (for @tool, the
    return annotation's)."""


class FunctionToolOptions(SchemaToolOptions, total=False):
    """@tool's options: schema_tool's, a name and a description (by default the function's
    own), and the hooks schema_tool does not take (verify, prepare)."""

    name: str | None
    """Name the model calls it by; None: the function's name."""
    description: str | None
    """What the model is told it is for; None: the docstring's summary."""
    verify: Callable[[dict[str, Any], Any], bool | str | None] | None
    """Postcondition on (args, result): False or a message string fails the step."""
    prepare: Callable[..., Any] | None
    """For an irreversible tool: returns a preview of the effect without causing it."""


def refuse_unknown(options: Mapping[str, Any], takes: Collection[str], caller: str) -> None:
    """Refuse an option that ``caller`` does not take, as Python refuses an unknown keyword
    argument: options come in as ``**options``, which takes any name at run time."""
    for key in options:
        if key not in takes:
            raise TypeError(f"{caller}() got an unexpected keyword argument {key!r}")


@overload
def tool(fn: Callable[..., Any], /) -> ToolSpec: ...
@overload
def tool(**options: Unpack[FunctionToolOptions]) -> Callable[[Callable[..., Any]], ToolSpec]: ...
def tool(
    fn: Callable[..., Any] | None = None, /, **options: Unpack[FunctionToolOptions]
) -> ToolSpec | Callable[[Callable[..., Any]], ToolSpec]:
    """Declare a function as a tool: ``@tool`` or ``@tool(effect="write", scopes=[...])``.

    The options are FunctionToolOptions'. The result schema comes from ``output`` (a type
    or pydantic model) or else from the return annotation; ``timeout`` bounds one attempt
    in seconds; ``retry`` (LangGraph's RetryPolicy) says how transient failures are
    retried, by default 3 attempts; ``reconcile_role`` is the role needed to settle a call
    of it that is in doubt. Arguments that are NaN or infinite are invalid unless
    ``allow_non_finite=True``.
    """
    refuse_unknown(options, FunctionToolOptions.__optional_keys__, "tool")

    def decorate(f: Callable[..., Any]) -> ToolSpec:
        tool_name = options.get("name") or f.__name__
        effect = options.get("effect", Effect.READ)
        scopes = options.get("scopes", ())
        sensitive = options.get("sensitive", ())
        credentials = options.get("credentials", ())
        cost_usd = options.get("cost_usd", 0.0)
        prepare = options.get("prepare")
        timeout = options.get("timeout")
        retry = options.get("retry")
        output = options.get("output")
        allow_non_finite = options.get("allow_non_finite", False)
        try:
            eff = Effect(effect)
        except ValueError:
            raise ConfigError(
                f"tool {tool_name!r}: effect {effect!r} is not one of {[e.value for e in Effect]!r}"
            ) from None
        for label, values in (
            ("scopes", scopes),
            ("sensitive", sensitive),
            ("credentials", credentials),
        ):
            if isinstance(values, str):
                raise ConfigError(
                    f"tool {tool_name!r}: {label} must be a list, got the string {values!r}; "
                    f"write {label}=[{values!r}]"
                )
        credentials = tuple(credentials)
        if not all(isinstance(name, str) and name for name in credentials):
            raise ConfigError(
                f"tool {tool_name!r}: credentials must be names (non-empty text), got "
                f"{list(credentials)!r}; e.g. credentials=['crm']"
            )
        if not (isinstance(cost_usd, int | float) and math.isfinite(cost_usd) and cost_usd >= 0):
            raise ConfigError(
                f"tool {tool_name!r}: cost_usd must be a finite number >= 0, got {cost_usd!r}"
            )
        if prepare is not None and eff is not Effect.IRREVERSIBLE:
            raise ConfigError(
                f"tool {tool_name!r}: prepare= is for irreversible tools, "
                f"but its effect is {eff.value!r}"
            )
        if timeout is not None and not (
            isinstance(timeout, int | float) and math.isfinite(timeout) and timeout > 0
        ):
            raise ConfigError(
                f"tool {tool_name!r}: timeout must be a number of seconds > 0, got {timeout!r}"
            )
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ConfigError(
                f"tool {tool_name!r}: retry must be a langgraph.types.RetryPolicy, got {retry!r}"
            )
        if retry is not None and retry.max_attempts < 1:
            raise ConfigError(
                f"tool {tool_name!r}: retry.max_attempts must be >= 1, got {retry.max_attempts!r}"
            )
        summary, arg_docs = docstring_parts(f.__doc__)
        return ToolSpec(
            name=tool_name,
            description=options.get("description") or summary or tool_name,
            fn=f,
            args_model=_args_model(f, tool_name, arg_docs, allow_non_finite=allow_non_finite),
            effect=eff,
            scopes=tuple(scopes),
            idempotent=options.get("idempotent", False),
            cost_usd=float(cost_usd),
            sensitive=tuple(sensitive),
            credentials=credentials,
            verify=options.get("verify"),
            prepare=prepare,
            ctx_param=_ctx_param(f),
            output=result_adapter(tool_name, output)
            if output is not None
            else returns_schema(f, tool_name),
            preview_output=returns_schema(prepare, tool_name) if prepare is not None else None,
            timeout=float(timeout) if timeout is not None else None,
            retry=retry or RetryPolicy(),
            reconcile_role=options.get("reconcile_role"),
            allow_non_finite=allow_non_finite,
        )

    return decorate(fn) if fn is not None else decorate
