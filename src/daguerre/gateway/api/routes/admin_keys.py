"""The operators' API for API keys: list, create, revoke and rotate (``/admin/keys``).

The secret of a key appears in exactly one response, the one that made it; listings
show its id and first characters. Revoking through this API clears this gateway's key
cache at once; other gateways stop honouring the key within ``auth_cache_s``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator

from daguerre.gateway.api.deps import AdminDep, ServicesDep
from daguerre.gateway.api.errors import APIError, not_found
from daguerre.gateway.api.routes.admin_audit import OperatorDep
from daguerre.gateway.api.schemas import ErrorResponse
from daguerre.store.accounts import KeyStateError
from daguerre.store.apikeys import ApiKey, parse_duration, parse_scopes
from daguerre.store.tables import utcnow
from daguerre.store.threads import run_blocking

router = APIRouter(prefix="/keys")

Duration = str | int | float
# Ids are ours ("acct_<hex>", "key_<hex>"): anything else is refused before a lookup
# (a NUL would be a database error on PostgreSQL, not a 404).
ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
KeyId = Annotated[str, Path(pattern=ID_PATTERN)]
# Answers /openapi.json cannot infer from an operation's shape (see gateway/api/openapi.py).
NO_ACCOUNT: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorResponse, "description": "No account with that id."}
}
ROTATED: dict[int | str, dict[str, object]] = {
    409: {"model": ErrorResponse, "description": "The key was revoked or rotated already."}
}


def _epoch(when: datetime | None) -> int | None:
    return int(when.timestamp()) if when is not None else None


class KeyPublic(BaseModel):
    """A key as listed: never the key or its hash. Times are Unix seconds."""

    object: Literal["api_key"] = "api_key"
    id: str
    account_id: str
    prefix: str
    label: str | None
    scopes: list[str]
    status: Literal["active", "revoking", "expired", "revoked"]
    created_at: int
    expires_at: int | None
    # Updated at most once a minute (plus ``auth_cache_s``): a hint, not an audit log.
    last_used_at: int | None
    revoked_at: int | None

    @classmethod
    def of(cls, key: ApiKey) -> KeyPublic:
        return cls(**_fields(key))


class KeyCreated(KeyPublic):
    key: str = Field(description="The key itself: shown here once, stored only hashed.")

    @classmethod
    def made(cls, secret: str, key: ApiKey) -> KeyCreated:
        return cls(key=secret, **_fields(key))


class KeyRotated(KeyCreated):
    previous: KeyPublic = Field(description="The rotated key, revoked now or after its grace.")


class KeyList(BaseModel):
    object: Literal["list"] = "list"
    data: list[KeyPublic]


def _fields(key: ApiKey) -> dict[str, object]:
    return {
        "id": key.id,
        "account_id": key.account_id,
        "prefix": key.prefix,
        "label": key.label,
        "scopes": list(key.scopes),
        "status": key.state(utcnow()),
        "created_at": _epoch(key.created_at),
        "expires_at": _epoch(key.expires_at),
        "last_used_at": _epoch(key.last_used_at),
        "revoked_at": _epoch(key.revoked_at),
    }


def _duration(value: Duration | None) -> timedelta | None:
    """A pydantic-side parse, so a bad value is a 400 that names its field."""
    return None if value is None else parse_duration(value)


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account: str = Field(pattern=ID_PATTERN, description="The account's id.")
    label: str | None = Field(default=None, max_length=200)
    # None: the account's default (admin for the admin tier, else images).
    scopes: list[str] | None = None
    expires_in: Duration | None = Field(default=None, description='e.g. "30d", or seconds')

    @field_validator("label")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        if value is not None and not value.isprintable():
            raise ValueError("a label is printable text, without control characters")
        return value

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else list(parse_scopes(value))

    @field_validator("expires_in")
    @classmethod
    def _expires(cls, value: Duration | None) -> Duration | None:
        _duration(value)
        return value


class KeyRotate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # How long the old key keeps working beside the new one (0 or null: not at all).
    grace: Duration | None = Field(default=None, description='e.g. "1h", or seconds')
    # The new key's lifetime; null: the old key's lifetime again; "never": no expiry.
    expires_in: Duration | None = None

    @field_validator("grace")
    @classmethod
    def _grace(cls, value: Duration | None) -> Duration | None:
        if value not in (None, 0, "0"):
            _duration(value)
        return value

    @field_validator("expires_in")
    @classmethod
    def _expires(cls, value: Duration | None) -> Duration | None:
        if value != "never":
            _duration(value)
        return value


@router.get("", responses=NO_ACCOUNT)
async def list_keys(
    _: AdminDep,
    services: ServicesDep,
    account: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    include_revoked: bool = False,
) -> KeyList:
    """Keys, oldest first: one account's (``?account=ID``) or everyone's; revoked and
    expired ones only with ``include_revoked=true``."""
    accounts = services.store.accounts
    if account is not None and await run_blocking(accounts.get_account, account) is None:
        raise not_found(f"No account with id '{account}'.")

    def read() -> list[ApiKey]:
        return accounts.list_api_keys(account, include_revoked=include_revoked)

    return KeyList(data=[KeyPublic.of(k) for k in await run_blocking(read)])


@router.post("", status_code=201, responses=NO_ACCOUNT)
async def create_key(body: KeyCreate, operator: OperatorDep, services: ServicesDep) -> KeyCreated:
    """A new key for an existing account; the response is the only copy of the key."""
    lifetime = _duration(body.expires_in)

    def issue() -> tuple[str, ApiKey]:
        return services.store.accounts.issue_api_key(
            body.account, label=body.label, scopes=body.scopes, expires_in=lifetime
        )

    try:
        secret, key = await run_blocking(issue)
    except KeyError:
        raise not_found(f"No account with id '{body.account}'.") from None
    await operator.record({**body.model_dump(exclude_unset=True), "key_id": key.id})
    return KeyCreated.made(secret, key)


@router.post("/{key_id}/revoke")
async def revoke_key(key_id: KeyId, operator: OperatorDep, services: ServicesDep) -> KeyPublic:
    """Revoke a key now (revoking twice is harmless)."""
    key = await run_blocking(services.store.accounts.revoke_api_key, key_id)
    if key is None:
        raise not_found(f"No API key with id '{key_id}'.")
    services.keys.clear()
    await operator.record()
    return KeyPublic.of(key)


@router.post("/{key_id}/rotate", responses=ROTATED)
async def rotate_key(
    key_id: KeyId, operator: OperatorDep, services: ServicesDep, body: KeyRotate | None = None
) -> KeyRotated:
    """A successor with the same account, label and scopes; the old key is revoked now
    or after ``grace``."""
    body = body or KeyRotate()
    grace = _duration(body.grace) if body.grace not in (None, 0, "0") else None
    expires: timedelta | Literal["same", "never"]
    if body.expires_in is None:
        expires = "same"
    elif body.expires_in == "never":
        expires = "never"
    else:
        expires = parse_duration(body.expires_in)

    def rotate() -> tuple[str, ApiKey, ApiKey] | None:
        accounts = services.store.accounts
        return accounts.rotate_api_key(key_id, grace=grace or timedelta(0), expires_in=expires)

    try:
        rotated = await run_blocking(rotate)
    except KeyStateError as err:
        raise APIError(409, f"{err}: rotate its successor instead.", code="key_revoked") from None
    if rotated is None:
        raise not_found(f"No API key with id '{key_id}'.")
    services.keys.clear()
    secret, new, old = rotated
    await operator.record({**body.model_dump(exclude_unset=True), "key_id": new.id})
    return KeyRotated(key=secret, previous=KeyPublic.of(old), **_fields(new))
