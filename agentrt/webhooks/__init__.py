"""Webhooks: the outbox's events sent to the endpoints a runtime names, signed, retried,
dead-lettered, at least once and in order per run.

``AgentRuntime(webhooks=Webhooks.from_file("webhooks.yaml"))`` names the endpoints;
``agentrt serve``, ``agentrt worker`` and ``agentrt notify`` run a ``Dispatcher``.
"""

from agentrt.store.outbox import Delivery, DeliveryQuery, DeliveryStatus
from agentrt.webhooks.config import ALL_TENANTS, RetrySchedule, WebhookEndpoint, Webhooks
from agentrt.webhooks.dispatcher import Dispatcher, Pass, body_of
from agentrt.webhooks.signing import SignatureError, signature, signed_headers, verify

# The deliveries' records (the store's) are offered here too: the CLI and the service read
# deliveries through the webhooks room, never from the store's modules.
__all__ = [
    "ALL_TENANTS",
    "Delivery",
    "DeliveryQuery",
    "DeliveryStatus",
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
