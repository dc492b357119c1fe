"""Accounts and their API keys. Keys are shown once and stored only as sha256 hashes."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from daguerre.domain import Account
from daguerre.store.tables import AccountRow, ApiKeyRow

KEY_PREFIX = "dg-"


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

    def create_api_key(self, account_id: str) -> str:
        """A new key for the account. The return value is the only copy of the key."""
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        with self._sessions.begin() as session:
            session.add(
                ApiKeyRow(
                    id=f"key_{secrets.token_hex(8)}",
                    account_id=account_id,
                    key_hash=hash_key(key),
                    prefix=key[:10],
                )
            )
        return key

    def authenticate(self, key: str) -> Account | None:
        """The key's account. A plain Core query, not the ORM's: a surge of new accounts
        is a burst of these, each on a gateway thread that needs the GIL."""
        query = (
            select(AccountRow.id, AccountRow.name, AccountRow.tier, AccountRow.product)
            .join(ApiKeyRow, ApiKeyRow.account_id == AccountRow.id)
            .where(ApiKeyRow.key_hash == hash_key(key), ApiKeyRow.revoked_at.is_(None))
        )
        with self._sessions.kw["bind"].connect() as conn:
            row = conn.execute(query).first()
        return Account(*row) if row is not None else None
