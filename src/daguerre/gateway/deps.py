"""Request dependencies, as ``Annotated`` aliases the routers use in signatures."""

from __future__ import annotations

import secrets
from typing import Annotated

import anyio
from fastapi import Depends, Header, Request

from daguerre.domain import Account
from daguerre.gateway.errors import APIError
from daguerre.gateway.services import Services


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]

_NO_KEY = (
    "You didn't provide an API key. Send it in an Authorization header using Bearer "
    "auth (Authorization: Bearer YOUR_KEY). `daguerre keys create` makes one."
)


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _masked(key: str) -> str:
    return f"{key[:6]}***{key[-4:]}" if len(key) > 12 else "***"


async def optional_account(
    services: ServicesDep, authorization: Annotated[str | None, Header()] = None
) -> Account | None:
    """The caller's account, None without an Authorization header, 401 for a bad key."""
    key = _bearer(authorization)
    if authorization is None:
        return None
    if key is None:
        raise APIError(401, _NO_KEY, code="invalid_api_key")
    return await _authenticated(services, key, cached=True)


async def _authenticated(services: Services, key: str, cached: bool) -> Account:
    """The key's account, or a 401. ``cached``: an account read in the last
    ``auth_cache_s`` will do (see keycache.py)."""
    account = services.keys.get(key) if cached else None
    if account is None:
        account = await anyio.to_thread.run_sync(services.store.accounts.authenticate, key)
        if account is not None and cached:
            services.keys.put(key, account)
    if account is None:
        raise APIError(401, f"Incorrect API key provided: {_masked(key)}.", code="invalid_api_key")
    return account


async def current_account(
    account: Annotated[Account | None, Depends(optional_account)],
) -> Account:
    if account is None:
        raise APIError(401, _NO_KEY, code="invalid_api_key")
    return account


AccountDep = Annotated[Account, Depends(current_account)]
OptionalAccountDep = Annotated[Account | None, Depends(optional_account)]


ADMIN_TIER = "admin"


async def admin_caller(
    services: ServicesDep, authorization: Annotated[str | None, Header()] = None
) -> str:
    """Who is operating: the configured admin key, or an account of tier "admin"."""
    key = _bearer(authorization)
    if key is None:
        raise APIError(401, _NO_KEY, code="invalid_api_key")
    admin_key = services.settings.admin_key
    if admin_key is not None and secrets.compare_digest(
        key.encode(), admin_key.get_secret_value().encode()
    ):
        return "admin-key"
    # Read every time: admin calls are rare, and a withdrawn admin key stops at once.
    account = await _authenticated(services, key, cached=False)
    if account.tier != ADMIN_TIER:
        raise APIError(
            403,
            "This endpoint needs an admin key (`daguerre keys create --admin`).",
            code="admin_only",
        )
    return account.id


AdminDep = Annotated[str, Depends(admin_caller)]
