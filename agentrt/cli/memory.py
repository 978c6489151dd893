"""`agentrt memory`: list, show and delete what runs remember, one tenant at a time.

Whose memory is said once a command: --tenant NAME, or --no-tenant for the memory of runs
whose principal has no tenant (kept apart, under "no-tenant"); an empty name is refused
rather than read as either. Items are shown masked, as every command's output is.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import typer

from agentrt.cli.common import CliError, app, fail, short, table
from agentrt.cli.options import LIMIT_MAX, AppOptions, grouped, within

if TYPE_CHECKING:
    from agentrt.runtime import AgentRuntime
    from agentrt.tools.memory import Memory

memory_app = typer.Typer(help="Memory across threads: one tenant's remembered items.")
app.add_typer(memory_app, name="memory")

TenantOption = Annotated[str | None, typer.Option(help="The tenant whose memory this is.")]
NoTenantOption = Annotated[
    bool, typer.Option("--no-tenant", help="The memory of runs without a tenant, instead.")
]
PrincipalOption = Annotated[
    str | None, typer.Option("--principal", help="That principal's own items, not the shared.")
]
NamespaceArgument = Annotated[str, typer.Argument(help='Labels with "/" between, e.g. customers.')]
KeyArgument = Annotated[str, typer.Argument(help="The item's key in its namespace.")]


@memory_app.command("list")
@grouped
def list_(
    namespace: Annotated[
        str, typer.Argument(help='Only under this namespace, e.g. "customers".')
    ] = "",
    tenant: TenantOption = None,
    no_tenant: NoTenantOption = False,
    principal: PrincipalOption = None,
    all_: Annotated[
        bool, typer.Option("--all", help="The shared items and every principal's own.")
    ] = False,
    limit: Annotated[
        int, typer.Option(help="At most this many items.", min=1, callback=within(1, LIMIT_MAX))
    ] = 100,
    *,
    app_options: AppOptions,
) -> None:
    """The tenant's items, the latest first: namespace, key, whose, value, last written."""
    from agentrt.tools.memory import tenant_items
    from agentrt.tracing.shown import shown

    whose = _whose(tenant, no_tenant, principal)
    with app_options.runtime(db_only=True) as rt:
        if rt.deps.memories is None:
            raise CliError(f"the database {rt.store.location!r} keeps no memory")
        items = tenant_items(
            rt.deps.memories,
            whose.tenant,
            _namespace(namespace),
            principal=whose.principal,
            everyone=all_,
            limit=limit,
        )
        rows = []
        for item in items:
            seen = shown(item.to_dict(), rt.redactor)  # namespace, key and value masked
            rows.append(
                [
                    seen["namespace"],
                    seen["key"],
                    item.principal or "(shared)",
                    short(json.dumps(seen["value"], sort_keys=True)),
                    item.updated_at.isoformat(timespec="seconds"),
                ]
            )
        table(["namespace", "key", "principal", "value", "updated"], rows)


@memory_app.command("show")
@grouped
def show(
    namespace: NamespaceArgument,
    key: KeyArgument,
    tenant: TenantOption = None,
    no_tenant: NoTenantOption = False,
    principal: PrincipalOption = None,
    *,
    app_options: AppOptions,
) -> None:
    """One item as JSON, masked."""
    from agentrt.tracing.shown import shown

    def show_item(memory: "Memory", rt: "AgentRuntime") -> str | None:
        item = memory.get(namespace, key)
        if item is None:
            return None
        return json.dumps(shown(item.to_dict(), rt.redactor), indent=2, sort_keys=True)

    _one_item(app_options, namespace, key, _whose(tenant, no_tenant, principal), show_item)


@memory_app.command("delete")
@grouped
def delete(
    namespace: NamespaceArgument,
    key: KeyArgument,
    tenant: TenantOption = None,
    no_tenant: NoTenantOption = False,
    principal: PrincipalOption = None,
    *,
    app_options: AppOptions,
) -> None:
    """Forget one item; later runs of the tenant no longer find it."""
    whose = _whose(tenant, no_tenant, principal)

    def delete_item(memory: "Memory", rt: "AgentRuntime") -> str | None:
        if not memory.delete(namespace, key):
            return None
        return f"deleted {namespace}/{key} of {whose.text}"

    _one_item(app_options, namespace, key, whose, delete_item)


@dataclass(frozen=True)
class _Whose:
    """Whose memory a command works on: a tenant (None: runs without one), and a principal's
    own items (None: the shared ones)."""

    tenant: str | None
    principal: str | None

    @property
    def text(self) -> str:
        """As a message says it: "tenant 'acme'", "the runs without a tenant"."""
        tenant = "the runs without a tenant" if self.tenant is None else f"tenant {self.tenant!r}"
        return (
            tenant if self.principal is None else f"{tenant} (principal {self.principal!r}'s own)"
        )

    @property
    def option(self) -> str:
        """The options that name the tenant again, for a command to suggest."""
        return "--no-tenant" if self.tenant is None else f"--tenant {self.tenant}"


def _whose(tenant: str | None, no_tenant: bool, principal: str | None) -> _Whose:
    """Whose memory --tenant, --no-tenant and --principal name; exit with one line if they
    name no one, or two."""
    other = "or --no-tenant for the memory of runs without a tenant"
    if tenant is not None and no_tenant:
        fail(CliError(f"--tenant {tenant!r} and --no-tenant name two memories; give one"))
    if tenant is None and not no_tenant:
        fail(CliError(f"give the tenant whose memory this is: --tenant NAME, {other}"))
    if tenant == "":
        fail(CliError(f"--tenant '' names no tenant; give its name, e.g. --tenant acme, {other}"))
    if principal == "":
        # Not read as "no principal": a delete would then remove a shared item.
        fail(
            CliError(
                "--principal '' names no principal; give its id, e.g. --principal alice, or "
                "leave --principal out for the tenant's shared items"
            )
        )
    return _Whose(tenant, principal)


def _one_item(
    app_options: AppOptions,
    namespace: str,
    key: str,
    whose: _Whose,
    act: "Callable[[Memory, AgentRuntime], str | None]",
) -> None:
    """Check ``namespace``, open the tenant's (or the principal's own) memory and print
    what ``act`` says of the item; None from it: there is no such item."""
    from agentrt.tools.errors import ToolError

    with app_options.runtime(db_only=True) as rt:
        _namespace(namespace)
        try:
            said = act(rt.memory(whose.tenant, principal=whose.principal), rt)
        except ToolError as exc:  # a key that is no key, say
            raise CliError(str(exc)) from None
        if said is None:
            raise _unknown(namespace, key, whose)
        typer.echo(said)


def _namespace(text: str) -> str:
    from agentrt.tools.memory import parse_namespace

    try:
        parse_namespace(text)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    return text


def _unknown(namespace: str, key: str, whose: _Whose) -> CliError:
    everyone = " --all" if whose.principal is None else f" --principal {whose.principal}"
    return CliError(
        f"no memory item {namespace!r}/{key!r} in {whose.text}; see what there is "
        f"with `agentrt memory list {whose.option}{everyone}`"
    )
