"""`daguerre keys`: make, list, revoke and rotate API keys, straight in the database.

A key is shown once, when it is made, and stored only as a hash. These commands do not
go through a gateway, so a gateway that checked a key a moment ago may honour it for
up to ``auth_cache_s`` (5 s by default) after `revoke` (the /admin/keys API clears the
cache of the gateway it reaches at once).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Literal

import typer

if TYPE_CHECKING:  # imported when a command runs: `daguerre --help` stays quick
    from daguerre.config import Settings
    from daguerre.store import Store
    from daguerre.store.apikeys import ApiKey

app = typer.Typer(help="Manage API keys.", no_args_is_help=True)

Label = Annotated[str | None, typer.Option(help="A name to tell the key apart, e.g. ci.")]
Expires = Annotated[
    str | None, typer.Option(help="Lifetime, e.g. 30d, 12h, 15m (default: never expires).")
]
Scopes = Annotated[
    list[str] | None,
    typer.Option(
        "--scope",
        help="images (the /v1 API) or admin (/admin); repeat for both. Default: admin "
        "for the admin tier, else images.",
    ),
]


@contextmanager
def _store() -> Iterator[tuple[Settings, Store]]:
    from daguerre.config import Settings
    from daguerre.store import open_store

    settings = Settings()
    store = open_store(settings)
    try:
        yield settings, store
    finally:
        store.close()


def _duration(text: str, hint: str) -> timedelta:
    from daguerre.store.apikeys import parse_duration

    try:
        return parse_duration(text)
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint=hint) from None


def _scopes(scopes: list[str] | None, admin: bool) -> tuple[str, ...] | None:
    """The scopes asked for; None: the account's default."""
    from daguerre.store.apikeys import SCOPE_ADMIN, parse_scopes

    if not scopes and not admin:
        return None
    try:
        return parse_scopes([*(scopes or []), *([SCOPE_ADMIN] if admin else [])])
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--scope") from None


def _utc() -> datetime:
    from daguerre.store.tables import utcnow

    return utcnow()


@app.command("create")
def create(
    tier: Annotated[str, typer.Option(help="The account's tier (see the tiers file).")] = "free",
    product: Annotated[str, typer.Option(help="The product, which picks the pool.")] = "api",
    account: Annotated[
        str | None, typer.Option(help="Add the key to this account id instead of a new one.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="A name for a new account.")] = None,
    admin: Annotated[
        bool,
        typer.Option(
            "--admin",
            help="An operator's key (scope admin: /admin and `daguerre admin`); without "
            "--account, for a new account of tier admin.",
        ),
    ] = False,
    label: Label = None,
    expires: Expires = None,
    scope: Scopes = None,
) -> None:
    """Create an API key and print it (only this once) on standard output."""
    scopes = _scopes(scope, admin)
    lifetime = _duration(expires, "--expires") if expires is not None else None
    with _store() as (settings, store):
        if account is not None:
            _check_product(settings, product)
            found = store.accounts.get_account(account)
            if found is None:
                raise typer.BadParameter(f"no account {account!r}", param_hint="--account")
            account_id, tier, product = found.id, found.tier, found.product
        else:
            tier = _new_account_tier(settings, tier, product, admin)
            account_name = name or f"account-{secrets.token_hex(4)}"
            account_id = store.accounts.create_account(account_name, tier, product).id
        key, info = store.accounts.issue_api_key(
            account_id, label=label, scopes=scopes, expires_in=lifetime
        )
    typer.echo(
        f"account {account_id} (tier {tier}, product {product}); key {info.id} "
        f"(scopes {' '.join(info.scopes)}, expires {_when(info.expires_at) or 'never'}):",
        err=True,
    )
    typer.echo(key)


def _new_account_tier(settings: Settings, tier: str, product: str, admin: bool) -> str:
    """The tier of a new account (admin for an operator's key), its product checked."""
    from daguerre.store.apikeys import ADMIN_TIER

    if admin:
        tier = ADMIN_TIER
    elif tier not in settings.tiers:
        known = ", ".join(settings.tiers)
        raise typer.BadParameter(f"unknown tier {tier!r}; known: {known}", param_hint="--tier")
    _check_product(settings, product)
    return tier


def _check_product(settings: Settings, product: str) -> None:
    if product not in settings.product_pools:
        known = ", ".join(settings.product_pools)
        raise typer.BadParameter(
            f"unknown product {product!r}; known: {known}", param_hint="--product"
        )


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment is not None else ""


def _row(key: ApiKey, now: datetime) -> dict[str, object]:
    return {
        "id": key.id,
        "account": key.account_id,
        "prefix": key.prefix,
        "label": key.label or "",
        "scopes": " ".join(key.scopes),
        "created": _when(key.created_at),
        "expires": _when(key.expires_at),
        "last_used": _when(key.last_used_at),
        "revoked": _when(key.revoked_at),
        "status": key.state(now),
    }


@app.command("list")
def list_keys(
    account: Annotated[
        str | None, typer.Argument(help="An account id or name; default: every account.")
    ] = None,
    show_all: Annotated[bool, typer.Option("--all", help="Also revoked and expired keys.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line.")] = False,
) -> None:
    """Keys (never the keys themselves), oldest first. Times are UTC; last_used is
    recorded at most once a minute."""
    with _store() as (_, store):
        account_id = None
        if account is not None:
            found = store.accounts.get_account(account) or store.accounts.find_account(account)
            if found is None:
                raise typer.BadParameter(f"no account {account!r}", param_hint="ACCOUNT")
            account_id = found.id
        keys = store.accounts.list_api_keys(account_id, include_revoked=show_all)
    now = _utc()
    rows = [_row(k, now) for k in keys]
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row))
        return
    if not rows:
        typer.echo("no keys" + ("" if show_all else " (--all shows revoked and expired ones)"))
        return
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    typer.echo("  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip())
    for row in rows:
        typer.echo("  ".join(str(row[c]).ljust(widths[c]) for c in columns).rstrip())


def _one(store: Store, reference: str) -> ApiKey:
    found = store.accounts.find_api_keys(reference)
    if not found:
        raise typer.BadParameter(f"no key {reference!r}", param_hint="KEY")
    if len(found) > 1:
        ids = ", ".join(k.id for k in found)
        raise typer.BadParameter(f"{reference!r} matches several keys ({ids}); give an id")
    return found[0]


@app.command("revoke")
def revoke(
    key: Annotated[str, typer.Argument(help="A key id or prefix.")],
) -> None:
    """Revoke a key now. Gateways stop honouring it within auth_cache_s."""
    with _store() as (settings, store):
        revoked = store.accounts.revoke_api_key(_one(store, key).id)
        cache_s = settings.auth_cache_s
    assert revoked is not None
    typer.echo(
        f"revoked {revoked.id} ({revoked.prefix}..., account {revoked.account_id}); "
        f"gateways stop honouring it within {cache_s:g} s"
    )


@app.command("rotate")
def rotate(
    key: Annotated[str, typer.Argument(help="A key id or prefix.")],
    grace: Annotated[
        str | None,
        typer.Option(help="Keep the old key working this long beside the new, e.g. 1h."),
    ] = None,
    expires: Annotated[
        str | None,
        typer.Option(help="The new key's lifetime (e.g. 30d, or never); default: the old's."),
    ] = None,
) -> None:
    """Replace a key: a new one (printed once on standard output) for the same account,
    label and scopes; the old one is revoked now, or after --grace."""
    from daguerre.store.accounts import KeyStateError

    grace_for = _duration(grace, "--grace") if grace is not None else timedelta(0)
    lifetime: timedelta | Literal["same", "never"] = "same"
    if expires == "never":
        lifetime = "never"
    elif expires is not None:
        lifetime = _duration(expires, "--expires")
    with _store() as (_, store):
        key_id = _one(store, key).id
        try:
            rotated = store.accounts.rotate_api_key(key_id, grace=grace_for, expires_in=lifetime)
        except KeyStateError as err:
            raise typer.BadParameter(f"{err}; rotate its successor", param_hint="KEY") from None
    assert rotated is not None
    secret, new, old = rotated
    typer.echo(
        f"key {new.id} replaces {old.id} (account {new.account_id}, scopes "
        f"{' '.join(new.scopes)}, expires {_when(new.expires_at) or 'never'}); the old key "
        f"stops at {_when(old.revoked_at)} UTC:",
        err=True,
    )
    typer.echo(secret)
