"""`daguerre up` as a real subprocess: it serves, it stops cleanly on SIGTERM leaving
no process behind (the Temporal dev server included), and a second `up` on the same
data dir reuses the healthy server, adopts an orphaned one, or refuses clearly."""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from daguerre.procs import cmdline, pid_alive
from tests.integration.conftest import unique_tag
from tests.support.stack import (
    REPO,
    StackConfig,
    descendants,
    free_port,
    wait_http,
    wait_until,
)


class Up:
    """One `daguerre up` process, with its output collected line by line."""

    def __init__(self, config: StackConfig, port: int, temporal_port: int) -> None:
        env = config.env()
        env["DAGUERRE_PORT"] = str(port)
        env["DAGUERRE_TEMPORAL_PORT"] = str(temporal_port)
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "daguerre", "up"],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def key(self, timeout_s: float = 90.0) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            match = re.search(r"API key:\s+(\S+)", self.output)
            if match:
                return match.group(1)
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"`daguerre up` never printed its key:\n{self.output}")

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout_s)
        self._reader.join(5)
        return code


def server_pid(data_dir: Path) -> int:
    return int(json.loads((data_dir / "temporal.json").read_text())["pid"])


def generate(url: str, key: str) -> None:
    body = {"prompt": "a red circle", "model": "fake", "size": "64x64"}
    headers = {"Authorization": f"Bearer {key}"}
    response = httpx.post(f"{url}/v1/images/generations", json=body, headers=headers, timeout=60)
    assert response.status_code == 200, response.text
    assert response.json()["data"][0]["b64_json"]


def all_gone(pids: set[int]) -> bool:
    return not any(pid_alive(p) for p in pids)


@pytest.fixture
def config(tmp_path: Path) -> StackConfig:
    # No temporal_address: `up` runs its own dev server. One worker, for speed.
    values = {
        "pools": {"api": {"task_queue": unique_tag()}},
        "product_pools": {"api": "api", "chat": "api"},
    }
    return StackConfig(tmp_path / "data", unique_tag(), values=values)


def test_up_serves_and_sigterm_leaves_nothing(config: StackConfig) -> None:
    temporal_port = free_port()
    first = Up(config, free_port(), temporal_port)
    second = None
    try:
        key = first.key()
        # The banner's chat link signs the demo account in; the page itself is served.
        assert f"/#key={key}" in first.output
        page = httpx.get(f"{first.url}/", timeout=10)
        assert page.status_code == 200 and "Daguerre" in page.text
        generate(first.url, key)
        server = server_pid(config.data_dir)

        # A crashed gateway is restarted.
        (gateway,) = [p for p in descendants(first.proc.pid) if "gateway" in cmdline(p)]
        os.kill(gateway, signal.SIGKILL)
        wait_until(lambda: "gateway exited" in first.output, 10, "no restart noticed")
        wait_http(f"{first.url}/healthz", timeout_s=60)
        generate(first.url, key)

        first_pids = descendants(first.proc.pid) | {server}
        # The server, the gateway, one worker and its engine process (the model's).
        assert len(first_pids) == 4, first.output

        # A second `up` on the same data dir reuses the running server, and the demo key.
        second = Up(config, free_port(), temporal_port)
        assert second.key() == key  # not a new key per start (they piled up)
        generate(second.url, key)
        assert "reusing the Temporal dev server" in second.output
        # Its gateway, its worker and that worker's engine process: the job above may have
        # run on the first up's worker, so the engine may still be loading its model.
        wait_until(lambda: len(descendants(second.proc.pid)) == 3, 30, "no engine process")
        second_children = descendants(second.proc.pid)
        assert len(second_children) == 3 and server not in second_children
        assert second.stop(signal.SIGINT) == 0  # Ctrl-C
        wait_until(lambda: all_gone(second_children), 15, "the second up left processes")
        assert pid_alive(server), "the second up stopped a server it does not own"

        assert first.stop() == 0, first.output
        wait_until(lambda: all_gone(first_pids), 15, f"processes left: {first_pids}")
        assert "Daguerre stopped." in first.output
        assert not (config.data_dir / "temporal.json").exists()
    finally:
        for up in (first, second):
            if up is not None and up.proc.poll() is None:
                up.stop(signal.SIGKILL)


def test_kill_9_up_then_up_adopts_the_orphaned_server(config: StackConfig) -> None:
    temporal_port = free_port()
    first = Up(config, free_port(), temporal_port)
    second = None
    server = 0
    try:
        first.key()
        server = server_pid(config.data_dir)
        # Gateway, one worker, its engine: the banner comes once the gateway answers, and
        # the worker may still be starting its engine process then.
        wait_until(lambda: len(descendants(first.proc.pid) - {server}) == 3, 30, "no engine")
        children = descendants(first.proc.pid) - {server}
        assert len(children) == 3, first.output
        first.stop(signal.SIGKILL)
        # Gateway and worker die with their parent (the engine with the worker); the
        # server, by design, does not.
        wait_until(lambda: all_gone(children), 15, "children outlived a kill -9'd up")
        assert pid_alive(server)

        second = Up(config, free_port(), temporal_port)
        generate(second.url, second.key())
        assert "reusing the Temporal dev server" in second.output
        assert second.stop() == 0
        wait_until(lambda: not pid_alive(server), 15, "the adopted server was left running")
    finally:
        for up in (first, second):
            if up is not None and up.proc.poll() is None:
                up.stop(signal.SIGKILL)
        if server and pid_alive(server):
            os.kill(server, signal.SIGKILL)


def test_up_refuses_a_data_dir_locked_by_a_dead_server(config: StackConfig) -> None:
    config.data_dir.mkdir(parents=True)
    with (config.data_dir / "temporal.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held, but no server answers
        up = Up(config, free_port(), free_port())
        assert up.proc.wait(60) == 2
        up.stop()
    assert "is locked by a Temporal dev server" in up.output
    assert "DAGUERRE_DATA_DIR" in up.output


def test_up_refuses_a_taken_gateway_port(config: StackConfig) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        up = Up(config, taken.getsockname()[1], free_port())
        assert up.proc.wait(60) == 2
        up.stop()
    assert "DAGUERRE_PORT" in up.output
