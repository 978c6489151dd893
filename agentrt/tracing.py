"""Tracing: where the runtime's spans go.

The runtime opens its spans itself (agent.run per segment, agent.step per node) with the
OpenTelemetry API; this module turns the `tracing=` argument into a Tracer.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

from agentrt.errors import ConfigError

__all__ = ["TRACER_NAME", "make_tracer"]

TRACER_NAME = "agentrt"


def make_tracer(tracing: str | trace.TracerProvider | None) -> trace.Tracer:
    """None: spans are not recorded; "console": printed; a TracerProvider: the caller's."""
    if tracing is None:
        return trace.NoOpTracer()
    if isinstance(tracing, trace.TracerProvider):
        return tracing.get_tracer(TRACER_NAME)
    if tracing == "console":
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
        return provider.get_tracer(TRACER_NAME)
    raise ConfigError(
        f"tracing={tracing!r} is not available in this version; use None, 'console' or an "
        "opentelemetry TracerProvider (the SQLite span store and OTLP come with `agentrt trace`)"
    )
