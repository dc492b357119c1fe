"""What an API key is, apart from its secret: its scopes, label, expiry and state.

A key's scopes say what it may call: ``images`` the user APIs (/v1), ``admin`` the
operators' API (/admin, and /metrics where that needs a key). Neither implies the other:
an operator's key does not spend an account's image quota, and a leaked user key cannot
change tiers. A key that needs both carries both.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from daguerre.domain import Account

SCOPE_IMAGES = "images"
SCOPE_ADMIN = "admin"
SCOPES = (SCOPE_IMAGES, SCOPE_ADMIN)
# Accounts of this tier are the operators': their keys are admin keys unless asked
# otherwise (before scopes, the tier alone made a key an admin key).
ADMIN_TIER = "admin"


def default_scopes(tier: str) -> tuple[str, ...]:
    return (SCOPE_ADMIN,) if tier == ADMIN_TIER else (SCOPE_IMAGES,)


def parse_scopes(value: str | Iterable[str]) -> tuple[str, ...]:
    """Scopes in their stored order, from "images admin", "images,admin" or a list.
    ValueError names an unknown scope; at least one is needed."""
    parts = [value] if isinstance(value, str) else list(value)
    words = {w for part in parts for w in part.replace(",", " ").split()}
    unknown = sorted(words - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scope {unknown[0]!r}; scopes: {', '.join(SCOPES)}")
    if not words:
        raise ValueError(f"give at least one scope: {', '.join(SCOPES)}")
    return tuple(s for s in SCOPES if s in words)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(value: str | float) -> timedelta:
    """A duration: "30d", "12h", "15m", "45s", "2w", or a number of seconds (> 0)."""
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(value.lower())
        if match is None:
            raise ValueError(f"{value!r} is not a duration; write e.g. 30d, 12h, 15m or 45s")
        seconds = float(match.group(1)) * _UNIT_S[match.group(2)]
    if not 0 < seconds <= 100 * 365 * 86400:
        raise ValueError("a duration must be more than 0 and at most 100 years")
    return timedelta(seconds=seconds)


@dataclass(frozen=True)
class ApiKey:
    """A key as listings show it: never the key itself, nor its hash."""

    id: str
    account_id: str
    prefix: str
    label: str | None
    scopes: tuple[str, ...]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    # In the future while a rotated key's grace period runs.
    revoked_at: datetime | None

    def state(self, now: datetime) -> str:
        """``active``, ``expired`` or ``revoked`` (``revoking``: during a grace period)."""
        if self.revoked_at is not None:
            return "revoked" if self.revoked_at <= now else "revoking"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    def live(self, now: datetime) -> bool:
        return self.state(now) in ("active", "revoking")


@dataclass(frozen=True)
class KeyGrant:
    """What a presented key lets its caller do, as the gateway caches it. It carries the
    key's end times, so a cached grant stops working when they pass."""

    account: Account
    key_id: str
    scopes: tuple[str, ...]
    expires_at: datetime | None
    revoked_at: datetime | None  # a rotated key's end of grace; else None

    def allows(self, scope: str) -> bool:
        return scope in self.scopes

    def revoked(self, now: datetime) -> bool:
        return self.revoked_at is not None and self.revoked_at <= now

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now
