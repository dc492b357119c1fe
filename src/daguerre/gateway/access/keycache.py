"""Recently checked API keys, so that a surge does not cost a database read per request.

Profiled in a surge of 50 requests a second, most of them refusals: authenticating
every request was a fifth of the gateway's busy time. A key's grant (its account, tier
and scopes) is trusted for ``auth_cache_s`` after it was read: a change of tier, or a key
revoked through another gateway or the CLI, reaches a gateway within that time. A
revocation through this gateway's /admin API clears its cache at once, and expiry is
checked on every use (the grant carries the key's end times). Unknown keys are not
cached, so a key made a moment ago works at once.

The keys used in the last ``KEEP_S`` are re-read in the background, in one query
every half ``auth_cache_s`` (``run``), rather than each by a request that finds its
grant expired. Profiled in a flood of 400 refused requests a second from 600 free
accounts, those per-key reads were 120 database reads a second, each a hop to a
thread that needs the GIL: paid requests queued behind them (their answer p99 1.35 s,
against 0.13 s with no reads). A key unused for longer is dropped at the next round,
and its next use reads it as before.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from daguerre.store.accounts import hash_key
from daguerre.store.apikeys import KeyGrant
from daguerre.store.threads import run_blocking

log = logging.getLogger(__name__)

ReadGrants = Callable[[Sequence[str]], dict[str, KeyGrant]]  # by key hash
# A key used within this long is kept fresh by the rounds: a caller who comes back
# within a minute does not wait on the database (one query covers every such key).
KEEP_S = 60.0


@dataclass
class _Entry:
    grant: KeyGrant
    read_at: float  # time.monotonic() when the database was read
    used_at: float  # time.monotonic() of its last use


class KeyCache:
    def __init__(self, ttl_s: float, max_entries: int = 100_000) -> None:
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        # By the key's hash: the process need not hold every caller's secret.
        self._entries: dict[str, _Entry] = {}
        self._generation = 0  # bumped by clear(): a round's reads from before it are stale

    def get(self, key: str) -> KeyGrant | None:
        if not self._ttl_s:
            return None
        entry = self._entries.get(hash_key(key))
        now = time.monotonic()
        if entry is None or entry.read_at + self._ttl_s < now:
            return None
        entry.used_at = now
        return entry.grant

    def put(self, key: str, grant: KeyGrant) -> None:
        if not self._ttl_s:
            return
        key_hash = hash_key(key)
        if len(self._entries) >= self._max_entries and key_hash not in self._entries:
            self._entries.clear()  # rare (that many callers in one TTL): start over
        now = time.monotonic()
        self._entries[key_hash] = _Entry(grant, read_at=now, used_at=now)

    def clear(self) -> None:
        """Forget every key: after a revocation, the next use of each reads the database."""
        self._entries.clear()
        self._generation += 1

    async def refresh(self, read: ReadGrants) -> int:
        """Re-read, in one query, every key used in the last ``KEEP_S``; drop the others,
        and the keys the database no longer grants (revoked, deleted: their next use
        reads them, and is refused). How many keys it read."""
        now = time.monotonic()
        for key_hash, entry in list(self._entries.items()):
            if entry.used_at + KEEP_S < now or entry.read_at + self._ttl_s < now:
                del self._entries[key_hash]
        kept = list(self._entries)
        if not kept:
            return 0
        generation = self._generation
        grants = await run_blocking(read, kept)
        if generation != self._generation:  # cleared meanwhile: these reads may be stale
            return len(kept)
        for key_hash in kept:
            current = self._entries.get(key_hash)
            if current is None or current.read_at > now:
                continue  # dropped meanwhile (a full cache started over), or read again
            grant = grants.get(key_hash)
            if grant is None:
                del self._entries[key_hash]
            else:
                current.grant, current.read_at = grant, now
        return len(kept)

    async def run(self, read: ReadGrants) -> None:
        """Refresh every half TTL, for the gateway's life. A failed round is logged and
        left to the next one: meanwhile entries expire and requests read keys themselves."""
        if not self._ttl_s:
            return
        while True:
            await asyncio.sleep(self._ttl_s / 2)
            try:
                await self.refresh(read)
            except Exception as err:  # the next round tries again
                log.warning("could not re-read the cached API keys: %s", err)
