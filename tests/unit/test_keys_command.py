"""`daguerre keys create | list | revoke | rotate`, against a SQLite store in tmp_path."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from daguerre.cli import app
from daguerre.config import Settings
from daguerre.store import Store, open_store


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    monkeypatch.setenv("DAGUERRE_DATA_DIR", str(tmp_path))
    opened = open_store(Settings(data_dir=tmp_path))
    yield opened
    opened.close()


def keys(*args: str) -> Result:
    result = CliRunner().invoke(app, ["keys", *args])
    return result


def made_key(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.stdout.strip().splitlines()[-1]


def words(output: str) -> str:
    """The output without the error box's borders and line breaks."""
    return " ".join(w for w in output.split() if w not in "│╭╮╰╯─")


def listing(*args: str) -> list[dict[str, str]]:
    result = keys("list", "--json", *args)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_create_with_label_expiry_and_scopes(store: Store) -> None:
    key = made_key(keys("create", "--name", "alice", "--label", "ci", "--expires", "30d"))
    grant = store.accounts.check_key(key)
    assert grant is not None and grant.scopes == ("images",)
    assert grant.expires_at is not None
    [row] = listing("alice")
    assert (row["label"], row["scopes"], row["status"]) == ("ci", "images", "active")
    assert row["expires"] and row["prefix"] == key[:10]
    assert key not in json.dumps(row)

    both = made_key(keys("create", "--account", grant.account.id, "--scope", "images,admin"))
    assert store.accounts.check_key(both).scopes == ("images", "admin")  # type: ignore[union-attr]
    wrong = keys("create", "--scope", "root")
    assert wrong.exit_code == 2 and "unknown scope 'root'" in wrong.output
    wrong = keys("create", "--expires", "later")
    assert wrong.exit_code == 2 and "not a duration" in wrong.output


def test_admin_flag_makes_an_admin_scoped_key(store: Store) -> None:
    key = made_key(keys("create", "--admin"))
    grant = store.accounts.check_key(key)
    assert grant is not None and grant.account.tier == "admin"
    assert grant.scopes == ("admin",)
    alice = store.accounts.create_account("alice", "pro", "api")
    extra = made_key(keys("create", "--account", alice.id, "--admin", "--scope", "images"))
    assert store.accounts.check_key(extra).scopes == ("images", "admin")  # type: ignore[union-attr]


def test_list_shows_every_account_and_hides_revoked_unless_asked(store: Store) -> None:
    made_key(keys("create", "--name", "alice"))
    bob_key = made_key(keys("create", "--name", "bob", "--label", "laptop"))
    assert len(listing()) == 2
    table = keys("list")
    assert table.exit_code == 0
    header = table.stdout.splitlines()[0].split()
    assert header == [
        "ID", "ACCOUNT", "PREFIX", "LABEL", "SCOPES", "CREATED", "EXPIRES", "LAST_USED",
        "REVOKED", "STATUS",
    ]  # fmt: skip
    assert bob_key not in table.stdout
    revoked = keys("revoke", bob_key[:10])
    assert revoked.exit_code == 0 and "revoked key_" in revoked.stdout
    assert store.accounts.authenticate(bob_key) is None
    assert listing("bob") == []
    assert [r["status"] for r in listing("bob", "--all")] == ["revoked"]
    assert keys("list", "nobody").exit_code == 2
    assert keys("revoke", "key_nope").exit_code == 2


def test_rotate_replaces_a_key_with_an_optional_grace(store: Store) -> None:
    old = made_key(keys("create", "--name", "alice", "--label", "app", "--expires", "7d"))
    [row] = listing("alice")
    new = made_key(keys("rotate", row["id"], "--grace", "1h"))
    assert new != old
    assert store.accounts.authenticate(old) is not None  # during the grace period
    assert store.accounts.authenticate(new) is not None
    rows = {r["id"]: r for r in listing("alice")}
    assert rows[row["id"]]["status"] == "revoking"
    successor = next(r for r in rows.values() if r["id"] != row["id"])
    assert (successor["label"], successor["scopes"]) == ("app", "images")
    again = keys("rotate", row["id"])
    assert again.exit_code == 2 and "rotated already" in words(again.output)
    last = made_key(keys("rotate", successor["id"], "--expires", "never"))
    assert store.accounts.authenticate(new) is None  # no grace: revoked at once
    grant = store.accounts.check_key(last)
    assert grant is not None and grant.expires_at is None
