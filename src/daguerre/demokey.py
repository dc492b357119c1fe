"""The demo account's API key for `daguerre up`: made once, then reused at every start.

Minting one per start left a live pro-tier key behind for every restart, and broke the
chat link and the DAGUERRE_API_KEY a user had copied from the last banner. The key is
kept in ``<data dir>/demo.key`` (0600: it is a working key). Should it stop working
(revoked, expired, or the database was replaced) a new one is made, and the demo
account's other keys are revoked: nobody holds them any more but old banners.
"""

from __future__ import annotations

import os
from pathlib import Path

from daguerre.store.accounts import AccountStore
from daguerre.store.apikeys import SCOPE_IMAGES
from daguerre.store.tables import utcnow

DEMO_ACCOUNT = "demo"
DEMO_TIER = "pro"
DEMO_PRODUCT = "api"
DEMO_LABEL = "demo"
KEY_FILE = "demo.key"


def demo_key(accounts: AccountStore, data_dir: Path) -> str:
    """The demo account's key: the saved one if it still works, else a new one."""
    account = accounts.find_account(DEMO_ACCOUNT) or accounts.create_account(
        DEMO_ACCOUNT, DEMO_TIER, DEMO_PRODUCT
    )
    path = data_dir / KEY_FILE
    saved = _read(path)
    if saved is not None:
        grant = accounts.check_key(saved)
        if (
            grant is not None
            and grant.account.id == account.id
            and grant.allows(SCOPE_IMAGES)
            and not grant.expired(utcnow())
        ):
            return saved
    key, made = accounts.issue_api_key(account.id, label=DEMO_LABEL, scopes=[SCOPE_IMAGES])
    # Saved before the old keys go: a crash in between leaves a working key on disk.
    _write(path, key)
    for old in accounts.list_api_keys(account.id):
        if old.id != made.id:
            accounts.revoke_api_key(old.id)
    return key


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def _write(path: Path, key: str) -> None:
    """Replace the file in one step, readable by its owner only from the start."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an old tmp file keeps its mode through O_CREAT
        os.write(fd, (key + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
