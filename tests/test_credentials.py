"""Scoped credentials: declared by a tool, resolved at each call for the run's principal by
the runtime's provider, given only to the call, granted by the policy, and never kept."""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from agentrt import AgentRuntime, ConfigError, Policy, Principal, RunStatus, ToolContext, tool
from agentrt.logs import get_logger
from agentrt.testing import ScriptedChatModel, ai, tool_call
from agentrt.tools.credentials import KEPT_AT_MOST, CredentialError, Credentials, Secrets
from tests.conftest import FakeClock

ALICE = Principal("alice", roles=["support"], tenant="acme")
EVE = Principal("eve", roles=["intern"], tenant="acme")
BOB = Principal("bob", roles=["support"], tenant="globex")

ACME_KEY = "crm-acme-Quill7Harbor"
GLOBEX_KEY = "crm-globex-Fable2Otter"

POLICY = """
version: 1
name: crm
default: allow
credentials:
  crm:
    roles: [support]
    reason: Only support staff use the CRM on a customer's behalf.
"""

calls: list[str] = []


@tool(credentials=["crm"])
def crm_lookup(customer: str, ctx: ToolContext) -> dict[str, Any]:
    """Look a customer up in the CRM."""
    key = ctx.credentials["crm"]
    calls.append(key)
    # A careless tool: it logs its key and echoes it back in what it returns.
    get_logger("agentrt.tests.crm").warning("calling the CRM with %s", key)
    return {"customer": customer, "tier": "gold", "debug": f"authorised with {key}"}


@pytest.fixture(autouse=True)
def _no_calls() -> None:
    calls.clear()


def vault(name: str, principal: Principal) -> str | None:
    return {"acme": ACME_KEY, "globex": GLOBEX_KEY}.get(principal.tenant or "")


def runtime(db: Path, provider: Credentials | None, *, turns: int = 1, **kw: Any) -> AgentRuntime:
    script: list[Any] = [
        ai("", tool_call("crm_lookup", {"customer": f"c{i}"})) for i in range(turns)
    ]
    return AgentRuntime(
        ScriptedChatModel([*script, "Done."]),
        tools=[crm_lookup],
        policy=kw.pop("policy", Policy.from_yaml(POLICY)),
        db=db,
        credentials=provider,
        **kw,
    )


def observations(rt: AgentRuntime, thread_id: str) -> list[dict[str, Any]]:
    return [e["data"] for e in rt.events(thread_id) if e["type"] == "observation"]


def test_the_tool_gets_its_tenants_credential_and_nothing_keeps_it(db: Path) -> None:
    with runtime(db, Credentials.from_callable(vault), capture_content=True) as rt:
        acme = rt.start("Look c0 up.", principal=ALICE)
        globex = rt.start("Look c0 up.", principal=BOB)
        assert calls == [ACME_KEY, GLOBEX_KEY]
        seen = observations(rt, acme.thread_id)[0]
        assert seen["kind"] == "ok"
        assert json.loads(seen["content"])["debug"] == "authorised with [REDACTED:credential]"
        state = str(rt.graph.get_state({"configurable": {"thread_id": acme.thread_id}}).values)
        assert ACME_KEY not in state
        assert "[REDACTED:credential]" in state
        for run in (acme, globex):
            assert rt.get(run.thread_id).status is RunStatus.SUCCEEDED
    with sqlite3.connect(db) as conn:  # ledger, spans, runs, recordings: every table
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            text = "\n".join(str(row) for row in conn.execute(f'SELECT * FROM "{table}"'))
            assert ACME_KEY not in text, table
            assert GLOBEX_KEY not in text, table


def test_a_provider_that_fails_names_the_credential_and_nothing_runs(db: Path) -> None:
    def sealed(name: str, principal: Principal) -> str:
        raise RuntimeError("the vault is sealed")

    with runtime(db, Credentials.from_callable(sealed)) as rt:
        run = rt.start("Look c0 up.", principal=ALICE)
        assert calls == []
        seen = observations(rt, run.thread_id)[0]
        assert seen["kind"] == "permanent"
        assert seen["content"] == (
            "permanent error: credential 'crm' for tool 'crm_lookup' could not be resolved "
            "for principal 'alice' of tenant 'acme': RuntimeError: the vault is sealed; the "
            "tool was not called"
        )
        assert rt.get(run.thread_id).usage["tool_calls"] == 0  # nothing spent
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM effects").fetchone() == (0,)


def test_a_provider_without_the_value_says_so(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTRT_CREDENTIAL_CRM", raising=False)
    monkeypatch.delenv("AGENTRT_CREDENTIAL_ACME__CRM", raising=False)
    with runtime(db, Credentials.from_env()) as rt:
        run = rt.start("Look c0 up.", principal=ALICE)
        content = observations(rt, run.thread_id)[0]["content"]
        assert "credential 'crm' for tool 'crm_lookup' could not be resolved" in content
        assert (
            "LookupError: no value for it in the environment: set AGENTRT_CREDENTIAL_ACME__CRM "
            "or AGENTRT_CREDENTIAL_CRM" in content
        )
        assert calls == []


def test_a_principal_without_the_grant_is_denied_before_the_call(db: Path) -> None:
    asked: list[str] = []

    def counting(name: str, principal: Principal) -> str:
        asked.append(principal.id)
        return ACME_KEY

    with runtime(db, Credentials.from_callable(counting)) as rt:
        run = rt.start("Look c0 up.", principal=EVE)
        seen = observations(rt, run.thread_id)[0]
        assert seen["kind"] == "denied"
        assert seen["content"] == (
            "policy denied 'crm_lookup': principal 'eve' may not use credential 'crm', which "
            "tool 'crm_lookup' needs: Only support staff use the CRM on a customer's behalf."
        )
        assert (asked, calls) == ([], [])  # not even resolved

        explained = rt.policy.explain(rt.tools.get("crm_lookup"), "crm_lookup", {}, EVE)
        assert explained.decision.outcome == "deny"


def test_a_credential_the_policy_does_not_grant_is_granted_to_no_one(db: Path) -> None:
    policy = Policy.from_yaml("version: 1\nname: bare\ndefault: allow\n")
    with runtime(db, Credentials.from_callable(vault), policy=policy) as rt:
        run = rt.start("Look c0 up.", principal=ALICE)
        content = observations(rt, run.thread_id)[0]["content"]
        assert "needs credential 'crm', which policy 'bare' grants to no one" in content
        assert "grant it under `credentials: {crm: {roles: [...]}}`" in content
        assert calls == []


def test_rotation_needs_no_restart(db: Path, tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text("crm: crm-shared-Old1Lantern\ntenants:\n  acme: {crm: crm-acme-Old2Comet}\n")

    def rotate_then_call(messages: list[Any]) -> Any:
        secrets.write_text("tenants:\n  acme: {crm: crm-acme-New3Meadow}\n")  # rotated
        return ai("", tool_call("crm_lookup", {"customer": "c1"}))

    script = [ai("", tool_call("crm_lookup", {"customer": "c0"})), rotate_then_call, "Done."]
    with AgentRuntime(
        ScriptedChatModel(script),
        tools=[crm_lookup],
        policy=Policy.from_yaml(POLICY),
        db=db,
        credentials=Credentials.from_file(secrets),
    ) as rt:
        run = rt.start("Look c0 and c1 up.", principal=ALICE)  # one run, one process
        assert run.status is RunStatus.SUCCEEDED
        assert calls == ["crm-acme-Old2Comet", "crm-acme-New3Meadow"]
        bob = rt.start("Look c0 and c1 up.", principal=BOB)  # no value for globex's tenant
        assert "crm-shared" not in str(observations(rt, bob.thread_id))
    assert calls[2:] == []  # globex has neither a key of its own nor the old shared one


def test_a_ttl_keeps_a_value_for_that_long_only(db: Path, clock: FakeClock) -> None:
    fetched: list[str] = []

    def rotating(name: str, principal: Principal) -> str:
        fetched.append(name)
        return f"crm-acme-Gen{len(fetched)}Willow"

    provider = Credentials.from_callable(rotating, ttl=60, clock=clock)
    with runtime(db, provider, turns=2) as rt:
        rt.start("Look c0 and c1 up.", principal=ALICE)  # two calls within the ttl
        clock.advance(61)
        rt.start("Look c0 and c1 up.", principal=ALICE)  # past it: fetched again
    assert calls == ["crm-acme-Gen1Willow"] * 2 + ["crm-acme-Gen2Willow"] * 2
    assert len(fetched) == 2


def test_environment_variables_per_tenant_first(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"AGENTRT_CREDENTIAL_CRM": "crm-any-Tide5", "AGENTRT_CREDENTIAL_ACME__CRM": "crm-acme"}
    provider = Credentials.from_env(environ=env)
    assert provider.resolve("crm", ALICE) == "crm-acme"
    assert provider.resolve("crm", BOB) == "crm-any-Tide5"


def test_a_runtime_refuses_tools_needing_credentials_without_a_provider(db: Path) -> None:
    with pytest.raises(ConfigError, match=r"tools \{'crm_lookup': \['crm'\]\} need credentials"):
        runtime(db, None)
    with pytest.raises(ConfigError, match="credentials must be an agentrt Credentials"):
        runtime(db, vault)  # type: ignore[arg-type]


def test_secrets_show_no_value_and_name_what_is_missing() -> None:
    secrets = Secrets({"crm": ACME_KEY}, tool="crm_lookup")
    assert ACME_KEY not in repr(secrets)
    assert ACME_KEY not in repr(
        ToolContext(
            thread_id="t", step_id="1.0", idempotency_key="k", principal=ALICE, credentials=secrets
        )
    )
    with pytest.raises(KeyError, match=r"tool 'crm_lookup' has no credential 'erp'; declare it"):
        secrets["erp"]


def test_the_redactor_masks_a_resolved_value_in_any_log_line(
    db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="agentrt.tests.crm"),
        runtime(db, Credentials.from_callable(vault)) as rt,
    ):
        rt.start("Look c0 up.", principal=ALICE)
        assert rt.redactor.redact_text(f"leaked {ACME_KEY}!") == "leaked [REDACTED:credential]!"
    logged = [r.getMessage() for r in caplog.records if r.name == "agentrt.tests.crm"]
    assert logged == ["calling the CRM with [REDACTED:credential]"]


def test_a_rule_matches_tools_by_the_credentials_they_need(db: Path) -> None:
    policy = Policy.from_yaml(
        POLICY
        + """rules:
  - id: crm-needs-a-person
    match: {credentials: ["crm*"]}
    decision: require_approval
    reason: Calls made with the CRM key are checked first.
"""
    )
    with runtime(db, Credentials.from_callable(vault), policy=policy) as rt:
        run = rt.start("Look c0 up.", principal=ALICE)
        assert run.pending_approval is not None
        assert run.pending_approval.rule_id == "crm-needs-a-person"
        assert calls == []


def test_the_tool_node_in_an_apps_own_graph_resolves_and_refuses_alike(
    db: Path, tmp_path: Path
) -> None:
    from langchain_core.messages import HumanMessage, ToolMessage
    from langgraph.checkpoint.memory import InMemorySaver

    from agentrt.examples.own_graph import build_graph

    def sealed_for_globex(name: str, principal: Principal) -> str:
        if principal.tenant == "globex":
            raise RuntimeError("the vault is sealed")
        return ACME_KEY

    model = ScriptedChatModel([ai("", tool_call("crm_lookup", {"customer": "c0"})), "Done."])
    with runtime(db, Credentials.from_callable(sealed_for_globex)) as rt:
        graph = build_graph(rt, model, InMemorySaver())
        said: dict[str, ToolMessage] = {}
        for who in (ALICE, BOB):
            config = rt.thread(principal=who, thread_id=f"crm-{who.id}")
            graph.invoke({"messages": [HumanMessage("Look c0 up.")]}, config)
            values = graph.get_state(config).values["messages"]
            said[who.id] = next(m for m in values if isinstance(m, ToolMessage))
    assert calls == [ACME_KEY]
    assert said["alice"].status == "success"
    assert ACME_KEY not in said["alice"].content
    assert "[REDACTED:credential]" in said["alice"].content
    assert said["bob"].status == "error"
    assert said["bob"].content == (
        "permanent error: credential 'crm' for tool 'crm_lookup' could not be resolved for "
        "principal 'bob' of tenant 'globex': RuntimeError: the vault is sealed; the tool was "
        "not called"
    )


def test_a_recorded_effect_is_not_resolved_again(db: Path) -> None:
    from dataclasses import replace

    from agentrt.nodes.common import with_credentials

    @tool(effect="write", idempotent=True, credentials=["crm"])
    def crm_update(customer: str, ctx: ToolContext) -> str:
        """Update a customer in the CRM."""
        calls.append(ctx.credentials["crm"])
        return "updated"

    def sealed(name: str, principal: Principal) -> str:
        raise RuntimeError("the vault is sealed")

    script = [ai("", tool_call("crm_update", {"customer": "c0"})), "Done."]
    with AgentRuntime(
        ScriptedChatModel(script),
        tools=[crm_update],
        policy=Policy.from_yaml(POLICY),
        db=db,
        credentials=Credentials.from_callable(vault),
    ) as rt:
        run = rt.start("Update c0.", principal=ALICE)
        with sqlite3.connect(db) as conn:
            ((key,),) = conn.execute("SELECT key FROM effects WHERE status = 'done'").fetchall()
        # The step runs again (a crash after the ledger's record, before the checkpoint):
        # the ledger answers, so a provider that fails now changes nothing.
        again = ToolContext(
            thread_id=run.thread_id, step_id="1.0", idempotency_key=key, principal=ALICE
        )
        deps = replace(rt.deps, credentials=Credentials.from_callable(sealed))
        spec = rt.tools.get("crm_update")
        assert spec is not None
        assert with_credentials(again, spec, deps) is again
        fresh = replace(again, idempotency_key="not-recorded")
        with pytest.raises(CredentialError, match="the vault is sealed"):
            with_credentials(fresh, spec, deps)
    assert calls == [ACME_KEY]


@tool(credentials=["crm"])
def crm_export(segment: str, ctx: ToolContext) -> Any:
    """Export a CRM segment as a file."""
    key = ctx.credentials["crm"]
    # A careless tool again: the key in the file it writes and in the file's preview.
    return ctx.artifacts.put(
        "export.csv", f"customer,tier\nc0,gold\n# pulled with {key}\n", preview=f"via {key}"
    )


def test_what_a_tool_puts_as_an_artifact_has_its_credentials_cut_out(db: Path) -> None:
    script = [ai("", tool_call("crm_export", {"segment": "gold"})), "Done."]
    with AgentRuntime(
        ScriptedChatModel(script),
        tools=[crm_export],
        policy=Policy.from_yaml(POLICY),
        db=db,
        credentials=Credentials.from_callable(vault),
    ) as rt:
        run = rt.start("Export the gold segment.", principal=ALICE)
        assert run.status is RunStatus.SUCCEEDED
    # Another process's view: a runtime that never resolved the credential, so its
    # Redactor does not know the value; what was stored must not hold it.
    with AgentRuntime(ScriptedChatModel([]), tools=[], db=db) as other:
        (ref,) = other.artifacts(run.thread_id)
        content = other.artifact(run.thread_id, "export.csv").decode()
    assert ref.preview == "via [REDACTED:credential]"
    assert content == "customer,tier\nc0,gold\n# pulled with [REDACTED:credential]\n"
    with sqlite3.connect(db) as conn:
        for table in ("artifacts", "artifact_blobs"):
            text = "\n".join(str(row) for row in conn.execute(f'SELECT * FROM "{table}"'))
            assert ACME_KEY not in text, table


ROLES_VAULT_KEYS = {"admin": "crm-acme-Write4Granite", "viewer": "crm-acme-Read5Pebble"}


@pytest.mark.parametrize(
    ("first", "then"),
    [
        (  # only by role
            Principal("alice", roles=["support", "admin"], tenant="acme"),
            Principal("alice", roles=["support"], tenant="acme"),
        ),
        (  # only by scope
            Principal("alice", roles=["support"], tenant="acme", scopes=["crm:write"]),
            Principal("alice", roles=["support"], tenant="acme"),
        ),
        (  # only by tenant
            Principal("alice", roles=["support"], tenant="acme"),
            Principal("alice", roles=["support"], tenant="globex"),
        ),
        (  # only by id
            Principal("alice", roles=["support"], tenant="acme"),
            Principal("eve", roles=["support"], tenant="acme"),
        ),
    ],
    ids=["role", "scope", "tenant", "id"],
)
def test_a_ttl_never_hands_one_principals_value_to_another(
    clock: FakeClock, first: Principal, then: Principal
) -> None:
    fetched: list[Principal] = []

    def by_all_it_is_handed(name: str, principal: Principal) -> str:
        # A vault may answer by any of it: a write token for admins, say.
        fetched.append(principal)
        return "-".join(
            [name, principal.tenant or "", principal.id, *principal.roles, *principal.scopes]
        )

    provider = Credentials.from_callable(by_all_it_is_handed, ttl=60, clock=clock)
    assert provider.resolve("crm", first) == by_all_it_is_handed("crm", first)
    assert provider.resolve("crm", then) == by_all_it_is_handed("crm", then)
    assert fetched == [first, first, then, then]  # each fetched, once by the provider
    # Within the ttl each gets its own value again, kept.
    assert provider.resolve("crm", then) == by_all_it_is_handed("crm", then)
    assert provider.resolve("crm", first) == by_all_it_is_handed("crm", first)
    assert fetched == [first, first, then, then, then, first]


def test_a_ttl_lets_go_of_expired_values_and_keeps_a_bounded_number(clock: FakeClock) -> None:
    # A server sees many principals over its life: their values must not stay for good.
    fetched: list[str] = []

    def vault(name: str, principal: Principal) -> str:
        fetched.append(principal.id)
        return f"{name}-{principal.id}"

    provider = Credentials.from_callable(vault, ttl=60, clock=clock)
    for i in range(3 * KEPT_AT_MOST):
        provider.resolve("crm", Principal(f"user{i}", tenant="acme"))
        clock.advance(0.01)  # 3 * 4096 callers within one ttl
    assert len(provider._kept) == KEPT_AT_MOST  # the nearest expiry went first
    # The newest is still kept; the oldest was let go and is fetched anew.
    newest = Principal(f"user{3 * KEPT_AT_MOST - 1}", tenant="acme")
    before = len(fetched)
    assert provider.resolve("crm", newest) == f"crm-{newest.id}"
    assert len(fetched) == before
    assert provider.resolve("crm", Principal("user0", tenant="acme")) == "crm-user0"
    assert len(fetched) == before + 1
    clock.advance(61)  # all expired: the next value kept lets every one of them go
    provider.resolve("crm", Principal("late", tenant="acme"))
    assert list(provider._kept) == [("crm", Principal("late", tenant="acme"))]


def test_a_ttl_in_a_run_gives_the_less_privileged_principal_its_own_value(
    db: Path, clock: FakeClock
) -> None:
    def by_role(name: str, principal: Principal) -> str:
        return ROLES_VAULT_KEYS["admin" if "admin" in principal.roles else "viewer"]

    provider = Credentials.from_callable(by_role, ttl=60, clock=clock)
    with runtime(db, provider) as rt:
        rt.start(
            "Look c0 up.", principal=Principal("bob", roles=["support", "admin"], tenant="acme")
        )
    with runtime(db, provider) as rt:
        rt.start("Look c0 up.", principal=Principal("bob", roles=["support"], tenant="acme"))
    assert calls == [ROLES_VAULT_KEYS["admin"], ROLES_VAULT_KEYS["viewer"]]


def test_a_providers_own_error_tells_the_model_none_of_the_secrets_it_quotes(db: Path) -> None:
    def vault_client(name: str, principal: Principal) -> str:
        # A vault client's error, quoting the token it authenticated with.
        raise PermissionError(
            "403 from vault: Authorization: Bearer hvs.CAESIJ9xQ2wZlQ; token=s.Zq8yXc4Lm"
        )

    model = ScriptedChatModel([ai("", tool_call("crm_lookup", {"customer": "c0"})), "Done."])
    with AgentRuntime(
        model,
        tools=[crm_lookup],
        policy=Policy.from_yaml(POLICY),
        db=db,
        credentials=Credentials.from_callable(vault_client),
    ) as rt:
        run = rt.start("Look c0 up.", principal=ALICE)
        seen = observations(rt, run.thread_id)[0]
    told = [str(m.content) for m in model.calls[-1].messages if m.type == "tool"]
    assert calls == []
    assert seen["content"] == (
        "permanent error: credential 'crm' for tool 'crm_lookup' could not be resolved for "
        "principal 'alice' of tenant 'acme': PermissionError: 403 from vault: Authorization: "
        "[REDACTED:bearer]; token=[REDACTED:secret]; the tool was not called"
    )
    assert "CAESIJ9xQ2wZlQ" not in str(told)
    assert "Zq8yXc4Lm" not in str(told)
