"""The exception tree of agentrt.

    AgentRuntimeError
    ├── ConfigError            the caller misused the API (bad policy, unknown tool, bad argument)
    ├── IllegalTransition      a run status change the transition table does not allow
    ├── UnknownRun             no run has this thread id
    ├── RunBusy                another live process is driving this run
    ├── LeaseLost              this process lost its lease on a run to another
    ├── ThreadBusy             a message came while the thread was busy, and the policy said reject
    ├── StartupStopped         the process was told to stop while its store was still opening
    ├── RunError               a run failed
    │   └── BudgetExceeded
    └── ApprovalError          a decision was refused; the run is left as it was
        ├── InvalidDecision    malformed, unknown approval id, or args digest mismatch
        ├── ApprovalExpired
        ├── NotAuthorized
        └── AlreadyDecided

Messages quote the offending value with !r and say what to do next.
"""

from __future__ import annotations

from agentrt.readable import iso, moment

__all__ = [
    "AgentRuntimeError",
    "AlreadyDecided",
    "ApprovalError",
    "ApprovalExpired",
    "BudgetExceeded",
    "ConfigError",
    "DatabaseUnavailable",
    "IllegalTransition",
    "InvalidDecision",
    "LeaseLost",
    "NotAuthorized",
    "RunBusy",
    "RunError",
    "StartupStopped",
    "ThreadBusy",
    "ThreadTaken",
    "UnknownRun",
]


class AgentRuntimeError(Exception):
    """Root of every error agentrt raises on purpose."""


class ConfigError(AgentRuntimeError):
    """The caller misused the API: a bad policy file, an unknown tool, a bad argument."""


class ThreadTaken(ConfigError):
    """A new run was given a thread id that already names a run."""


class IllegalTransition(AgentRuntimeError):
    """A run status change that the transition table in agentrt.state does not allow."""

    def __init__(self, thread_id: str | None, current: str, target: str) -> None:
        self.thread_id = thread_id
        self.current = current
        self.target = target
        where = f"run {thread_id!r}" if thread_id else "a run"
        super().__init__(
            f"{where} cannot go from status {current!r} to {target!r}; "
            "see agentrt.state.TRANSITIONS for the allowed moves"
        )


class UnknownRun(AgentRuntimeError):
    """No run with this thread id exists in the store."""

    def __init__(self, thread_id: str, db: str) -> None:
        self.thread_id = thread_id
        self.db = db
        super().__init__(
            f"no run with thread id {thread_id!r} in {db!r}; "
            "list the known runs with rt.runs() or `agentrt runs`"
        )


class RunBusy(AgentRuntimeError):
    """Another live process holds the lease on this run."""

    def __init__(
        self, thread_id: str, owner: str, expires_at: float, *, now: float | None = None
    ) -> None:
        self.thread_id = thread_id
        self.owner = owner
        self.expires_at = expires_at
        """When the lease runs out unless its owner renews it, in epoch seconds."""
        super().__init__(
            f"run {thread_id!r} is being driven by {owner!r} (lease held until "
            f"{moment(expires_at, now=now)}); wait for it to stop or for the lease to "
            "expire, then retry"
        )


class LeaseLost(AgentRuntimeError):
    """This process no longer holds the run's lease: another took the run over while this
    one was paused or cut off past the lease's time. The driver stops where it is, before
    any effect or checkpoint more, and returns the run as it stands; the process that
    holds the lease carries it on."""

    def __init__(self, thread_id: str, owner: str) -> None:
        self.thread_id = thread_id
        self.owner = owner
        super().__init__(
            f"this process ({owner}) lost its lease on run {thread_id!r} to another; it "
            "stops driving the run, which the lease's holder carries on"
        )


class ThreadBusy(AgentRuntimeError):
    """A message came while its thread was still at work or waiting at a gate, and the
    double-texting policy was reject: nothing was kept."""

    def __init__(self, thread_id: str, status: str) -> None:
        self.thread_id = thread_id
        self.status = status
        """The thread's status when the message came."""
        super().__init__(
            f"thread {thread_id!r} is {status} and cannot take a message now; nothing was "
            "kept. Send it again once the thread has finished, or pass "
            "double_texting='enqueue' (run it after the current one) or 'interrupt' (stop "
            "the current one at its next safe point and run this one)"
        )


class DatabaseUnavailable(AgentRuntimeError, ConnectionError):
    """The database could not be used for as long as the store's patience lasts: the server
    was gone, refused connections, or kept breaking them. The call did not happen (or, for
    a COMMIT that got no answer, the server never said it did). A run that meets it waits
    to retry (agentrt.faults)."""

    def __init__(
        self,
        location: str,
        patience: float,
        cause: BaseException,
        *,
        advice: str = "the call gave up",
    ) -> None:
        self.location = location
        self.patience = patience
        text = str(cause).strip()
        first = text.splitlines()[0] if text else type(cause).__name__
        super().__init__(
            f"the database {location!r} could not be used for {patience:g} s ({first}); " + advice
        )


class StartupStopped(AgentRuntimeError):
    """The process was told to stop (``agentrt worker``'s SIGTERM) while its store was still
    opening, waiting for the database: opening gave up between two tries, having opened
    and changed nothing (agentrt.processes.stop_start_up)."""

    def __init__(self, location: str, waiting_for: str) -> None:
        self.location = location
        super().__init__(f"told to stop while waiting for {waiting_for}; nothing was changed")


class RunError(AgentRuntimeError):
    """A run failed."""

    def __init__(self, message: str, *, thread_id: str | None = None) -> None:
        self.thread_id = thread_id
        super().__init__(message)


class BudgetExceeded(RunError):
    """A run hit one of its budget limits."""

    def __init__(
        self,
        limit: str,
        used: float,
        allowed: float,
        *,
        requested: float = 0.0,
        thread_id: str | None = None,
    ) -> None:
        self.limit = limit
        self.used = used
        self.allowed = allowed
        self.requested = requested
        next_spend = f", and the next action needs {requested:g} more" if requested else ""
        message = f"budget limit {limit}={allowed:g} reached: {used:g} used{next_spend}"
        if limit == "deadline":
            message = f"budget deadline {iso(allowed)} reached: it is {iso(used)}"
        super().__init__(message, thread_id=thread_id)


class ApprovalError(AgentRuntimeError):
    """A decision on an approval request was refused; nothing changed."""

    def __init__(self, message: str, *, approval_id: str | None = None) -> None:
        self.approval_id = approval_id
        super().__init__(message)


class InvalidDecision(ApprovalError):
    """The decision is malformed, names no pending request, or does not match its arguments."""


class ApprovalExpired(ApprovalError):
    """The approval request expired before the decision arrived."""


class NotAuthorized(ApprovalError):
    """The decider lacks the role the request requires, or is its own requester under four-eyes."""


class AlreadyDecided(ApprovalError):
    """Somebody already decided this approval request."""
