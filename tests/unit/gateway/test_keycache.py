"""The gateway's short memory of checked API keys."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import pytest

from daguerre.domain import Account
from daguerre.gateway.access import keycache
from daguerre.gateway.access.keycache import KeyCache
from daguerre.store.accounts import hash_key
from daguerre.store.apikeys import KeyGrant
from tests.support.frozen_clock import FrozenClock


def grant(account: Account) -> KeyGrant:
    return KeyGrant(account, f"key_{account.name}", ("images",), None, None)


ALICE = grant(Account(id="acct_a", name="alice", tier="free", product="api"))
BOB = grant(Account(id="acct_b", name="bob", tier="pro", product="api"))


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FrozenClock:
    fake = FrozenClock()
    monkeypatch.setattr(keycache, "time", fake)
    return fake


def test_a_key_is_trusted_for_its_ttl_then_read_again(clock: FrozenClock) -> None:
    cache = KeyCache(ttl_s=5.0)
    assert cache.get("dg-alice") is None
    cache.put("dg-alice", ALICE)
    clock.now += 4.9
    assert cache.get("dg-alice") == ALICE
    assert cache.get("dg-bob") is None  # other keys are not confused with it
    clock.now += 0.2
    assert cache.get("dg-alice") is None  # expired: the caller reads the database


def test_no_ttl_means_no_cache(clock: FrozenClock) -> None:
    cache = KeyCache(ttl_s=0.0)
    cache.put("dg-alice", ALICE)
    assert cache.get("dg-alice") is None


def test_a_full_cache_starts_over_rather_than_growing(clock: FrozenClock) -> None:
    cache = KeyCache(ttl_s=5.0, max_entries=2)
    cache.put("dg-alice", ALICE)
    cache.put("dg-bob", BOB)
    cache.put("dg-carol", ALICE)
    assert cache.get("dg-alice") is None and cache.get("dg-bob") is None
    assert cache.get("dg-carol") == ALICE


def test_clearing_forgets_every_key(clock: FrozenClock) -> None:
    """What a revocation through /admin/keys does: the next use reads the database."""
    cache = KeyCache(ttl_s=5.0)
    cache.put("dg-alice", ALICE)
    cache.put("dg-bob", BOB)
    cache.clear()
    assert cache.get("dg-alice") is None and cache.get("dg-bob") is None


class Reads:
    """The store's bulk read as the cache sees it: grants by key hash, each call noted."""

    def __init__(self, grants: dict[str, KeyGrant]) -> None:
        self.grants = {hash_key(key): grant for key, grant in grants.items()}
        self.calls: list[list[str]] = []

    def __call__(self, hashes: Sequence[str]) -> dict[str, KeyGrant]:
        self.calls.append(list(hashes))
        return {h: self.grants[h] for h in hashes if h in self.grants}


async def test_a_round_rereads_the_keys_in_use_in_one_query(clock: FrozenClock) -> None:
    """A key in use stays trusted past its first TTL without a request reading it."""
    cache = KeyCache(ttl_s=5.0)
    cache.put("dg-alice", ALICE)
    cache.put("dg-bob", BOB)
    upgraded = grant(Account(id="acct_a", name="alice", tier="pro", product="api"))
    reads = Reads({"dg-alice": upgraded, "dg-bob": BOB})
    clock.now += 2.5
    assert await cache.refresh(reads) == 2
    assert len(reads.calls) == 1 and len(reads.calls[0]) == 2
    clock.now += 4.9  # 7.4 s after the request's read; 4.9 s after the round's
    assert cache.get("dg-alice") == upgraded  # what the round read: the new tier
    assert cache.get("dg-bob") == BOB
    clock.now += 0.2
    assert cache.get("dg-alice") is None  # no round since: expired as before


async def test_a_round_drops_keys_the_database_no_longer_grants(clock: FrozenClock) -> None:
    """A key revoked elsewhere: the round finds no grant, so its next use reads the
    database (and is refused) instead of riding the cached grant to its TTL."""
    cache = KeyCache(ttl_s=5.0)
    cache.put("dg-alice", ALICE)
    cache.put("dg-bob", BOB)
    await cache.refresh(Reads({"dg-bob": BOB}))
    assert cache.get("dg-alice") is None
    assert cache.get("dg-bob") == BOB


async def test_keys_unused_for_a_while_are_not_read_again(clock: FrozenClock) -> None:
    cache = KeyCache(ttl_s=5.0)
    cache.put("dg-alice", ALICE)
    cache.put("dg-bob", BOB)
    reads = Reads({"dg-alice": ALICE, "dg-bob": BOB})
    for _ in range(int(keycache.KEEP_S / 2.5) + 1):
        clock.now += 2.5
        assert cache.get("dg-alice") == ALICE  # alice keeps coming back; bob does not
        await cache.refresh(reads)
    assert reads.calls[-1] == [hash_key("dg-alice")]
    assert cache.get("dg-bob") is None


async def test_a_clear_during_a_round_wins(clock: FrozenClock) -> None:
    """A revocation through this gateway clears the cache; a round that read before
    the clear must not bring the revoked key's grant back."""
    cache = KeyCache(ttl_s=5.0)
    cache.put("dg-alice", ALICE)

    def read_then_revoke(hashes: Sequence[str]) -> dict[str, KeyGrant]:
        cache.clear()  # what /admin/keys does while the round's query runs
        return {hashes[0]: ALICE}

    await cache.refresh(read_then_revoke)
    assert cache.get("dg-alice") is None


async def test_a_failed_round_leaves_entries_to_expire(caplog: pytest.LogCaptureFixture) -> None:
    """The database down: the round logs and the entries expire at their TTL, so
    requests read keys themselves (and meet the outage) as they did before rounds."""
    cache = KeyCache(ttl_s=0.02)
    cache.put("dg-alice", ALICE)

    def down(hashes: Sequence[str]) -> dict[str, KeyGrant]:
        raise OSError("database is down")

    task = asyncio.create_task(cache.run(down))
    await asyncio.sleep(0.05)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert "could not re-read the cached API keys" in caplog.text
    assert cache.get("dg-alice") is None  # past its TTL (real time: the loop's clock)


async def test_a_request_that_reads_a_key_during_a_round_keeps_its_newer_read(
    clock: FrozenClock,
) -> None:
    cache = KeyCache(ttl_s=5.0)
    cache.put("dg-alice", ALICE)
    upgraded = grant(Account(id="acct_a", name="alice", tier="pro", product="api"))

    def slow_read(hashes: Sequence[str]) -> dict[str, KeyGrant]:
        clock.now += 0.1
        cache.put("dg-alice", upgraded)  # a request read the key while the round ran
        return {}  # what the round read, earlier: as if the key were gone

    await cache.refresh(slow_read)
    assert cache.get("dg-alice") == upgraded
