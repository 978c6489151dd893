"""What an MCP server says of its tools, and what the app says over it: effects from
annotations (none: a write), function names every provider takes, result schemas checked
by verify, overrides in Python and in the policy file, and the clear errors of bad input
(a schema that is not JSON Schema, two tools with one name, an override of a tool that is
not there, a server command that does not exist). The server's stderr reaches the log
redacted and bounded; what the app gave a server is cut out of all the server says (its
tool list, its stdout, what the SDK logs); a server's patterns cannot freeze the process;
a call that never ends is timed out."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mcp.types import ToolAnnotations

from agentrt import AgentRuntime, ConfigError, Effect, Policy, Principal, RunStatus, tool
from agentrt.policies import PolicyFileError
from agentrt.testing import ScriptedChatModel, ai, tool_call
from agentrt.tools.mcp import MCPServer
from agentrt.tools.mcp.contracts import effect_of, function_names
from agentrt.tools.mcp.listing import DESCRIPTION_CHARS, SCHEMA_BYTES
from tests.mcp_echo_server import CUT_AT
from tests.mcp_helpers import ROOT, TIME_SERVER, children, wait_for
from tests.mcp_odd_server import EVIL, EVIL_TEXT, SECRET

pytestmark = pytest.mark.subprocess

ALICE = Principal("alice", roles=["operator"], tenant="acme", scopes=["clock"])


def odd(*flags: str, **options: object) -> MCPServer:
    return MCPServer.stdio(
        sys.executable, ["-m", "tests.mcp_odd_server", *flags], name="odd", cwd=ROOT, **options
    )  # type: ignore[arg-type]


def time_server(name: str = "time", **options: object) -> MCPServer:
    return MCPServer.stdio(TIME_SERVER, name=name, **options)  # type: ignore[arg-type]


def runtime(db: Path, *tools: object, model: object = None, **kwargs: object) -> AgentRuntime:
    return AgentRuntime(
        model or ScriptedChatModel(["nothing to do"]),  # type: ignore[arg-type]
        tools=list(tools),  # type: ignore[arg-type]
        policy=kwargs.pop("policy", Policy.allow_all()),  # type: ignore[arg-type]
        db=db,
        **kwargs,  # type: ignore[arg-type]
    )


# what a server says ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("annotations", "effect", "idempotent"),
    [
        (None, "write", False),
        (ToolAnnotations(), "write", False),
        (ToolAnnotations(read_only_hint=True, idempotent_hint=True), "read", True),
        (ToolAnnotations(read_only_hint=False), "write", False),
        (ToolAnnotations(destructive_hint=False, idempotent_hint=True), "write", True),
        (ToolAnnotations(destructive_hint=True), "irreversible", False),
    ],
)
def test_annotations_say_the_effect_and_nothing_said_is_a_write(
    annotations: ToolAnnotations | None, effect: str, idempotent: bool
) -> None:
    assert effect_of(annotations) == (Effect(effect), idempotent)


def test_names_become_function_names_and_two_alike_are_refused() -> None:
    assert function_names("s", ["ok", "odd.name/x y"], None) == {
        "ok": "ok",
        "odd_name_x_y": "odd.name/x y",
    }
    assert function_names("s", ["status"], "git") == {"git_status": "status"}
    assert list(function_names("s", ["x" * 80], None)) == ["x" * 64]
    with pytest.raises(ConfigError) as caught:
        function_names("s", ["a.b", "a/b"], None)
    assert str(caught.value) == (
        "MCP server 's' lists tools 'a.b' and 'a/b', which both become the function name "
        "'a_b' (letters, digits, _ and -, at most 64); leave one out with exclude=[...]"
    )


def test_a_servers_odd_tools_are_offered_checked_and_called_by_their_own_names(
    db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model = ScriptedChatModel(
        [
            ai(
                "",
                tool_call("odd_name_with_spaces", {"text": "hello"}),
                tool_call("count_right", {}),
                tool_call("count_wrong", {}),
            ),
            ai("", tool_call("wipe", {})),
            "done",
        ]
    )
    caplog.set_level(logging.INFO, logger="agentrt.mcp")
    with runtime(db, odd(), model=model) as rt:
        assert {t.name: (t.effect.value, t.server) for t in rt.tools} == {
            "odd_name_with_spaces": ("read", "odd"),
            "count_right": ("read", "odd"),
            "count_wrong": ("read", "odd"),
            "wipe": ("irreversible", "odd"),
        }
        run = rt.start("odd things", principal=ALICE)
        assert run.status is RunStatus.SUCCEEDED
        seen = {
            e["data"]["tool"]: (e["data"]["kind"], e["data"]["content"])
            for e in rt.events(run.thread_id)
            if e["type"] == "observation"
        }
    assert seen["odd_name_with_spaces"] == ("ok", "hello")
    assert seen["count_right"] == ("ok", '{"n": 3}')
    kind, said = seen["count_wrong"]
    assert kind == "permanent"
    assert "the result of 'count_wrong' does not match its schema" in said
    assert "n: '3' is not of type 'integer' (by the server's outputSchema)" in said
    assert seen["wipe"] == ("permanent", "permanent error: refused: nothing to wipe")
    # The server's stderr is in the log, its secret masked.
    logged = [r.getMessage() for r in caplog.records if r.name == "agentrt.mcp"]
    assert "MCP server 'odd': odd server starting; Authorization: [REDACTED:bearer]" in logged
    assert not any(SECRET in line or "sk0dd5ecret" in line for line in caplog.text.splitlines())


# bad input -------------------------------------------------------------------------------


def test_a_command_that_does_not_exist_is_a_config_error(db: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        runtime(db, MCPServer.stdio("mcp-server-nowhere", name="nowhere"))
    assert str(caught.value).startswith(
        "MCP server 'nowhere': command 'mcp-server-nowhere' was not found (searched PATH); "
        "install the server, or give the full path to its program"
    )


def test_an_input_schema_that_is_not_json_schema_names_the_server_and_tool(db: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        runtime(db, odd("--bad-schema"))
    message = str(caught.value)
    assert message.startswith("MCP server 'odd', tool 'broken': tool 'broken': its argument")
    assert "is not a valid JSON Schema at properties/x/type" in message
    assert message.endswith("leave it out with exclude=['broken']")
    assert children("tests.mcp_odd_server") == []  # the runtime that failed stopped it
    with runtime(db, odd("--bad-schema", exclude=["broken"])) as rt:
        assert "broken" not in rt.tools.names()


def test_two_tools_of_one_name_are_refused_naming_both(db: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        runtime(db, time_server("clock"), time_server("time"))
    assert str(caught.value) == (
        "two tools are named 'get_current_time': one from MCP server 'clock', one from MCP "
        "server 'time'; tool names must be unique: rename one (an MCP server takes prefix= to "
        "set its tools apart), or leave one of them out"
    )

    @tool
    def get_current_time(timezone: str) -> str:
        """The time, as this app tells it."""
        return "noon"

    with pytest.raises(ConfigError, match="one from the tools list, one from MCP server 'time'"):
        runtime(db, get_current_time, time_server())
    with runtime(db, get_current_time, time_server(prefix="tz")) as rt:
        assert sorted(rt.tools.names()) == [
            "get_current_time",
            "tz_convert_time",
            "tz_get_current_time",
        ]


def test_overrides_and_filters_name_tools_the_server_offers(db: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        runtime(db, time_server(overrides={"get_time": {"effect": "write"}}))
    assert str(caught.value).startswith(
        "MCP server 'time': overrides name tools it does not offer: ['get_time']; it offers "
        "['convert_time', 'get_current_time']"
    )
    with pytest.raises(ConfigError, match=r"include names tools it does not list: \['clock'\]"):
        runtime(db, time_server(include=["clock"]))
    with pytest.raises(ConfigError, match="has unknown options \\['colour'\\]"):
        time_server(overrides={"convert_time": {"colour": "red"}})
    with pytest.raises(ConfigError, match="effect 'sometimes' is not one of"):
        runtime(db, time_server(overrides={"convert_time": {"effect": "sometimes"}}))
    with runtime(db, time_server(include=["convert_time"])) as rt:
        assert rt.tools.names() == ["convert_time"]


POLICY = """\
name: clocks
default: allow
rules:
  - id: clock-changes
    match: {servers: [time], effects: [write]}
    decision: require_approval
tools:
  get_current_time:
    scopes: [clock]
    timeout: 5s
  convert_time:
    effect: write
    cost_usd: 0.25
"""


def test_the_policy_file_sets_a_tools_options_over_the_server_and_the_app(db: Path) -> None:
    server = time_server(overrides={"convert_time": {"effect": "irreversible", "scopes": ["x"]}})
    with runtime(db, server, policy=Policy.from_yaml(POLICY)) as rt:
        now = rt.tools.get("get_current_time")
        convert = rt.tools.get("convert_time")
        assert now is not None
        assert convert is not None
        assert (now.effect, now.scopes, now.timeout) == (Effect.READ, ("clock",), 5.0)
        # The policy's effect wins over the app's; the app's scopes stay where it says none.
        assert (convert.effect, convert.scopes, convert.cost_usd) == (Effect.WRITE, ("x",), 0.25)
        decision = rt.policy.evaluate(convert, "convert_time", {}, Principal("p", scopes=["x"]))
        assert (decision.outcome, decision.rule_id) == ("require_approval", "clock-changes")
        # A principal without the scope is not offered the tool.
        offered = [t.name for t in rt.tools.offered_to(Principal("p", scopes=["x"]))]
        assert offered == ["convert_time"]


def test_a_policy_file_naming_a_tool_or_server_the_runtime_lacks_is_refused_with_its_line(
    db: Path, tmp_path: Path
) -> None:
    path = tmp_path / "clocks.yaml"
    path.write_text(POLICY.replace("  convert_time:", "  convert_times:"))
    with pytest.raises(PolicyFileError) as caught:
        runtime(db, time_server(), policy=Policy.from_file(path))
    assert str(caught.value) == (
        f"{path}:11:3: the tools section sets options of tool 'convert_times', which this "
        "runtime does not have; known tools: ['convert_time', 'get_current_time']"
    )
    path.write_text(POLICY.replace("servers: [time]", "servers: [tmie]"))
    with pytest.raises(PolicyFileError) as caught:
        runtime(db, time_server(), policy=Policy.from_file(path))
    assert str(caught.value) == (
        f"{path}:5:23: rule 'clock-changes' names MCP server 'tmie', which this runtime does "
        "not have; its servers: ['time']"
    )
    path.write_text(POLICY.replace("servers: [time]", "servers: [TIME*]"))
    with pytest.raises(PolicyFileError) as caught:
        runtime(db, time_server(), policy=Policy.from_file(path))
    assert str(caught.value) == (
        f"{path}:5:23: rule 'clock-changes' names servers 'TIME*', a pattern that matches no "
        "MCP server this runtime has (matching is case-sensitive); its servers: ['time']"
    )
    assert children("mcp-server-time") == []


def test_a_server_is_described_without_its_secrets() -> None:
    stdio = MCPServer.stdio("srv", ["--flag"], name="a", env={"TOKEN": "s3cret-value"})
    http = MCPServer.http(
        "https://user:pw@mcp.example.com/mcp", name="b", headers={"Authorization": "Bearer xyz"}
    )
    assert repr(stdio) == "MCPServer.stdio('srv --flag', name='a')"
    assert repr(http) == "MCPServer.http('https://mcp.example.com/mcp', name='b')"
    with pytest.raises(ConfigError, match="args must be a list of strings, got the string"):
        MCPServer.stdio("srv", "--flag", name="a")
    with pytest.raises(ConfigError, match="url must be an http:// or https:// URL"):
        MCPServer.http("ftp://example.com", name="b")
    with pytest.raises(ConfigError, match="an MCP server's name must be letters"):
        MCPServer.stdio("srv", name="two words")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("htps://bot:pw-s3cret@mcp.example.com/mcp", "got 'htps://bot:***@mcp.example.com/mcp'"),
        (
            "ftp://mcp.example.com/x?password=pw-s3cret",
            "got 'ftp://mcp.example.com/x?password=***'",
        ),
        ("http://bot:pw-s3cret@[::1/mcp", "got 'http://***'"),
        (b"https://bot:pw-s3cret@mcp.example.com", "got a bytes"),
    ],
    ids=["scheme-typo", "password-in-query", "broken-host", "bytes"],
)
def test_a_refused_server_url_is_shown_with_its_password_hidden(url: object, shown: str) -> None:
    with pytest.raises(ConfigError) as caught:
        MCPServer.http(url, name="crm")  # type: ignore[arg-type]
    assert str(caught.value) == (
        f"MCP server 'crm': url must be an http:// or https:// URL, {shown}"
    )


TOKEN = "notes-pat-7Qm2Zr9Kx4Lw"


def test_a_secret_the_app_gave_a_server_is_cut_out_of_what_the_server_answers(
    db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A server that echoes the token it was started with (in an answer, in an error, on
    # its stderr) has it cut out before the run keeps or logs any of them; a variable
    # whose name says no secret stays.
    caplog.set_level(logging.INFO, logger="agentrt.mcp")
    server = MCPServer.stdio(
        sys.executable,
        ["-m", "tests.mcp_echo_server"],
        name="echo",
        cwd=ROOT,
        env={"NOTES_TOKEN": TOKEN, "NOTES_SITE": "notes.example.com", "PYTHONPATH": str(ROOT)},
    )
    model = ScriptedChatModel(
        [ai("", tool_call("whoami", {})), ai("", tool_call("fail", {})), "done"]
    )
    with AgentRuntime(model, tools=[server], policy=Policy.allow_all(), db=db) as rt:
        run = rt.start("who am i", principal=Principal("u", tenant="acme"))
        seen = [
            e["data"]["content"] for e in rt.events(run.thread_id) if e["type"] == "observation"
        ]
    assert run.status is RunStatus.SUCCEEDED
    assert seen[0] == "logged in with [REDACTED:credential] at notes.example.com"
    assert "token [REDACTED:credential] rejected" in seen[1]
    assert all(TOKEN not in str(call.messages) for call in model.calls)
    assert TOKEN.encode() not in db.read_bytes()
    logged = [r.getMessage() for r in caplog.records if r.name == "agentrt.mcp"]
    assert "MCP server 'echo': echo starting with token [REDACTED:credential]" in logged
    assert TOKEN not in caplog.text


def echo(*flags: str, **options: object) -> MCPServer:
    """The echo server, given NOTES_TOKEN (a secret by its name) and NOTES_SITE (not one)."""
    return MCPServer.stdio(
        sys.executable,
        ["-m", "tests.mcp_echo_server", *flags],
        name="echo",
        cwd=ROOT,
        env={"NOTES_TOKEN": TOKEN, "NOTES_SITE": "notes.example.com", "PYTHONPATH": str(ROOT)},
        **options,  # type: ignore[arg-type]
    )


CUT = "[REDACTED:credential]"


def test_a_secret_the_app_gave_a_server_is_cut_out_of_its_tool_list(
    db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The model is offered a tool's description and schema at every plan, and with
    # capture_content the plan's span stores them: a server that echoes its token there has
    # it cut out (every string: a title, a property's description, an enum; the output
    # schema verify quotes too), and a tool whose name holds it is not offered at all.
    caplog.set_level(logging.INFO, logger="agentrt.mcp")
    model = ScriptedChatModel([ai("", tool_call("search", {"q": "notes"})), "done"])
    with runtime(db, echo("--listing"), model=model, capture_content=True) as rt:
        assert sorted(rt.tools.names()) == ["fail", "search", "whoami"]
        search = rt.tools.get("search")
        assert search is not None
        assert search.schema()["function"] == {
            "name": "search",
            "description": f"Search the notes (debug: authenticated as {CUT}).",
            "parameters": {
                "type": "object",
                "properties": {
                    "q": {"type": "string", "description": f"the query; key {CUT}"},
                    "scope": {"enum": ["mine", CUT]},
                },
                "additionalProperties": False,
            },
        }
        run = rt.start("search the notes", principal=ALICE)
        seen = [
            (e["data"]["kind"], e["data"]["content"])
            for e in rt.events(run.thread_id)
            if e["type"] == "observation"
        ]
    assert run.status is RunStatus.SUCCEEDED
    assert len(seen) == 1
    assert seen[0][0] == "permanent"
    assert f"who: {CUT!r} was expected (by the server's outputSchema)" in seen[0][1]
    assert TOKEN.encode() not in db.read_bytes()
    logged = [r.getMessage() for r in caplog.records if r.name == "agentrt.mcp"]
    assert (
        "MCP server 'echo' lists a tool whose name holds the value of NOTES_TOKEN, which the "
        "app gave it; the tool is left out"
    ) in logged
    assert TOKEN not in caplog.text


def _echo_servers_running() -> list[int]:
    """The pids of this process's children running the echo server."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == os.getpid() and b"tests.mcp_echo_server" in cmdline:
            found.append(int(entry.name))
    return found


def test_a_runtime_that_cannot_open_its_database_stops_the_server_it_started(
    tmp_path: Path,
) -> None:
    # The server starts first (its tools are known only then); a database that cannot be
    # opened (here a directory) must not leave it running behind the error.
    assert _echo_servers_running() == []
    with pytest.raises(ConfigError, match="directory"):
        runtime(tmp_path, echo())
    assert _echo_servers_running() == []


def test_a_servers_huge_description_is_cut_and_a_huge_schema_left_out(
    db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The model is offered every tool's description and schema at every call, and the run
    # stores them: a server that lists a megabyte of either would fill each prompt.
    caplog.set_level(logging.INFO, logger="agentrt.mcp")
    with runtime(db, echo("--huge")) as rt:
        assert sorted(rt.tools.names()) == ["chatty", "fail", "whoami"]
        chatty = rt.tools.get("chatty")
        assert chatty is not None
        offered = chatty.schema()["function"]["description"]
        assert len(offered) == DESCRIPTION_CHARS
        assert offered.startswith("Chat. Very important. ")
    logged = [r.getMessage() for r in caplog.records if r.name == "agentrt.mcp"]
    assert (
        f"MCP server 'echo': the description of tool 'chatty' is {6 + 16 * (1 << 16)} "
        f"characters; the first {DESCRIPTION_CHARS} are offered to the model"
    ) in logged
    (left_out,) = [m for m in logged if "'sprawling'" in m]
    assert left_out.startswith("MCP server 'echo' lists tool 'sprawling' with an inputSchema of ")
    assert left_out.endswith(
        f" bytes, past the {SCHEMA_BYTES} agentrt offers a model; the tool is left out"
    )


def test_a_secret_on_a_servers_stdout_is_cut_out_of_every_log(
    db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A stdout line that is not JSON-RPC comes back as the SDK's parse error quoting it:
    # agentrt logs it (agentrt.mcp), and so does the SDK (mcp.client.stdio, its traceback
    # too; its dispatcher at debug). Every one of them has the token cut out.
    caplog.set_level(logging.DEBUG)
    with runtime(db, echo("--stdout")) as rt:
        assert rt.tools.get("whoami") is not None
    ours = [r.getMessage() for r in caplog.records if r.name == "agentrt.mcp"]
    assert any(m.startswith("MCP server 'echo': ValidationError: ") and CUT in m for m in ours)
    sdk = [r for r in caplog.records if r.name == "mcp.client.stdio"]
    assert sdk
    assert all(CUT in (r.exc_text or "") for r in sdk)
    assert TOKEN not in caplog.text
    # Closed, the server's secrets are no longer looked for: other records pass as they are.
    logging.getLogger("mcp.client.stdio").warning("after: %s", TOKEN)
    assert caplog.records[-1].getMessage() == f"after: {TOKEN}"


def test_a_long_stderr_line_is_cut_and_a_secret_split_by_the_cut_is_not_shown(
    db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A line of 4 MiB is not held, nor logged, whole: it is cut at 8 KiB and
    # says so. The cut falls inside the token, whose start alone the scrub cannot know:
    # it goes too, with as much of the line's end as the longest spelling of a secret.
    caplog.set_level(logging.INFO, logger="agentrt.mcp")
    with runtime(db, echo("--long-stderr")) as rt:
        assert rt.tools.get("whoami") is not None

    def logged() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "agentrt.mcp"]

    wait_for(
        "the line after the long one", lambda: "MCP server 'echo': after the long line" in logged()
    )
    long = [m for m in logged() if m.startswith("MCP server 'echo': xxx")]
    assert len(long) == 1
    assert long[0].endswith(f"x [cut: the line is longer than {CUT_AT:,} bytes]")
    assert len(long[0]) < CUT_AT + 100
    assert TOKEN[: len(TOKEN) // 2] not in caplog.text
    assert "y" * 10 not in caplog.text


def test_a_servers_patterns_cannot_freeze_the_process(tmp_path: Path) -> None:
    # A server lists the pattern ^(a|a)*$ in a tool's inputSchema and outputSchema: Python's
    # backtracking re holds the GIL for hours on forty a's and a "!", stopping every thread
    # of the process. Patterns run on RE2: the model's argument is refused at once
    # (invalid_args), the server's result fails verify at once, a good one passes. In a
    # process of its own, so that a regression fails here rather than freezing the tests.
    script = f"""
import json, sys
from pathlib import Path
from agentrt import AgentRuntime, Policy, Principal
from agentrt.testing import ScriptedChatModel, ai, tool_call
from agentrt.tools.mcp import MCPServer
server = MCPServer.stdio(sys.executable, ["-m", "tests.mcp_odd_server", "--redos"], name="odd")
model = ScriptedChatModel([
    ai("", tool_call("repeat", {{"s": {EVIL_TEXT!r}}})),
    ai("", tool_call("repeat", {{}})),
    ai("", tool_call("repeat", {{"s": "aaaa"}})),
    "done",
])
db = Path({str(tmp_path / "a.db")!r})
with AgentRuntime(model, tools=[server], policy=Policy.allow_all(), db=db) as rt:
    run = rt.start("repeat", principal=Principal("p", tenant="acme"))
    seen = [e["data"] for e in rt.events(run.thread_id) if e["type"] == "observation"]
print(json.dumps([run.status.value, [(o["kind"], o["content"]) for o in seen]]))
"""
    try:
        done = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("a run with a server's pattern ^(a|a)*$ did not end within 60 s")
    assert done.returncode == 0, done.stderr[-2000:]
    status, seen = json.loads(done.stdout.splitlines()[-1])
    assert status == "succeeded"
    assert [kind for kind, _ in seen] == ["invalid_args", "permanent", "ok"]
    assert f"s: Input does not match {EVIL!r}" in seen[0][1]
    assert f"s: {EVIL_TEXT!r} does not match {EVIL!r} (by the server's outputSchema)" in seen[1][1]
    assert seen[2][1] == '{"s": "aaaa"}'


def test_a_call_is_timed_out_by_default_and_the_app_sets_how_long(db: Path) -> None:
    # A server that never answers would hold the run (and its lease) until a deadline, if
    # there is one: each call has call_timeout (60 s unless the app says), which an
    # override of a tool's timeout (or the policy file's) sets apart.
    with runtime(db, echo("--hang", overrides={"fail": {"timeout": 5}})) as rt:
        timeouts = {t.name: t.timeout for t in rt.tools}
    assert timeouts == {"whoami": 60.0, "fail": 5.0, "hang": 60.0}
    with runtime(db, echo("--hang", call_timeout=None)) as rt:
        assert {t.timeout for t in rt.tools} == {None}
    for bad in (0, -1.0, float("nan"), float("inf"), "60"):
        with pytest.raises(ConfigError, match="call_timeout must be seconds > 0"):
            echo(call_timeout=bad)
    model = ScriptedChatModel([ai("", tool_call("hang", {})), "done"])
    with runtime(db, echo("--hang", call_timeout=0.5), model=model) as rt:
        run = rt.start("hang", principal=ALICE)
    # "hang" says nothing of its effect (a write): timed out, it may have acted, so the
    # ledger asks a person, as for any tool that timed out in doubt.
    assert run.status is RunStatus.AWAITING_APPROVAL
    request = run.pending_approval
    assert request is not None
    assert (request.kind, request.tool) == ("reconcile", "hang")
    assert "TimeoutError: tool 'hang' did not finish within its timeout of 0.5s" in request.reason


def test_what_counts_as_a_secret_given_to_a_server_is_said_by_its_name() -> None:
    from agentrt.tools.mcp.transports import given_secrets

    headers = {"Authorization": "Bearer abc", "X-Api-Key": "k-123", "Accept": "text/plain"}
    env = {"GITHUB_PERSONAL_ACCESS_TOKEN": "t", "LOG_LEVEL": "production", "PATH": "/bin"}
    assert given_secrets(headers.items()) == {"Authorization": "Bearer abc", "X-Api-Key": "k-123"}
    assert given_secrets(env.items()) == {"GITHUB_PERSONAL_ACCESS_TOKEN": "t"}
