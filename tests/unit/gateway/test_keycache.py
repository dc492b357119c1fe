"""The gateway's short memory of checked API keys."""

from __future__ import annotations

import pytest

from daguerre.domain import Account
from daguerre.gateway.access import keycache
from daguerre.gateway.access.keycache import KeyCache
from daguerre.store.apikeys import KeyGrant


def grant(account: Account) -> KeyGrant:
    return KeyGrant(account, f"key_{account.name}", ("images",), None, None)


ALICE = grant(Account(id="acct_a", name="alice", tier="free", product="api"))
BOB = grant(Account(id="acct_b", name="bob", tier="pro", product="api"))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(keycache.time, "monotonic", fake)
    return fake


def test_a_key_is_trusted_for_its_ttl_then_read_again(clock: Clock) -> None:
    cache = KeyCache(ttl_s=5.0)
    assert cache.get("dg-alice") is None
    cache.put("dg-alice", ALICE)
    clock.now += 4.9
    assert cache.get("dg-alice") == ALICE
    assert cache.get("dg-bob") is None  # other keys are not confused with it
    clock.now += 0.2
    assert cache.get("dg-alice") is None  # expired: the caller reads the database


def test_no_ttl_means_no_cache(clock: Clock) -> None:
    cache = KeyCache(ttl_s=0.0)
    cache.put("dg-alice", ALICE)
    assert cache.get("dg-alice") is None


def test_a_full_cache_starts_over_rather_than_growing(clock: Clock) -> None:
    cache = KeyCache(ttl_s=5.0, max_entries=2)
    cache.put("dg-alice", ALICE)
    cache.put("dg-bob", BOB)
    cache.put("dg-carol", ALICE)
    assert cache.get("dg-alice") is None and cache.get("dg-bob") is None
    assert cache.get("dg-carol") == ALICE


def test_clearing_forgets_every_key(clock: Clock) -> None:
    """What a revocation through /admin/keys does: the next use reads the database."""
    cache = KeyCache(ttl_s=5.0)
    cache.put("dg-alice", ALICE)
    cache.put("dg-bob", BOB)
    cache.clear()
    assert cache.get("dg-alice") is None and cache.get("dg-bob") is None
