"""A real provider client over HTTP: langchain-openai's ChatOpenAI against an
OpenAI-compatible server on 127.0.0.1 (tests/openai_server.py), through agentrt.

Outages and rate limits leave a run waiting to retry, never failed; errors a retry cannot
fix fail at once with the provider's message, asked once; usage is counted when streamed
(or estimated, and said so); replay checks the same numbers the run checked; the spans
carry the provider's ids and caps. Offline, as the tests are, ChatOpenAI cannot load its
tokenizer (tiktoken downloads it): the fixture below makes that so on any machine.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agentrt import AgentRuntime, Budget, ConfigError, Decision, Policy, RunStatus, tool
from agentrt.cli import app as cli_app
from tests.conftest import FakeClock
from tests.openai_server import BrokenStream, Fault, OpenAIServer, Reply, openai_server
from tests.provider_app import OPERATOR, TREASURER, build_runtime, chat, transfers

# The client waits what the server asks (retry-after-ms) between its own retries: 1 ms.
DOWN = Fault(503, "upstream connect error", headers={"retry-after-ms": "1"})
PAY = Reply(tool_calls=[("transfer", {"account": "acme-7", "amount": 900})])


@pytest.fixture(autouse=True)
def offline_tokenizer(monkeypatch: pytest.MonkeyPatch) -> None:
    import tiktoken

    def offline(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("no network: cannot download the tokenizer")

    monkeypatch.setattr(tiktoken, "encoding_for_model", offline)
    monkeypatch.setattr(tiktoken, "get_encoding", offline)


def runtime(
    db: Path, server: OpenAIServer, clock: Callable[[], float], **options: Any
) -> AgentRuntime:
    model = chat(server.url, **options.pop("client", {}))
    return build_runtime(db, model=model, clock=clock, **options)


def approved(rt: AgentRuntime, thread_id: str = "t") -> Any:
    run = rt.start("pay acme-7 $900", principal=OPERATOR, thread_id=thread_id)
    assert run.status is RunStatus.AWAITING_APPROVAL, run
    return rt.decide(Decision.approve(run.pending_approval.id, by=TREASURER))


def test_an_outage_after_an_approved_transfer_waits_and_resume_finishes_it_once(
    db: Path, clock: FakeClock
) -> None:
    with openai_server([PAY, DOWN, DOWN, DOWN, Reply("sent $900 to acme-7")]) as server:
        with runtime(db, server, clock) as rt:
            run = approved(rt)
            # The client's own retries (3 requests), none by agentrt on top; then it waits.
            assert (run.status, len(server.requests)) == (RunStatus.WAITING_RETRY, 4)
            assert run.retry_at == clock.now + 5.0
            assert run.error == (
                "waiting to retry: the model provider failed in a way that may pass: "
                "Error code: 503 - upstream connect error"
            )
            assert transfers(db) == ["acme-7 900"]

            clock.advance(5.0)
            done = rt.resume("t")
        assert (done.status, done.output) == (RunStatus.SUCCEEDED, "sent $900 to acme-7")
        assert done.usage["retry_waited_seconds"] == 5.0
        assert transfers(db) == ["acme-7 900"]  # the transfer happened once
        assert len(server.requests) == 5


def test_the_cli_carries_on_a_waiting_run_and_refuses_to_resume_a_finished_one(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The CLI's runtime keeps the real time, so this one does too.
    runner = CliRunner()
    app = ["--app", "tests.provider_app:build_runtime", "--db", str(db)]
    with openai_server([PAY, DOWN, DOWN, DOWN, Reply("sent")]) as server:
        monkeypatch.setenv("AGENTRT_TEST_OPENAI_URL", server.url)
        with runtime(db, server, time.time) as rt:
            assert approved(rt).status is RunStatus.WAITING_RETRY

        shown = runner.invoke(cli_app, ["show", "t", "--db", str(db)])
        assert shown.exit_code == 0, shown.output
        assert "status    waiting_retry" in shown.output
        assert "retry at" in shown.output
        assert "(or now: agentrt resume)" in shown.output

        resumed = runner.invoke(cli_app, ["resume", "t", *app])
        assert resumed.exit_code == 0, resumed.output
        assert "status    succeeded" in resumed.output
        assert "s waiting to retry" in resumed.output  # how long, in real seconds

        again = runner.invoke(cli_app, ["resume", "t", *app])
    assert again.exit_code == 1
    assert "cannot resume t: it already ended (succeeded); start a new run" in again.output
    assert transfers(db) == ["acme-7 900"]
    assert len(server.requests) == 5  # the refused resume asked nothing


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault(400, "Invalid 'messages[1].content'"), "OpenAIInvalidRequestError"),
        (Fault(401, "Incorrect API key provided"), "OpenAIAuthenticationError"),
        (Fault(403, "Project does not have access to model"), "OpenAIPermissionDeniedError"),
        (Fault(404, "The model 'gpt-4o-mini' does not exist"), "OpenAIModelNotFoundError"),
        (
            Fault(400, "maximum context length is 128000 tokens", code="context_length_exceeded"),
            "OpenAIInvalidRequestError",
        ),
    ],
)
def test_an_error_no_retry_can_fix_is_sent_once_and_fails_with_the_providers_message(
    db: Path, clock: FakeClock, fault: Fault, error: str
) -> None:
    with openai_server([fault, Reply("never asked")]) as server, runtime(db, server, clock) as rt:
        run = rt.start("pay acme-7 $900", principal=OPERATOR, thread_id="t")
        trace = rt.trace("t")
    assert len(server.requests) == 1
    assert run.status is RunStatus.FAILED
    assert fault.message in (run.error or "")
    # The segment's span says it failed, and with what.
    segment = trace.roots[0]
    assert (segment.status, segment.attributes["error.type"]) == ("ERROR", error), segment


def test_a_stream_the_provider_breaks_off_with_a_server_error_waits_to_retry(
    db: Path, clock: FakeClock
) -> None:
    # The error comes as an event after the stream's 200 (OpenAI's SDK raises its plain
    # APIError, no status): an outage seen late, which may pass as a dropped connection does.
    script = [BrokenStream(), Reply("Nothing to pay.")]
    with (
        openai_server(script) as server,
        runtime(db, server, clock, client={"streaming": True}) as rt,
    ):
        run = rt.start("pay acme-7 $900", principal=OPERATOR, thread_id="t")
        assert (run.status, len(server.requests)) == (RunStatus.WAITING_RETRY, 1)
        assert run.error == (
            "waiting to retry: the model provider failed in a way that may pass: "
            "The server had an error while processing your request."
        )
        clock.advance(5.0)
        done = rt.resume("t")
    assert (done.status, done.output, len(server.requests)) == (
        RunStatus.SUCCEEDED,
        "Nothing to pay.",
        2,
    )


def test_a_stream_broken_off_by_a_bad_request_fails_at_once(db: Path, clock: FakeClock) -> None:
    broken = BrokenStream(message="Invalid 'messages[1].content'", type="invalid_request_error")
    with (
        openai_server([broken, Reply("never asked")]) as server,
        runtime(db, server, clock, client={"streaming": True}) as rt,
    ):
        run = rt.start("pay acme-7 $900", principal=OPERATOR, thread_id="t")
    assert (run.status, run.error, len(server.requests)) == (
        RunStatus.FAILED,
        "APIError: Invalid 'messages[1].content'",
        1,
    )


def test_a_rate_limit_is_retried_by_the_client_alone(db: Path, clock: FakeClock) -> None:
    limited = Fault(429, "Rate limit reached", headers={"retry-after-ms": "1"})
    with openai_server([limited] * 3 + [Reply("done")]) as server, runtime(db, server, clock) as rt:
        run = rt.start("pay acme-7 $900", principal=OPERATOR, thread_id="t")
        assert len(server.requests) == 3  # the client's three, not nine: none on top
        assert run.status is RunStatus.WAITING_RETRY
        assert run.retry_at == clock.now + 5.0


def test_a_retry_after_longer_than_the_client_waits_is_kept(db: Path, clock: FakeClock) -> None:
    # Past the client's patience (two minutes) it does not retry at all; agentrt then waits
    # what the provider asked, not its own 5 s.
    limited = Fault(429, "Rate limit reached for gpt-4o-mini", headers={"retry-after": "600"})
    with openai_server([limited, Reply("done")]) as server, runtime(db, server, clock) as rt:
        run = rt.start("pay acme-7 $900", principal=OPERATOR, thread_id="t")
        assert (run.status, len(server.requests)) == (RunStatus.WAITING_RETRY, 1)
        assert run.retry_at == clock.now + 600.0
        clock.advance(600.0)
        done = rt.resume("t")
    assert (done.status, done.output, done.usage["retry_waited_seconds"]) == (
        RunStatus.SUCCEEDED,
        "done",
        600.0,
    )


def test_the_planner_retries_a_client_that_does_not_retry_itself(
    db: Path, clock: FakeClock
) -> None:
    with (
        openai_server([DOWN, Reply("done")]) as server,
        runtime(db, server, clock, client={"max_retries": 0}) as rt,
    ):
        run = rt.start("pay acme-7 $900", principal=OPERATOR, thread_id="t")
    assert (run.status, run.output, len(server.requests)) == (RunStatus.SUCCEEDED, "done", 2)


def tokens_run(db: Path, server: OpenAIServer, clock: FakeClock, **client: Any) -> Any:
    with runtime(
        db, server, clock, client=client, policy=Policy.allow_all(), budget=Budget(max_tokens=600)
    ) as rt:
        return rt.start("pay acme-7 $5, three times", principal=OPERATOR, thread_id="t")


SPENDY = [
    Reply(
        tool_calls=[("transfer", {"account": "acme-7", "amount": 5})],
        prompt_tokens=200,
        completion_tokens=150,
    ),
    Reply("paid", prompt_tokens=260, completion_tokens=20),
]


@pytest.mark.parametrize("streaming", [False, True])
def test_a_streamed_answer_counts_its_usage_as_the_unstreamed_one_does(
    tmp_path: Path, clock: FakeClock, streaming: bool
) -> None:
    with openai_server(SPENDY) as server:
        run = tokens_run(tmp_path / "t.db", server, clock, streaming=streaming)
    asked = server.requests[0]
    assert asked.get("stream_options") == ({"include_usage": True} if streaming else None)
    # 350 tokens spent on the first call; the second cannot fit in the 250 left.
    assert run.status is RunStatus.BUDGET_EXCEEDED
    assert (run.usage["input_tokens"], run.usage["output_tokens"]) == (200, 150)
    assert "estimated_tokens" not in run.usage
    assert len(server.requests) == 1


def test_a_stream_without_usage_is_estimated_never_counted_as_zero(
    db: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    # A server that never sends a usage chunk, though asked: the answer says nothing.
    long_answer = Reply(tool_calls=[("transfer", {"account": "acme-7 " * 200, "amount": 5})])
    with openai_server([long_answer] * 2 + [Reply("paid")], stream_usage=False) as server:
        run = tokens_run(db, server, clock, streaming=True)
    usage = run.usage
    assert usage["estimated_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert usage["output_tokens"] > 350  # the long arguments, about four characters a token
    assert run.status is RunStatus.BUDGET_EXCEEDED  # as a counted run of this size would
    said = [r.getMessage() for r in caplog.records if "reported no token usage" in r.message]
    assert said == [
        "ChatOpenAI reported no token usage; agentrt estimates it (usage['estimated_tokens'])"
    ]


def test_the_tokenizer_that_cannot_load_is_reported_once_per_runtime(
    db: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    script = [PAY, Reply("paid")] * 2
    with (
        openai_server(script) as server,
        runtime(db, server, clock, policy=Policy.allow_all(), budget=Budget(max_tokens=5000)) as rt,
    ):
        for thread_id in ("a", "b"):
            run = rt.start("pay acme-7", principal=OPERATOR, thread_id=thread_id)
            assert run.status is RunStatus.SUCCEEDED, run.error
    assert len(server.requests) == 4  # four counted calls
    said = [r.getMessage() for r in caplog.records if r.name.startswith("agentrt")]
    assert said == [
        "ChatOpenAI counting tokens: Counting tokens in tool schemas is not yet supported. "
        "Ignoring tools.",
        "ChatOpenAI could not count tokens; approximating",
    ]


class _Encoding:
    """tiktoken's encoding as it loads online, made here offline: four characters a token."""

    def encode(self, text: str, **kwargs: Any) -> list[int]:
        return [0] * math.ceil(len(text) / 4)


MANUAL = "Look an order up by its id. " + "The order system keeps seven years of orders. " * 200


@tool(effect="read", description=MANUAL)
def find_order(order_id: str) -> dict[str, Any]:
    return {"order_id": order_id}


@pytest.mark.parametrize(
    ("budget", "sent"),
    [
        (Budget(max_tokens=1000), False),
        (Budget(max_cost_usd=0.0002), False),  # the schemas alone are $0.00035 of input
        (Budget(max_tokens=5000), True),
    ],
)
def test_a_tokenizer_that_leaves_the_tool_schemas_out_has_them_counted_all_the_same(
    db: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, budget: Budget, sent: bool
) -> None:
    # Loaded, ChatOpenAI's tokenizer counts the messages and ignores the tools it is handed
    # (it warns so); the schemas go with every call, so the pre-flight counts them too.
    import tiktoken

    monkeypatch.setattr(tiktoken, "encoding_for_model", lambda *a, **k: _Encoding())
    schemas = math.ceil(len(MANUAL) / 4)
    with (
        openai_server([Reply("Found it.", prompt_tokens=schemas + 60)]) as server,
        AgentRuntime(
            chat(server.url), tools=[find_order], policy=Policy.allow_all(), db=db, clock=clock
        ) as rt,
    ):
        run = rt.start("Find order 42", principal=OPERATOR, thread_id="t", budget=budget)
        calls = rt.store.model_calls("t")
    if not sent:
        assert (run.status, len(server.requests), calls) == (RunStatus.BUDGET_EXCEEDED, 0, [])
        return
    assert (run.status, run.output) == (RunStatus.SUCCEEDED, "Found it."), run.error
    [call] = calls
    assert call.prompt_tokens is not None
    assert schemas < call.prompt_tokens < schemas + 200
    assert server.requests[0]["max_completion_tokens"] == 5000 - call.prompt_tokens


def test_a_prompt_not_in_english_is_not_undercounted_where_no_tokenizer_loads(
    db: Path, clock: FakeClock
) -> None:
    # Offline the pre-flight approximates. A 4,000-character Chinese goal is some 3,000
    # tokens to OpenAI's tokenizers; counted as four characters a token (1,000) it was
    # sent under max_tokens=2500 and spent 3,100.
    goal = "请查询订单并核对每一行的金额与税费" * 235
    with (
        openai_server([Reply("done", prompt_tokens=3100)]) as server,
        runtime(db, server, clock, budget=Budget(max_tokens=2500)) as rt,
    ):
        run = rt.start(goal, principal=OPERATOR, thread_id="t")
    assert (run.status, len(server.requests)) == (RunStatus.BUDGET_EXCEEDED, 0)


def test_a_budget_stopped_run_replays_identical_on_the_numbers_it_recorded(
    db: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    script = [
        Reply(tool_calls=[("transfer", {"account": "acme-7", "amount": 5})], prompt_tokens=180)
    ] * 3
    with (
        openai_server(script) as server,
        runtime(db, server, clock, policy=Policy.allow_all(), budget=Budget(max_tokens=450)) as rt,
    ):
        run = rt.start("pay acme-7 $5 a few times", principal=OPERATOR, thread_id="t")
        assert run.status is RunStatus.BUDGET_EXCEEDED
        (call,) = rt.store.model_calls("t")
        caplog.clear()
        report = rt.replay("t")
        trace = rt.trace("t")
    assert str(report) == "identical"
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    # What the pre-flight counted and the cap it set are kept with the call, and the cap
    # is what the server was asked for.
    assert call.prompt_tokens is not None
    assert call.cap is not None
    assert server.requests[0]["max_completion_tokens"] == call.cap == 450 - call.prompt_tokens
    (llm,) = [s for _, s in trace.spans() if s.kind == "llm.call"]
    assert llm.attributes["gen_ai.request.max_tokens"] == call.cap
    assert llm.attributes["gen_ai.response.id"] == "chatcmpl-test0"


@pytest.mark.parametrize("limit", [100_000, 10**15])
def test_a_token_budget_past_the_models_largest_answer_sends_no_cap(
    db: Path, clock: FakeClock, limit: int
) -> None:
    # The budget leaves room for more than gpt-4o-mini ever answers: a cap that large is a
    # 400 from the provider ("max_tokens is too large"), and the model's own limit keeps
    # the answer within the budget anyway.
    with (
        openai_server([Reply("Nothing to pay.")]) as server,
        runtime(
            db, server, clock, policy=Policy.allow_all(), budget=Budget(max_tokens=limit)
        ) as rt,
    ):
        run = rt.start("pay nobody", principal=OPERATOR, thread_id="t")
        trace = rt.trace("t")
    assert (run.status, run.output) == (RunStatus.SUCCEEDED, "Nothing to pay."), run.error
    assert "max_completion_tokens" not in server.requests[0]
    (llm,) = [s for _, s in trace.spans() if s.kind == "llm.call"]
    assert "gen_ai.request.max_tokens" not in llm.attributes


def test_replay_of_a_run_whose_provider_failed_matches_up_to_the_failed_call(
    db: Path, clock: FakeClock
) -> None:
    with (
        openai_server([PAY, Fault(400, "Invalid 'tools[0]'")]) as server,
        runtime(db, server, clock) as rt,
    ):
        run = approved(rt)
        assert run.status is RunStatus.FAILED
        report = rt.replay("t")
    assert report.identical
    assert str(report) == (
        "identical (as far as the recordings go: the run got no answer to its next model "
        "call (it is failed))"
    )


def test_replay_of_a_run_that_never_got_an_answer_says_so(db: Path, clock: FakeClock) -> None:
    with (
        openai_server([Fault(401, "Incorrect API key provided")]) as server,
        runtime(db, server, clock) as rt,
    ):
        rt.start("pay acme-7 $900", principal=OPERATOR, thread_id="t")
        with pytest.raises(ConfigError) as info:
            rt.replay("t")
    assert str(info.value).startswith(
        "run 't' never got an answer from its model (it is failed: "
        "OpenAIAuthenticationError: Error code: 401 - Incorrect API key provided), "
    )
    assert str(info.value).endswith("so there is nothing to replay")


# -- what an answer says: its text, a refusal, nothing, its calls' ids, its usage ------------


def test_an_answer_given_as_content_blocks_is_the_runs_output_as_its_text(
    db: Path, clock: FakeClock
) -> None:
    # LangChain's standard content (output_version="v1", or LC_OUTPUT_VERSION=v1) answers a
    # list of blocks: the output is their text, not their JSON.
    with (
        openai_server([Reply("Nothing to pay.")]) as server,
        runtime(db, server, clock, client={"output_version": "v1"}) as rt,
    ):
        run = rt.start("pay nobody", principal=OPERATOR, thread_id="t")
        [plan] = [e["data"] for e in rt.events("t") if e["type"] == "plan"]
    assert (run.status, run.output) == (RunStatus.SUCCEEDED, "Nothing to pay.")
    # Text blocks alone say no more than their text: nothing else is kept.
    assert plan == {"revision": 0, "content": "Nothing to pay.", "actions": []}


@pytest.mark.parametrize("streaming", [False, True])
def test_a_refusal_fails_the_run_quoting_it(db: Path, clock: FakeClock, streaming: bool) -> None:
    # OpenAI's refusal: content null, the words in "refusal". A success with an empty output
    # would tell nobody; asked again, the same request is refused again.
    refusal = Reply(refusal="I can't help with moving money.")
    with (
        openai_server([refusal]) as server,
        runtime(db, server, clock, client={"streaming": streaming}) as rt,
    ):
        run = rt.start("pay acme-7 $900", principal=OPERATOR, thread_id="t")
        kinds = [e["type"] for e in rt.events("t")]
    assert (run.status, run.output) == (RunStatus.FAILED, None)
    if streaming:  # langchain-openai drops a streamed refusal: the answer is empty
        assert "had no text and no tool call (finish reason 'stop')" in (run.error or "")
    else:
        assert run.error == (
            'the model refused to answer plan step 0: "I can\'t help with moving money."; '
            "change the goal or the instructions, or have a person take the task"
        )
    assert (len(server.requests), kinds, run.usage["steps"]) == (1, ["finish"], 1)
    assert run.usage["input_tokens"] == 20  # paid for, so counted


@pytest.mark.parametrize(
    ("reply", "said"),
    [
        (Reply("", finish_reason="content_filter"), "withheld the model's answer"),
        (Reply("Paid.", finish_reason="content_filter"), "withheld the model's answer"),
        (Reply("", finish_reason="stop"), "had no text and no tool call"),
        (Reply("  \n", finish_reason="stop"), "had no text and no tool call"),
    ],
)
def test_a_filtered_or_empty_answer_fails_naming_its_finish_reason(
    db: Path, clock: FakeClock, reply: Reply, said: str
) -> None:
    # An answer the provider's filter stopped may be cut anywhere: acting on it, or calling
    # it the run's output, is worse than stopping. One with nothing in it is no answer.
    with openai_server([reply]) as server, runtime(db, server, clock) as rt:
        run = rt.start("pay acme-7 $900", principal=OPERATOR, thread_id="t")
    assert (run.status, run.output) == (RunStatus.FAILED, None)
    assert said in (run.error or "")
    assert f"(finish reason {reply.finish_reason!r})" in (run.error or "")


def test_two_tool_calls_with_one_id_are_told_apart_and_replay_identical(
    db: Path, clock: FakeClock
) -> None:
    # Some OpenAI-compatible servers repeat an id within an answer. Each result must answer
    # its own call: the second gets an id of its own, in the log, in the turn sent back and
    # in the tool messages, and a replay of the recorded answer makes the same.
    twice = Reply(
        tool_calls=[
            ("transfer", {"account": "acme-7", "amount": 5}),
            ("transfer", {"account": "acme-8", "amount": 6}),
        ],
        call_ids=["call_0", "call_0"],
    )
    with (
        openai_server([twice, Reply("paid both")]) as server,
        runtime(db, server, clock, policy=Policy.allow_all()) as rt,
    ):
        run = rt.start("pay acme-7 and acme-8", principal=OPERATOR, thread_id="t")
        events = rt.events("t")
        report = rt.replay("t")
    assert run.status is RunStatus.SUCCEEDED, run.error
    [plan] = [e["data"] for e in events if e["type"] == "plan" and e["data"]["actions"]]
    stored = [a["call_id"] for a in plan["actions"]]
    observed = [e["data"]["call_id"] for e in events if e["type"] == "observation"]
    sent = server.requests[1]["messages"]
    asked = [c["id"] for m in sent if m["role"] == "assistant" for c in m.get("tool_calls", [])]
    answered = [m["tool_call_id"] for m in sent if m["role"] == "tool"]
    assert stored == observed == asked == answered == ["call_0", "call_0_1"]
    assert transfers(db) == ["acme-7 5", "acme-8 6"]
    assert str(report) == "identical"


def test_usage_reported_as_zeros_is_estimated_and_said_so(db: Path, clock: FakeClock) -> None:
    # Some servers and proxies send usage as zeros: a prompt is never empty, nor an answer
    # with text, so the zeros are estimated as a missing usage is, never a silent zero.
    long_text = "Nothing to pay. " * 200
    reply = Reply(long_text, prompt_tokens=0, completion_tokens=0)
    with openai_server([reply]) as server, runtime(db, server, clock) as rt:
        run = rt.start("pay nobody", principal=OPERATOR, thread_id="t")
    usage = run.usage
    assert run.status is RunStatus.SUCCEEDED, run.error
    assert usage["output_tokens"] >= len(long_text) // 4
    assert usage["input_tokens"] > 0
    assert usage["estimated_tokens"] == usage["input_tokens"] + usage["output_tokens"]


def test_a_zero_only_where_one_can_be_is_counted_as_reported(db: Path, clock: FakeClock) -> None:
    # A tool call with no text is still output; a reported prompt stays as reported.
    pay = Reply(
        tool_calls=[("transfer", {"account": "acme-7", "amount": 5})],
        prompt_tokens=120,
        completion_tokens=0,
    )
    with (
        openai_server([pay, Reply("paid", prompt_tokens=150, completion_tokens=2)]) as server,
        runtime(db, server, clock, policy=Policy.allow_all()) as rt,
    ):
        run = rt.start("pay acme-7 $5", principal=OPERATOR, thread_id="t")
    usage = run.usage
    assert run.status is RunStatus.SUCCEEDED, run.error
    assert usage["input_tokens"] == 270
    assert usage["estimated_tokens"] == usage["output_tokens"] - 2 > 0
