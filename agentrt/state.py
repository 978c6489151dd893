"""The run's graph state and the vocabulary the nodes share.

Everything in RunState is plain JSON data (TypedDicts, str enums, lists), so a checkpoint
written by one version of an app reads back in the next one, and in another process.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Annotated, Any, Literal, NotRequired, Self, TypedDict

from langgraph.channels.delta import DeltaChannel
from langgraph.channels.last_value import LastValue

from agentrt.errors import IllegalTransition

__all__ = [
    "TERMINAL",
    "TRANSITIONS",
    "Action",
    "BudgetReport",
    "Event",
    "GateItem",
    "MessageBudget",
    "Observation",
    "ObservationKind",
    "Outcome",
    "Plan",
    "PolicyVerdict",
    "Route",
    "RunState",
    "RunStatus",
    "Stop",
    "Summary",
    "Usage",
    "check_transition",
    "storable_text",
    "unstorable",
]


class RunStatus(StrEnum):
    """Where a run is in its life; a run ends in exactly one terminal status."""

    PENDING = "pending"
    RUNNING = "running"
    AWAITING_APPROVAL = "awaiting_approval"
    WAITING_RETRY = "waiting_retry"
    """Stopped by a failure that may pass (a provider outage, a database locked too long):
    not an end; resume carries it on from its last step."""
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    BUDGET_EXCEEDED = "budget_exceeded"


TERMINAL: frozenset[RunStatus] = frozenset(
    {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.BUDGET_EXCEEDED}
)

# The one table of allowed moves. Anything not listed raises IllegalTransition.
TRANSITIONS: Mapping[RunStatus, frozenset[RunStatus]] = {
    RunStatus.PENDING: frozenset({RunStatus.RUNNING, RunStatus.FAILED, RunStatus.CANCELLED}),
    RunStatus.RUNNING: frozenset(
        {
            RunStatus.AWAITING_APPROVAL,
            RunStatus.WAITING_RETRY,
            RunStatus.SUCCEEDED,
            RunStatus.FAILED,
            RunStatus.CANCELLED,
            RunStatus.BUDGET_EXCEEDED,
        }
    ),
    RunStatus.AWAITING_APPROVAL: frozenset(
        {RunStatus.RUNNING, RunStatus.FAILED, RunStatus.CANCELLED}
    ),
    RunStatus.WAITING_RETRY: frozenset({RunStatus.RUNNING, RunStatus.FAILED, RunStatus.CANCELLED}),
    RunStatus.SUCCEEDED: frozenset(),
    RunStatus.FAILED: frozenset(),
    RunStatus.CANCELLED: frozenset(),
    RunStatus.BUDGET_EXCEEDED: frozenset(),
}


def check_transition(current: str, target: str, *, thread_id: str | None = None) -> RunStatus:
    """Return ``target`` as a RunStatus if the table allows ``current -> target``, else raise."""
    try:
        cur, tgt = RunStatus(current), RunStatus(target)
    except ValueError:
        raise IllegalTransition(thread_id, current, target) from None
    if tgt not in TRANSITIONS[cur]:
        raise IllegalTransition(thread_id, cur.value, tgt.value)
    return tgt


class ObservationKind(StrEnum):
    """What happened when the runtime tried an action; the planner sees it with the content."""

    OK = "ok"
    INVALID_ARGS = "invalid_args"
    DENIED = "denied"
    REJECTED = "rejected"
    EXPIRED = "expired"
    ERROR = "error"
    TRANSIENT = "transient"
    """The tool failed in a way that may pass; its retries ran out."""
    PERMANENT = "permanent"
    """The tool failed, or its result failed verification; trying again will not help."""
    TIMEOUT = "timeout"
    """The tool did not finish within its timeout."""
    SKIPPED = "skipped"


class Action(TypedDict):
    """One tool call the plan asks for. step_id is deterministic: '<plan revision>.<index>'."""

    step_id: str
    call_id: str
    tool: str
    args: dict[str, Any]
    parse_error: NotRequired[str]
    edited_from: NotRequired[str]
    """Set when a person edited the arguments: the request the edit decided."""
    edited_by: NotRequired[str]
    """Who made that edit; under four-eyes a requester of the edited action."""


class Plan(TypedDict):
    """The model's answer to one plan step: actions to take, or a final answer."""

    revision: int
    content: str
    actions: list[Action]
    final: str | None


class PolicyVerdict(TypedDict):
    """What the policy said about one action, and which rule said it."""

    step_id: str
    outcome: Literal["allow", "deny", "require_approval"]
    rule_id: str | None
    matched: list[str]
    reason: str
    required_role: str | None
    four_eyes: bool
    required_roles: NotRequired[list[str]]
    """Every role the approver must hold (verdicts from before it: [required_role])."""
    expires_in: float | None
    policy: str
    policy_version: str
    on_expiry: NotRequired[Literal["reject", "escalate"]]
    escalate_to: NotRequired[str | None]


class GateItem(TypedDict):
    """One action of a human gate, with the verdict that sent it there."""

    action: Action
    verdict: PolicyVerdict


class Stop(TypedDict):
    """Why a run must end now, set by whichever node found out; finish reads it."""

    status: Literal["failed", "budget_exceeded", "cancelled"]
    reason: str
    budget: NotRequired[BudgetReport]
    """For budget_exceeded: the limit, the usage and the action the run stopped before."""


Route = Literal[
    "plan",
    "policy",
    "approval",
    "tool",
    "verify",
    "commit",
    "budget_gate",
    "reconcile",
    "summarize",
    "finish",
]


class Summary(TypedDict):
    """What the planner sees instead of the run's older turns (the log keeps them all)."""

    text: str
    """The model's summary of those turns (and of the summary before it)."""
    upto: int
    """How many events of the log it covers; the planner sees the rest verbatim."""
    kept: list[str]
    """The approvals and denials among those events, word for word: the planner must
    still respect them, so no summary rewrites them."""


class Outcome(TypedDict):
    """The result of running (or, for an irreversible tool, preparing) the current action;
    kept in the state till the next action's, or the next plan."""

    step_id: str
    phase: Literal["preview", "done"]
    kind: str
    """An ObservationKind value (state holds plain strings, so checkpoints stay portable)."""
    content: str
    data: Any
    retries: NotRequired[int]
    """Transient failures retried before this outcome."""


class Observation(TypedDict):
    """What the planner is told about one action."""

    step_id: str
    call_id: str
    tool: str
    kind: str
    """An ObservationKind value."""
    content: str
    retries: NotRequired[int]
    """Transient failures the runtime retried before this observation."""


class Usage(TypedDict):
    """What a run has spent so far; checkpointed, so a resume never hands out a fresh budget."""

    input_tokens: int
    output_tokens: int
    cost_usd: float
    tool_calls: int
    steps: int
    active_seconds: float
    waited_seconds: NotRequired[float]
    """Time stopped at human gates, never counted as active time. Kept in the runs table and
    filled in on Run.usage once the run has waited; the checkpointed usage does not hold it."""
    estimated_tokens: NotRequired[int]
    """Of the tokens counted, how many were estimated: the model reported no usage for
    some answers (a stream whose client asked for none). Never a silent zero."""
    retry_waited_seconds: NotRequired[float]
    """Time spent waiting to retry after failures that may pass; like waited_seconds, only
    on Run.usage, never active time."""


class MessageBudget(TypedDict):
    """The budget a follow-up message was sent with, kept beside the limits it makes
    (``RunState.budget``) so a limit that trips is answered as its setter said
    (agentrt.message_budget)."""

    own: dict[str, Any]
    """The message's own Budget, its limits counted from when it was taken."""
    thread: dict[str, Any]
    """The thread's Budget, which binds across all its messages."""
    before: Usage
    """The thread's usage when the message was taken."""


class BudgetReport(TypedDict):
    """Why a budget stopped a run (or asks a person to raise a limit)."""

    limit: str
    """The Budget field that tripped, e.g. "max_tool_calls"."""
    allowed: float
    """Its value."""
    used: float
    """How much of it was spent (for deadline: the time of the check)."""
    requested: float
    """What the action needed on top (0 for tokens and time, known only after the spend)."""
    action: str
    """The action the run stopped before, in words."""
    node: str
    """The node that stopped: where the run goes back to if the limit is raised."""
    step_id: str
    """The plan step of that action."""
    tool: str
    """The tool it would have called; "" for a model call."""
    usage: Usage
    """The run's usage at the stop."""
    message: str
    """The whole report in one sentence."""


class Event(TypedDict):
    """One entry of the run's append-only event log."""

    type: Literal[
        "plan", "policy", "policy_changed", "approval", "observation", "finish", "message"
    ]
    step_id: NotRequired[str]
    data: dict[str, Any]


# What a checkpoint can hold: msgpack integers, and text that encodes as UTF-8.
_INT_RANGE = (-(2**63), 2**64 - 1)


MAX_NESTING = 100
"""How deep arrays and objects may nest in a value kept in a checkpoint or a row: past
it every walk over the value (masking, storing) would recurse too far."""


def unstorable(value: Any, path: str = "", depth: int = 0) -> str | None:
    """Why ``value`` cannot be kept in a checkpoint or a row, naming where in it; None if
    it can. A model's JSON may hold integers past 64 bits and lone surrogates, which JSON
    parsers accept and storage does not, and nest past MAX_NESTING."""
    if isinstance(value, Mapping | list | tuple) and depth >= MAX_NESTING:
        where = path if len(path) <= 60 else path[:60] + "…"
        return (
            f"{where or 'the value'} nests more than {MAX_NESTING} levels deep, past what is stored"
        )
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return None
    if isinstance(value, int):
        if not _INT_RANGE[0] <= value <= _INT_RANGE[1]:
            digits = len(str(abs(value)))
            return f"{path or 'the value'} is an integer of {digits} digits, past 64 bits"
        return None
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            bad = value[exc.start : exc.end]
            return f"{path or 'the value'} holds {bad!r}, which is not text (a lone surrogate)"
        if "\x00" in value:
            # PostgreSQL's text and JSON cannot hold it; refused on every backend alike.
            return f"{path or 'the value'} holds a NUL character (U+0000), which is not text"
        return None
    if isinstance(value, Mapping):
        for key, item in value.items():
            found = unstorable(key, f"a key of {path or 'the value'}") or unstorable(
                item, f"{path}.{key}" if path else str(key), depth + 1
            )
            if found:
                return found
        return None
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            if found := unstorable(item, f"{path}[{i}]", depth + 1):
                return found
    return None


_NOT_TEXT = re.compile("[\ud800-\udfff\x00]")


def storable_text(text: str) -> str:
    """``text`` with anything that is not text (lone surrogates, NUL) replaced by U+FFFD."""
    return _NOT_TEXT.sub("\ufffd", text)


def append_events(log: list[Event], batches: Sequence[list[Event]]) -> list[Event]:
    """DeltaChannel reducer: the log only grows; batching-invariant by construction."""
    return [*log, *(event for batch in batches for event in batch)]


_NEVER_WRITTEN: Any = LastValue(object).value
"""What LangGraph's LastValue holds until it is first written."""


class Unset(LastValue[Any]):
    """A channel that reads as ``default`` until it is first written: what reading the
    key unset would give (``state.get(key, default)``), never stored until written.

    LangGraph reads every channel of the state as a run streams its values, once a node,
    and an empty channel raises and catches an error to say so: RunState has nine keys that
    stay unset for most runs (a gate's, a follow-up's, a summary's), which cost the per-node
    benchmark 4 us a read of the state. Written once, the channel is an ordinary LastValue;
    its checkpoints, and those written before it, are the same."""

    __slots__ = ("default",)

    def __init__(self, typ: Any, key: str = "", *, default: Any = None) -> None:
        super().__init__(typ, key)
        self.default = default

    def copy(self) -> Self:
        copied = super().copy()
        copied.default = self.default
        return copied

    def from_checkpoint(self, checkpoint: Any) -> Self:
        restored = super().from_checkpoint(checkpoint)
        restored.default = self.default
        return restored

    def get(self) -> Any:
        value = self.value
        return self.default if value is _NEVER_WRITTEN else value

    def is_available(self) -> bool:
        return True


class RunState(TypedDict, total=False):
    """The graph state of one run.

    ``events`` is a LangGraph DeltaChannel: each checkpoint stores only the events written
    in its step (plus a snapshot now and then), so storage grows linearly with the run
    instead of rewriting the whole log at every step.
    """

    thread_id: str
    goal: str
    principal: dict[str, Any]
    budget: dict[str, Any]
    status: str
    plan: Plan | None
    cursor: int
    verdict: PolicyVerdict | None
    gate: Annotated[list[GateItem] | None, Unset(list)]
    """The actions of the current plan that wait for a person together, current one first."""
    outcome: Outcome | None
    usage: Usage
    output: str | None
    error: str | None
    stop: Stop | None
    over_budget: BudgetReport | None
    checking: Annotated[str, Unset(str, default="")]
    """The step id policy last checked; with ``rechecks``, what stops a routing loop."""
    rechecks: Annotated[int, Unset(int, default=0)]
    """How often policy checked that step again without a new decision in between."""
    answered: Annotated[str, Unset(str, default="")]
    """The approval request the approval node acted on last."""
    gate_decisions: Annotated[dict[str, str] | None, Unset(dict)]
    """The current plan's later actions a person refused or edited in a shared gate, by
    step id: the request that says so, acted on at that action's turn whatever the policy
    says by then (agentrt.nodes.approval)."""
    summary: Annotated[Summary | None, Unset(dict)]
    """The run's older turns, condensed by the summarize node once the conversation
    passed Summarize.at_tokens; None until then."""
    route: Route
    """Where a node sent the run, in checkpoints written before the route went only with
    the node's Command (agentrt.graphs.run_graph); no longer written."""
    message: Annotated[int, Unset(int, default=0)]
    """The thread's message this stretch of the run answers: 0 the goal, then each
    follow-up (agentrt.runs.messages)."""
    message_budget: Annotated[MessageBudget | None, Unset(dict)]
    """The budget that message was sent with, if any; ``budget`` holds the limits it
    makes on the thread's running totals."""
    events: Annotated[list[Event], DeltaChannel(append_events, snapshot_frequency=1000)]
