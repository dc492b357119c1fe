"""Stand-ins for a webhook's far end: a socket that accepts connections and never
answers (and so also records whether anyone connected), and a scripted DNS resolver."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def silent_listener(backlog: int = 64) -> Iterator[tuple[int, list[socket.socket]]]:
    """(port, connections accepted so far) of a socket on 127.0.0.1 that never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(backlog)
    server.settimeout(0.2)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], accepted
    finally:
        stop.set()
        thread.join()
        server.close()
        for conn in accepted:
            conn.close()


def scripted_resolver(*answers: list[str]) -> Any:
    """A resolver that answers each call with the next answer (the last one for ever
    after), and keeps the hosts it was asked about in ``.calls``."""
    calls: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return answers[min(len(calls), len(answers)) - 1]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve
