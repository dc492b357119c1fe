"""`daguerre up` as a subprocess, and its processes by role, for the fault tests.

The launcher is what restarts a crashed gateway, worker or Temporal dev server in
production, so a fault test kills those under it and lets it do its job. Output goes
to a file (no reader thread to keep alive); ``output`` reads it back.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from daguerre.procs import cmdline
from tests.support.stack import REPO, StackConfig, descendants


class Up:
    def __init__(self, config: StackConfig, port: int, temporal_port: int, log: Path) -> None:
        env = config.env()
        env["DAGUERRE_PORT"] = str(port)
        env["DAGUERRE_TEMPORAL_PORT"] = str(temporal_port)
        self.url = f"http://127.0.0.1:{port}"
        self.data_dir = config.data_dir
        self.temporal_port = temporal_port
        self.log = log
        self._out = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "daguerre", "up"],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def children(self, role: str) -> list[int]:
        """Live processes under the launcher whose command line names ``role``
        ("gateway", "worker" or "engine_main")."""
        return sorted(p for p in descendants(self.proc.pid) if role in cmdline(p))

    def server_pid(self) -> int:
        """The Temporal dev server's pid, as the launcher recorded it."""
        info = json.loads((self.data_dir / "temporal.json").read_text())
        return int(info["pid"])

    def stop(self, timeout_s: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._out.close()
        return code
