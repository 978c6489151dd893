"""Bad credential configuration gets a clear error naming the value and what to do: the
provider, its file, the environment's variable names, a tool's declaration, the policy's
grants."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agentrt import AgentRuntime, ConfigError, Policy, Principal, ToolContext, tool
from agentrt.policies.loader import PolicyFileError
from agentrt.testing import ScriptedChatModel
from agentrt.tools.credentials import Credentials, env_name

ALICE = Principal("alice", roles=["support"], tenant="acme")


def test_a_provider_needs_a_callable_and_a_ttl_of_zero_or_more() -> None:
    with pytest.raises(ConfigError) as info:
        Credentials(fetch="vault")  # type: ignore[arg-type]
    assert str(info.value) == (
        "Credentials fetch must be callable, got 'vault'; give a function (name, principal) "
        "-> value, e.g. Credentials.from_callable(vault_lookup)"
    )
    for ttl in (-1, float("nan"), float("inf"), "60", True):
        with pytest.raises(ConfigError) as info:
            Credentials.from_callable(lambda name, principal: "x" * 8, ttl=ttl)  # type: ignore[arg-type]
        assert str(info.value) == (
            f"Credentials ttl must be a number of seconds >= 0, got {ttl!r}; 0 fetches the "
            "value at every call"
        )


def test_a_file_provider_says_what_is_wrong_with_its_file(tmp_path: Path) -> None:
    path = tmp_path / "secrets.yaml"
    provider = Credentials.from_file(path)
    with pytest.raises(OSError, match=r"^cannot read '.*secrets.yaml': No such file or directory$"):
        provider.resolve("crm", ALICE)
    path.mkdir()
    with pytest.raises(OSError, match=r"^cannot read '.*secrets.yaml': Is a directory$"):
        provider.resolve("crm", ALICE)
    path.rmdir()
    path.write_text("- crm\n- erp\n")
    with pytest.raises(ValueError, match="holds a list") as info:
        provider.resolve("crm", ALICE)
    assert str(info.value) == (
        f"{str(path)!r} holds a list; it must hold a mapping of names to values, e.g. "
        '{"crm": "...", "tenants": {"acme": {"crm": "..."}}}'
    )
    path.write_text("crm: 12345678\ntenants: {acme: {erp: 3.5}}\n")
    with pytest.raises(ValueError, match="is a int") as info:
        provider.resolve("crm", ALICE)
    assert str(info.value) == f"crm in {str(path)!r} is a int, not text; quote it in the file"
    with pytest.raises(ValueError, match="is a float") as info:
        provider.resolve("erp", ALICE)
    assert str(info.value) == (
        f"tenants.acme.erp in {str(path)!r} is a float, not text; quote it in the file"
    )
    path.write_text("crm: '12345678'\n")
    assert provider.resolve("crm", ALICE) == "12345678"


def test_tenants_whose_names_differ_never_share_a_variable() -> None:
    tenants = ["acme.io", "acme-io", "Acme_IO", "ACME IO", "acme_io", "ACME_IO", "acme__io"]
    spelled = {env_name(t) for t in tenants}
    assert len(spelled) == len(tenants)
    assert env_name("acme_io") == "ACME_IO"  # a plain name reads as it always did
    assert env_name("acme.io") == "_61636D652E696F"
    environ = {f"AGENTRT_CREDENTIAL_{env_name(t)}__CRM": f"key-of-{t}" for t in tenants}
    provider = Credentials.from_env(environ=environ)
    for tenant in tenants:
        assert provider.resolve("crm", Principal("p", tenant=tenant)) == f"key-of-{tenant}"


def test_the_environment_provider_names_the_variables_to_set() -> None:
    provider = Credentials.from_env(environ={})
    with pytest.raises(LookupError) as info:
        provider.resolve("crm", Principal("p", tenant="acme.io"))
    assert str(info.value) == (
        "no value for it in the environment: set AGENTRT_CREDENTIAL__61636D652E696F__CRM or "
        "AGENTRT_CREDENTIAL_CRM"
    )


@pytest.mark.parametrize(
    ("credentials", "message"),
    [
        (
            "crm",
            "tool 'lookup': credentials must be a list, got the string 'crm'; write "
            "credentials=['crm']",
        ),
        (
            ["crm", ""],
            "tool 'lookup': credentials must be names (non-empty text), got "
            "['crm', '']; e.g. credentials=['crm']",
        ),
        (
            [7],
            "tool 'lookup': credentials must be names (non-empty text), got [7]; e.g. "
            "credentials=['crm']",
        ),
    ],
)
def test_a_tool_declares_credentials_as_a_list_of_names(credentials: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:

        @tool(credentials=credentials)
        def lookup(ctx: ToolContext) -> str:
            """Look something up."""
            return "x"

    assert str(info.value) == message


@tool(credentials=["crm"])
def crm_lookup(customer: str, ctx: ToolContext) -> str:
    """Look a customer up in the CRM."""
    return customer


def write_policy(tmp_path: Path, grants: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(f"version: 1\nname: crm\ndefault: allow\ncredentials:\n{grants}")
    return path


def open_runtime(db: Path, policy: Policy) -> AgentRuntime:
    return AgentRuntime(
        ScriptedChatModel(["Done."]),
        tools=[crm_lookup],
        policy=policy,
        db=db,
        credentials=Credentials.from_env(environ={}),
    )


def test_a_grant_with_a_misspelt_term_names_it_and_its_line(tmp_path: Path) -> None:
    path = write_policy(tmp_path, "  crm:\n    role: [support]\n")
    with pytest.raises(PolicyFileError) as info:
        Policy.from_file(path)
    assert str(info.value).startswith(f"{path}:6:5: ")
    assert "role" in str(info.value)


@pytest.mark.parametrize(
    ("term", "one"), [("roles", "role"), ("principals", "principal"), ("tenants", "tenant")]
)
def test_a_grant_whose_term_is_left_empty_is_refused_not_granted_to_everyone(
    tmp_path: Path, term: str, one: str
) -> None:
    # The grant was meant for a few; its list's items were commented out. YAML reads that
    # as null, which was taken for the term left out: the credential granted to anyone.
    path = write_policy(tmp_path, f"  crm:\n    {term}:\n      # - support\n")
    with pytest.raises(PolicyFileError) as info:
        Policy.from_file(path)
    assert str(info.value) == (
        f"{path}:6:{6 + len(term)}: credentials.crm.{term}: Value error, {term} is given with "
        "no value (YAML null: nothing but a comment after the key, or every item of its list "
        f"commented out), which would read as any {one}, granting the credential to them "
        f"all; list the {term} it is granted to, or remove the {term} key to grant it to any "
        f"{one} (got None)"
    )


def test_a_grant_of_a_credential_no_tool_declares_is_flagged_with_its_line(
    tmp_path: Path, db: Path
) -> None:
    path = write_policy(tmp_path, "  '*': {roles: [admin]}\n  crn:\n    roles: [support]\n")
    with pytest.raises(PolicyFileError) as info:
        open_runtime(db, Policy.from_file(path))
    assert str(info.value) == (
        f"{path}:6:3: the credentials section grants credential 'crn', which no tool of this "
        "runtime declares; the tools' credentials: ['crm']"
    )
    fixed = write_policy(tmp_path, "  '*': {roles: [admin]}\n  crm:\n    roles: [support]\n")
    open_runtime(db, Policy.from_file(fixed)).close()  # "*" and a declared name pass


def test_a_rule_matching_a_credential_no_tool_declares_is_refused_with_its_line(
    tmp_path: Path, db: Path
) -> None:
    rule = "rules:\n  - id: crm-needs-a-person\n    decision: require_approval\n    match:\n"
    path = write_policy(
        tmp_path, "  crm: {roles: [support]}\n" + rule + "      credentials: [crm, crn]\n"
    )
    with pytest.raises(PolicyFileError) as info:
        open_runtime(db, Policy.from_file(path))
    assert str(info.value) == (
        f"{path}:10:26: rule 'crm-needs-a-person' names credential 'crn', which no tool of "
        "this runtime declares; the tools' credentials: ['crm']"
    )
    glob = write_policy(tmp_path, "  crm: {}\n" + rule + "      credentials: ['CRM*']\n")
    with pytest.raises(PolicyFileError) as info:
        open_runtime(db, Policy.from_file(glob))
    assert str(info.value) == (
        f"{glob}:10:21: rule 'crm-needs-a-person' names credentials 'CRM*', a pattern that "
        "matches no credential its tools declare (matching is case-sensitive); the tools' "
        "credentials: ['crm']"
    )
    for fine in ("[crm]", "['crm*']", "['*']", "['c?m']"):
        ok = write_policy(tmp_path, "  crm: {}\n" + rule + f"      credentials: {fine}\n")
        open_runtime(db, Policy.from_file(ok)).close()


def test_policy_check_flags_a_grant_no_tool_needs(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from agentrt.cli import app

    path = write_policy(tmp_path, "  crn: {roles: [support]}\n")
    result = CliRunner().invoke(
        app,
        ["policy", "check", str(path), "--app", f"{__name__}:app", "--db", str(tmp_path / "a.db")],
    )
    assert result.exit_code == 1, result.output
    assert f"{path}:5:3: the credentials section grants credential 'crn', which no tool" in (
        result.output
    )


def app(db: str = "agentrt.db") -> AgentRuntime:
    return open_runtime(Path(db), Policy.allow_all())
