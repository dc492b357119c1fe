"""Hosts for a multi-host test on one machine: Linux network namespaces on a bridge.

``Network`` makes a bridge and, per host, a namespace joined to it by a veth pair; the
test process (in the root namespace) holds the bridge's own address, so it reaches every
host and every host reaches it. ``cut`` and ``restore`` take a host's link down and up
from the outside (its end on the bridge), which is a network partition, not a crash: the
host's processes live on and their connections hang. Names carry a random suffix so that
runs side by side never meet, and ``close`` kills every process left in the namespaces
(``ip netns pids``: only ours) and removes what was made, even after a failure.

Needs root and iproute2; ``skip_unless_possible`` says why not otherwise.
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from daguerre.procs import port_open


def skip_unless_possible() -> None:
    """Skip the calling test, saying why, unless asked for (``make test-cluster`` sets
    DAGUERRE_TEST_CLUSTER=1) and namespaces can be made."""
    if os.environ.get("DAGUERRE_TEST_CLUSTER") != "1":
        # Out of `make test` while a rare stall is open (docs/deploy.md, "Measured here").
        pytest.skip("the cluster test runs with `make test-cluster` (DAGUERRE_TEST_CLUSTER=1)")
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root (this test runs as root on CI)")
    if shutil.which("ip") is None:
        pytest.skip("iproute2's `ip` is not installed")
    probe = f"dg-probe-{secrets.token_hex(3)}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:  # root without CAP_SYS_ADMIN, e.g. in an unprivileged container
        pytest.skip(f"`ip netns add` fails here: {made.stderr.strip()}")
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@dataclass
class Host:
    name: str
    namespace: str
    address: str
    link: str  # the veth end on the bridge: what a cut takes down

    def command(self, args: list[str]) -> list[str]:
        """``args`` run inside this host (``ip netns exec`` execs in place: same pid)."""
        return ["ip", "netns", "exec", self.namespace, *args]


class Network:
    """A bridge in a random 10.x.y.0/24 with one namespace per host."""

    def __init__(self, names: list[str]) -> None:
        self.suffix = secrets.token_hex(3)
        prefix = _free_prefix()
        self.bridge = f"dgb{self.suffix}"
        self.address = f"{prefix}.1"  # the test process's, on the bridge
        self.hosts = {
            name: Host(
                name, f"dg-{self.suffix}-{name}", f"{prefix}.{i + 2}", f"dg{self.suffix}h{i}"
            )
            for i, name in enumerate(names)
        }
        self._made: list[str] = []

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def open(self) -> None:
        ip("link", "add", self.bridge, "type", "bridge")
        self._made.append("bridge")
        ip("addr", "add", f"{self.address}/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        for i, host in enumerate(self.hosts.values()):
            peer = f"dg{self.suffix}p{i}"
            ip("netns", "add", host.namespace)
            self._made.append(host.namespace)
            ip("link", "add", host.link, "type", "veth", "peer", "name", peer)
            ip("link", "set", peer, "netns", host.namespace)
            ip("link", "set", host.link, "master", self.bridge, "up")
            inside = ["-n", host.namespace]
            ip(*inside, "link", "set", "lo", "up")
            ip(*inside, "addr", "add", f"{host.address}/24", "dev", peer)
            ip(*inside, "link", "set", peer, "up")

    def cut(self, name: str) -> None:
        ip("link", "set", self.hosts[name].link, "down")

    def restore(self, name: str) -> None:
        ip("link", "set", self.hosts[name].link, "up")

    def close(self) -> None:
        """Kill what runs in the namespaces, then remove them and the bridge (removing a
        namespace removes its veth pair)."""
        for host in self.hosts.values():
            if host.namespace in self._made:
                _kill_all_in(host.namespace)
        for host in self.hosts.values():
            if host.namespace in self._made:
                # The kernel frees a deleted namespace's devices later; the pair goes now.
                subprocess.run(["ip", "link", "del", host.link], capture_output=True)
                subprocess.run(["ip", "netns", "del", host.namespace], capture_output=True)
        if "bridge" in self._made:
            subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        self._made.clear()


def _free_prefix() -> str:
    """A 10.x.y (/24) that no route of this machine mentions yet."""
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True).stdout
    while True:
        prefix = f"10.{random.randint(200, 254)}.{random.randint(0, 255)}"
        if f"{prefix}." not in routes:
            return prefix


def _pids_in(namespace: str) -> list[int]:
    out = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def _kill_all_in(namespace: str) -> None:
    deadline = time.monotonic() + 10
    while (pids := _pids_in(namespace)) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


def wait_port(address: str, port: int, what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not port_open(address, port):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not listen on {address}:{port} in {timeout_s} s")
        time.sleep(0.1)


def postgres_folder(base: Path) -> Path:
    """A folder the ``postgres`` user may own (pytest's tmp_path is root's alone, 0700)."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="dg-netns-pg-"))
    shutil.chown(folder, "postgres", "postgres")
    (base / "postgres-folder").write_text(str(folder))  # found again for a post-mortem
    return folder
