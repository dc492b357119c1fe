"""Running Daguerre's processes for integration tests: settings shared by the test
process and its subprocesses, free ports, and process handles with logs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from daguerre.config import Settings
from daguerre.procs import pid_alive

REPO = Path(__file__).resolve().parents[2]
FAKE_CATALOG = {"sizes": [64, 128, 256, 512], "auto_size": 64}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class StackConfig:
    """One set of settings, for Settings(...) here and DAGUERRE_* in subprocesses.

    Every stack gets its own task queues (``tag``), so workers of one test never take
    another test's jobs on the shared Temporal server. ``step_delay_s`` slows every
    forward pass of the model down (tests/support/paced_builtin.py for "builtin").
    """

    data_dir: Path
    tag: str
    temporal_address: str | None = None
    model: str = "fake"
    values: dict[str, Any] = field(default_factory=dict)
    step_delay_s: float = 0.0
    # Settings of both pools beyond their task queues, e.g. {"batch_images": 2}.
    pool: dict[str, Any] = field(default_factory=dict)

    def as_values(self) -> dict[str, Any]:
        catalog: dict[str, Any] = {"fake": FAKE_CATALOG, "builtin": {}}
        values: dict[str, Any] = {
            "data_dir": str(self.data_dir),
            "model": self.model,
            "model_plugins": "tests.support.fake_model,tests.support.paced_builtin",
            "model_options": {"step_delay_s": self.step_delay_s} if self.step_delay_s else {},
            "models": catalog,
            "pools": {
                "chat": {"task_queue": f"{self.tag}-chat", **self.pool},
                "api": {"task_queue": f"{self.tag}-api", **self.pool},
            },
            "workflow_execution_timeout_s": 120,
            "events_poll_interval_s": 0.05,
        }
        if self.temporal_address is not None:
            values["temporal_address"] = self.temporal_address
        values.update(self.values)
        return values

    def settings(self) -> Settings:
        return Settings(**self.as_values())

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DAGUERRE_")}
        env["PYTHONPATH"] = str(REPO)
        env["DAGUERRE_LOG_LEVEL"] = "WARNING"
        for name, value in self.as_values().items():
            text = json.dumps(value) if isinstance(value, dict | list) else str(value)
            env[f"DAGUERRE_{name.upper()}"] = text
        return env


class Proc:
    """A subprocess whose output goes to a log file (shown when a test fails)."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            args, env=env, cwd=REPO, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def kill9(self) -> None:
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(10)

    def stop(self, grace_s: float = 10.0) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(grace_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def daguerre(name: str, args: list[str], config: StackConfig, log_dir: Path) -> Proc:
    return Proc(name, [sys.executable, "-m", "daguerre", *args], config.env(), log_dir)


def start_worker(config: StackConfig, pool: str, log_dir: Path, name: str = "") -> Proc:
    return daguerre(name or f"worker-{pool}", ["worker", "--pool", pool], config, log_dir)


def start_gateway(config: StackConfig, port: int, log_dir: Path) -> Proc:
    proc = daguerre("gateway", ["gateway", "--port", str(port)], config, log_dir)
    wait_http(f"http://127.0.0.1:{port}/healthz", proc)
    return proc


def wait_http(url: str, proc: Proc | None = None, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.popen.poll() is not None:
            raise AssertionError(f"{proc.name} exited early:\n{proc.log()}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer in {timeout_s} s")


def wait_until(predicate: Any, timeout_s: float, message: str, interval_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval_s)
    raise AssertionError(message)


def descendants(pid: int) -> set[int]:
    """All live processes below ``pid``, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return {p for p in found if pid_alive(p)}
