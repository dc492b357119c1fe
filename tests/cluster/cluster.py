"""The four hosts of the network-namespace test, as a fixture's worth of parts:
"services" (PostgreSQL, Redis, Temporal, the object store), "gw" (one gateway) and "w1",
"w2" (one worker each, each with its own data dir). Everything is made and removed by
``cluster()``; what runs on the hosts is the test's to start."""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daguerre.store import Store, open_store
from tests.support.netns import Network
from tests.support.netns_services import Services
from tests.support.stack import Proc, StackConfig, wait_http

GATEWAY_PORT = 8000


@dataclass
class Cluster:
    net: Network
    services: Services
    config: StackConfig  # the test process's own (its data dir); hosts differ only there
    store: Store
    log_dir: Path
    workers: dict[str, Proc] = field(default_factory=dict)
    gateway: Proc | None = None

    @property
    def url(self) -> str:
        return f"http://{self.net['gw'].address}:{GATEWAY_PORT}"

    @property
    def task_queue(self) -> str:
        return f"{self.config.tag}-api"

    def host_config(self, name: str) -> StackConfig:
        folder = self.log_dir / name
        folder.mkdir(exist_ok=True)
        values = {**self.config.values}
        if name == "gw":
            values["host"] = self.net["gw"].address
        return StackConfig(
            folder,
            self.config.tag,
            self.config.temporal_address,
            self.config.model,
            values,
            self.config.step_delay_s,
            self.config.pool,
        )

    def start_worker(self, name: str) -> Proc:
        args = [sys.executable, "-m", "daguerre", "worker", "--pool", "api"]
        env = self.host_config(name).env()
        proc = Proc(name, self.net[name].command(args), env, self.log_dir)
        self.workers[name] = proc
        return proc

    def start_gateway(self) -> None:
        args = [sys.executable, "-m", "daguerre", "gateway", "--port", str(GATEWAY_PORT)]
        args += ["--host", self.net["gw"].address]
        env = self.host_config("gw").env()
        self.gateway = Proc("gateway", self.net["gw"].command(args), env, self.log_dir)
        wait_http(f"{self.url}/healthz", self.gateway, timeout_s=90)

    def identity(self, worker: str) -> str:
        """The worker's Temporal identity prefix (the SDK's default is pid@hostname;
        ``ip netns exec`` runs the worker in place, so the pid is the Proc's)."""
        return f"{self.workers[worker].pid}@"

    def logs(self) -> str:
        procs = [*self.workers.values(), *([self.gateway] if self.gateway else [])]
        parts = [f"--- {p.name}\n{p.log()[-3000:]}" for p in procs]
        return "\n".join(parts) + "\n" + self.services.logs()

    def stop(self) -> None:
        for proc in [*self.workers.values(), *([self.gateway] if self.gateway else [])]:
            proc.stop(grace_s=5)


@contextmanager
def cluster(log_dir: Path, values: dict[str, Any], step_delay_s: float) -> Iterator[Cluster]:
    """The four hosts, services started and the schema made; workers and gateway are the
    test's to start. Everything goes at the end, however the block ends."""
    net = Network(["services", "gw", "w1", "w2"])
    services = Services(net["services"], log_dir)
    store = None
    built = None
    try:
        net.open()
        services.start()
        tag = f"c{secrets.token_hex(4)}"
        shared = {
            "database_url": services.database_url,
            "redis_url": services.redis_url,
            "url_signing_secret": secrets.token_hex(32),
            **services.blob_settings(),
            **values,
        }
        config = StackConfig(
            log_dir / "test", tag, services.temporal_address, values=shared,
            step_delay_s=step_delay_s,
        )  # fmt: skip
        config.data_dir.mkdir()
        store = open_store(config.settings())
        built = Cluster(net, services, config, store, log_dir)
        yield built
    finally:
        if built is not None:
            built.stop()
        if store is not None:
            store.close()
        services.stop()
        net.close()
