"""Budget values, layering, prices and the pre-flight arithmetic, without a run."""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from agentrt import AgentRuntime, Budget, ConfigError
from agentrt.budget import (
    DEFAULT_PRICES,
    MAX_LIMIT,
    ModelCallPlan,
    ModelPrice,
    budget_attributes,
    empty_usage,
    find_price,
    plan_model_call,
    price_table,
    raised_budget,
    remaining,
)
from agentrt.models import approximate_tokens, count_prompt_tokens, output_cap, output_cap_field
from agentrt.readable import LAST_INSTANT
from agentrt.state import Usage
from agentrt.testing import ScriptedChatModel


def usage(**spent: float) -> Usage:
    return Usage(**{**empty_usage(), **spent})  # type: ignore[typeddict-item]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"on_exceed": "maybe"}, "Budget.on_exceed must be 'stop' or 'ask', got 'maybe'"),
        ({"approver_role": ""}, "Budget.approver_role must be a role name or None, got ''"),
        ({"max_cost_usd": float("inf")}, "Budget.max_cost_usd must be a finite number >= 0"),
        ({"max_cost_usd": float("nan")}, "Budget.max_cost_usd must be a finite number >= 0"),
        ({"max_active_seconds": -1.0}, "Budget.max_active_seconds must be a finite number >= 0"),
        ({"max_tokens": -(10**400)}, "Budget.max_tokens must be a finite number >= 0"),
        # A run stores its limits as 64-bit integers: a larger one would fail the run later.
        (
            {"max_tokens": 2**63},
            "Budget.max_tokens is 9223372036854775808, past the largest limit a run can store "
            "(9223372036854775807, 2**63 - 1); use None for no limit",
        ),
        ({"max_tool_calls": 10**400}, "Budget.max_tool_calls is 1000000"),
        ({"max_steps": 10**20}, "Budget.max_steps is 100000000000000000000, past the largest"),
        ({"max_cost_usd": 10**20}, "Budget.max_cost_usd is 100000000000000000000, past the"),
        ({"deadline": 2**64}, "Budget.deadline is 18446744073709551616, past the largest"),
        # A deadline no date can show would break every page and command that shows it.
        (
            {"deadline": 1e300},
            "Budget.deadline is 1e+300, past 9999-12-31T23:59:59Z (epoch seconds "
            "253402300799), the last time a date shows; give epoch seconds before it",
        ),
        ({"deadline": LAST_INSTANT + 1}, "Budget.deadline is 253402300800.0, past 9999-12-31"),
    ],
)
def test_bad_budgets_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        Budget(**kwargs)


def test_a_deadline_raised_past_the_last_date_is_refused() -> None:
    with pytest.raises(ConfigError, match=re.escape("Budget.deadline is 1e+20, past 9999")):
        raised_budget(Budget(deadline=100.0), "deadline", 1e20, used=100.0)
    assert raised_budget(Budget(deadline=100.0), "deadline", LAST_INSTANT).deadline == (
        LAST_INSTANT
    )


def test_the_largest_limit_a_run_can_store_is_accepted() -> None:
    largest = Budget(max_tokens=MAX_LIMIT, max_tool_calls=MAX_LIMIT, max_steps=MAX_LIMIT)
    assert largest.limits() == dict.fromkeys(
        ["max_tokens", "max_tool_calls", "max_steps"], MAX_LIMIT
    )
    assert (
        Budget(max_cost_usd=1e300, deadline=LAST_INSTANT).max_cost_usd == 1e300
    )  # floats are stored as they are; a deadline up to the last time a date shows


def test_layers_replace_set_fields_and_inherit_none() -> None:
    runtime = Budget(max_steps=100, max_cost_usd=5.0)
    tenant = Budget(max_cost_usd=1.0, on_exceed="ask", approver_role="finance")
    run = Budget(max_steps=10, max_tool_calls=3)
    assert run.over(tenant.over(runtime)) == Budget(
        max_steps=10,
        max_cost_usd=1.0,
        max_tool_calls=3,
        on_exceed="ask",
        approver_role="finance",
    )
    assert Budget().over(runtime) == runtime
    assert run.over(None) == run
    assert Budget.from_dict(run.over(runtime).to_dict()) == run.over(runtime)


def test_tightened_takes_the_smaller_limit_and_never_loosens_who_may_raise() -> None:
    above = Budget(max_steps=20, max_tool_calls=10, deadline=2_000.0)
    asked = Budget(max_steps=10**9, max_tool_calls=3, max_cost_usd=0.5, deadline=9_000.0)
    assert above.tightened(asked) == Budget(
        max_steps=20, max_tool_calls=3, max_cost_usd=0.5, deadline=2_000.0
    )
    assert above.tightened(None) == above
    assert above.tightened(Budget()) == above
    # "stop" only tightens; "ask", or a role of one's own choosing, would let a run go on.
    asking = Budget(max_steps=20, on_exceed="ask", approver_role="finance")
    assert asking.tightened(Budget(on_exceed="stop")).on_exceed == "stop"
    assert above.tightened(Budget(on_exceed="stop")).on_exceed == "stop"
    assert asking.tightened(Budget(on_exceed="ask", approver_role="finance")) == asking
    with pytest.raises(ConfigError, match="on_exceed='ask' would let a person raise"):
        above.tightened(Budget(on_exceed="ask"))
    with pytest.raises(ConfigError, match="approver_role='operator' would change who"):
        asking.tightened(Budget(approver_role="operator"))
    with pytest.raises(ConfigError, match="approver_role='operator' would change who"):
        above.tightened(Budget(approver_role="operator"))


def test_prices_find_dated_snapshots_and_providers_and_take_overrides() -> None:
    table = price_table()
    assert find_price("gpt-4o-2024-08-06", table) == DEFAULT_PRICES["gpt-4o"]
    assert find_price("gpt-4o-mini-2024-07-18", table) == DEFAULT_PRICES["gpt-4o-mini"]
    assert find_price("openai:gpt-4.1", table) == DEFAULT_PRICES["gpt-4.1"]
    assert find_price("claude-sonnet-4-5-20250929", table) == DEFAULT_PRICES["claude-sonnet-4-5"]
    assert find_price("claude-opus-4-1-20250805", table) == DEFAULT_PRICES["claude-opus-4-1"]
    assert find_price("gemini-2.5-flash-lite", table) == DEFAULT_PRICES["gemini-2.5-flash-lite"]
    # A router's names: the vendor's model; a variant such as ":free" stays unpriced.
    assert find_price("openai/gpt-4o-mini", table) == DEFAULT_PRICES["gpt-4o-mini"]
    assert (
        find_price("openrouter:anthropic/claude-sonnet-4-5", table)
        == DEFAULT_PRICES["claude-sonnet-4-5"]
    )
    assert find_price("openai/gpt-4o-mini:free", table) is None
    assert find_price("gpt-4o1", table) is None  # a prefix only matches at a name boundary
    assert find_price("llama-3", table) is None
    assert find_price(None, table) is None

    mine = price_table(
        {"gpt-4o": (1.0, 3.0), "in-house": ModelPrice(input_per_mtok=0, output_per_mtok=0)}
    )
    assert find_price("gpt-4o", mine) == ModelPrice(input_per_mtok=1.0, output_per_mtok=3.0)
    assert find_price("in-house", mine) == ModelPrice(input_per_mtok=0, output_per_mtok=0)
    assert DEFAULT_PRICES["gpt-4o"].cost(1_000_000, 100_000) == pytest.approx(2.5 + 1.0)


@pytest.mark.parametrize(
    ("prices", "message"),
    [
        ({"m": 3.0}, "price of 'm' must be a ModelPrice or (input, output) USD per million"),
        ({"m": (1.0, -2.0)}, "ModelPrice.output_per_mtok must be a number >= 0, got -2.0"),
        ({"": (1.0, 2.0)}, "a price is keyed by a model name, got ''"),
    ],
)
def test_bad_prices_are_refused(prices: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        price_table(prices)
    assert message in str(caught.value)


# Pre-flight of one model call: the prompt is 10 tokens, nothing spent yet.

PRICE = ModelPrice(input_per_mtok=1.0, output_per_mtok=2.0)


def preflight(budget: Budget, **given: Any) -> ModelCallPlan:
    """plan_model_call for a 10-token prompt to a model capped at 256 that can be capped lower."""
    args: dict[str, Any] = {"model_cap": 256, "can_cap": True, "price": None} | given
    return plan_model_call(budget, usage(), now=0.0, prompt_tokens=10, **args)


@pytest.mark.parametrize(("limit", "cap"), [(10, None), (11, 1), (12, 2), (500, 256)])
def test_tokens_cap_the_answer_to_what_remains_after_the_prompt(
    limit: int, cap: int | None
) -> None:
    call = preflight(Budget(max_tokens=limit))
    if cap is None:
        assert call.exceeded is not None
        assert (call.exceeded.limit, call.exceeded.requested) == ("max_tokens", 11)
    else:
        assert call.exceeded is None
        assert call.cap == cap
        assert call.capped_by == (None if cap == 256 else "max_tokens")


@pytest.mark.parametrize(("limit", "fits"), [(265, False), (266, True), (267, True)])
def test_a_model_whose_cap_cannot_be_set_must_fit_whole(limit: int, fits: bool) -> None:
    call = preflight(Budget(max_tokens=limit), can_cap=False)
    assert (call.exceeded is None) is fits
    assert call.capped_by is None


@pytest.mark.parametrize(
    ("limit", "cap"),
    # 10 prompt tokens cost $0.00001; each answer token $0.000002.
    [(0.000011, None), (0.000012, 1), (0.000013, 1), (0.000014, 2), (1.0, 256)],
)
def test_money_caps_the_answer_to_what_it_can_pay_for(limit: float, cap: int | None) -> None:
    call = preflight(Budget(max_cost_usd=limit), price=PRICE)
    assert (call.cap if call.exceeded is None else None) == cap
    if cap is None:
        assert call.exceeded is not None
        assert call.exceeded.limit == "max_cost_usd"
        assert call.exceeded.requested == pytest.approx(0.000012)


def test_the_tighter_of_tokens_and_money_sets_the_cap() -> None:
    # Room for 30 answer tokens by count, 10 by money.
    call = preflight(Budget(max_tokens=40, max_cost_usd=0.00003), model_cap=None, price=PRICE)
    assert (call.exceeded, call.cap, call.capped_by) == (None, 10, "max_cost_usd")


def test_free_output_is_not_capped_by_money() -> None:
    free = ModelPrice(input_per_mtok=1.0, output_per_mtok=0.0)
    call = preflight(Budget(max_cost_usd=0.00001), model_cap=None, price=free)
    assert (call.exceeded, call.cap, call.capped_by) == (None, None, None)
    # The prompt alone must still fit.
    assert preflight(Budget(max_cost_usd=0.000009), price=free).exceeded is not None


@pytest.mark.parametrize("limit", [1e20, 1e300, 1.7e308])
def test_a_cost_limit_past_any_cap_leaves_the_answer_uncapped(limit: float) -> None:
    # What it would pay for is more tokens than a 64-bit cap (or a float) can say: a cap
    # that large could not be stored with the model call, nor sent to a provider.
    call = preflight(Budget(max_cost_usd=limit), model_cap=None, price=PRICE)
    assert (call.exceeded, call.cap, call.capped_by) == (None, None, None)
    assert preflight(Budget(max_cost_usd=limit), price=PRICE).cap == 256


@pytest.mark.parametrize("limit", [2**31 + 10, 2**40, 2**63 - 1])
def test_a_token_limit_past_any_answer_sets_no_cap(limit: int) -> None:
    # No model answers 2**31 tokens; a cap that large is refused by providers.
    call = preflight(Budget(max_tokens=limit), model_cap=None)
    assert (call.exceeded, call.cap, call.capped_by) == (None, None, None)


def test_a_models_largest_answer_is_its_cap_when_it_sets_none() -> None:
    from agentrt.models import output_limit

    assert output_limit(ScriptedChatModel([], model_name="gpt-4o-2024-08-06")) == 16_384
    assert output_limit(ScriptedChatModel([], model_name="gpt-4o-2024-05-13")) == 4_096
    assert output_limit(ScriptedChatModel([], model_name="openai:gpt-4.1-mini")) == 32_768
    assert output_limit(ScriptedChatModel([], model_name="gpt-4o", max_tokens=500)) == 500
    assert output_limit(ScriptedChatModel([], model_name="my-local-model")) is None


def test_remaining_and_span_attributes() -> None:
    budget = Budget(max_tokens=100, max_tool_calls=3, max_steps=10, deadline=50.0)
    spent = usage(input_tokens=30, output_tokens=20, tool_calls=3, steps=4)
    assert remaining(budget, spent, now=40.0) == {
        "max_tokens": 50,
        "max_tool_calls": 0,
        "max_steps": 6,
        "deadline": 10.0,
    }
    assert budget_attributes(budget, spent, now=60.0) == {
        "agentrt.budget.tokens_remaining": 50,
        "agentrt.budget.tool_calls_remaining": 0,
        "agentrt.budget.steps_remaining": 6,
        "agentrt.budget.seconds_to_deadline": 0.0,
    }
    assert remaining(Budget(), spent, now=0.0) == {}


def test_a_raise_must_name_a_set_limit_and_go_up() -> None:
    budget = Budget(max_tool_calls=5, max_cost_usd=1.0)
    assert raised_budget(budget, "max_tool_calls", 8) == Budget(max_tool_calls=8, max_cost_usd=1.0)
    assert raised_budget(budget, "max_tool_calls", 8.0).max_tool_calls == 8
    assert raised_budget(budget, "max_cost_usd", 1.5).max_cost_usd == 1.5
    assert raised_budget(budget, "max_tool_calls", MAX_LIMIT).max_tool_calls == MAX_LIMIT
    for limit, value, message in [
        ("max_tool_calls", 5, "must be higher than the current 5, got 5"),
        ("max_tool_calls", 4, "must be higher than the current 5, got 4"),
        ("max_tool_calls", 7.5, "Budget.max_tool_calls counts whole units, got 7.5"),
        ("max_tool_calls", "9", "the new max_tool_calls must be a number, got '9'"),
        ("max_steps", 9, "'max_steps' is not a limit this run has"),
        ("on_exceed", 9, "'on_exceed' is not a limit this run has"),
        # Past 64 bits, or not finite: refused, not accepted and then failing the run.
        (
            "max_tool_calls",
            1e20,
            "the new max_tool_calls 1e+20 is past the largest limit a run can store "
            "(9223372036854775807, 2**63 - 1)",
        ),
        ("max_tool_calls", 2**63, "the new max_tool_calls 9223372036854775808 is past"),
        ("max_cost_usd", 10**20, "the new max_cost_usd 100000000000000000000 is past"),
        ("max_tool_calls", math.inf, "the new max_tool_calls must be a finite number, got inf"),
        ("max_cost_usd", math.nan, "the new max_cost_usd must be a finite number, got nan"),
        ("max_cost_usd", math.inf, "the new max_cost_usd must be a finite number, got inf"),
    ]:
        with pytest.raises(ConfigError) as caught:
            raised_budget(budget, limit, value)
        assert message in str(caught.value)


@pytest.mark.parametrize(
    ("limit", "asked", "to", "refused"),
    [
        # asked: the limit, what the run used, and what its next action needs.
        # A spend known before it is made (a count, money, a model call's prompt) must fit.
        ("max_tool_calls", (2, 2, 1), 3, None),
        ("max_steps", (2, 4, 1), 4, "has used 4 and the next action needs 1 more; give at least 5"),
        ("max_cost_usd", (0.015, 0.01, 0.01), 0.02, None),
        (
            "max_cost_usd",
            (0.015, 0.01, 0.01),
            0.016,
            "the new max_cost_usd 0.016 would stop the run again: the run has used 0.01 and the "
            "next action needs 0.01 more; give at least 0.02",
        ),
        ("max_tokens", (100, 90, 20), 110, None),
        ("max_tokens", (100, 90, 20), 109, "give at least 110"),
        # Tokens and time are measured after the spend: the run stops once they are reached.
        ("max_tokens", (100, 120, 0), 121, None),
        ("max_tokens", (100, 120, 0), 120, "the run has used 120; give more than 120"),
        ("max_active_seconds", (1.5, 2.0, 0), 2.5, None),
        (
            "max_active_seconds",
            (1.5, 2.0, 0),
            1.8,
            "the new max_active_seconds 1.8 would stop the run again: the run has used 2; "
            "give more than 2",
        ),
        ("max_active_seconds", (1.5, 2.0, 0), 2.0, "give more than 2"),
        ("deadline", (1000.0, 1005.0, 0), 1003.0, "the run stopped at 1005; give more than 1005"),
        ("deadline", (1000.0, 1005.0, 0), 1006.0, None),
    ],
)
def test_a_raise_must_cover_what_the_run_used_and_its_next_action_needs(
    limit: str, asked: tuple[float, float, float], to: float, refused: str | None
) -> None:
    allowed, used, requested = asked
    current = Budget.from_dict({limit: allowed})
    if refused is None:
        raised = raised_budget(current, limit, to, used=used, requested=requested)
        assert getattr(raised, limit) == to
        return
    with pytest.raises(ConfigError) as caught:
        raised_budget(current, limit, to, used=used, requested=requested)
    assert refused in str(caught.value)


def test_prompt_tokens_come_from_the_model_or_a_documented_approximation() -> None:
    messages = [SystemMessage("x" * 40), HumanMessage("y" * 9), AIMessage("")]
    # 49 characters -> 13 tokens, plus 4 a message.
    assert approximate_tokens(messages) == 13 + 12
    # The tool schemas count as their JSON: '[{"name": "t"}]' is 15 more characters.
    assert approximate_tokens(messages, [{"name": "t"}]) == 16 + 12
    # A model that counts (the scripted one counts as it reports) is asked instead.
    model = ScriptedChatModel(["ok"])
    prompt = messages[:2]
    assert count_prompt_tokens(model, prompt) == 49 // 4
    assert model.invoke(prompt).usage_metadata == {
        "input_tokens": 49 // 4,
        "output_tokens": 1,
        "total_tokens": 49 // 4 + 1,
    }


def test_text_outside_ascii_is_counted_by_its_bytes_not_four_characters_a_token() -> None:
    # English (ASCII) is four characters a token, as before; any other character two
    # quarters a UTF-8 byte: a CJK character 1.5 tokens, where a tokenizer takes about one
    # (four characters a token took a Chinese prompt for a quarter of its size).
    english = "Look up order 42 and check each line's amount and tax. " * 10
    assert approximate_tokens([HumanMessage(english)]) == math.ceil(len(english) / 4) + 4
    chinese = "请查询订单并核对每一行的金额与税费" * 235  # 3,995 characters, 3 bytes each
    assert approximate_tokens([HumanMessage(chinese)]) == math.ceil(3995 * 3 / 2) + 4
    for text, tokens in [
        ("привет", 6),  # Cyrillic: 2 bytes, a token a character
        ("\U0001f642", 2),  # an emoji: 4 bytes
        ("café", 2),  # "caf" 3 quarters, "é" 4: 7 quarters
        ("\ud800", 2),  # a lone surrogate (a provider's bad JSON) counts, it does not raise
        ("", 0),
    ]:
        assert approximate_tokens([HumanMessage(text)]) == tokens + 4, text
    # Content blocks and tool calls count their characters as written, not \u escapes.
    blocks = [{"type": "text", "text": "税" * 100}]
    quarters = len('[{"text": "", "type": "text"}]') + 100 * 6
    assert approximate_tokens([HumanMessage(content=blocks)]) == math.ceil(quarters / 4) + 4
    call = AIMessage("", tool_calls=[{"name": "t", "args": {"q": "税" * 100}, "id": "c1"}])
    assert approximate_tokens([call]) > 100 * 6 / 4


class _LeavesToolsOut(ScriptedChatModel):
    """A counter as ChatOpenAI's is with its tokenizer: it warns, and counts the messages."""

    def get_num_tokens_from_messages(
        self, messages: list[BaseMessage], tools: Sequence[Any] | None = None
    ) -> int:
        if tools is not None:
            warnings.warn(
                "Counting tokens in tool schemas is not yet supported. Ignoring tools.",
                stacklevel=2,
            )
        return super().get_num_tokens_from_messages(messages)


class _CountsTools(ScriptedChatModel):
    """A counter that warns of something else and counts the tools itself."""

    def get_num_tokens_from_messages(
        self, messages: list[BaseMessage], tools: Sequence[Any] | None = None
    ) -> int:
        warnings.warn(
            "Token counts for file inputs are not supported. Ignoring file inputs.", stacklevel=2
        )
        return super().get_num_tokens_from_messages(messages) + 100 * len(tools or ())


class _CountsOnlyWithTools(ScriptedChatModel):
    """A counter that warns with the tools and fails without them: it cannot be told."""

    def get_num_tokens_from_messages(
        self, messages: list[BaseMessage], tools: Sequence[Any] | None = None
    ) -> int:
        if tools is None:
            raise KeyError("no encoding for this model")
        warnings.warn("something about the tools", stacklevel=2)
        return 12


def test_a_counter_that_leaves_the_tool_schemas_out_has_them_approximated_on_top(
    caplog: pytest.LogCaptureFixture,
) -> None:
    messages = [SystemMessage("x" * 40), HumanMessage("y" * 9)]  # 12 tokens counted
    tools = [{"name": "find_order", "description": "z" * 400}]
    schemas = approximate_tokens([], tools)
    assert schemas > 100
    assert count_prompt_tokens(_LeavesToolsOut(["ok"]), messages, tools) == 12 + schemas
    assert count_prompt_tokens(_LeavesToolsOut(["ok"]), messages) == 12  # none to add
    assert count_prompt_tokens(_CountsTools(["ok"]), messages, tools) == 12 + 100  # not twice
    assert count_prompt_tokens(_CountsOnlyWithTools(["ok"]), messages, tools) == 12 + schemas
    # A counter that says nothing is taken at its word (the scripted model reports as it
    # counts, tools left out of both).
    assert count_prompt_tokens(ScriptedChatModel(["ok"]), messages, tools) == 12
    said = [r.getMessage() for r in caplog.records]
    assert (
        said.count(
            "_LeavesToolsOut counting tokens: Counting tokens in tool schemas is not yet "
            "supported. Ignoring tools."
        )
        == 2
    )  # once for each of the two models


def test_the_output_cap_is_found_by_the_field_providers_use() -> None:
    assert output_cap_field(ScriptedChatModel(["ok"])) == "max_tokens"
    assert output_cap(ScriptedChatModel(["ok"])) is None
    assert output_cap(ScriptedChatModel(["ok"], max_tokens=64)) == 64


class _CannotCount(ScriptedChatModel):
    def get_num_tokens_from_messages(
        self, messages: list[BaseMessage], tools: Sequence[Any] | None = None
    ) -> int:
        raise KeyError("no encoding for this model")


def test_a_counter_that_fails_falls_back_to_the_approximation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    messages = [HumanMessage("y" * 9)]
    assert count_prompt_tokens(_CannotCount(["ok"]), messages) == approximate_tokens(messages)
    assert "_CannotCount could not count tokens; approximating" in caplog.text


class _Uncapped(BaseChatModel):
    """A chat model with no output cap field at all."""

    model_name: str = "uncapped"

    @property
    def _llm_type(self) -> str:
        return "uncapped"

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage("ok"))])

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self


def test_token_and_cost_limits_need_a_model_whose_output_can_be_capped(tmp_path: Path) -> None:
    for budget in (Budget(max_tokens=1000), Budget(max_cost_usd=1.0)):
        with pytest.raises(ConfigError, match="has no output cap agentrt can set"):
            AgentRuntime(
                _Uncapped(), db=tmp_path / "a.db", budget=budget, prices={"uncapped": (1, 1)}
            )
    # Other limits need no cap.
    AgentRuntime(_Uncapped(), db=tmp_path / "b.db", budget=Budget(max_tool_calls=3)).close()


def test_a_budget_read_again_from_the_same_dict_is_the_same_unless_the_dict_changed() -> None:
    data = Budget(max_steps=3).to_dict()
    first = Budget.from_dict(data)
    assert Budget.from_dict(data) is first  # read once, not checked again a node
    data["max_steps"] = 5  # changed in place: read anew
    assert Budget.from_dict(data).max_steps == 5
    data["max_steps"] = -1
    with pytest.raises(ConfigError, match="max_steps must be a finite number >= 0"):
        Budget.from_dict(data)
    assert Budget.from_dict(dict(data, max_steps=2)).max_steps == 2
