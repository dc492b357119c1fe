"""`daguerre up`'s demo key: the same across restarts, one live key, kept owner-only."""

from __future__ import annotations

import stat
from pathlib import Path

from daguerre.config import Settings
from daguerre.demokey import DEMO_ACCOUNT, KEY_FILE
from daguerre.launcher import Launcher
from daguerre.store import open_store


def live_demo_keys(settings: Settings) -> list[str]:
    store = open_store(settings)
    try:
        account = store.accounts.find_account(DEMO_ACCOUNT)
        assert account is not None
        return [k.id for k in store.accounts.list_api_keys(account.id)]
    finally:
        store.close()


def test_two_launches_share_one_demo_key(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    first = Launcher(settings)._demo_key()
    second = Launcher(settings)._demo_key()
    assert first == second
    assert len(live_demo_keys(settings)) == 1
    saved = tmp_path / KEY_FILE
    assert saved.read_text().strip() == first
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    store = open_store(settings)
    account = store.accounts.authenticate(first)
    store.close()
    assert account is not None and (account.name, account.tier) == (DEMO_ACCOUNT, "pro")


def test_keys_of_earlier_launches_are_revoked_when_a_new_one_is_made(tmp_path: Path) -> None:
    """Launches before this fix minted a key each: the first launch after it keeps one."""
    settings = Settings(data_dir=tmp_path)
    store = open_store(settings)
    demo = store.accounts.create_account(DEMO_ACCOUNT, "pro", "api")
    piled = [store.accounts.create_api_key(demo.id) for _ in range(3)]
    store.close()
    key = Launcher(settings)._demo_key()
    assert key not in piled
    assert len(live_demo_keys(settings)) == 1


def test_a_demo_key_that_stopped_working_is_replaced(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    first = Launcher(settings)._demo_key()
    store = open_store(settings)
    [revoked] = store.accounts.find_api_keys(first)
    store.accounts.revoke_api_key(revoked.id)
    store.close()
    second = Launcher(settings)._demo_key()
    assert second != first
    assert (tmp_path / KEY_FILE).read_text().strip() == second
    assert len(live_demo_keys(settings)) == 1
    (tmp_path / KEY_FILE).write_text("dg-not-a-key-of-ours\n")
    third = Launcher(settings)._demo_key()
    assert third not in (first, second)
    assert len(live_demo_keys(settings)) == 1
