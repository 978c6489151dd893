"""`agentrt memory`: list, show and delete what runs remember, one tenant at a time."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from agentrt.cli.common import CliError, app, short, table
from agentrt.cli.options import AppOptions, grouped

if TYPE_CHECKING:
    from agentrt.tools.memory import Memory

memory_app = typer.Typer(help="Memory across threads: one tenant's remembered items.")
app.add_typer(memory_app, name="memory")

TenantOption = Annotated[str, typer.Option(help="The tenant whose memory this is.")]
PrincipalOption = Annotated[
    str | None, typer.Option("--principal", help="That principal's own items, not the shared.")
]
NamespaceArgument = Annotated[str, typer.Argument(help='Labels with "/" between, e.g. customers.')]
KeyArgument = Annotated[str, typer.Argument(help="The item's key in its namespace.")]


@memory_app.command("list")
@grouped
def list_(
    tenant: TenantOption,
    namespace: Annotated[
        str, typer.Argument(help='Only under this namespace, e.g. "customers".')
    ] = "",
    principal: PrincipalOption = None,
    all_: Annotated[
        bool, typer.Option("--all", help="The shared items and every principal's own.")
    ] = False,
    limit: Annotated[int, typer.Option(help="At most this many items.", min=1)] = 100,
    *,
    app_options: AppOptions,
) -> None:
    """The tenant's items, the latest first: namespace, key, whose, value, last written."""
    from agentrt.tools.memory import tenant_items

    with app_options.runtime(db_only=True) as rt:
        if rt.deps.memories is None:
            raise CliError(f"the database {rt.db!r} keeps no memory")
        items = tenant_items(
            rt.deps.memories,
            tenant,
            _namespace(namespace),
            principal=principal,
            everyone=all_,
            limit=limit,
        )
        table(
            ["namespace", "key", "principal", "value", "updated"],
            [
                [
                    "/".join(i.namespace),
                    i.key,
                    i.principal or "(shared)",
                    short(json.dumps(i.value, sort_keys=True)),
                    i.updated_at.isoformat(timespec="seconds"),
                ]
                for i in items
            ],
        )


@memory_app.command("show")
@grouped
def show(
    namespace: NamespaceArgument,
    key: KeyArgument,
    tenant: TenantOption,
    principal: PrincipalOption = None,
    *,
    app_options: AppOptions,
) -> None:
    """One item as JSON."""

    def show_item(memory: Memory) -> str | None:
        item = memory.get(namespace, key)
        return None if item is None else json.dumps(item.to_dict(), indent=2, sort_keys=True)

    _one_item(app_options, namespace, key, tenant, principal, show_item)


@memory_app.command("delete")
@grouped
def delete(
    namespace: NamespaceArgument,
    key: KeyArgument,
    tenant: TenantOption,
    principal: PrincipalOption = None,
    *,
    app_options: AppOptions,
) -> None:
    """Forget one item; later runs of the tenant no longer find it."""

    def delete_item(memory: Memory) -> str | None:
        if not memory.delete(namespace, key):
            return None
        return f"deleted {namespace}/{key} of tenant {tenant!r}"

    _one_item(app_options, namespace, key, tenant, principal, delete_item)


def _one_item(
    app_options: AppOptions,
    namespace: str,
    key: str,
    tenant: str,
    principal: str | None,
    act: Callable[[Memory], str | None],
) -> None:
    """Check ``namespace``, open the tenant's (or ``principal``'s own) memory and print
    what ``act`` says of the item; None from it: there is no such item."""
    from agentrt.tools.errors import ToolError

    with app_options.runtime(db_only=True) as rt:
        _namespace(namespace)
        try:
            said = act(rt.memory(tenant, principal=principal))
        except ToolError as exc:  # a key that is no key, say
            raise CliError(str(exc)) from None
        if said is None:
            raise _unknown(namespace, key, tenant, principal)
        typer.echo(said)


def _namespace(text: str) -> str:
    from agentrt.tools.memory import parse_namespace

    try:
        parse_namespace(text)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    return text


def _unknown(namespace: str, key: str, tenant: str, principal: str | None) -> CliError:
    whose = f" (principal {principal!r}'s own)" if principal else ""
    return CliError(
        f"no memory item {namespace!r}/{key!r} in tenant {tenant!r}{whose}; see what there is "
        f"with `agentrt memory list --tenant {tenant}{' --all' if not principal else ''}`"
    )
