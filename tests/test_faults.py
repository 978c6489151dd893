"""Which failures may pass (the run waits to retry) and which end a run, read from the
errors themselves: LangChain's model errors, HTTP statuses, the stores' own."""

from __future__ import annotations

import sqlite3
from types import SimpleNamespace
from typing import Any

import pytest
from langchain_core.exceptions import ModelError

from agentrt.errors import DatabaseUnavailable
from agentrt.faults import retry_after, retry_delay, retryable_model_error, transient_cause


class StatusError(Exception):
    """An HTTP client's error: a status and the response's headers."""

    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"Error code: {status}")
        self.status_code = status
        self.response = SimpleNamespace(status_code=status, headers=headers or {})


class Retryable(ModelError):
    is_retryable = True


class Final(ModelError):
    is_retryable = False


@pytest.mark.parametrize(
    ("exc", "passes"),
    [
        (Retryable("overloaded"), True),
        (Final("bad request"), False),
        (StatusError(429), True),
        (StatusError(503), True),
        (StatusError(408), True),
        (StatusError(400), False),
        (StatusError(401), False),
        (StatusError(404), False),
        (TimeoutError("read timed out"), True),
        (ConnectionError("connection reset"), True),
        (ValueError("not a provider's error"), False),
    ],
)
def test_model_errors_are_read_by_what_they_say(exc: Exception, passes: bool) -> None:
    assert retryable_model_error(exc) is passes
    assert (transient_cause(exc) is not None) is passes


def streamed_error(body: object) -> Exception:
    """What OpenAI's SDK raises for an error event in the middle of a stream: its plain
    APIError, no status (the stream's 200 is already sent), typed by the event's body."""
    import httpx2
    import openai

    request = httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions")
    return openai.APIError("The server had an error", request, body=body)


class APIError(Exception):
    """Another SDK's base error (Anthropic's has this name and shape): the request, a type."""

    def __init__(self, kind: str | None) -> None:
        super().__init__(f"stream broke off: {kind}")
        self.request = object()
        self.type = kind


@pytest.mark.parametrize(
    ("exc", "passes"),
    [
        (streamed_error({"message": "Sorry", "type": "server_error", "code": None}), True),
        (streamed_error(None), True),  # "An error occurred during streaming", nothing said
        (streamed_error("<html>502 Bad Gateway</html>"), True),  # not JSON
        (streamed_error({"message": "Sorry", "type": ["odd"], "code": 7}), True),
        (APIError("overloaded_error"), True),
        (streamed_error({"message": "bad", "type": "invalid_request_error"}), False),
        (streamed_error({"message": "key", "type": "authentication_error"}), False),
        (
            streamed_error({"message": "long", "type": None, "code": "context_length_exceeded"}),
            False,
        ),
        (APIError("not_found_error"), False),
    ],
)
def test_a_providers_error_with_no_status_is_read_by_the_type_it_names(
    exc: Exception, passes: bool
) -> None:
    # A server failing mid-answer may pass, as a connection dropped mid-answer does; a
    # request the provider calls bad is bad however it was reported.
    assert retryable_model_error(exc) is passes
    assert (transient_cause(exc) is not None) is passes


def test_an_error_named_as_an_sdks_that_answers_no_request_is_not_a_providers() -> None:
    class APIError(Exception):  # an application's own error of that name
        pass

    assert transient_cause(APIError("the app's own")) is None
    assert not retryable_model_error(APIError("the app's own"))


def chained(outer: BaseException, inner: BaseException, *, cause: bool) -> BaseException:
    """``outer`` raised while handling ``inner``: as its cause, or only its context."""
    try:
        try:
            raise inner
        except BaseException:
            if cause:
                raise outer from inner
            raise outer from None
    except BaseException as caught:
        return caught


def test_the_first_error_of_a_chain_that_says_either_way_decides() -> None:
    wrapped = chained(RuntimeError("During task with name 'plan'"), StatusError(503), cause=True)
    assert transient_cause(wrapped) == (
        "the model provider failed in a way that may pass: Error code: 503"
    )
    # A bad request raised while handling a timeout is a bad request.
    bad = chained(StatusError(400), TimeoutError("slow"), cause=False)
    assert isinstance(bad.__context__, TimeoutError)
    assert transient_cause(bad) is None


def test_the_database_out_of_reach_or_locked_is_the_stores_failure_not_the_providers() -> None:
    gone = DatabaseUnavailable(
        "postgresql://agentrt:***@db/agentrt", 120, OSError("connection refused\nmore")
    )
    assert transient_cause(gone) == (
        "the database could not be reached: the database "
        "'postgresql://agentrt:***@db/agentrt' could not be used for 120 s "
        "(connection refused); the call gave up"
    )
    assert not retryable_model_error(gone)  # its patience is spent: the run waits instead
    locked = sqlite3.OperationalError("database is locked")
    assert transient_cause(locked) == (
        "the database stayed locked by another process (database is locked)"
    )
    assert transient_cause(sqlite3.OperationalError("no such table: runs")) is None


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after": "30"}, 30.0),
        ({"retry-after-ms": "250", "retry-after": "30"}, 0.25),  # as OpenAI's client reads it
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # a date long past
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_is_read_as_providers_send_it(
    headers: dict[str, Any], seconds: float | None
) -> None:
    assert retry_after(StatusError(429, headers)) == seconds


def test_the_wait_doubles_from_5_s_to_5_min_and_never_undercuts_the_provider() -> None:
    assert [retry_delay(n) for n in range(1, 9)] == [5, 10, 20, 40, 80, 160, 300, 300]
    assert retry_delay(1, at_least=90.0) == 90.0
    assert retry_delay(3, at_least=1.0) == 20.0
