"""`agentrt keys`: make, list and revoke the service's API keys."""

from typing import Annotated

import typer

from agentrt.cli.common import CliError, age, app, fail, table
from agentrt.cli.options import AppOptions, grouped

keys_app = typer.Typer(help="API keys of `agentrt serve`: each acts as one principal.")
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
@grouped
def create(
    principal: Annotated[str, typer.Option("--id", help="Principal id the key acts as.")],
    tenant: Annotated[
        str,
        typer.Option(
            help="Its tenant: the key sees only this tenant's runs ('*': every tenant's)."
        ),
    ],
    role: Annotated[
        list[str] | None, typer.Option(metavar="ROLE", help="A role it holds (repeat for more).")
    ] = None,
    scope: Annotated[
        list[str] | None,
        typer.Option(metavar="SCOPE", help="A scope it grants its runs (repeat for more)."),
    ] = None,
    label: Annotated[str | None, typer.Option(help="What the key is for.")] = None,
    *,
    app_options: AppOptions,
) -> None:
    """Make a key and print it once: only its hash is stored."""
    from agentrt.principal import Principal

    # A blank value is a typo (an unset variable in a script): a usage error, said before
    # the database is opened, or made.
    for option, value, what in (
        ("--id", principal, "the principal's id the key acts as, e.g. --id bob"),
        ("--tenant", tenant, "its tenant's name, e.g. --tenant acme ('*': every tenant's)"),
    ):
        if not value.strip():
            fail(CliError(f"{option} {value!r} is blank; give {what}"))
    for option, names, example in (
        ("--role", role, "refund-approver"),
        ("--scope", scope, "orders:read"),
    ):
        for name in names or []:
            if not name.strip():
                kind = option.removeprefix("--")
                fail(
                    CliError(
                        f"{option} {name!r} is blank; give the {kind}'s name, e.g. {option} "
                        f"{example}, or leave {option} out for a key with no {kind}"
                    )
                )
    with app_options.runtime(db_only=True, create=True) as rt:
        who = Principal(principal, roles=role or [], tenant=tenant, scopes=scope or [])
        record, key = rt.keys.create(who, label=label)
        typer.echo(key)
        typer.echo(
            f"key {record.key_id} acts as {principal!r} of tenant {tenant!r}; it is shown "
            "only now: keep it in your secret store",
            err=True,
        )


@keys_app.command("list")
@grouped
def list_(
    all_: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
    *,
    app_options: AppOptions,
) -> None:
    """The keys (never the keys themselves): id, principal, tenant, roles, age."""

    with app_options.runtime(db_only=True) as rt:
        now = rt.clock()
        table(
            ["key", "principal", "tenant", "roles", "label", "age", "revoked"],
            [
                [
                    k.key_id,
                    k.principal.id,
                    k.principal.tenant or "",
                    ",".join(k.principal.roles),
                    k.label or "",
                    age(k.created_at, now),
                    "" if k.revoked_at is None else age(k.revoked_at, now) + " ago",
                ]
                for k in rt.keys.list(include_revoked=all_)
            ],
        )


@keys_app.command("revoke")
@grouped
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id, from `agentrt keys list`.")],
    app_options: AppOptions,
) -> None:
    """Revoke a key: requests made with it are refused (401) from now on."""

    with app_options.runtime(db_only=True) as rt:
        rt.keys.revoke(key_id)
        typer.echo(f"revoked {key_id}")
