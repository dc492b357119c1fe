"""Small process helpers shared by the launcher and its children."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
from pathlib import Path

_PR_SET_PDEATHSIG = 1
SUPERVISED_ENV = "DAGUERRE_SUPERVISOR_PID"


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Under `daguerre up`, ask Linux to signal this process when the launcher dies,
    even by kill -9, so no gateway or worker outlives it."""
    parent = os.environ.get(SUPERVISED_ENV)
    if parent:
        exit_with_parent(int(parent), sig)


def exit_with_parent(parent: int, sig: int = signal.SIGTERM) -> None:
    """Ask Linux to signal this process when ``parent`` (its parent) dies, even by
    kill -9 (on Linux; elsewhere nothing happens)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
    # The parent may have died before prctl took effect.
    if os.getppid() != parent:
        os.kill(os.getpid(), sig)


def pid_alive(pid: int) -> bool:
    """True for a running process (a zombie awaiting its parent counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False
