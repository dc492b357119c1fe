"""`daguerre keys create`: make an account's API key (shown once, stored hashed)."""

from __future__ import annotations

import secrets
from typing import Annotated

import typer

app = typer.Typer(help="Manage API keys.", no_args_is_help=True)

ADMIN_TIER = "admin"  # the same name as gateway.deps.ADMIN_TIER (the CLI loads no gateway)


@app.command("create")
def create(
    tier: Annotated[str, typer.Option(help="The account's tier (see the tiers file).")] = "free",
    product: Annotated[str, typer.Option(help="The product, which picks the pool.")] = "api",
    account: Annotated[
        str | None, typer.Option(help="Add the key to this account id instead of a new one.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="A name for a new account.")] = None,
    admin: Annotated[
        bool, typer.Option("--admin", help="An operator's key: /admin and `daguerre admin`.")
    ] = False,
) -> None:
    """Create an API key and print it (only this once) on standard output."""
    from daguerre.config import Settings
    from daguerre.store import open_store

    settings = Settings()
    if admin:
        tier = ADMIN_TIER
    elif tier not in settings.tiers:
        known = ", ".join(settings.tiers)
        raise typer.BadParameter(f"unknown tier {tier!r}; known: {known}", param_hint="--tier")
    if product not in settings.product_pools:
        known = ", ".join(settings.product_pools)
        raise typer.BadParameter(
            f"unknown product {product!r}; known: {known}", param_hint="--product"
        )
    store = open_store(settings)
    try:
        if account is not None:
            found = store.accounts.get_account(account)
            if found is None:
                raise typer.BadParameter(f"no account {account!r}", param_hint="--account")
            account_id, tier = found.id, found.tier
        else:
            label = name or f"account-{secrets.token_hex(4)}"
            account_id = store.accounts.create_account(label, tier, product).id
        key = store.accounts.create_api_key(account_id)
    finally:
        store.close()
    typer.echo(f"account {account_id} (tier {tier}, product {product}); key:", err=True)
    typer.echo(key)
