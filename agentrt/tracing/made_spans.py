"""SpanMaker: agentrt's spans for an OpenTelemetry SDK tracer, made as its tracer makes them,
for a fifth of the cost.

A run makes a span a node (agent.step) and one a model call, tool call and policy check. The
SDK's own span cost 10 µs made, attached and ended in a loop, 17 with a few attributes, and
about 40 more a node inside a run than a plain record of it (the per-node benchmark: 1.73 of
bare LangGraph with the SDK's, 1.47 without), most of it the SDK's span machinery: a lock a
call, each attribute's value checked as it is set, a copy as it ends. agentrt's own
attributes are already of the kinds OpenTelemetry takes (``RunTracing.set`` makes them so).

So for an SDK tracer agentrt makes a ``MadeSpan``, the SDK's ``Span`` class with its
bookkeeping done once at the end: the tracer's sampler decides (its trace state and
attributes kept), its id generator names the span, its processors get the span as it starts
(``on_start``, where a processor may add attributes) and as it ends (``on_end``), with the
tracer's resource and instrumentation scope; the provider's span limits are applied as it
ends, where the SDK applies them as each value is set: the same span exported. Events and
links go through the SDK's own code. What is left out: the SDK's metrics about its own spans
(started, live), which are of the SDK's spans. Any other tracer (the API's no-op one, a
proxy, another SDK) makes agentrt's spans itself.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from time import time_ns
from typing import Any

from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace.sampling import DEFAULT_ON
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    TraceFlags,
    TraceState,
)
from opentelemetry.util import types

__all__ = ["MadeSpan", "SpanMaker"]

_PLAIN = (str, bool, int, float)
"""Attribute values the SDK would keep as they are (but a str past a length limit)."""

_UNSET = trace.Status(trace.StatusCode.UNSET)

_TRACER_PARTS = (
    "sampler",
    "id_generator",
    "span_processor",
    "resource",
    "_span_limits",
    "_instrumentation_scope",
    "_is_enabled",
)
"""What a tracer of the SDK makes its spans with; one that lacks any makes its own."""


class MadeSpan(SdkSpan):
    """A recording span of the SDK's kind whose attributes are kept as given while it runs
    and bounded by the span limits once, as it ends (``SpanMaker``)."""

    _status = _UNSET
    _end_time: int | None = None
    _events: Any = ()
    _links: Any = ()
    """Most spans get no event and no link: their lists are made with the first."""

    def __init__(
        self,
        name: str,
        context: SpanContext,
        *,
        parent: SpanContext | None,
        maker: SpanMaker,
        attributes: Mapping[str, types.AnyValue],
        links: Sequence[Link],
        start_time: int,
    ) -> None:
        # Not SdkSpan.__init__, which checks each attribute as it sets it: the same fields,
        # the attributes a plain dict until the span ends.
        limits = maker.limits
        self._name = name
        self._context = context
        self._kind = SpanKind.INTERNAL
        self._instrumentation_info = None
        self._instrumentation_scope = maker.scope
        self._parent = parent
        self._start_time = start_time
        self._resource = maker.resource
        self._sampler = maker.sampler
        self._trace_config = None
        self._record_exception = True
        self._set_status_on_exception = True
        self._span_processor = maker.processor
        self._limits = limits
        self._lock = maker.lock
        self._attributes: Any = dict(attributes)
        self._unchecked = not _all_plain(attributes, limits.max_span_attribute_length)
        """Some value the limits or OpenTelemetry's kinds may change, checked as it ends (in
        the order set, a key set again the newest, as the SDK keeps them)."""
        if links:
            self._links = self._new_links(links)
        self._record_end_metrics = None

    def set_attributes(self, attributes: Mapping[str, types.AnyValue]) -> None:
        if self._end_time is not None:
            return  # as the SDK does, less its warning a call
        kept = self._attributes
        for key in attributes.keys() & kept.keys():
            del kept[key]  # as the SDK's: an attribute set again is the newest, last dropped
        kept.update(attributes)
        if not self._unchecked:
            self._unchecked = not _all_plain(attributes, self._limits.max_span_attribute_length)

    def set_attribute(self, key: str, value: types.AnyValue) -> None:
        self.set_attributes({key: value})

    def _add_event(self, event: Event) -> None:
        with self._lock:
            if self._end_time is not None:
                return
            if type(self._events) is tuple:  # none yet (an empty BoundedList counts drops)
                self._events = BoundedList(self._limits.max_events)
            self._events.append(event)

    def _add_link(self, link: Link) -> None:
        with self._lock:
            if self._end_time is not None:
                return
            if type(self._links) is tuple:
                self._links = BoundedList(self._limits.max_links)
            self._links.append(link)

    def end(self, end_time: int | None = None) -> None:
        with self._lock:  # ended once, whichever thread ends it first
            if self._end_time is not None:
                return
            self._end_time = end_time if end_time is not None else time_ns()
        given = self._attributes
        limit = self._limits.max_span_attributes
        if self._unchecked or (limit is not None and len(given) > limit):
            # What the SDK would have kept: OpenTelemetry's kinds, the limits, oldest dropped.
            self._attributes = BoundedAttributes(
                limit, given, immutable=True, max_value_len=self._limits.max_span_attribute_length
            )
        ending = getattr(self._span_processor, "_on_ending", None)  # an SDK since 1.39
        if ending is not None:
            ending(self)
        # The span itself, not a copy: nothing changes it once ended.
        self._span_processor.on_end(self)


def _all_plain(attributes: Mapping[str, types.AnyValue], max_len: int | None) -> bool:
    for key, value in attributes.items():
        if type(key) is not str or not key or type(value) not in _PLAIN:
            return False
        if max_len is not None and type(value) is str and len(value) > max_len:
            return False
    return True


class SpanMaker:
    """Makes spans for one SDK tracer, as ``Tracer.start_span`` would (``MadeSpan``)."""

    def __init__(self, tracer: SdkTracer) -> None:
        self.tracer = tracer
        self.sampler = tracer.sampler
        self.ids = tracer.id_generator
        self.processor = tracer.span_processor
        self.resource = tracer.resource
        self.limits = tracer._span_limits
        self.scope = tracer._instrumentation_scope
        self.lock = threading.Lock()
        """What the SDK's methods a span inherits (status, name, events) take: one for the
        tracer's spans, each change it guards a few attribute writes."""

    @classmethod
    def of(cls, tracer: trace.Tracer) -> SpanMaker | None:
        """The maker for ``tracer``, or None when it is not one of the SDK's."""
        if not isinstance(tracer, SdkTracer) or not hasattr(TraceFlags, "RANDOM_TRACE_ID"):
            return None  # not the SDK's, or one older than this module knows
        if all(hasattr(tracer, a) for a in _TRACER_PARTS):
            return cls(tracer)
        return None

    def start(
        self,
        name: str,
        *,
        context: Context | None,
        links: Sequence[Link] | None,
        start_time: int,
        attributes: Mapping[str, types.AnyValue],
    ) -> trace.Span:
        """A span called ``name`` begun at ``start_time``, under the span of ``context``
        (the current one if None), as ``Tracer.start_span`` begins it."""
        tracer = self.tracer
        if not tracer._is_enabled():
            return tracer.start_span(
                name, context=context, links=links, start_time=start_time, attributes=attributes
            )
        links = links or ()
        parent: SpanContext | None = trace.get_current_span(context).get_span_context()
        if parent is None or not parent.is_valid:
            parent = None
            trace_id = self.ids.generate_trace_id()
            random_id = self.ids.is_trace_id_random()
        else:
            trace_id = parent.trace_id
            random_id = parent.trace_flags.random_trace_id
        trace_state: TraceState | None
        if self.sampler is DEFAULT_ON and parent is not None and not parent.is_remote:
            # The SDK's default sampler, ParentBased(ALWAYS_ON), decides a local parent's
            # child as the parent was decided, its trace state and the attributes as given:
            # the same answer without the call (a span's start, in most apps).
            recording = sampled_too = parent.trace_flags.sampled
            trace_state, kept = parent.trace_state, attributes
        else:
            sampled = self.sampler.should_sample(
                context, trace_id, name, SpanKind.INTERNAL, attributes, links
            )
            recording = sampled.decision.is_recording()  # type: ignore[no-untyped-call]
            sampled_too = sampled.decision.is_sampled()  # type: ignore[no-untyped-call]
            trace_state, kept = sampled.trace_state, sampled.attributes or {}
        flags = TraceFlags.SAMPLED if sampled_too else TraceFlags.DEFAULT
        if random_id:
            flags |= TraceFlags.RANDOM_TRACE_ID
        span_context = SpanContext(
            trace_id,
            self.ids.generate_span_id(),
            is_remote=False,
            trace_flags=TraceFlags(flags),
            trace_state=trace_state,
        )
        if not recording:
            return NonRecordingSpan(span_context)
        span = MadeSpan(
            name,
            span_context,
            parent=parent,
            maker=self,
            attributes=kept,
            links=links,
            start_time=start_time,
        )
        self.processor.on_start(span, parent_context=context)
        return span
