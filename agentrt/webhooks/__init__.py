"""Webhooks: the outbox's events sent to the endpoints a runtime names, signed, retried,
dead-lettered, at least once and in order per run.

``AgentRuntime(webhooks=Webhooks.from_file("webhooks.yaml"))`` names the endpoints;
``agentrt serve``, ``agentrt worker`` and ``agentrt notify`` run a ``Dispatcher``.
"""

from agentrt.webhooks.config import ALL_TENANTS, RetrySchedule, WebhookEndpoint, Webhooks
from agentrt.webhooks.dispatcher import Dispatcher, Pass, body_of
from agentrt.webhooks.signing import SignatureError, signature, signed_headers, verify

__all__ = [
    "ALL_TENANTS",
    "Dispatcher",
    "Pass",
    "RetrySchedule",
    "SignatureError",
    "WebhookEndpoint",
    "Webhooks",
    "body_of",
    "signature",
    "signed_headers",
    "verify",
]
