"""The refund desk: the demo app.

A support agent looks up an order and its customer, notes the complaint on the order, and
refunds it. Reads and notes run freely; a refund over $50 waits for a refund approver.
The "payment system" is a small SQLite file beside the runtime's database, keyed by the
idempotency key agentrt hands the tool, as a real payment API would be.

Runs offline on a scripted model: `agentrt demo`, or build_runtime() from Python.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from agentrt import AgentRuntime, Policy, Principal, ToolContext, ToolError, tool
from agentrt.store import is_postgres, sqlite_path
from agentrt.testing import ScriptedChatModel, ai, tool_call

__all__ = [
    "APPROVER",
    "GOAL",
    "OPERATOR",
    "POLICY_FILE",
    "build_runtime",
    "demo_model",
    "payments_path",
]

POLICY_FILE = Path(__file__).with_name("refunds.yaml")

GOAL = "The customer on order 42 says the blender arrived broken. Refund the order."

OPERATOR = Principal(
    "alice",
    roles=["operator"],
    tenant="acme",
    scopes=["orders:read", "orders:write", "payments:write"],
)
APPROVER = Principal("bob", roles=["refund-approver"], tenant="acme")

_ORDERS: dict[str, dict[str, Any]] = {
    "42": {
        "order_id": "42",
        "customer_id": "c-7",
        "item": "blender",
        "total": 89.0,
        "currency": "USD",
        "status": "delivered",
    },
    "43": {
        "order_id": "43",
        "customer_id": "c-9",
        "item": "kettle",
        "total": 24.5,
        "currency": "USD",
        "status": "delivered",
    },
}
_CUSTOMERS: dict[str, dict[str, Any]] = {
    "c-7": {"customer_id": "c-7", "name": "Dana Reyes", "tier": "gold"},
    "c-9": {"customer_id": "c-9", "name": "Sam Okafor", "tier": "standard"},
}


def payments_path(db: str | Path) -> Path:
    """Where the demo's payment system keeps its refunds and notes: beside the runtime's
    SQLite file, or for a server's URL (postgresql://...) in the working directory, named
    after the database (never after the URL, which holds a password)."""
    text = str(db)
    if is_postgres(text):
        name = urlsplit(text).path.strip("/") or "agentrt"
        return Path(f"{name}.payments.db")
    p = Path(sqlite_path(text))
    return p.with_name(p.stem + ".payments.db")


def _desk(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA busy_timeout=10000")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS refunds (idempotency_key TEXT PRIMARY KEY, order_id TEXT, "
        "amount REAL, refund_id TEXT)"
    )
    conn.execute(
        "CREATE TABLE IF NOT EXISTS notes (idempotency_key TEXT PRIMARY KEY, order_id TEXT, "
        "note TEXT)"
    )
    return conn


def _order(order_id: str) -> dict[str, Any]:
    order = _ORDERS.get(order_id)
    if order is None:
        raise ToolError(f"no order {order_id!r}; known orders: {sorted(_ORDERS)}")
    return order


def _tools(sink: Path) -> list[Any]:
    @tool(effect="read", scopes=["orders:read"])
    def lookup_order(order_id: str) -> dict[str, Any]:
        """Look up an order: item, total, customer and delivery status.

        Args:
            order_id: The order number, e.g. "42".
        """
        return _order(order_id)

    @tool(effect="read", scopes=["orders:read"])
    def lookup_customer(customer_id: str) -> dict[str, Any]:
        """Look up a customer by id.

        Args:
            customer_id: The customer id from the order, e.g. "c-7".
        """
        customer = _CUSTOMERS.get(customer_id)
        if customer is None:
            raise ToolError(f"no customer {customer_id!r}")
        return customer

    @tool(effect="write", scopes=["orders:write"], idempotent=True)
    def add_order_note(order_id: str, note: str, ctx: ToolContext) -> dict[str, Any]:
        """Add an internal note to an order.

        Args:
            order_id: The order to annotate.
            note: The note text.
        """
        _order(order_id)
        with _desk(sink) as conn:
            conn.execute(
                "INSERT OR IGNORE INTO notes VALUES (?,?,?)", (ctx.idempotency_key, order_id, note)
            )
        return {"order_id": order_id, "noted": True}

    def refund_preview(order_id: str, amount: float) -> dict[str, Any]:
        order = _order(order_id)
        return {
            "order_id": order_id,
            "amount": amount,
            "currency": order["currency"],
            "order_total": order["total"],
            "refundable": amount <= order["total"],
        }

    def refund_within_total(args: dict[str, Any], result: Any) -> str | None:
        if isinstance(result, dict) and result.get("refundable") is False:
            return f"amount {args['amount']!r} exceeds the order total {result['order_total']!r}"
        return None

    @tool(
        effect="irreversible",
        scopes=["payments:write"],
        idempotent=True,
        prepare=refund_preview,
        verify=refund_within_total,
    )
    def issue_refund(order_id: str, amount: float, ctx: ToolContext) -> dict[str, Any]:
        """Refund money to the customer of an order.

        Args:
            order_id: The order to refund.
            amount: Amount in the order's currency; at most the order total.
        """
        order = _order(order_id)
        if amount > order["total"]:
            raise ToolError(f"amount {amount!r} exceeds the order total {order['total']!r}")
        # The payment system dedupes on the idempotency key: a repeated call is a no-op.
        refund_id = "rf_" + ctx.idempotency_key[:12]
        with _desk(sink) as conn:
            conn.execute(
                "INSERT OR IGNORE INTO refunds VALUES (?,?,?,?)",
                (ctx.idempotency_key, order_id, amount, refund_id),
            )
        return {
            "refund_id": refund_id,
            "order_id": order_id,
            "amount": amount,
            "currency": order["currency"],
        }

    return [lookup_order, lookup_customer, add_order_note, issue_refund]


def _closing(messages: list[BaseMessage]) -> AIMessage:
    """The scripted model's last turn: it reports what actually happened to the refund."""
    last = messages[-1]
    if isinstance(last, ToolMessage) and last.status == "error":
        return AIMessage(f"I did not refund order 42: {last.content}")
    return AIMessage("Refunded $89.00 to Dana Reyes for order 42 and noted the broken blender.")


def demo_model() -> ScriptedChatModel:
    """The scripted planner of the demo: look up, note, refund, report."""
    return ScriptedChatModel(
        [
            ai("Let me look at the order.", tool_call("lookup_order", {"order_id": "42"})),
            ai(
                "Order 42 is a delivered blender for $89.00. Checking the customer and noting "
                "the complaint.",
                tool_call("lookup_customer", {"customer_id": "c-7"}),
                tool_call(
                    "add_order_note",
                    {"order_id": "42", "note": "Customer reports the blender arrived broken."},
                ),
            ),
            ai(
                "Refunding the full amount.",
                tool_call("issue_refund", {"order_id": "42", "amount": 89.0}),
            ),
            _closing,
        ],
        model_name="refund-desk-script",
    )


def build_runtime(db: str | Path = "agentrt.db", **kwargs: Any) -> AgentRuntime:
    """The refund desk runtime on ``db``; keyword arguments go to AgentRuntime."""
    kwargs.setdefault("model", demo_model())
    kwargs.setdefault("policy", Policy.from_file(POLICY_FILE))
    kwargs.setdefault("name", "refund-desk")
    return AgentRuntime(tools=_tools(payments_path(db)), db=db, **kwargs)
