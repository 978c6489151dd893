"""Memory refuses bad input with an error naming the value and what to do (a tool's call
fails with it, the CLI prints it), lists a tenant's items under a namespace however many
newer items lie elsewhere, and gives tools no door to the store behind it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agentrt import AgentRuntime, ConfigError, Policy, Principal, RunStatus, ToolContext, tool
from agentrt.cli import app as cli_app
from agentrt.testing import ScriptedChatModel, ai, tool_call
from agentrt.tools.errors import ToolError
from agentrt.tools.memory import Memory, tenant_items
from agentrt.tools.memory_tools import memory_tools

ALICE = Principal("alice", tenant="acme")


def runtime(db: str, script: list[Any], **kw: Any) -> AgentRuntime:
    return AgentRuntime(
        ScriptedChatModel(script),
        tools=[*memory_tools(), *kw.pop("tools", [])],
        policy=Policy.allow_all(),
        db=db,
        tracing=None,
        **kw,
    )


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "agentrt.db")
    url: str = request.getfixturevalue("postgres_url")
    return url


def test_everyone_under_a_namespace_is_not_cut_short_by_newer_items_elsewhere(
    database: str,
) -> None:
    with runtime(database, []) as rt:
        rt.memory("acme").put("customers", "42", {"prefers": "email"})
        for n in range(5):
            rt.memory("acme", principal="alice").put("notes", str(n), {"n": n})
        rt.memory("acme2").put("customers", "1", {"other": "tenant"})
        assert rt.deps.memories is not None
        found = tenant_items(rt.deps.memories, "acme", "customers", everyone=True, limit=3)
        assert [(i.namespace, i.key, i.principal) for i in found] == [(("customers",), "42", None)]
        everything = tenant_items(rt.deps.memories, "acme", everyone=True, limit=3)
        assert len(everything) == 3
        assert {i.principal for i in everything} <= {None, "alice"}
        notes = tenant_items(rt.deps.memories, "acme", "notes", everyone=True, limit=10)
        assert sorted(i.key for i in notes) == ["0", "1", "2", "3", "4"]


def test_cli_lists_a_namespace_of_everyone_past_newer_items(tmp_path: Path) -> None:
    db = str(tmp_path / "agentrt.db")
    with runtime(db, []) as rt:
        rt.memory("acme").put("customers", "42", {"prefers": "email"})
        for n in range(5):
            rt.memory("acme", principal="alice").put("notes", str(n), {"n": n})
    listed = cli("list", "customers", "--tenant", "acme", "--all", "--limit", "3", "--db", db)
    assert listed.exit_code == 0, listed.output
    assert "email" in listed.output


def cli(*args: str) -> Any:
    return CliRunner().invoke(cli_app, ["memory", *args])


@pytest.mark.parametrize("command", ["list", "show", "delete"])
def test_cli_names_a_bad_namespace(tmp_path: Path, command: str) -> None:
    db = str(tmp_path / "agentrt.db")
    runtime(db, []).close()
    args = ["customers//eu"] if command == "list" else ["customers//eu", "42"]
    done = cli(command, *args, "--tenant", "acme", "--db", db)
    assert done.exit_code == 2, done.output
    assert (
        "memory namespace 'customers//eu' has the label ''; every label must be non-empty "
        "text without NUL, e.g. 'notes/customers' or ('notes', 'customers')"
    ) in " ".join(done.output.split())


NO_TENANT = "or --no-tenant for the memory of runs without a tenant"


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (
            ["list", "--tenant", ""],
            f"--tenant '' names no tenant; give its name, e.g. --tenant acme, {NO_TENANT}",
        ),
        (
            ["show", "notes", "k", "--tenant", ""],
            f"--tenant '' names no tenant; give its name, e.g. --tenant acme, {NO_TENANT}",
        ),
        (["list"], f"give the tenant whose memory this is: --tenant NAME, {NO_TENANT}"),
        (
            ["delete", "notes", "k"],
            f"give the tenant whose memory this is: --tenant NAME, {NO_TENANT}",
        ),
        (
            ["list", "--tenant", "acme", "--no-tenant"],
            "--tenant 'acme' and --no-tenant name two memories; give one",
        ),
        *(
            (
                [*command, "--tenant", "acme", "--principal", ""],
                "--principal '' names no principal; give its id, e.g. --principal alice, or "
                "leave --principal out for the tenant's shared items",
            )
            for command in (["list"], ["show", "notes", "k"], ["delete", "notes", "k"])
        ),
    ],
)
def test_cli_refuses_an_empty_or_missing_tenant_or_principal(
    tmp_path: Path, args: list[str], said: str
) -> None:
    db = str(tmp_path / "agentrt.db")
    with runtime(db, []) as rt:
        rt.memory("acme").put("notes", "k", {"shared": True})
    done = cli(*args, "--db", db)
    assert done.exception is None or isinstance(done.exception, SystemExit), done.exception
    assert (done.exit_code, " ".join(done.output.split())) == (2, f"error: {said}")
    with runtime(db, []) as rt:  # a delete as principal '' did not take the shared item
        assert rt.memory("acme").get("notes", "k") is not None


def test_cli_names_an_empty_key(tmp_path: Path) -> None:
    db = str(tmp_path / "agentrt.db")
    runtime(db, []).close()
    done = cli("show", "customers", "", "--tenant", "acme", "--db", db)
    assert done.exit_code == 2, done.output
    assert "a memory key must be non-empty text, got ''; name the item, e.g. 'customer-42'" in (
        " ".join(done.output.split())
    )


@pytest.fixture
def memory(tmp_path: Path) -> Any:
    with runtime(str(tmp_path / "agentrt.db"), []) as rt:
        yield rt.memory("acme")


@pytest.mark.parametrize(
    ("namespace", "label"),
    [("notes//x", "''"), (("notes", ""), "''"), (("notes", 7), "7"), ("a\x00b", "'a\\x00b'")],
)
def test_a_bad_namespace_label_is_named(memory: Memory, namespace: Any, label: str) -> None:
    for call in (
        lambda: memory.get(namespace, "k"),
        lambda: memory.search(namespace),
        lambda: memory.put(namespace, "k", {"a": 1}),
        lambda: memory.delete(namespace, "k"),
    ):
        with pytest.raises(ToolError) as info:
            call()
        assert str(info.value) == (
            f"memory namespace {namespace!r} has the label {label}; every label must be "
            "non-empty text without NUL, e.g. 'notes/customers' or ('notes', 'customers')"
        )


def test_a_namespace_that_is_no_path_is_named(memory: Memory) -> None:
    with pytest.raises(ToolError) as info:
        memory.get(42, "k")  # type: ignore[arg-type]
    assert str(info.value) == (
        'memory namespace 42 is a int; give labels as text with "/" between them, e.g. '
        "'notes/customers', or as ('notes', 'customers')"
    )


@pytest.mark.parametrize("key", ["", None, 42])
def test_a_key_must_be_non_empty_text(memory: Memory, key: Any) -> None:
    for call in (
        lambda: memory.get("notes", key),
        lambda: memory.put("notes", key, {"a": 1}),
        lambda: memory.delete("notes", key),
    ):
        with pytest.raises(ToolError) as info:
            call()
        assert str(info.value) == (
            f"a memory key must be non-empty text, got {key!r}; name the item, e.g. 'customer-42'"
        )


def test_a_value_must_be_a_json_object(memory: Memory) -> None:
    with pytest.raises(ToolError) as info:
        memory.put("notes", "k", ["email"])  # type: ignore[arg-type]
    assert str(info.value) == (
        "the memory value for notes:'k' must be a JSON object (a dict), got a list: "
        "['email']; wrap it, e.g. {'value': ...}"
    )
    with pytest.raises(ToolError) as info:
        memory.put("notes", "k", {"seen": {1, 2}})
    assert str(info.value) == (
        "the memory value for notes:'k' must be JSON data (text, numbers, true/false, null, "
        "lists and objects): Object of type set is not JSON serializable"
    )
    with pytest.raises(ToolError) as info:
        memory.put("notes", "k", {"score": float("nan")})
    assert "Out of range float values are not JSON compliant" in str(info.value)
    assert memory.search() == []


REPLACE_IT = "; remove it or replace it (e.g. with U+FFFD) before putting the value"


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        (
            "k",
            {"text": "line one\x00line two"},
            "the memory value for notes:'k' cannot be kept: text holds a NUL character "
            "(U+0000), which is not text" + REPLACE_IT,
        ),
        (
            "k",
            {"files": [{"name": "caf\udce9.txt"}]},
            "the memory value for notes:'k' cannot be kept: files[0].name holds '\\udce9', "
            "which is not text (a lone surrogate)" + REPLACE_IT,
        ),
        (
            "k",
            {"a\x00b": 1},
            "the memory value for notes:'k' cannot be kept: a key of the value holds a NUL "
            "character (U+0000), which is not text" + REPLACE_IT,
        ),
        (
            "a\x00b",
            {"v": 1},
            "a memory key must be text, got 'a\\x00b': the key holds a NUL character (U+0000), "
            "which is not text; name the item by text without it, e.g. 'customer-42'",
        ),
    ],
    ids=["nul", "surrogate", "nul-in-a-field-name", "nul-in-the-key"],
)
def test_a_memory_value_or_key_that_is_not_text_is_refused_by_name_on_every_backend(
    database: str, key: str, value: dict[str, Any], why: str
) -> None:
    # PostgreSQL's jsonb holds neither a NUL nor a lone surrogate: refused on SQLite too, as
    # the tool's own permanent failure, never a raw database error tried again.
    with runtime(database, []) as rt:
        memory = rt.memory("acme")
        with pytest.raises(ToolError) as info:
            memory.put("notes", key, value)
        assert (info.value.kind, str(info.value)) == ("permanent", why)
        assert memory.search() == []


def test_a_models_bad_namespace_fails_its_call_with_the_reason(tmp_path: Path) -> None:
    script = [
        ai("", tool_call("memory_put", {"namespace": "a//b", "key": "k", "value": {"x": 1}})),
        "Done.",
    ]
    with runtime(str(tmp_path / "agentrt.db"), script) as rt:
        run = rt.start("Remember.", principal=ALICE)
        assert run.status is RunStatus.SUCCEEDED
        (seen,) = [e["data"] for e in rt.events(run.thread_id) if e["type"] == "observation"]
    assert seen["kind"] == "permanent"
    assert "memory namespace 'a//b' has the label ''" in seen["content"]


@pytest.mark.parametrize("prefix", ["a-b", "", "notes tools", "1st"])
def test_memory_tools_prefix_must_be_an_identifier(prefix: str) -> None:
    with pytest.raises(ConfigError) as info:
        memory_tools(prefix=prefix)
    assert str(info.value) == (
        f"memory_tools prefix must be a Python identifier (letters, digits and _), got "
        f"{prefix!r}; the tools are named <prefix>_search and so on, e.g. prefix='notes'"
    )


def test_a_tool_gets_no_door_to_the_store_behind_its_memory(tmp_path: Path) -> None:
    seen: list[Any] = []

    @tool
    def peek(ctx: ToolContext) -> str:
        """Look at what the memory view offers."""
        seen.append(sorted(n for n in dir(ctx.memory) if not n.startswith("_")))
        return json.dumps(seen[-1])

    with runtime(
        str(tmp_path / "agentrt.db"), [ai("", tool_call("peek", {})), "Ok."], tools=[peek]
    ) as rt:
        rt.start("Peek.", principal=ALICE)
        assert not hasattr(rt.memory("acme"), "backend")
    assert seen == [
        [
            "adelete",
            "aget",
            "aput",
            "asearch",
            "delete",
            "get",
            "is_personal",
            "personal",
            "principal",
            "put",
            "scrubbing",
            "search",
            "tenant",
            "writable",
        ]
    ]


@pytest.mark.parametrize("limit", [0, -1])
def test_a_models_search_limit_below_one_is_refused_never_unlimited(
    tmp_path: Path, limit: int
) -> None:
    script = [
        ai("", tool_call("memory_search", {"namespace": "n", "limit": limit})),
        ai("", tool_call("memory_search", {"namespace": "n", "limit": 1000})),
        "Done.",
    ]
    with runtime(str(tmp_path / "agentrt.db"), script) as rt:
        memory = rt.memory("acme")
        for i in range(120):
            memory.put("n", f"k{i}", {"i": i})
        run = rt.start("Search.", principal=ALICE)
        refused, capped = [
            e["data"] for e in rt.events(run.thread_id) if e["type"] == "observation"
        ]
        offered = rt.tools.get("memory_search")
    assert (refused["kind"], refused["content"]) == (
        "permanent",
        f"permanent error: limit must be at least 1, got {limit}; ask for 1 to 100 items",
    )
    assert capped["kind"] == "ok"
    assert len(json.loads(capped["content"])) == 100
    assert offered is not None  # the model is told the range
    described = offered.args_model.model_json_schema()["properties"]["limit"]["description"]
    assert described == "At most this many items, 1 to 100 (more is cut to 100)."


@pytest.mark.parametrize(
    ("tenant", "principal", "message"),
    [
        (
            "acme",
            "",
            "memory principal '' is not usable: give non-empty text without NUL, "
            "or None for the tenant's shared items",
        ),
        (
            "",
            None,
            "memory tenant '' is not usable: give non-empty text without NUL, "
            "or None for the items of runs without a tenant",
        ),
        ("", "alice", "memory tenant '' is not usable"),
        ("acme", "a\x00b", "memory principal 'a\\x00b' is not usable"),
    ],
)
def test_an_empty_tenant_or_principal_is_refused_never_the_shared_view(
    tmp_path: Path, tenant: str, principal: str | None, message: str
) -> None:
    with runtime(str(tmp_path / "agentrt.db"), []) as rt:
        rt.memory("acme").put("notes", "shared", {"x": 1})
        with pytest.raises(ConfigError) as info:
            rt.memory(tenant, principal=principal)
        assert str(info.value).startswith(message)
        with pytest.raises(ConfigError) as listed:
            tenant_items(rt.deps.memories, tenant, principal=principal)
        assert str(listed.value) == str(info.value)
        # None still means what it says: the shared items, or a tenantless run's.
        assert rt.memory("acme", principal=None).get("notes", "shared") is not None
        assert rt.memory(None).search() == []
