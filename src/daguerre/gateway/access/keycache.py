"""Recently checked API keys, so that a surge does not cost a database read per request.

Profiled in a surge of 50 requests a second, most of them refusals: authenticating
every request was a fifth of the gateway's busy time. A key's grant (its account, tier
and scopes) is trusted for ``auth_cache_s`` after it was read: a change of tier, or a key
revoked through another gateway or the CLI, reaches a gateway within that time. A
revocation through this gateway's /admin API clears its cache at once, and expiry is
checked on every use (the grant carries the key's end times). Unknown keys are not
cached, so a key made a moment ago works at once.
"""

from __future__ import annotations

import time

from daguerre.store.accounts import hash_key
from daguerre.store.apikeys import KeyGrant


class KeyCache:
    def __init__(self, ttl_s: float, max_entries: int = 100_000) -> None:
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        # By the key's hash: the process need not hold every caller's secret.
        self._entries: dict[str, tuple[float, KeyGrant]] = {}

    def get(self, key: str) -> KeyGrant | None:
        if not self._ttl_s:
            return None
        entry = self._entries.get(hash_key(key))
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, key: str, grant: KeyGrant) -> None:
        if not self._ttl_s:
            return
        if len(self._entries) >= self._max_entries:
            self._entries.clear()  # rare (that many callers in one TTL): start over
        self._entries[hash_key(key)] = (time.monotonic() + self._ttl_s, grant)

    def clear(self) -> None:
        """Forget every key: after a revocation, the next use of each reads the database."""
        self._entries.clear()
