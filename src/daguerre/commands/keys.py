"""`daguerre keys create`: make an account's API key (shown once, stored hashed)."""

from __future__ import annotations

import secrets
from typing import Annotated

import typer

from daguerre.domain import Tier

app = typer.Typer(help="Manage API keys.", no_args_is_help=True)


@app.command("create")
def create(
    tier: Annotated[Tier, typer.Option(help="The account's tier.")] = Tier.FREE,
    product: Annotated[str, typer.Option(help="The product, which picks the pool.")] = "api",
    account: Annotated[
        str | None, typer.Option(help="Add the key to this account id instead of a new one.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="A name for a new account.")] = None,
) -> None:
    """Create an API key and print it (only this once) on standard output."""
    from daguerre.config import Settings
    from daguerre.store import open_store

    settings = Settings()
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
            account_id = found.id
        else:
            label = name or f"account-{secrets.token_hex(4)}"
            account_id = store.accounts.create_account(label, tier.value, product).id
        key = store.accounts.create_api_key(account_id)
    finally:
        store.close()
    typer.echo(f"account {account_id} (tier {tier.value}, product {product}); key:", err=True)
    typer.echo(key)
