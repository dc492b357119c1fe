"""Request dependencies, as ``Annotated`` aliases the routers use in signatures."""

from __future__ import annotations

import ipaddress
import secrets
from typing import Annotated

from fastapi import Depends, Header, Request
from pydantic import SecretStr

from daguerre.config import Settings
from daguerre.domain import Account
from daguerre.gateway.api.errors import APIError
from daguerre.gateway.context import Services
from daguerre.store.accounts import hash_key
from daguerre.store.apikeys import SCOPE_ADMIN, SCOPE_IMAGES, KeyGrant
from daguerre.store.tables import utcnow
from daguerre.store.threads import run_blocking


async def get_services(request: Request) -> Services:
    # async, though it awaits nothing: FastAPI runs a plain function dependency on a
    # worker thread, a hop per request (a twentieth of the gateway's time in a flood).
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
    services: ServicesDep,
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
) -> Account | None:
    """The caller's account, None without an Authorization header, 401 for a bad key,
    403 for a key without the ``images`` scope (an operator's admin-only key)."""
    key = _bearer(authorization)
    if authorization is None:
        return None
    if key is None:
        raise APIError(401, _NO_KEY, code="invalid_api_key")
    grant = await _grant(services, key, cached=True)
    request.state.tier = grant.account.tier  # for the request metrics (request_metrics.py)
    request.state.key_hash = hash_key(key)  # a refusal is remembered by it (refusals.py)
    if not grant.allows(SCOPE_IMAGES):
        raise APIError(
            403,
            "This API key has only the 'admin' scope: it is for the operators' API "
            "(/admin). Use a key with the 'images' scope (`daguerre keys create`).",
            code="missing_scope",
        )
    return grant.account


async def _grant(services: Services, key: str, cached: bool) -> KeyGrant:
    """What the key may do, or a 401 (unknown, revoked or expired). ``cached``: a
    grant read in the last ``auth_cache_s`` will do (see keycache.py); its expiry and
    end of grace are checked on every use all the same."""
    grant = services.keys.get(key) if cached else None
    if grant is None:
        grant = await run_blocking(services.store.accounts.check_key, key)
        if grant is not None and cached:
            services.keys.put(key, grant)
    now = utcnow()
    if grant is None or grant.revoked(now):
        raise APIError(401, f"Incorrect API key provided: {_masked(key)}.", code="invalid_api_key")
    if grant.expired(now):
        raise APIError(
            401,
            f"This API key has expired ({_masked(key)}). Ask the operator for a new one "
            "(`daguerre keys rotate`).",
            code="expired_api_key",
        )
    return grant


async def current_account(
    account: Annotated[Account | None, Depends(optional_account)],
) -> Account:
    if account is None:
        raise APIError(401, _NO_KEY, code="invalid_api_key")
    return account


AccountDep = Annotated[Account, Depends(current_account)]
OptionalAccountDep = Annotated[Account | None, Depends(optional_account)]


def _same(key: str, secret: SecretStr | None) -> bool:
    return secret is not None and secrets.compare_digest(
        key.encode(), secret.get_secret_value().encode()
    )


async def admin_caller(
    services: ServicesDep, authorization: Annotated[str | None, Header()] = None
) -> str:
    """Who is operating: the configured admin key, or a key with the ``admin`` scope."""
    key = _bearer(authorization)
    if key is None:
        raise APIError(401, _NO_KEY, code="invalid_api_key")
    if _same(key, services.settings.admin_key):
        return "admin-key"
    # Read every time: admin calls are rare, and a revoked admin key stops at once.
    grant = await _grant(services, key, cached=False)
    if not grant.allows(SCOPE_ADMIN):
        raise APIError(
            403,
            "This endpoint needs a key with the 'admin' scope (`daguerre keys create "
            "--admin`) or DAGUERRE_ADMIN_KEY.",
            code="admin_only",
        )
    return grant.account.id


AdminDep = Annotated[str, Depends(admin_caller)]


def is_loopback(host: str) -> bool:
    """Whether a bind address reaches this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def metrics_key_required(settings: Settings) -> bool:
    if settings.metrics_auth == "auto":
        return not is_loopback(settings.host)
    return settings.metrics_auth == "on"


_METRICS_KEY = (
    "/metrics needs a bearer key here (Authorization: Bearer KEY; Prometheus: "
    "`authorization: {credentials_file: ...}`): DAGUERRE_METRICS_KEY, "
    "DAGUERRE_ADMIN_KEY or a key with the 'admin' scope."
)


async def metrics_caller(
    services: ServicesDep, authorization: Annotated[str | None, Header()] = None
) -> str | None:
    """Who scrapes /metrics, where that needs a key (``metrics_auth``): the metrics key,
    the admin key or an admin-scoped key. None where it needs none. Metrics name tiers,
    pools and backlogs: enough to plan a surge against, so not for the open internet."""
    if not metrics_key_required(services.settings):
        return None
    key = _bearer(authorization)
    if key is None:
        raise APIError(
            401, _METRICS_KEY, code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"}
        )
    if _same(key, services.settings.metrics_key):
        return "metrics-key"
    return await admin_caller(services, authorization)


MetricsDep = Annotated[str | None, Depends(metrics_caller)]
