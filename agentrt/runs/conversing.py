"""AgentRuntime's side of threads that go on: send a follow-up, read a thread's messages.
A part of the door (``agentrt.runtime``), kept in a file of its own; each method is one
line into the room that does the work (agentrt.runs.messages, agentrt.runs.taking).
"""

from __future__ import annotations

from agentrt.budget import Budget
from agentrt.errors import UnknownRun
from agentrt.principal import Principal
from agentrt.runs.driver import Driver
from agentrt.runs.messages import DoubleTexting, ThreadMessage, message_seen, thread_messages
from agentrt.runs.record import Run
from agentrt.runs.streaming import astreamed, streamed
from agentrt.steps import Steps, asynchronous, synchronous
from agentrt.store.protocols import Store

__all__ = ["Conversing"]


class Conversing:
    """Follow-ups on a runtime's threads (mixed into AgentRuntime)."""

    store: Store
    _driver: Driver
    double_texting: DoubleTexting

    def _send(
        self,
        thread_id: str,
        message: str,
        *,
        principal: Principal,
        budget: Budget | None = None,
        double_texting: DoubleTexting | str | None = None,
        resume: bool = True,
    ) -> Steps[Run]:
        """Send a follow-up on a thread: it goes on with its history (the conversation so
        far is what the planner sees), as a new segment of the same trace.

        ``principal`` must be of the thread's tenant (another tenant's thread is an
        UnknownRun, as an id that names none). ``budget`` limits this message alone; the
        thread's budget still binds across its messages. A thread that is still at work or
        waits at a gate is handled by ``double_texting`` (None: the runtime's): "reject"
        (ThreadBusy, nothing kept), "enqueue" (answered once the current message ends), or
        "interrupt" (the current one stops at its next safe point, never inside an
        effect; requests pending at a gate are cancelled as superseded). Returns the run
        when it ends or waits; with ``resume=False`` the message is only kept, and whoever
        drives the thread next (``resume``, a worker) answers it.
        """
        return self._driver.send(
            thread_id,
            message,
            principal=principal,
            budget=budget,
            double_texting=self.double_texting if double_texting is None else double_texting,
            resume=resume,
        )

    send = synchronous(_send)
    asend = asynchronous(_send)
    stream_send, astream_send = streamed(_send), astreamed(_send)

    def keep_message(
        self,
        thread_id: str,
        message: str,
        *,
        principal: Principal,
        budget: Budget | None = None,
        double_texting: DoubleTexting | str | None = None,
    ) -> ThreadMessage:
        """Keep a follow-up on the thread for whoever drives it next (``resume``, a
        worker), checked as ``send`` checks it; the message as kept (queued, with its
        index), whatever others send to the thread at the same time."""
        kept = self._driver.accept(
            thread_id,
            message,
            principal=principal,
            budget=budget,
            double_texting=self.double_texting if double_texting is None else double_texting,
        )
        return message_seen(kept, self._driver.record(thread_id))

    def messages(
        self, thread_id: str, *, principal: Principal | None = None
    ) -> list[ThreadMessage]:
        """The thread's messages in order: its goal (index 0), then each follow-up, queued
        or answered, each with its answer and what it spent. ``principal``: only if the
        thread is of their tenant (else UnknownRun, as for an unknown id)."""
        record = self._driver.record(thread_id)
        if principal is not None and not principal.decides_for(record.tenant):
            raise UnknownRun(thread_id, self.store.location)
        return thread_messages(self.store, record)
