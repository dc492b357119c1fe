"""The `daguerre` command's own behaviour (the server-facing parts are integration tests)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from daguerre.cli import app
from daguerre.commands.generate import output_paths, sse_events
from daguerre.config import Settings
from daguerre.store import open_store


def test_keys_create_prints_a_working_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAGUERRE_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(app, ["keys", "create", "--tier", "plus", "--product", "chat"])
    assert result.exit_code == 0, result.output
    key = result.stdout.strip().splitlines()[-1]
    store = open_store(Settings(data_dir=tmp_path))
    account = store.accounts.authenticate(key)
    assert account is not None and (account.tier, account.product) == ("plus", "chat")
    store.close()


def test_keys_create_refuses_unknown_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGUERRE_DATA_DIR", str(tmp_path))
    runner = CliRunner()
    assert runner.invoke(app, ["keys", "create", "--tier", "gold"]).exit_code == 2
    assert runner.invoke(app, ["keys", "create", "--product", "nope"]).exit_code == 2


def test_generate_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DAGUERRE_API_KEY", raising=False)
    result = CliRunner().invoke(app, ["generate", "a circle"])
    assert result.exit_code == 2
    assert "DAGUERRE_API_KEY" in result.output


def test_sse_parsing() -> None:
    lines = ["event: state", 'data: {"a": 1}', "", ": keep-alive", "", "event: completed"]
    lines += ['data: {"b": 2}', ""]
    assert list(sse_events(iter(lines))) == [("state", {"a": 1}), ("completed", {"b": 2})]


def test_output_paths() -> None:
    assert output_paths(Path("o/x.png"), 1) == [Path("o/x.png")]
    assert output_paths(Path("x.png"), 2) == [Path("x-1.png"), Path("x-2.png")]


def test_keys_create_admin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAGUERRE_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(app, ["keys", "create", "--admin"])
    assert result.exit_code == 0, result.output
    store = open_store(Settings(data_dir=tmp_path))
    account = store.accounts.authenticate(result.stdout.strip().splitlines()[-1])
    assert account is not None and account.tier == "admin"
    store.close()


def test_admin_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DAGUERRE_ADMIN_KEY", raising=False)
    result = CliRunner().invoke(app, ["admin", "show"])
    assert result.exit_code == 2
    assert "DAGUERRE_ADMIN_KEY" in result.output


def test_admin_pace_sends_a_number_or_goes_back_to_the_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import httpx

    calls: list[tuple[str, str, object]] = []

    def request(method: str, url: str, json: object, **_: object) -> httpx.Response:
        calls.append((method, url, json))
        return httpx.Response(200, json={"pool": "chat", "admit_pace": 2.0})

    monkeypatch.setattr(httpx, "request", request)
    options = ["--key", "k", "--server", "http://gw"]
    assert CliRunner().invoke(app, ["admin", "pace", "chat", "2", *options]).exit_code == 0
    assert CliRunner().invoke(app, ["admin", "pace", "chat", "config", *options]).exit_code == 0
    wrong = CliRunner().invoke(app, ["admin", "pace", "chat", "lots", *options])
    assert wrong.exit_code != 0 and "give a number" in wrong.output
    assert calls == [
        ("PUT", "http://gw/admin/pools/chat/pace", {"pace": 2.0}),
        ("PUT", "http://gw/admin/pools/chat/pace", {"pace": None}),
    ]


def test_admin_set_feature_sends_shares_per_tier(monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    calls: list[tuple[str, str, object]] = []

    def request(method: str, url: str, json: object, **_: object) -> httpx.Response:
        calls.append((method, url, json))
        return httpx.Response(200, json={"percent": 100.0})

    monkeypatch.setattr(httpx, "request", request)
    options = ["--key", "k", "--server", "http://gw"]
    shares = ["admin", "set-feature", "generate", "--tier-percent", "free=10, plus=50"]
    assert CliRunner().invoke(app, [*shares, *options]).exit_code == 0
    dropped = ["admin", "set-feature", "generate", "--tier-percent", ""]
    assert CliRunner().invoke(app, [*dropped, *options]).exit_code == 0
    wrong = CliRunner().invoke(app, [*shares[:3], "--tier-percent", "free:10", *options])
    assert wrong.exit_code == 2 and "TIER=PERCENT" in wrong.output
    assert calls == [
        ("PATCH", "http://gw/admin/features/generate", {"tier_percent": {"free": 10, "plus": 50}}),
        ("PATCH", "http://gw/admin/features/generate", {"tier_percent": {}}),
    ]
