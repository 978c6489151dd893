"""Tracing: the runtime's OpenTelemetry spans, the Redactor, where spans go, and reading them.

- attributes: every attribute key and span kind (agentrt.*, GenAI conventions, OpenInference).
- redact: the Redactor that content passes before it is put on a span or in a log.
- shown: the one path content takes to a person or a log (spans, logs, the service,
  the review page, the CLI): the Redactor with the tool's sensitive fields.
- spans: RunTracing, which opens the spans with explicit parents and sets attributes;
  segment_spans: a run's segment spans; handles: the open spans a node records its
  outcome on.
- messages: chat messages in the GenAI conventions' shape ({role, parts}).
- exporters: the run's store, console, OTLP/HTTP, or the caller's TracerProvider;
  store_spans: how spans reach the store (each made a row as it ends, written in batches);
  sent_spans: how they reach a collector (queued, sent in batches, drops counted).
- view: a run's trace as a tree with durations and where the time went.
"""

from agentrt.redaction import Detector, Redactor
from agentrt.tracing.exporters import TRACER_NAME, TracingSetup, make_provider
from agentrt.tracing.spans import RunTracing, new_trace_id
from agentrt.tracing.view import Trace, TraceSpan

__all__ = [
    "TRACER_NAME",
    "Detector",
    "Redactor",
    "RunTracing",
    "Trace",
    "TraceSpan",
    "TracingSetup",
    "make_provider",
    "new_trace_id",
]
