"""Tests for agentrt.tools: the @tool contract, the registry and the effects ledger."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from agentrt.budget import empty_usage
from agentrt.errors import ConfigError
from agentrt.principal import Principal
from agentrt.records import NewRun
from agentrt.store.sqlite import SqliteStore as Store
from agentrt.tools import (
    Effect,
    EffectInDoubt,
    Ledger,
    ToolArgsError,
    ToolContext,
    ToolRegistry,
    ToolSpec,
    effect_key,
    tool,
)
from agentrt.tools.execution import ToolFailure
from agentrt.tools.ledger import LedgerResult, RecordedFailure
from tests.conftest import FakeClock

PRINCIPAL = Principal("agent-1", tenant="acme", scopes=["orders:write"])


@tool(effect="write", scopes=["orders:write"], idempotent=True, cost_usd=0.01)
def add_note(order_id: str, text: str, ctx: ToolContext, urgent: bool = False, count: int = 1):
    """Add a note to an order.

    Args:
        order_id: The order to annotate.
        text (str): What to write.
        urgent: Flag the note for a person.

    Returns:
        The stored note.
    """
    return {"order_id": order_id, "text": text, "key": ctx.idempotency_key, "urgent": urgent}


def make_ctx(step_id: str = "1.0", thread_id: str = "t1", args: dict[str, Any] | None = None):
    key = effect_key(thread_id, step_id, "add_note", args or {"order_id": "o1", "text": "hi"})
    return ToolContext(
        thread_id=thread_id, step_id=step_id, idempotency_key=key, principal=PRINCIPAL
    )


# @tool -------------------------------------------------------------------------------------


def test_tool_builds_its_spec_from_the_function() -> None:
    assert isinstance(add_note, ToolSpec)
    assert (
        add_note.name,
        add_note.description,
        add_note.effect,
        add_note.scopes,
        add_note.idempotent,
        add_note.cost_usd,
        add_note.ctx_param,
    ) == ("add_note", "Add a note to an order.", Effect.WRITE, ("orders:write",), True, 0.01, "ctx")


def test_schema_is_the_openai_function_format() -> None:
    assert add_note.schema() == {
        "type": "function",
        "function": {
            "name": "add_note",
            "description": "Add a note to an order.",
            "parameters": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "order_id": {
                        "description": "The order to annotate.",
                        "title": "Order Id",
                        "type": "string",
                    },
                    "text": {"description": "What to write.", "title": "Text", "type": "string"},
                    "urgent": {
                        "default": False,
                        "description": "Flag the note for a person.",
                        "title": "Urgent",
                        "type": "boolean",
                    },
                    "count": {"default": 1, "title": "Count", "type": "integer"},
                },
                "required": ["order_id", "text"],
            },
        },
    }


def test_bare_decorator_and_overrides() -> None:
    @tool
    def ping() -> str:
        return "pong"

    @tool(name="pong", description="Answer a ping.")
    def other(x: int) -> int:
        """Ignored summary."""
        return x

    assert (ping.name, ping.description, ping.effect, ping.ctx_param) == (
        "ping",
        "ping",
        Effect.READ,
        None,
    )
    assert (other.name, other.description) == ("pong", "Answer a ping.")
    assert ping() == "pong"  # a spec still calls like the function
    assert other.call({"x": 3}, make_ctx()) == 3


def test_call_injects_the_context_and_applies_defaults() -> None:
    ctx = make_ctx()
    assert add_note.call({"order_id": "o1", "text": "hi"}, ctx) == {
        "order_id": "o1",
        "text": "hi",
        "key": ctx.idempotency_key,
        "urgent": False,
    }


def test_validate_args_returns_json_form_with_defaults() -> None:
    assert add_note.validate_args({"order_id": "o1", "text": "hi", "count": 3}) == {
        "order_id": "o1",
        "text": "hi",
        "urgent": False,
        "count": 3,
    }


SUFFIX = ". Call it again with arguments that match the schema."
PREFIX = "arguments for tool 'add_note' do not match its schema: "


@pytest.mark.parametrize(
    ("args", "detail"),
    [
        pytest.param(
            {"order_id": 7, "text": "hi"},
            "order_id: Input should be a valid string (got 7)",
            id="wrong-type",
        ),
        pytest.param(
            {"order_id": "o1"},
            "text: Field required (got {'order_id': 'o1'})",
            id="missing",
        ),
        pytest.param(
            {"order_id": "o1", "text": "hi", "colour": "red"},
            "colour: Extra inputs are not permitted (got 'red')",
            id="extra",
        ),
        pytest.param(
            ["o1", "hi"],
            "(arguments): arguments must be a JSON object (got ['o1', 'hi'])",
            id="not-a-dict",
        ),
        pytest.param(
            {"order_id": "o1", "text": "hi", "count": "x" * 10_000_000},
            "count: Input should be a valid integer, unable to parse string as an integer "
            f"(got '{'x' * 56}...)",
            id="huge-value",
        ),
    ],
)
def test_validate_args_refuses_bad_arguments(args: Any, detail: str) -> None:
    before = copy.deepcopy(args)
    with pytest.raises(ToolArgsError) as info:
        add_note.validate_args(args)
    assert str(info.value) == PREFIX + detail + SUFFIX
    assert len(str(info.value)) < 1000
    assert info.value.tool == "add_note"
    assert args == before  # the caller's arguments are left as they were


@tool(sensitive=["pin"])
def unlock_door(door: str, pin: str) -> None:
    """Unlock a door with its pin."""


LONG_PIN = "zebra-58213-quartz-marble-77120-otter-lantern-99341-copper"


@pytest.mark.parametrize(
    ("args", "detail"),
    [
        pytest.param(
            {"pin": LONG_PIN},
            "door: Field required (got {'pin': '[REDACTED:field]'})",
            id="whole-arguments-quoted-long-value",
        ),
        pytest.param(
            {"pin": "zebra\\58213\\quartz"},
            "door: Field required (got {'pin': '[REDACTED:field]'})",
            id="whole-arguments-quoted-escaped-value",
        ),
        pytest.param(
            {"door": "front", "pin": 58213},
            "pin: Input should be a valid string (the value is not shown: the field is sensitive)",
            id="at-the-sensitive-field",
        ),
        pytest.param(
            f'{{"door": 1, "pin": "{LONG_PIN}"}}',
            "(arguments): arguments must be a JSON object "
            '(got \'{"door": 1, "pin": "[REDACTED:field]"}\')',
            id="json-text-instead-of-an-object",
        ),
    ],
)
def test_an_invalid_args_error_never_quotes_a_sensitive_argument(args: Any, detail: str) -> None:
    # The masking of what is shown later cuts out a secret it finds whole; quoted cut to 60
    # characters or escaped by repr, the pin would have passed it.
    with pytest.raises(ToolArgsError) as info:
        unlock_door.validate_args(args)
    message = str(info.value)
    assert message == f"arguments for tool 'unlock_door' do not match its schema: {detail}{SUFFIX}"
    assert "58213" not in message
    assert info.value.sensitive == ("pin",)


class Line(BaseModel):
    price: float


@tool
def price_lines(lines: list[Line], extra: dict[str, Any], amount: float = 1.0) -> None:
    """Price order lines."""


@pytest.mark.parametrize(
    ("args", "detail"),
    [
        pytest.param(
            {"lines": [], "extra": {}, "amount": -math.inf},
            "amount: Input should be a finite number (got -inf)",
            id="a-float-field",
        ),
        pytest.param(
            {"lines": [], "extra": {}, "amount": "nan"},
            "amount: Input should be a finite number (got 'nan')",
            id="a-string-that-parses-as-nan",
        ),
        pytest.param(
            {"lines": [{"price": 2.0}, {"price": math.inf}], "extra": {}},
            "lines.1.price: Input should be a finite number (got inf)",
            id="a-nested-model",
        ),
        pytest.param(
            {"lines": [], "extra": {"weights": [1.0, math.nan]}},
            "extra.weights.1: Input should be a finite number (got nan)",
            id="free-form-data",
        ),
    ],
)
def test_non_finite_numbers_are_invalid_arguments_wherever_they_are(
    args: dict[str, Any], detail: str
) -> None:
    # A refund of -inf once passed every `amount <= 50` rule and ran without approval.
    with pytest.raises(ToolArgsError) as info:
        price_lines.validate_args(args)
    assert str(info.value) == (
        "arguments for tool 'price_lines' do not match its schema: " + detail + SUFFIX
    )


def test_a_tool_may_take_non_finite_numbers_when_it_says_so() -> None:
    @tool(allow_non_finite=True)
    def scale(factor: float, limits: list[float]) -> None:
        """Scale by a factor, which may be infinite."""

    valid = scale.validate_args({"factor": -math.inf, "limits": [0.0, math.inf]})
    assert valid == {"factor": -math.inf, "limits": [0.0, math.inf]}
    assert (scale.allow_non_finite, price_lines.allow_non_finite) == (True, False)


def test_validate_args_lists_at_most_five_problems() -> None:
    @tool
    def many(*, a: int, b: int, c: int, d: int, e: int, f: int, g: int) -> None:
        return None

    with pytest.raises(ToolArgsError) as info:
        many.validate_args({})
    message = str(info.value)
    assert message.count("Field required") == 5
    assert " and 2 more." in message
    assert message.endswith(SUFFIX)


def test_huge_unknown_key_keeps_the_message_short() -> None:
    with pytest.raises(ToolArgsError) as info:
        add_note.validate_args({"order_id": "o1", "text": "hi", "k" * 10_000_000: 1})
    assert len(str(info.value)) < 1000


def test_extra_fields_are_forbidden_by_the_model() -> None:
    assert add_note.args_model.model_config.get("extra") == "forbid"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param(
            {"effect": "delete"},
            "tool 'f': effect 'delete' is not one of ['read', 'write', 'irreversible']",
            id="unknown-effect",
        ),
        pytest.param(
            {"scopes": "orders:write"},
            "tool 'f': scopes must be a list, got the string 'orders:write'; "
            "write scopes=['orders:write']",
            id="scopes-string",
        ),
        pytest.param(
            {"cost_usd": -0.5},
            "tool 'f': cost_usd must be a finite number >= 0, got -0.5",
            id="negative-cost",
        ),
        pytest.param(
            {"effect": "write", "prepare": lambda x: x},
            "tool 'f': prepare= is for irreversible tools, but its effect is 'write'",
            id="prepare-on-write",
        ),
    ],
)
def test_bad_declarations_are_config_errors(kwargs: dict[str, Any], message: str) -> None:
    def f(x: int) -> int:
        return x

    with pytest.raises(ConfigError) as info:
        tool(**kwargs)(f)
    assert str(info.value) == message


def test_nan_cost_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="cost_usd"):
        tool(cost_usd=math.nan)(lambda: None)


def test_sensitive_as_a_string_is_a_config_error() -> None:
    def pay(card_number: str) -> None:
        return None

    with pytest.raises(ConfigError, match="sensitive"):
        tool(sensitive="card_number")(pay)


def test_unannotated_parameter_is_refused() -> None:
    def f(order_id, amount: float) -> None:  # type: ignore[no-untyped-def]
        return None

    with pytest.raises(ConfigError) as info:
        tool(f)
    assert str(info.value) == (
        "tool 'f': parameter 'order_id' has no type annotation; "
        "annotate it so its arguments can be validated"
    )


@pytest.mark.parametrize("star", ["args", "kwargs"])
def test_star_parameters_are_refused(star: str) -> None:
    def positional(*args: int) -> None:
        return None

    def keyword(**kwargs: int) -> None:
        return None

    with pytest.raises(ConfigError) as info:
        tool(positional if star == "args" else keyword)
    assert str(info.value) == (
        f"tool {'positional' if star == 'args' else 'keyword'!r}: parameter {star!r} is "
        "*args/**kwargs; a tool's arguments must be named so they can be validated"
    )


# registry ----------------------------------------------------------------------------------


@tool
def lookup(order_id: str) -> str:
    return order_id


@tool(effect="irreversible", scopes=["refunds:write", "orders:write"])
def refund(order_id: str) -> str:
    return order_id


def test_registry_refuses_duplicate_names() -> None:
    @tool(name="lookup")
    def twin(order_id: str) -> str:
        return order_id

    with pytest.raises(ConfigError) as info:
        ToolRegistry([lookup, add_note, twin])
    assert str(info.value) == "two tools are named 'lookup'; tool names must be unique"


def test_registry_refuses_a_plain_function() -> None:
    def undecorated(order_id: str) -> str:
        return order_id

    with pytest.raises(ConfigError) as info:
        ToolRegistry([lookup, undecorated])
    assert str(info.value) == (
        f"{undecorated!r} is not an agentrt tool; decorate the function with @agentrt.tool, "
        "or pass a LangChain tool (wrap it with as_tool() to declare its effect and scopes)"
    )
    assert "undecorated" in str(info.value)


def test_registry_offers_only_tools_whose_scopes_the_principal_holds() -> None:
    registry = ToolRegistry([lookup, add_note, refund])
    assert (len(registry), registry.names(), list(registry)) == (
        3,
        ["lookup", "add_note", "refund"],
        [lookup, add_note, refund],
    )
    assert registry.get("refund") is refund
    assert registry.get("nope") is None

    def offered(*scopes: str) -> list[str]:
        return [t.name for t in registry.offered_to(Principal("p", scopes=scopes))]

    assert offered() == ["lookup"]
    assert offered("orders:write") == ["lookup", "add_note"]
    assert offered("refunds:write") == ["lookup"]  # refund needs both scopes
    assert offered("refunds:write", "orders:write", "x") == ["lookup", "add_note", "refund"]


# ledger ------------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "agentrt.db", clock=FakeClock())
    s.create_run(
        NewRun(
            thread_id="t1",
            goal="refund order o1",
            principal=PRINCIPAL.to_dict(),
            budget={},
            usage=empty_usage(),
        )
    )
    yield s
    s.close()


def counting_tool(
    *, idempotent: bool = False, fail: bool = False, effect: str = "write"
) -> tuple[ToolSpec, list[str]]:
    calls: list[str] = []

    @tool(name="add_note", effect=effect, idempotent=idempotent)
    def spec(order_id: str, text: str, ctx: ToolContext) -> dict[str, Any]:
        calls.append(ctx.idempotency_key)
        if fail:
            raise RuntimeError(f"note service down for {order_id}")
        return {"note_id": len(calls), "order_id": order_id}

    return spec, calls


ARGS = {"order_id": "o1", "text": "hi"}


def test_ledger_runs_once_and_replays_the_record(store: Store) -> None:
    spec, calls = counting_tool()
    ledger = Ledger(store)
    ctx = make_ctx()

    assert ledger.execute(spec, ARGS, ctx) == LedgerResult(
        {"note_id": 1, "order_id": "o1"}, replayed=False
    )
    record = store.get_effect(ctx.idempotency_key)
    assert record is not None
    assert (record.status, record.thread_id, record.step_id, record.tool, record.error) == (
        "done",
        "t1",
        "1.0",
        "add_note",
        None,
    )
    assert ledger.execute(spec, ARGS, ctx) == LedgerResult(
        {"note_id": 1, "order_id": "o1"}, replayed=True
    )
    assert Ledger(store).execute(spec, ARGS, ctx).replayed  # a fresh ledger reads the record
    assert calls == [ctx.idempotency_key]


def test_ledger_records_a_failure_and_raises_it_again_without_calling(store: Store) -> None:
    spec, calls = counting_tool(fail=True)
    ledger = Ledger(store)
    ctx = make_ctx()

    with pytest.raises(ToolFailure, match="note service down for o1") as first:
        ledger.execute(spec, ARGS, ctx)
    assert (first.value.kind, first.value.retries) == ("permanent", 0)
    record = store.get_effect(ctx.idempotency_key)
    assert record is not None
    assert (record.status, record.result, record.error, record.error_kind) == (
        "failed",
        None,
        "RuntimeError: note service down for o1",
        "permanent",
    )
    with pytest.raises(RecordedFailure) as info:
        ledger.execute(spec, ARGS, ctx)
    assert (str(info.value), info.value.kind) == (
        "RuntimeError: note service down for o1",
        "permanent",
    )
    assert len(calls) == 1


def start_only(store: Store, ctx: ToolContext) -> None:
    """What a process killed between reserving and recording an effect leaves behind."""
    store.start_effect(
        key=ctx.idempotency_key,
        thread_id=ctx.thread_id,
        step_id=ctx.step_id,
        tool="add_note",
        args_digest="d",
        seen=0,
    )


def test_unfinished_effect_of_a_non_idempotent_tool_is_in_doubt(store: Store) -> None:
    spec, calls = counting_tool(idempotent=False)
    ctx = make_ctx()
    start_only(store, ctx)

    with pytest.raises(EffectInDoubt) as info:
        Ledger(store).execute(spec, ARGS, ctx)
    assert str(info.value) == (
        "an earlier attempt started and never recorded its outcome; 'add_note' is not "
        "idempotent, so calling it again could repeat the effect (effect key "
        f"{ctx.idempotency_key[:16]}..., attempt 1). Check the target system, then settle it: "
        "resolve with the result if it happened, or retry if it did not."
    )
    assert (info.value.attempt, info.value.key) == (1, ctx.idempotency_key)
    assert calls == []
    record = store.get_effect(ctx.idempotency_key)
    assert record is not None
    assert record.status == "started"


def test_unfinished_effect_of_an_idempotent_tool_is_called_again(store: Store) -> None:
    spec, calls = counting_tool(idempotent=True)
    ctx = make_ctx()
    start_only(store, ctx)

    result = Ledger(store).execute(spec, ARGS, ctx)
    assert result == LedgerResult({"note_id": 1, "order_id": "o1"}, replayed=False)
    assert calls == [ctx.idempotency_key]
    record = store.get_effect(ctx.idempotency_key)
    assert record is not None
    assert (record.status, record.attempts) == ("done", 2)


def test_unfinished_read_is_called_again_not_put_to_a_person(store: Store) -> None:
    # An app's own graph records reads in the ledger; a read acts on nothing, so one that
    # started and left no outcome is simply made again.
    spec, calls = counting_tool(effect="read")
    ctx = make_ctx()
    start_only(store, ctx)

    result = Ledger(store).execute(spec, ARGS, ctx)
    assert result == LedgerResult({"note_id": 1, "order_id": "o1"}, replayed=False)
    assert calls == [ctx.idempotency_key]


def test_effect_key_is_deterministic_and_distinguishes_calls() -> None:
    base = effect_key("t1", "1.0", "add_note", {"order_id": "o1", "text": "hi"})
    assert base == effect_key("t1", "1.0", "add_note", {"text": "hi", "order_id": "o1"})
    assert len(base) == 64
    assert int(base, 16) >= 0
    others = {
        effect_key("t2", "1.0", "add_note", {"order_id": "o1", "text": "hi"}),
        effect_key("t1", "1.1", "add_note", {"order_id": "o1", "text": "hi"}),
        effect_key("t1", "1.0", "add_notes", {"order_id": "o1", "text": "hi"}),
        effect_key("t1", "1.0", "add_note", {"order_id": "o2", "text": "hi"}),
        effect_key("t1", "1.0", "add_note", {"order_id": "o1", "text": "hi", "x": None}),
    }
    assert len(others) == 5
    assert base not in others
