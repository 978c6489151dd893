"""An app for crash tests: three side effects into a separate "payment system" file.

With AGENTRT_TEST_BLOCK_AT=model|answered|deciding|tool|verify, the process announces
"BLOCKED <where>" on stdout and then blocks on stdin, so the test can SIGKILL it at a known
point inside a node ("answered": the model's answer is recorded, the plan step not yet
checkpointed; "deciding": policy is deciding on bo's charge, the second plan's first).
With AGENTRT_TEST_NOT_IDEMPOTENT=1 the payment system takes no idempotency key: a charge
cut off mid-call is in doubt, for a person to settle.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage

from agentrt import AgentRuntime, Policy, ToolContext, tool
from agentrt.store.sqlite.recordings import RecordingsTable
from agentrt.testing import ScriptedChatModel, ai, tool_call

ROOT = Path(__file__).resolve().parent.parent
STARTER = (
    "import sys\nfrom tests.crashy_app import build_runtime\n"
    "build_runtime(sys.argv[1]).start('charge al, bo and cy', "
    "principal=__import__('agentrt').Principal('ops'), thread_id='t-crash')\n"
)
"""The crashy run, thread 't-crash', started in a process of its own."""


@contextmanager
def blocked_at(db: str | Path, where: str) -> Iterator[subprocess.Popen[str]]:
    """The crashy run's process, blocked at ``where`` (it said so); SIGKILLed, for real,
    when the block ends."""
    proc = subprocess.Popen(
        [sys.executable, "-c", STARTER, str(db)],
        cwd=ROOT,
        env={**os.environ, "AGENTRT_TEST_BLOCK_AT": where},
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    assert proc.stdin is not None
    try:
        line = proc.stdout.readline()
        assert line == f"BLOCKED {where}\n", line or proc.stderr.read()
        yield proc
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            stream.close()
    assert proc.returncode == -signal.SIGKILL


def killed_at(db: str | Path, where: str) -> None:
    """Start the crashy run and SIGKILL its process once it is blocked at ``where``."""
    with blocked_at(db, where):
        pass


def _block(where: str) -> None:
    if os.environ.get("AGENTRT_TEST_BLOCK_AT") == where:
        print(f"BLOCKED {where}", flush=True)
        sys.stdin.readline()  # never answered: the test kills us here


def sink_path(db: str | Path) -> Path:
    """Beside a database file; for a database URL, where AGENTRT_TEST_SINK says."""
    if "://" in str(db):
        return Path(os.environ["AGENTRT_TEST_SINK"])
    return Path(db).with_name("payments.db")


def _sink(db: str | Path) -> sqlite3.Connection:
    conn = sqlite3.connect(sink_path(db), isolation_level=None)
    conn.execute("CREATE TABLE IF NOT EXISTS charges (key TEXT PRIMARY KEY, who TEXT, cents INT)")
    conn.execute("CREATE TABLE IF NOT EXISTS calls (n INTEGER PRIMARY KEY, who TEXT)")
    conn.execute("CREATE TABLE IF NOT EXISTS asks (n INTEGER PRIMARY KEY, turn INT)")
    return conn


def _block_once_answered() -> None:
    """Block right after a model answer is recorded, inside its plan step."""
    original = RecordingsTable.record_model_call

    def record_then_block(self: Any, thread_id: str, call: Any, **kw: Any) -> None:
        original(self, thread_id, call, **kw)
        if call.revision == 1:  # the second plan step's answer
            _block("answered")

    RecordingsTable.record_model_call = record_then_block  # type: ignore[method-assign]


def _block_deciding_on_bo() -> None:
    """Block while policy decides on charging bo."""
    original = Policy.evaluate

    def block_then_evaluate(
        self: Policy, tool: Any, name: str, args: Any, *a: Any, **kw: Any
    ) -> Any:
        if args.get("who") == "bo":
            _block("deciding")
        return original(self, tool, name, args, *a, **kw)

    Policy.evaluate = block_then_evaluate  # type: ignore[method-assign]


def build_runtime(db: str | Path = "agentrt.db") -> AgentRuntime:
    if os.environ.get("AGENTRT_TEST_BLOCK_AT") == "answered":
        _block_once_answered()
    if os.environ.get("AGENTRT_TEST_BLOCK_AT") == "deciding":
        _block_deciding_on_bo()

    def charged(args: dict[str, Any], result: Any) -> bool:
        _block("verify")
        return True

    idempotent = os.environ.get("AGENTRT_TEST_NOT_IDEMPOTENT") != "1"

    @tool(effect="write", idempotent=idempotent, verify=charged)
    def charge(who: str, cents: int, ctx: ToolContext) -> dict[str, Any]:
        """Charge a customer; the payment system dedupes on the idempotency key."""
        with _sink(db) as conn:
            conn.execute("INSERT INTO calls (who) VALUES (?)", (who,))
        _block("tool")
        with _sink(db) as conn:
            conn.execute(
                "INSERT OR IGNORE INTO charges VALUES (?,?,?)", (ctx.idempotency_key, who, cents)
            )
        return {"charged": who, "cents": cents}

    def second_turn(messages: list[BaseMessage]) -> AIMessage:
        with _sink(db) as conn:  # what a provider would bill
            conn.execute("INSERT INTO asks (turn) VALUES (2)")
        _block("model")
        return ai(
            "",
            tool_call("charge", {"who": "bo", "cents": 200}),
            tool_call("charge", {"who": "cy", "cents": 300}),
        )

    model = ScriptedChatModel(
        [ai("", tool_call("charge", {"who": "al", "cents": 100})), second_turn, "charged three"]
    )
    # A lease's expiry is what frees a dead process's run on PostgreSQL: tests shorten it.
    lease_ttl = float(os.environ.get("AGENTRT_TEST_LEASE_TTL", "30"))
    return AgentRuntime(
        model, tools=[charge], policy=Policy.allow_all(), db=db, lease_ttl=lease_ttl
    )
