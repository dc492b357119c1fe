"""What a "services" host runs in the network-namespace cluster test: a private
PostgreSQL (initdb in a temporary folder), a redis-server, a Temporal dev server and an
S3-compatible object store (moto's standalone server), each bound to the host's bridge
address and started with ``ip netns exec``. Their processes are ``Proc``s (logs in the
test's folder); ``Network.close`` kills whatever is left in the namespace."""

from __future__ import annotations

import importlib.util
import json
import os
import pwd
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import yaml

from daguerre.launcher import TEMPORAL_DYNAMIC_CONFIG, temporal_binary
from tests.support.netns import Host, postgres_folder, wait_port
from tests.support.stack import REPO, Proc

PG_BIN = Path("/usr/lib/postgresql/15/bin")
DEPLOYED_TEMPORAL_CONFIG = REPO / "deploy" / "temporal" / "dynamicconfig.yaml"
PG_PORT, REDIS_PORT, TEMPORAL_PORT, S3_PORT = 5432, 6379, 7233, 9000
S3_KEY, S3_SECRET, S3_REGION = "testing", "testing", "us-east-1"
AS_POSTGRES = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]


def temporal_config_arguments() -> list[str]:
    """The dev server's ``--dynamic-config-value`` arguments: deploy/temporal's file, unless
    the environment asks for the launcher's own (to measure what the file changes)."""
    if os.environ.get("DAGUERRE_TEST_CLUSTER_TEMPORAL_CONFIG") == "dev":
        return list(TEMPORAL_DYNAMIC_CONFIG)
    shipped = yaml.safe_load(DEPLOYED_TEMPORAL_CONFIG.read_text(encoding="utf-8"))
    args = []
    for key, entries in shipped.items():
        (entry,) = entries  # one unconstrained value per key
        args += ["--dynamic-config-value", f"{key}={json.dumps(entry['value'])}"]
    return args


def missing_binaries() -> list[str]:
    """What this machine lacks to run the services (the test skips, naming it)."""
    needed = [PG_BIN / "initdb", PG_BIN / "postgres", temporal_binary()]
    missing = [str(p) for p in needed if not p.exists()]
    missing += [b for b in ("redis-server", "setpriv") if shutil.which(b) is None]
    if importlib.util.find_spec("moto") is None:
        missing.append("moto[server] (the dev extra)")
    try:
        pwd.getpwnam("postgres")  # PostgreSQL refuses to run as root
    except KeyError:
        missing.append("a `postgres` user")
    return missing


@dataclass
class Services:
    host: Host
    log_dir: Path
    procs: list[Proc] = field(default_factory=list)
    bucket: str = "daguerre"
    pg_folder: Path | None = None
    # The dynamic config a deployment's Temporal runs with (deploy/temporal/dynamicconfig.yaml);
    # DAGUERRE_TEST_CLUSTER_TEMPORAL_CONFIG=dev: the launcher's, as `daguerre up` runs it.
    temporal_config: list[str] = field(default_factory=lambda: temporal_config_arguments())

    @property
    def database_url(self) -> str:
        return f"postgresql+psycopg://postgres@{self.host.address}:{PG_PORT}/postgres"

    @property
    def redis_url(self) -> str:
        return f"redis://{self.host.address}:{REDIS_PORT}/0"

    @property
    def temporal_address(self) -> str:
        return f"{self.host.address}:{TEMPORAL_PORT}"

    @property
    def s3_endpoint_url(self) -> str:
        return f"http://{self.host.address}:{S3_PORT}"

    def blob_settings(self) -> dict[str, str]:
        """The object-store settings every gateway and worker shares."""
        return {
            "blob_url": f"s3://{self.bucket}/cluster",
            "s3_endpoint_url": self.s3_endpoint_url,
            "s3_region": S3_REGION,
            "s3_access_key_id": S3_KEY,
            "s3_secret_access_key": S3_SECRET,
        }

    def _start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Proc:
        proc = Proc(name, self.host.command(args), env or dict(os.environ), self.log_dir)
        self.procs.append(proc)
        return proc

    def start(self) -> None:
        """Start all four at once, then wait for each to listen."""
        self._start_postgres()
        self._start("redis", ["redis-server", "--bind", self.host.address, "--port",
                              str(REDIS_PORT), "--save", "", "--appendonly", "no",
                              "--protected-mode", "no"])  # fmt: skip
        # All addresses of the namespace (its loopback and its bridge address): bound to
        # the bridge address alone, the dev server's inner services dial each other on
        # 127.0.0.1 and find nothing there.
        self._start("temporal", [str(temporal_binary()), "server", "start-dev",
                                 "--ip", "0.0.0.0", "--port", str(TEMPORAL_PORT),
                                 "--headless", "--log-level", "warn",
                                 *self.temporal_config])  # fmt: skip
        s3_env = {**os.environ, "AWS_ACCESS_KEY_ID": S3_KEY, "AWS_SECRET_ACCESS_KEY": S3_SECRET}
        self._start("s3", [sys.executable, "-m", "moto.server", "-H", self.host.address,
                           "-p", str(S3_PORT)], s3_env)  # fmt: skip
        address = self.host.address
        for what, port in [("PostgreSQL", PG_PORT), ("Redis", REDIS_PORT),
                           ("Temporal", TEMPORAL_PORT), ("the S3 server", S3_PORT)]:  # fmt: skip
            wait_port(address, port, what, timeout_s=90)
        self._make_bucket()

    def _start_postgres(self) -> None:
        folder = postgres_folder(self.log_dir)
        self.pg_folder = folder
        data = folder / "data"
        subprocess.run(
            [*AS_POSTGRES, str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust",
             "-U", "postgres", "--no-sync", "-E", "UTF8"],
            check=True, capture_output=True, timeout=120, cwd=folder,
        )  # fmt: skip
        with (data / "pg_hba.conf").open("a") as hba:
            hba.write("host all all 0.0.0.0/0 trust\n")
        args = [str(PG_BIN / "postgres"), "-D", str(data), "-h", self.host.address]
        args += ["-p", str(PG_PORT), "-k", str(folder), "-c", "max_connections=200"]
        # Throwaway data: no durability to pay for.
        for setting in ("fsync=off", "synchronous_commit=off", "full_page_writes=off"):
            args += ["-c", setting]
        self._start("postgres", [*AS_POSTGRES, *args])

    def _make_bucket(self) -> None:
        s3 = boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint_url,
            region_name=S3_REGION,
            aws_access_key_id=S3_KEY,
            aws_secret_access_key=S3_SECRET,
        )
        s3.create_bucket(Bucket=self.bucket)
        s3.close()

    def stop(self) -> None:
        # Throwaway data: no clean shutdown to wait for (PostgreSQL's waits for clients).
        for proc in reversed(self.procs):
            if proc.popen.poll() is None:
                proc.popen.kill()
            proc.stop()
        if self.pg_folder is not None:
            shutil.rmtree(self.pg_folder, ignore_errors=True)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.log()[-2000:]}" for p in self.procs)
