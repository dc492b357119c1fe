"""Recently checked API keys, so that a surge does not cost a database read per request.

Profiled in a surge of 50 requests a second, most of them refusals: authenticating
every request was a fifth of the gateway's busy time. A key's account (and so its tier)
is trusted for ``auth_cache_s`` after it was read: a change of tier, or a key deleted
from the database, reaches a gateway within that time. Unknown keys are not cached, so
a key made a moment ago works at once.
"""

from __future__ import annotations

import time

from daguerre.domain import Account
from daguerre.store.accounts import hash_key


class KeyCache:
    def __init__(self, ttl_s: float, max_entries: int = 100_000) -> None:
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        # By the key's hash: the process need not hold every caller's secret.
        self._entries: dict[str, tuple[float, Account]] = {}

    def get(self, key: str) -> Account | None:
        if not self._ttl_s:
            return None
        entry = self._entries.get(hash_key(key))
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, key: str, account: Account) -> None:
        if not self._ttl_s:
            return
        if len(self._entries) >= self._max_entries:
            self._entries.clear()  # rare (that many callers in one TTL): start over
        self._entries[hash_key(key)] = (time.monotonic() + self._ttl_s, account)
