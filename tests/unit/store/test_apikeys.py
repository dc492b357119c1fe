"""The API key lifecycle in the store: labels, scopes, expiry, revocation, rotation, and
the upgrade of keys made before scopes existed (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, text

from daguerre.store import Store
from daguerre.store import accounts as accounts_module
from daguerre.store.accounts import KeyStateError, hash_key
from daguerre.store.apikeys import parse_duration, parse_scopes
from daguerre.store.migrate import alembic_config, upgrade_head
from daguerre.store.tables import utcnow


def test_scopes_and_durations_parse_or_say_what_is_wrong() -> None:
    assert parse_scopes("admin images") == ("images", "admin")
    assert parse_scopes(["admin,images"]) == ("images", "admin")
    with pytest.raises(ValueError, match="unknown scope 'root'"):
        parse_scopes(["images", "root"])
    with pytest.raises(ValueError, match="at least one"):
        parse_scopes([])
    assert parse_duration("30d") == timedelta(days=30)
    assert parse_duration("12h") == timedelta(hours=12)
    assert parse_duration(90) == timedelta(seconds=90)
    for bad in ("soon", "-1d", "0s", 0):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_a_key_has_a_label_scopes_and_expiry(store: Store) -> None:
    accounts = store.accounts
    alice = accounts.create_account("alice", "pro", "api")
    key, info = accounts.issue_api_key(
        alice.id, label="ci", expires_at=utcnow() + timedelta(days=30)
    )
    assert (info.label, info.scopes, info.prefix) == ("ci", ("images",), key[:10])
    grant = accounts.check_key(key)
    assert grant is not None and grant.account == alice and grant.allows("images")
    assert not grant.allows("admin")
    ops = accounts.create_account("ops", "admin", "api")
    assert accounts.issue_api_key(ops.id)[1].scopes == ("admin",)  # the tier's default
    both = accounts.issue_api_key(ops.id, scopes=["images", "admin"])[1]
    assert both.scopes == ("images", "admin")
    with pytest.raises(KeyError):
        accounts.issue_api_key("acct_nobody")
    # Listings never carry the key or its hash.
    listed = accounts.list_api_keys(alice.id)
    assert [k.id for k in listed] == [info.id]
    assert key not in repr(listed)


def test_an_expired_key_is_told_apart_from_an_unknown_one(store: Store) -> None:
    accounts = store.accounts
    alice = accounts.create_account("alice", "pro", "api")
    key = accounts.create_api_key(alice.id, expires_at=utcnow() - timedelta(seconds=1))
    grant = accounts.check_key(key)
    assert grant is not None and grant.expired(utcnow())
    assert accounts.authenticate(key) is None
    assert accounts.check_key("dg-unknown") is None
    assert accounts.list_api_keys(alice.id) == []
    assert [k.state(utcnow()) for k in accounts.list_api_keys(include_revoked=True)] == ["expired"]


def test_revoking_stops_a_key_and_keeps_it_listed(store: Store) -> None:
    accounts = store.accounts
    alice = accounts.create_account("alice", "pro", "api")
    key, info = accounts.issue_api_key(alice.id)
    assert accounts.find_api_keys(info.prefix) == [info]
    assert accounts.find_api_keys(key) == [info]  # the whole key finds it too
    revoked = accounts.revoke_api_key(info.id)
    assert revoked is not None and revoked.state(utcnow()) == "revoked"
    assert accounts.check_key(key) is None and accounts.authenticate(key) is None
    again = accounts.revoke_api_key(info.id)
    assert again is not None and again.revoked_at == revoked.revoked_at
    assert accounts.revoke_api_key("key_nope") is None
    assert accounts.list_api_keys(alice.id) == []
    assert [k.id for k in accounts.list_api_keys(alice.id, include_revoked=True)] == [info.id]


def test_rotation_makes_a_twin_and_retires_the_old_key(store: Store) -> None:
    accounts = store.accounts
    ops = accounts.create_account("ops", "pro", "api")
    old_key, old = accounts.issue_api_key(
        ops.id, label="ci", scopes=["images", "admin"], expires_at=utcnow() + timedelta(days=7)
    )
    rotated = accounts.rotate_api_key(old.id)
    assert rotated is not None
    new_key, new, retired = rotated
    assert (new.account_id, new.label, new.scopes) == (ops.id, "ci", ("images", "admin"))
    assert new.expires_at is not None and old.expires_at is not None
    # The same lifetime, counted from now.
    lifetime = new.expires_at - new.created_at
    assert abs(lifetime - timedelta(days=7)) < timedelta(seconds=5)
    assert retired.id == old.id and retired.state(utcnow()) == "revoked"
    assert accounts.check_key(old_key) is None
    assert accounts.authenticate(new_key) == ops
    with pytest.raises(KeyStateError):
        accounts.rotate_api_key(old.id)  # rotated already: rotate its successor
    assert accounts.rotate_api_key("key_nope") is None


def test_a_grace_period_keeps_the_old_key_working_for_a_while(store: Store) -> None:
    accounts = store.accounts
    alice = accounts.create_account("alice", "pro", "api")
    old_key, old = accounts.issue_api_key(alice.id)
    rotated = accounts.rotate_api_key(old.id, grace=timedelta(hours=1), expires_in="never")
    assert rotated is not None
    _, new, retired = rotated
    assert new.expires_at is None
    assert retired.state(utcnow()) == "revoking"
    assert accounts.authenticate(old_key) == alice
    grant = accounts.check_key(old_key)
    assert grant is not None and not grant.revoked(utcnow())
    assert grant.revoked(utcnow() + timedelta(hours=2))  # a cached grant ends on time too
    # Revoking now cuts the grace short; revoking later would not extend it.
    assert accounts.revoke_api_key(old.id) is not None
    assert accounts.authenticate(old_key) is None


def test_use_is_recorded_at_most_once_a_minute(store: Store) -> None:
    accounts = store.accounts
    alice = accounts.create_account("alice", "pro", "api")
    key, info = accounts.issue_api_key(alice.id)
    assert info.last_used_at is None
    accounts.check_key(key)
    first = accounts.get_api_key(info.id)
    assert first is not None and first.last_used_at is not None
    accounts.check_key(key)
    second = accounts.get_api_key(info.id)
    assert second is not None and second.last_used_at == first.last_used_at


def test_many_keys_are_read_in_one_call_by_their_hashes(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the gateway's key cache re-reads each round: live grants by hash, in chunks;
    revoked and unknown keys left out; each use recorded."""
    monkeypatch.setattr(accounts_module, "HASHES_PER_QUERY", 2)  # several chunks
    accounts = store.accounts
    issued = []
    for name in ("alice", "bob", "carol"):
        account = accounts.create_account(name, "pro", "api")
        issued.append(accounts.issue_api_key(account.id))
    revoked_key, revoked = issued[2]
    assert accounts.revoke_api_key(revoked.id) is not None
    hashes = [hash_key(key) for key, _ in issued] + [hash_key("dg-unknown")]
    grants = accounts.grants_by_hash(hashes)
    assert sorted(grants) == sorted(hash_key(key) for key, _ in issued[:2])
    for key, info in issued[:2]:
        assert grants[hash_key(key)].key_id == info.id
        used = accounts.get_api_key(info.id)
        assert used is not None and used.last_used_at is not None
    assert hash_key(revoked_key) not in grants


def test_keys_of_admin_accounts_keep_their_powers_through_the_upgrade(tmp_path: Path) -> None:
    """Before scopes, an admin-tier account's key could call /v1 and /admin: after 0006
    it has both scopes; everyone else's keys have ``images``."""
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0005")
        for account, tier in (("acct_ops", "admin"), ("acct_user", "pro")):
            conn.execute(
                text(
                    "INSERT INTO accounts (id, name, tier, product, created_at) "
                    "VALUES (:id, :id, :tier, 'api', '2026-01-01 00:00:00')"
                ),
                {"id": account, "tier": tier},
            )
            conn.execute(
                text(
                    "INSERT INTO api_keys (id, account_id, key_hash, prefix, created_at) "
                    "VALUES (:key, :id, :key, 'dg-x', '2026-01-01 00:00:00')"
                ),
                {"key": f"key_{account}", "id": account},
            )
    upgrade_head(engine)
    with engine.connect() as conn:
        scopes = dict(conn.execute(text("SELECT account_id, scopes FROM api_keys")).all())
    engine.dispose()
    assert scopes == {"acct_ops": "images admin", "acct_user": "images"}


def test_a_lifetime_counts_from_the_keys_own_creation(store: Store) -> None:
    """``expires_in`` and the created time come from one clock reading: a 30-day key
    lives exactly 30 days (an expiry computed before the row once made it a second
    short, as the admin API showed)."""
    account = store.accounts.create_account("exact", "pro", "api")
    _, info = store.accounts.issue_api_key(account.id, expires_in=timedelta(days=30))
    assert info.expires_at is not None
    assert info.expires_at - info.created_at == timedelta(days=30)
