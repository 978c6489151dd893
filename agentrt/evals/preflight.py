"""A dataset checked against the app, before any case runs: what the loader cannot know.

The runs a case takes answers from must be in the app's database; the tools its
expectations name must be the app's (``not_called: [issue_refnd]``, a typo, would pass a
run that issued the refund); and a cost ceiling needs a price to count by (a model
without one costs $0 a run, so ``max_cost_usd`` would pass every run). Each is refused as
the loader refuses a typo: DatasetError naming the case, the field and the value.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection

from langchain_core.language_models import BaseChatModel

from agentrt.budget import ModelPrice, find_price, price_table
from agentrt.errors import ConfigError
from agentrt.evals.dataset import Case, Dataset, DatasetError
from agentrt.models import model_name_of
from agentrt.replay import recorded_model
from agentrt.runtime import AgentRuntime

__all__ = ["check_on_app", "sibling_prices"]


def check_on_app(rt: AgentRuntime, dataset: Dataset) -> None:
    """DatasetError at the first case that asks of ``rt`` what it does not have."""
    tools = rt.tools.names()
    for case in dataset.cases:
        _recorded_run(rt, dataset, case)
        _tools_named(tools, dataset, case)
        _cost_counted(rt, dataset, case)


def sibling_prices(rt: AgentRuntime) -> dict[str, ModelPrice] | None:
    """The prices a case's own model is looked up in, beside the defaults: the app
    model's, so a script under its name costs what it costs."""
    return {rt.model_name: rt.model_price} if rt.model_name and rt.model_price else None


def _recorded_run(rt: AgentRuntime, dataset: Dataset, case: Case) -> None:
    recorded = case.spec.model.recorded if case.spec.model else None
    if recorded is not None and not rt.exists(recorded):
        raise DatasetError(
            dataset.source,
            f"no run {recorded!r} in {rt.store.location!r} to take the answers of",
            case=case.name,
            field="model.recorded",
        )


def _tools_named(known: Collection[str], dataset: Dataset, case: Case) -> None:
    spec = case.spec.expect.tools
    if spec is None:
        return
    named: list[tuple[str, str]] = [
        (f"expect.tools.{field}[{index}]", name)
        for field in ("called", "not_called", "only", "sequence")
        for index, name in enumerate(getattr(spec, field) or ())
    ]
    named += [(f"expect.tools.counts.{name}", name) for name in spec.counts or {}]
    for field, name in named:
        if name in known:
            continue
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise DatasetError(
            dataset.source,
            f"tool {name!r} is not one of the app's tools, so this check could never tell "
            f"a run that used it; {hint}the app's tools: {sorted(known)!r}",
            case=case.name,
            field=field,
        )


def _cost_counted(rt: AgentRuntime, dataset: Dataset, case: Case) -> None:
    limit = case.spec.expect.max_cost_usd
    if limit is None:
        return
    try:
        name, price = _priced_model(rt, case)
    except ConfigError as exc:  # a recorded run without answers
        raise DatasetError(
            dataset.source, str(exc), case=case.name, field="model.recorded"
        ) from None
    if price is None:
        raise DatasetError(
            dataset.source,
            f"max_cost_usd {limit:g} could never fail: model {name!r} has no known price, "
            f"so every run costs $0; give the app's AgentRuntime prices={{{name!r}: "
            "(input, output)} in USD per million tokens, or expect max_tokens instead",
            case=case.name,
            field="expect.max_cost_usd",
        )


def _priced_model(rt: AgentRuntime, case: Case) -> tuple[str | None, ModelPrice | None]:
    """The name of the model the case runs on, and its price (None: unknown), as the
    runtime the case runs on looks it up."""
    spec = case.spec.model
    if spec is None:
        return rt.model_name, rt.model_price
    if spec.recorded is not None:
        model: BaseChatModel = recorded_model(rt, spec.recorded)
        name = model_name_of(model)
    else:
        name = spec.name or rt.model_name or "scripted"
    return name, find_price(name, price_table(sibling_prices(rt)))
