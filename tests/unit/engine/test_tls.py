"""The Temporal TLS / mTLS / API-key settings: checked at start-up, and passed to
``Client.connect`` as the SDK wants them (its connect is replaced here; the real
handshakes are in tests/integration/test_temporal_tls.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from temporalio.client import Client, TLSConfig

from daguerre.config import Settings
from daguerre.engine import client as engine_client
from daguerre.engine.tls import TemporalTLSError, connect_options
from daguerre.workers.worker import connect_with_retry


@pytest.fixture
def pems(tmp_path: Path) -> dict[str, Path]:
    files = {}
    for name in ("ca", "cert", "key"):
        files[name] = tmp_path / f"{name}.pem"
        files[name].write_bytes(f"-----{name}-----\n".encode())
    return files


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []

    async def fake_connect(target: str, **kwargs: Any) -> str:
        seen.append({"target": target, **kwargs})
        return "client"

    monkeypatch.setattr(Client, "connect", fake_connect)
    return seen


async def test_plain_by_default(calls: list[dict[str, Any]]) -> None:
    await engine_client.connect(Settings(temporal_address="t:7233", temporal_namespace="ns"))
    # No interceptors: tracing is off by default (engine/tracing.py).
    expected = {"target": "t:7233", "namespace": "ns", "tls": False, "api_key": None}
    assert calls == [{**expected, "interceptors": []}]


async def test_mutual_tls_reads_the_files(
    calls: list[dict[str, Any]], pems: dict[str, Path]
) -> None:
    settings = Settings(
        temporal_address="10.0.0.5:7233",
        temporal_tls_ca_file=pems["ca"],
        temporal_tls_cert_file=pems["cert"],
        temporal_tls_key_file=pems["key"],
        temporal_tls_server_name="temporal.internal",
    )
    await engine_client.connect(settings)
    assert calls[0]["tls"] == TLSConfig(
        server_root_ca_cert=b"-----ca-----\n",
        client_cert=b"-----cert-----\n",
        client_private_key=b"-----key-----\n",
        domain="temporal.internal",
    )
    assert calls[0]["api_key"] is None


async def test_api_key_turns_tls_on_with_the_system_roots(calls: list[dict[str, Any]]) -> None:
    settings = Settings(
        temporal_address="us-east-1.aws.api.temporal.io:7233",
        temporal_namespace="prod.a1b2c",
        temporal_api_key="secret-key",
    )
    await engine_client.connect(settings)
    assert calls[0]["namespace"] == "prod.a1b2c"
    assert calls[0]["api_key"] == "secret-key"
    assert calls[0]["tls"] == TLSConfig()
    assert "secret-key" not in repr(settings)


def test_tls_true_alone_uses_system_roots() -> None:
    options = connect_options(Settings(temporal_address="t:7233", temporal_tls=True))
    assert options == {"tls": TLSConfig(), "api_key": None}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"temporal_tls_cert_file": "cert"}, "temporal_tls_cert_file and temporal_tls_key_file"),
        ({"temporal_tls_key_file": "key"}, "temporal_tls_cert_file and temporal_tls_key_file"),
        ({"temporal_tls": False, "temporal_tls_ca_file": "ca"}, "temporal_tls is false"),
        ({"temporal_tls": False, "temporal_api_key": "k"}, "temporal_api_key needs TLS"),
        ({"temporal_tls_ca_file": "missing"}, "temporal_tls_ca_file: "),
    ],
)
def test_bad_combinations_fail_at_start_up(
    pems: dict[str, Path], fields: dict[str, Any], message: str
) -> None:
    paths = {"cert": pems["cert"], "key": pems["key"], "ca": pems["ca"]}
    values = {k: paths.get(v, v) if k.endswith("_file") else v for k, v in fields.items()}
    if values.get("temporal_tls_ca_file") == "missing":
        values["temporal_tls_ca_file"] = pems["ca"].parent / "nope.pem"
    with pytest.raises(ValidationError, match=message):
        Settings(temporal_address="t:7233", **values)


def test_tls_needs_an_address() -> None:
    with pytest.raises(ValidationError, match="need temporal_address"):
        Settings(temporal_address=None, temporal_api_key="k")


def test_settings_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, pems: dict[str, Path]
) -> None:
    monkeypatch.setenv("DAGUERRE_TEMPORAL_ADDRESS", "t:7233")
    monkeypatch.setenv("DAGUERRE_TEMPORAL_TLS_CERT_FILE", str(pems["cert"]))
    monkeypatch.setenv("DAGUERRE_TEMPORAL_TLS_KEY_FILE", str(pems["key"]))
    monkeypatch.setenv("DAGUERRE_TEMPORAL_API_KEY", "k")
    settings = Settings()
    assert settings.temporal_tls_cert_file == pems["cert"]
    assert settings.temporal_api_key is not None
    assert settings.temporal_api_key.get_secret_value() == "k"


async def test_a_file_gone_after_start_up_is_a_clear_error_and_not_retried(
    calls: list[dict[str, Any]], pems: dict[str, Path]
) -> None:
    settings = Settings(
        temporal_address="t:7233",
        temporal_tls_cert_file=pems["cert"],
        temporal_tls_key_file=pems["key"],
    )
    pems["key"].unlink()  # e.g. a secret unmounted after start-up
    with pytest.raises(TemporalTLSError, match=r"temporal_tls_key_file: cannot read .*key\.pem"):
        await connect_with_retry(settings, timeout_s=30)
    assert calls == []


def test_an_unreadable_file_is_refused_at_start_up(pems: dict[str, Path]) -> None:
    pems["ca"].unlink()
    with pytest.raises(ValidationError, match=r"temporal_tls_ca_file: .*ca\.pem is not a readable"):
        Settings(temporal_address="t:7233", temporal_tls_ca_file=pems["ca"])
