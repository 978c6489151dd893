"""The runtime's OpenTelemetry metrics, next to its spans (the same SDK, the same exporters).

Recorded once a run, a call or a decision, never once a node, so the per-step path pays
nothing for them: runs started and ended (by status, tenant and app; a follow-up that
sets a finished thread going again starts and ends it again, so the two stay in step),
model calls with their tokens and cost, tool calls by outcome, policy decisions by outcome
and rule, the wait for a person (a histogram), budget stops by limit, ledger reconciles
and lease takeovers.

Where they go follows ``tracing=``: "otlp" and "console" export them every
``METRIC_INTERVAL_MS`` through OpenTelemetry's own metric exporters, and every runtime
keeps them in memory too (an InMemoryMetricReader), so ``rt.metrics()`` reads them with
no collector. A MeterProvider passed as ``metrics=`` takes them instead (its readers are
the caller's); ``metrics=False`` turns them off. On agentrt's own provider, exported as
totals, the counters' sums are kept by agentrt and read as the meter collects
(agentrt.tracing.tally); a caller's provider gets OpenTelemetry's Counters, which its
views and temporality name, as do exports sent as deltas.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    InMemoryMetricReader,
    MetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)

from agentrt.errors import ConfigError
from agentrt.tracing import attributes as A
from agentrt.tracing.exporters import resource
from agentrt.tracing.tally import summed_counter

__all__ = [
    "METER_NAME",
    "METRIC_INTERVAL_MS",
    "MetricsSetup",
    "RunMetrics",
    "check_setting",
    "make_meter",
    "metric_points",
]

METER_NAME = "agentrt"
METRIC_INTERVAL_MS = 10_000
"""How often "otlp" and "console" export the metrics (and once more at close)."""

WAIT_BUCKETS = (1.0, 10.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 86400.0, 3 * 86400.0)
"""Seconds: a person answers in a minute, an hour, a day or three."""

APP = "agentrt.app"
TENANT = "agentrt.tenant"
STATUS = "agentrt.run.status"
OUTCOME = "agentrt.outcome"
RULE = "agentrt.policy.rule"
LIMIT = "agentrt.budget.limit"
ROLE = "agentrt.approval.role"
TOKEN_TYPE = "gen_ai.token.type"


@dataclass(frozen=True, slots=True)
class MetricsSetup:
    """What a ``metrics=`` argument turned into."""

    meter: metrics.Meter
    provider: MeterProvider | None
    """The provider agentrt built (and shuts down on close); None for the caller's or off."""
    reader: InMemoryMetricReader | None
    """Where rt.metrics() reads from; None when the caller's provider (or none) has them."""
    summed: bool = False
    """The counters' sums are kept by agentrt (agentrt.tracing.tally): only on its own
    provider, and only while every reader takes counters as totals. Sent as deltas, an
    observable counter's series would stay in the SDK and go out at every export for
    good, and a new one past its limit of 2,000 a counter would fold into the overflow
    point, where a Counter starts afresh at each export."""


def check_setting(setting: Any) -> None:
    """ConfigError unless ``setting`` is True, False or a MeterProvider."""
    if not isinstance(setting, bool | metrics.MeterProvider):
        raise ConfigError(
            f"metrics={setting!r} is not a metrics setting; use True (the default: kept in "
            "memory for rt.metrics(), and exported as tracing= says), False, or an "
            "opentelemetry MeterProvider"
        )


def make_meter(setting: Any, tracing: Any) -> MetricsSetup:
    """Turn ``metrics=`` (True, False or a MeterProvider) into a meter; with True, where
    they are exported follows ``tracing=`` ("otlp", "console"; else only in memory)."""
    check_setting(setting)
    if setting is False:
        return MetricsSetup(metrics.NoOpMeter(METER_NAME), None, None)
    if isinstance(setting, metrics.MeterProvider):
        return MetricsSetup(setting.get_meter(METER_NAME), None, None)
    reader = InMemoryMetricReader()
    readers: list[MetricReader] = [reader]
    exporter = _exporter(tracing)
    if exporter is not None:
        readers.append(
            PeriodicExportingMetricReader(exporter, export_interval_millis=METRIC_INTERVAL_MS)
        )
    provider = MeterProvider(metric_readers=readers, resource=resource())
    meter = provider.get_meter(METER_NAME)
    return MetricsSetup(meter, provider, reader, summed=not _sent_as_deltas(tracing))


def _exporter(tracing: Any) -> MetricExporter | None:
    if tracing == "console":
        # The stdout of the moment, not the one OpenTelemetry's default bound at import.
        return ConsoleMetricExporter(out=sys.stdout)
    if tracing == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
                OTLPMetricExporter,
            )
        except ImportError:
            raise ConfigError(
                "tracing='otlp' needs the OTLP exporter, which is the optional extra 'otlp': "
                "pip install 'agentrt[otlp]'"
            ) from None
        return OTLPMetricExporter()
    return None


def _sent_as_deltas(tracing: Any) -> bool:
    """True when the OTLP exporter will send counters as deltas: OpenTelemetry's preference
    "delta", or "lowmemory" (which sends Counters so, and observable counters as totals)."""
    preference = os.environ.get("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "")
    return tracing == "otlp" and preference.strip().upper() in ("DELTA", "LOWMEMORY")


class RunMetrics:
    """The instruments, and one method a thing worth counting."""

    def __init__(
        self, meter: metrics.Meter, *, app: str, model: str | None = None, summed: bool = False
    ) -> None:
        """``summed``: the counters' sums are kept by agentrt and read as the meter
        collects (agentrt.tracing.tally; ``MetricsSetup.summed`` says when): an add is
        then a dict update, not OpenTelemetry's per-point lookup."""
        self.app = app
        """agentrt.app on every point: the runtime's name."""
        self.model = model
        """gen_ai.request.model on the model's points: the planner's model."""
        counter = partial(summed_counter, meter) if summed else meter.create_counter
        # On one footing: a start is a run created or a finished thread set going again by
        # a follow-up, an end each move to an end status (once a message), so started -
        # ended is what runs now and ended / started a completion rate.
        self._started = counter(
            "agentrt.runs.started",
            "{run}",
            "Runs created, and finished threads a follow-up set going again.",
        )
        self._ended = counter("agentrt.runs.ended", "{run}", "Runs that reached an end status.")
        self._model_calls = counter("agentrt.model.calls", "{call}", "Answers from the model.")
        self._tokens = counter("agentrt.model.tokens", "{token}", "Tokens the model counted.")
        self._cost = counter("agentrt.model.cost", "USD", "What the model's answers cost.")
        self._tool_calls = counter("agentrt.tool.calls", "{call}", "Tool calls, by outcome.")
        self._decisions = counter(
            "agentrt.policy.decisions", "{decision}", "Policy decisions, by outcome and rule."
        )
        self._budget_stops = counter(
            "agentrt.budget.stops", "{run}", "Runs a budget stopped, by the limit."
        )
        self._reconciles = counter(
            "agentrt.ledger.reconciles", "{effect}", "Effects in doubt a person settled."
        )
        self._takeovers = counter(
            "agentrt.lease.takeovers", "{lease}", "Leases taken from an owner gone or expired."
        )
        self._wait = meter.create_histogram(
            "agentrt.approval.wait",
            "s",
            "From a request to its decision.",
            explicit_bucket_boundaries_advisory=WAIT_BUCKETS,
        )

    @classmethod
    def off(cls) -> RunMetrics:
        """Instruments that record nothing."""
        return cls(metrics.NoOpMeter(METER_NAME), app="agentrt")

    def _attrs(self, **attrs: Any) -> dict[str, Any]:
        return {APP: self.app, **{k: v for k, v in attrs.items() if v is not None}}

    def run_started(self, tenant: str | None) -> None:
        self._started.add(1, self._attrs(**{TENANT: tenant}))

    def run_ended(self, status: str, tenant: str | None, *, limit: str | None = None) -> None:
        self._ended.add(1, self._attrs(**{STATUS: status, TENANT: tenant}))
        if status == "budget_exceeded":
            self._budget_stops.add(1, self._attrs(**{LIMIT: limit or "unknown", TENANT: tenant}))

    def model_call(self, input_tokens: int, output_tokens: int, cost: float | None) -> None:
        base = self._attrs(**{A.GEN_AI_REQUEST_MODEL: self.model})
        self._model_calls.add(1, base)
        self._tokens.add(input_tokens, {**base, TOKEN_TYPE: "input"})
        self._tokens.add(output_tokens, {**base, TOKEN_TYPE: "output"})
        if cost is not None:
            self._cost.add(cost, base)

    def tool_call(self, tool: str, outcome: str, phase: str = "call") -> None:
        attrs = {A.GEN_AI_TOOL_NAME: tool, OUTCOME: outcome, A.TOOL_PHASE: phase}
        self._tool_calls.add(1, self._attrs(**attrs))

    def policy_decision(self, outcome: str, rule: str | None) -> None:
        self._decisions.add(1, self._attrs(**{OUTCOME: outcome, RULE: rule or "default"}))

    def approval_waited(
        self, seconds: float, *, status: str, rule: str | None, role: str | None
    ) -> None:
        self._wait.record(
            max(0.0, seconds),
            self._attrs(**{OUTCOME: status, RULE: rule or "default", ROLE: role}),
        )

    def reconciled(self, tool: str, outcome: str) -> None:
        self._reconciles.add(1, self._attrs(**{A.GEN_AI_TOOL_NAME: tool, OUTCOME: outcome}))

    def lease_taken_over(self, why: str) -> None:
        self._takeovers.add(1, self._attrs(**{OUTCOME: why}))


def metric_points(reader: InMemoryMetricReader | None) -> dict[str, list[dict[str, Any]]]:
    """What ``reader`` holds now, by metric name: each point's attributes and its value (a
    sum; for a histogram its count, sum, min, max and bucket counts)."""
    if reader is None:
        return {}
    data = reader.get_metrics_data()
    found: dict[str, list[dict[str, Any]]] = {}
    for resource_metrics in data.resource_metrics if data is not None else ():
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(_points(metric.data.data_points))
    return found


def _points(points: Iterable[Any]) -> Iterable[dict[str, Any]]:
    for point in points:
        attrs: Mapping[str, Any] = point.attributes or {}
        if hasattr(point, "bucket_counts"):
            yield {
                "attributes": dict(attrs),
                "count": point.count,
                "sum": point.sum,
                "min": point.min,
                "max": point.max,
                "buckets": dict(
                    zip(
                        [*map(str, point.explicit_bounds), "+Inf"], point.bucket_counts, strict=True
                    )
                ),
            }
        else:
            yield {"attributes": dict(attrs), "value": point.value}
