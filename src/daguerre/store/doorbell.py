"""A doorbell between the processes of one host: a worker rings after it commits job
rows, and every gateway on the host that polls them wakes at once.

Without Redis, a gateway learns that a job finished by polling its row. A short tick
answers an idle service quickly but costs CPU that a model on the same few cores
needs (measured on 2 cores: a 5 ms tick slowed a 90 ms render by 6 to 10 ms); a long
one adds its own length to every answer. With a doorbell, the poller reads the rows
when a worker says they changed, and its timer only catches writers that cannot ring
(a worker on another host, which should then share Redis).

Each listening gateway binds a UDP socket on the loopback and names its port in an
empty file, ``<folder>/<host>.<pid>.<port>``; a worker sends one datagram to each. UDP
on the loopback never blocks the sender, needs no path-length care (unlike Unix
sockets) and a datagram to a gateway that died is simply lost. Files carry the host
name so that a folder shared between hosts never rings another host's ports, and a
worker removes the file of a gateway process that no longer exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from pathlib import Path

log = logging.getLogger(__name__)

_LOOPBACK = "127.0.0.1"
_RING = b"!"


def _host() -> str:
    # A file name part: no dots (they separate the fields), nothing odd.
    return "".join(c if c.isalnum() or c == "-" else "_" for c in socket.gethostname())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


class DoorbellListener:
    """A gateway's side: ``wait`` returns when a worker rang or the timeout passed."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._sock: socket.socket | None = None
        self._path: Path | None = None
        self._rung = asyncio.Event()
        self.last_ring = float("-inf")  # time.monotonic() of the latest ring

    def open(self) -> None:
        """Bind and announce the port (inside the running event loop). If that fails,
        the feed keeps polling on its timer."""
        if self._sock is not None:
            return
        try:
            self._folder.mkdir(parents=True, exist_ok=True)
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((_LOOPBACK, 0))
            sock.setblocking(False)
            port = sock.getsockname()[1]
            path = self._folder / f"{_host()}.{os.getpid()}.{port}"
            path.touch()
        except OSError as err:
            log.warning("no doorbell in %s (%s): progress is polled on a timer", self._folder, err)
            return
        asyncio.get_running_loop().add_reader(sock.fileno(), self._drain)
        self._sock, self._path = sock, path

    def _drain(self) -> None:
        assert self._sock is not None
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while self._sock.recv(64):
                pass
        self.last_ring = time.monotonic()
        self._rung.set()

    async def wait(self, timeout_s: float) -> bool:
        """Until the next ring (True) or ``timeout_s`` (False)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._rung.wait()
        rang = self._rung.is_set()
        self._rung.clear()
        return rang

    def close(self) -> None:
        if self._sock is None:
            return
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
        self._sock.close()
        self._sock = None
        if self._path is not None:
            self._path.unlink(missing_ok=True)


class Doorbell:
    """A worker's side: a callable (as ``JobRows`` announces) that rings every gateway
    on this host. The folder is listed at most once per ``refresh_s``."""

    def __init__(self, folder: Path, refresh_s: float = 1.0) -> None:
        self._folder = folder
        self._refresh_s = refresh_s
        self._ports: list[int] = []
        self._listed = float("-inf")
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setblocking(False)

    def __call__(self, job_ids: set[str]) -> None:
        if not job_ids:
            return
        for port in self._peers():
            # A full buffer means that gateway will poll anyway: dropping is fine.
            with contextlib.suppress(OSError):
                self._sock.sendto(_RING, (_LOOPBACK, port))

    def _peers(self) -> list[int]:
        now = time.monotonic()
        if now - self._listed < self._refresh_s:
            return self._ports
        self._listed = now
        host, ports = _host(), []
        with contextlib.suppress(OSError):
            for entry in os.scandir(self._folder):
                fields = entry.name.split(".")
                if len(fields) != 3 or fields[0] != host:
                    continue
                try:
                    pid, port = int(fields[1]), int(fields[2])
                except ValueError:
                    continue
                if _alive(pid):
                    ports.append(port)
                else:  # that gateway died without closing its doorbell
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
        self._ports = ports
        return ports

    def close(self) -> None:
        self._sock.close()
