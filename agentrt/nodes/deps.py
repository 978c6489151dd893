"""What the nodes need from the runtime, handed to them in one object."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Protocol

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import Runnable
from langgraph.store.base import BaseStore
from langgraph.types import RetryPolicy
from opentelemetry.trace import NoOpTracer, Tracer

from agentrt.approvals import ApprovalRequest
from agentrt.budget import ModelPrice
from agentrt.limits import SizeLimits
from agentrt.nodes.stop_watch import StopWatch
from agentrt.policies import Policy
from agentrt.store.held import HoldsWrites
from agentrt.store.protocols import Store
from agentrt.summaries import Summarizing
from agentrt.tools.credentials import Credentials
from agentrt.tools.execution import ToolRunner
from agentrt.tools.ledger import Ledger
from agentrt.tools.registry import ToolRegistry
from agentrt.tracing.spans import RunTracing

__all__ = ["DEFAULT_INSTRUCTIONS", "DecisionsInResume", "HeldLease", "RunDeps", "StepStopped"]

DecisionsInResume = Callable[[Any, Sequence[ApprovalRequest]], dict[str, str] | None]
"""Records the decisions a resume value hands a gate's pending requests; why none counted."""

DEFAULT_INSTRUCTIONS = (
    "You are an agent that completes the user's goal by calling the tools offered to you. "
    "Each tool result comes back as a message; results whose status is an error tell you "
    "the kind of failure (invalid_args, denied, rejected, expired, transient, permanent, "
    "timeout, skipped). Do not repeat a denied or rejected action. When the goal is done, or "
    "cannot be done, answer in plain "
    "text without calling a tool."
)


class HeldLease(Protocol):
    """The lease a driver holds on a run for a segment (agentrt.runs.lease_keeper.Kept)."""

    @property
    def owner(self) -> str:
        """Who holds it: the label the store's row names."""

    @property
    def lost(self) -> bool:
        """True once a renewal found it another owner's."""

    counted: tuple[float, float | None] | None
    """The run's active seconds as this segment counts them, and when (the run's clock)
    the node in flight began (None between nodes): the node wrapper sets it as each node
    begins and ends, and each renewal of the lease writes it onto the run's row, so a
    process killed inside a node leaves the time it spent there. None: nothing counted."""


class StepStopped(Exception):
    """Raised before a node's work when this process stops driving the run
    (``stopping_threads``: a worker shutting down, a stream its caller left): the run stays
    where its last checkpoint left it, for another process to carry on."""


@dataclass(frozen=True, kw_only=True)
class RunDeps:
    """The runtime's services as the nodes see them."""

    model: BaseChatModel
    """The planner's chat model; must support tool calling."""
    tools: ToolRegistry
    """Tools by name."""
    policy: Policy
    """Rules every action passes before it runs."""
    store: Store
    """runs, approvals and effects tables."""
    ledger: Ledger
    """Exactly-once execution of side effects."""
    tracer: Tracer
    """The OpenTelemetry tracer behind ``tracing``."""
    tracing: RunTracing = field(default_factory=lambda: RunTracing(NoOpTracer(), clock=time.time))
    """Opens agent.step, llm.call, tool.call, policy.check and approval.wait spans."""
    clock: Callable[[], float]
    """Epoch seconds; injected so tests control time."""
    runner: ToolRunner = field(default_factory=ToolRunner)
    """Calls tools with their timeout and retries; its sleep and jitter are injectable."""
    instructions: str = DEFAULT_INSTRUCTIONS
    """System prompt for the planner."""
    model_retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(max_attempts=3))
    """How a failing model call is retried (transient errors only)."""
    model_price: ModelPrice | None = None
    """What the planner's model charges; None: unpriced, model calls add no cost."""
    limits: SizeLimits = field(default_factory=SizeLimits)
    """Largest goal, arguments and result a run keeps."""
    summarize: Summarizing | None = None
    """When and with what a long run's older turns are condensed; None: never."""
    checkpoints: HoldsWrites | None = None
    """The run graph's checkpointer, when it holds the pure nodes' writes back
    (agentrt.store.held; build_run_graph sets it): a node that acts on their decision has
    it store them first."""
    stop_watch: StopWatch = field(default_factory=StopWatch)
    """When each run last looked for a request to stop it (a cancel, an interrupting
    message): before a pure node it looks again only when one may be new."""
    held_leases: dict[str, HeldLease] = field(default_factory=dict)
    """The lease each run this process drives holds for its segment, by thread id (set by
    the driver): a run whose lease was lost stops before its next step, and the ledger
    reserves its effects only while the lease is still the owner's."""
    stopping_threads: set[str] = field(default_factory=set)
    """Runs this process stops before their next step, resumable rather than cancelled: a
    stream its caller left, the runs of a worker told to shut down."""
    streamed_threads: set[str] = field(default_factory=set)
    """Runs a caller streams now: each of their nodes takes a LangGraph step of its own, so
    the caller can stop reading between any two (agentrt.runs.streaming); elsewhere the
    pure nodes run in the step before them (agentrt.graphs.onward)."""
    failed_within: dict[str, tuple[str, Exception]] = field(default_factory=dict)
    """By thread id, the pure node that raised where it ran in the step before it, and its
    error: raised again at once in the node's own step, not run a second time."""
    quiet_threads: set[str] = field(default_factory=set)
    """Runs streamed where no one reads their tokens now (the server's runs no page
    watches): their next model calls ask for the answer whole (``stream=False``), not a
    token at a time."""
    decisions_in_resume: DecisionsInResume | None = None
    """Records the decisions a resume value (``Command(resume=...)``) hands a gate on its
    pending requests, each checked as rt.decide checks it; returns why the value decided
    none of them (None: it did). None: a gate reads its decisions only from the approvals
    table, where rt.decide wrote them (the driver resumes with none). A graph served by a
    LangGraph API server sets it: there a person answers a gate with Studio's resume."""
    memories: BaseStore | None = None
    """LangGraph's long-term store on the run's database: tools' memory across threads."""
    credentials: Credentials | None = None
    """Resolves the credentials a tool declares, at each call; None: no tool may have any."""

    def for_run(
        self, bound: Runnable[Any, Any], model: BaseChatModel, thread_id: str
    ) -> Runnable[Any, Any]:
        """``bound`` (``model`` with its tools and cap) as run ``thread_id`` calls it: asked
        for its answer whole while no one reads the run's tokens (``quiet_threads``).
        ``stream=False`` is LangChain's own opt-out: no token callbacks, and no streamed
        request to the provider, which costs far more to read than one whole answer."""
        if thread_id in self.quiet_threads and _takes_call_options(type(model)):
            return bound.bind(stream=False)
        return bound


@cache
def _takes_call_options(cls: type[BaseChatModel]) -> bool:
    """True if the model class's answering hooks take the call's options (``**kwargs``), as
    BaseChatModel's do: LangChain hands them ``stream=False``. A class that takes none
    answers as it always did (streamed, when a stream watches)."""
    return all(
        any(p.kind is p.VAR_KEYWORD for p in inspect.signature(hook).parameters.values())
        for hook in (cls._generate, cls._agenerate)
    )
