"""The refund desk with the webhooks of the file WEBHOOKS_FILE names (its secrets from the
environment), for `agentrt notify` and `agentrt worker` processes the tests start and kill."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from agentrt import AgentRuntime
from agentrt.examples import refund_desk
from agentrt.webhooks import Webhooks


def build_runtime(db: str | Path = "agentrt.db", **kwargs: Any) -> AgentRuntime:
    webhooks = Webhooks.from_file(os.environ["WEBHOOKS_FILE"])
    return refund_desk.build_runtime(db, webhooks=webhooks, **kwargs)
