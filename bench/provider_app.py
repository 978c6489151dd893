"""The app the provider benchmark serves: the service benchmark's runs, asked of the real
OpenAI client (langchain-openai's ``ChatOpenAI``) at the URL in ``AGENTRT_BENCH_OPENAI_URL``
(a local OpenAI-compatible server, bench/openai_fake.py)."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
from agents import agentrt_runtime
from langchain_openai import ChatOpenAI
from service_app import ACTIONS

from agentrt import AgentRuntime

__all__ = ["URL_VARIABLE", "build_runtime"]

URL_VARIABLE = "AGENTRT_BENCH_OPENAI_URL"


def build_runtime(db: str | Path = "provider-bench.db") -> AgentRuntime:
    """The no-op tool, allowed; the model: ChatOpenAI at the server the variable names."""
    model = ChatOpenAI(
        model="bench-model",
        api_key="sk-bench",  # the local server takes any key
        base_url=os.environ[URL_VARIABLE],
        max_retries=0,
        stream_usage=True,
        # A client of its own: langchain-openai's default one is shared by every instance
        # and bound to the first event loop it ran on; each in-process sample has its own.
        http_async_client=httpx.AsyncClient(timeout=60),
    )
    return agentrt_runtime(model, db, ACTIONS)
