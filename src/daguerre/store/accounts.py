"""Accounts and their API keys. Keys are shown once and stored only as sha256 hashes."""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from daguerre.domain import Account
from daguerre.store.apikeys import ApiKey, KeyGrant, default_scopes, parse_scopes
from daguerre.store.tables import AccountRow, ApiKeyRow, utcnow
from daguerre.store.webhook_secrets import WebhookSecrets, new_webhook_secret

log = logging.getLogger(__name__)

KEY_PREFIX = "dg-"
# last_used_at is written when a key is read from the database and its stored value is
# older than this: a write per key per minute at most, not one per request.
LAST_USED_EVERY = timedelta(minutes=1)


class KeyStateError(ValueError):
    """The key cannot do that in its state (e.g. rotating a revoked key)."""


# Keys read in one query: far below SQLite's and PostgreSQL's limits on parameters.
HASHES_PER_QUERY = 500
_GRANT_COLUMNS = select(
    AccountRow.id,
    AccountRow.name,
    AccountRow.tier,
    AccountRow.product,
    ApiKeyRow.id.label("key_id"),
    ApiKeyRow.key_hash,
    ApiKeyRow.scopes,
    ApiKeyRow.expires_at,
    ApiKeyRow.revoked_at,
    ApiKeyRow.last_used_at,
).join(ApiKeyRow, ApiKeyRow.account_id == AccountRow.id)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _account(row: AccountRow) -> Account:
    return Account(id=row.id, name=row.name, tier=row.tier, product=row.product)


class AccountStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def create_account(self, name: str, tier: str, product: str) -> Account:
        row = AccountRow(id=f"acct_{secrets.token_hex(8)}", name=name, tier=tier, product=product)
        with self._sessions.begin() as session:
            session.add(row)
        return _account(row)

    def find_account(self, name: str) -> Account | None:
        with self._sessions() as session:
            row = session.scalars(
                select(AccountRow).where(AccountRow.name == name).order_by(AccountRow.created_at)
            ).first()
            return _account(row) if row is not None else None

    def get_account(self, account_id: str) -> Account | None:
        with self._sessions() as session:
            row = session.get(AccountRow, account_id)
            return _account(row) if row is not None else None

    # --- API keys ---------------------------------------------------------------------------
    def create_api_key(
        self,
        account_id: str,
        *,
        label: str | None = None,
        scopes: str | Iterable[str] | None = None,
        expires_at: datetime | None = None,
    ) -> str:
        """A new key for the account. The return value is the only copy of the key."""
        return self.issue_api_key(account_id, label=label, scopes=scopes, expires_at=expires_at)[0]

    def issue_api_key(
        self,
        account_id: str,
        *,
        label: str | None = None,
        scopes: str | Iterable[str] | None = None,
        expires_at: datetime | None = None,
        expires_in: timedelta | None = None,
    ) -> tuple[str, ApiKey]:
        """A new key (its only copy) and what listings will show of it. ``scopes`` None:
        the account's default (admin for the admin tier, else images). ``expires_in``
        counts from the key's own creation time (so that its lifetime is exactly that),
        ``expires_at`` is a moment. KeyError: no such account; ValueError: an unknown
        scope."""
        now = utcnow()
        if expires_in is not None:
            expires_at = now + expires_in
        with self._sessions.begin() as session:
            account = session.get(AccountRow, account_id)
            if account is None:
                raise KeyError(account_id)
            chosen = default_scopes(account.tier) if scopes is None else parse_scopes(scopes)
            key, row = _new_key_row(account_id, label, chosen, expires_at, now)
            session.add(row)
            return key, _api_key(row)

    def get_api_key(self, key_id: str) -> ApiKey | None:
        with self._sessions() as session:
            row = session.get(ApiKeyRow, key_id)
            return _api_key(row) if row is not None else None

    def list_api_keys(
        self, account_id: str | None = None, *, include_revoked: bool = False
    ) -> list[ApiKey]:
        """Keys, oldest first: one account's or everyone's; live ones only unless
        ``include_revoked`` (which also brings the expired)."""
        query = select(ApiKeyRow).order_by(ApiKeyRow.created_at, ApiKeyRow.id)
        if account_id is not None:
            query = query.where(ApiKeyRow.account_id == account_id)
        if not include_revoked:
            now = utcnow()
            query = query.where(
                or_(ApiKeyRow.revoked_at.is_(None), ApiKeyRow.revoked_at > now),
                or_(ApiKeyRow.expires_at.is_(None), ApiKeyRow.expires_at > now),
            )
        with self._sessions() as session:
            return [_api_key(row) for row in session.scalars(query)]

    def find_api_keys(self, reference: str) -> list[ApiKey]:
        """Keys an operator may mean by ``reference``: a key id, a listed prefix, or the
        whole key (to revoke a leaked key without looking it up)."""
        query = select(ApiKeyRow).where(
            or_(
                ApiKeyRow.id == reference,
                ApiKeyRow.prefix == reference,
                ApiKeyRow.key_hash == hash_key(reference),
            )
        )
        with self._sessions() as session:
            return [_api_key(row) for row in session.scalars(query)]

    def revoke_api_key(self, key_id: str, at: datetime | None = None) -> ApiKey | None:
        """Revoke a key now (or at ``at``); an earlier revocation stands. None: no such key.
        Gateways that cached the key stop honouring it within ``auth_cache_s``."""
        when = at or utcnow()
        with self._sessions.begin() as session:
            row = session.get(ApiKeyRow, key_id)
            if row is None:
                return None
            if row.revoked_at is None or row.revoked_at > when:
                row.revoked_at = when
            return _api_key(row)

    def rotate_api_key(
        self,
        key_id: str,
        *,
        grace: timedelta = timedelta(0),
        expires_in: timedelta | Literal["same", "never"] = "same",
    ) -> tuple[str, ApiKey, ApiKey] | None:
        """A successor for a key: same account, label and scopes, and (``"same"``) the
        same lifetime counted from now. The old key is revoked after ``grace``. Returns
        (new key, its listing, the old key's listing); None: no such key; KeyStateError:
        the key was revoked or rotated already."""
        now = utcnow()
        with self._sessions.begin() as session:
            old = session.get(ApiKeyRow, key_id)
            if old is None:
                return None
            # A conditional write, so that of two concurrent rotations only one wins.
            taken = session.execute(
                update(ApiKeyRow)
                .where(ApiKeyRow.id == key_id, ApiKeyRow.revoked_at.is_(None))
                .values(revoked_at=now + grace)
                .execution_options(synchronize_session=False)
            )
            if taken.rowcount != 1:  # type: ignore[attr-defined]
                raise KeyStateError(f"key {key_id} was revoked or rotated already")
            if expires_in == "same":
                lifetime = old.expires_at - old.created_at if old.expires_at else None
                expires_at = now + lifetime if lifetime is not None else None
            else:
                expires_at = None if expires_in == "never" else now + expires_in
            scopes = parse_scopes(old.scopes)
            key, row = _new_key_row(old.account_id, old.label, scopes, expires_at, now)
            session.add(row)
            session.flush()
            session.refresh(old)
            return key, _api_key(row), _api_key(old)

    def check_key(self, key: str) -> KeyGrant | None:
        """What ``key`` may do; None for an unknown or revoked key. An expired key keeps
        its grant, so that the caller can say it expired. A plain Core query, not the
        ORM's: a surge of new accounts is a burst of these, each on a gateway thread
        that needs the GIL."""
        key_hash = hash_key(key)
        return self.grants_by_hash([key_hash]).get(key_hash)

    def grants_by_hash(self, key_hashes: Sequence[str]) -> dict[str, KeyGrant]:
        """The live grants of many keys at once, by their hashes: what the gateway's key
        cache re-reads in one query per round instead of one per key. Revoked and unknown
        keys are left out; a use is recorded as check_key does."""
        grants: dict[str, KeyGrant] = {}
        now = utcnow()
        touch: list[str] = []
        for start in range(0, len(key_hashes), HASHES_PER_QUERY):
            chunk = list(key_hashes[start : start + HASHES_PER_QUERY])
            with self._sessions.kw["bind"].connect() as conn:
                rows = conn.execute(_GRANT_COLUMNS.where(ApiKeyRow.key_hash.in_(chunk))).all()
            for row in rows:
                grant = KeyGrant(
                    account=Account(row.id, row.name, row.tier, row.product),
                    key_id=row.key_id,
                    scopes=tuple(row.scopes.split()),
                    expires_at=row.expires_at,
                    revoked_at=row.revoked_at,
                )
                if grant.revoked(now):
                    continue
                grants[row.key_hash] = grant
                if not grant.expired(now) and (
                    row.last_used_at is None or row.last_used_at < now - LAST_USED_EVERY
                ):
                    touch.append(grant.key_id)
        if touch:
            self._touch(touch, now)
        return grants

    def authenticate(self, key: str) -> Account | None:
        """The account of a live (neither revoked nor expired) key."""
        grant = self.check_key(key)
        if grant is None or grant.expired(utcnow()):
            return None
        return grant.account

    def _touch(self, key_ids: list[str], now: datetime) -> None:
        """Record a use. Best effort: a busy database must not fail the request."""
        try:
            with self._sessions.kw["bind"].begin() as conn:
                conn.execute(
                    update(ApiKeyRow).where(ApiKeyRow.id.in_(key_ids)).values(last_used_at=now)
                )
        except SQLAlchemyError as err:
            log.debug("could not record the use of keys %s: %s", key_ids, err)

    # --- webhook signing secrets (see store/webhook_secrets.py) ------------------------------
    def webhook_secrets(self, account_id: str) -> WebhookSecrets | None:
        """The account's signing secrets; None: it has none yet (or no such account)."""
        query = select(
            AccountRow.webhook_secret,
            AccountRow.webhook_secret_previous,
            AccountRow.webhook_secret_rotated_at,
        ).where(AccountRow.id == account_id)
        with self._sessions.kw["bind"].connect() as conn:
            row = conn.execute(query).first()
        if row is None or row.webhook_secret is None:
            return None
        return WebhookSecrets(
            row.webhook_secret, row.webhook_secret_previous, row.webhook_secret_rotated_at
        )

    def ensure_webhook_secret(self, account_id: str) -> WebhookSecrets | None:
        """The account's secrets, made on first need; None: no such account. Of two
        first needs at once, one writes and both read what it wrote."""
        with self._sessions.kw["bind"].begin() as conn:
            conn.execute(
                update(AccountRow)
                .where(AccountRow.id == account_id, AccountRow.webhook_secret.is_(None))
                .values(webhook_secret=new_webhook_secret(), webhook_secret_rotated_at=utcnow())
            )
        return self.webhook_secrets(account_id)

    def rotate_webhook_secret(self, account_id: str) -> WebhookSecrets | None:
        """A new current secret; the one it replaces becomes the previous (one written
        statement, so two rotations at once cannot lose a secret). None: no such account."""
        with self._sessions.kw["bind"].begin() as conn:
            done = conn.execute(
                update(AccountRow)
                .where(AccountRow.id == account_id)
                .values(
                    webhook_secret_previous=AccountRow.webhook_secret,
                    webhook_secret=new_webhook_secret(),
                    webhook_secret_rotated_at=utcnow(),
                )
            )
            if done.rowcount != 1:
                return None
        return self.webhook_secrets(account_id)


def _new_key_row(
    account_id: str,
    label: str | None,
    scopes: tuple[str, ...],
    expires_at: datetime | None,
    now: datetime,
) -> tuple[str, ApiKeyRow]:
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKeyRow(
        id=f"key_{secrets.token_hex(8)}",
        account_id=account_id,
        key_hash=hash_key(key),
        prefix=key[:10],
        label=label,
        scopes=" ".join(scopes),
        expires_at=expires_at,
        created_at=now,  # the moment its expiry counts from, to the microsecond
    )
    return key, row


def _api_key(row: ApiKeyRow) -> ApiKey:
    return ApiKey(
        id=row.id,
        account_id=row.account_id,
        prefix=row.prefix,
        label=row.label,
        scopes=tuple(row.scopes.split()),
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )
