"""How render activities reach the engine core (workers/engine.py): a front on the
worker's event loop, and the core in a process of its own.

The core runs in a child process of the worker (``ProcessDriver``), loads the model
there, and talks to the front through a pipe: the front sends ``submit``, ``withdraw``
and ``flags`` (which jobs are watched, which ended), and the core answers with one
message of updates per tick. The worker process itself never imports torch. For tests
the core can run in a thread instead (``ThreadDriver``), with the same messages.

If the engine process dies, every render it held fails (Temporal retries them, from
their checkpoints) and a new engine process is started.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import queue
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Protocol

from daguerre.config import PoolSettings, Settings
from daguerre.procs import exit_with_parent
from daguerre.workers.engine import EngineCore, RenderJob, SwapStore, Update
from daguerre.workers.engine_stats import EngineStats, StatsPacer

log = logging.getLogger(__name__)

Message = tuple[Any, ...]


@dataclass(frozen=True)
class EngineInfo:
    """What the core tells the front once its model is loaded."""

    model: str
    batch_images: int


@dataclass(eq=False)
class Ticket:
    """A render the front asked the core for, and the updates the core sent about it."""

    key: str
    job: RenderJob
    updates: asyncio.Queue[Update] = field(default_factory=asyncio.Queue)


# --- the core's side -------------------------------------------------------------------
class Inbox(Protocol):
    def take(self, timeout: float | None) -> list[Message]:
        """Messages waiting now, after waiting up to ``timeout`` s for one (None: for
        ever; 0: not at all)."""
        ...


def build_core(settings: Settings, pool: PoolSettings) -> tuple[EngineCore, EngineInfo]:
    """Load the model and build the core with its scheduler and swap store."""
    from daguerre.store.blobs_factory import open_blobs
    from daguerre.workers.checkpoints import Checkpoints
    from daguerre.workers.runtime import load_model
    from daguerre.workers.scheduler import Scheduler

    model = load_model(settings)
    budget = pool.batch_images or model.batch_images
    scheduler = Scheduler(
        budget,
        preemption=pool.preemption,
        max_pauses=settings.max_preemptions,
        memory_budget=pool.paused_memory_mb * 2**20,
        express_priority=pool.express_priority,
        express_budget=pool.express_batch_images or getattr(model, "express_batch_images", None),
    )
    checkpoints = Checkpoints(open_blobs(settings))
    core = EngineCore(model, scheduler, SwapStore(checkpoints.put, checkpoints.get))
    return core, EngineInfo(settings.model, budget)


def serve(core: EngineCore, inbox: Inbox, send: Callable[[Message], None]) -> None:
    """The core's loop: apply what the front sent, tick while there is work, and send
    each tick's updates in one message (and its stats now and then). Returns on ``stop``."""
    pacer = StatsPacer()
    while True:
        messages = inbox.take(0.0 if core.runnable else None)
        for message in messages:
            kind = message[0]
            if kind == "stop":
                return
            if kind == "submit":
                core.submit(message[1], message[2])
            elif kind == "withdraw":
                core.withdraw(message[1])
            elif kind == "flags":
                core.watched, core.stopped = message[1], message[2]
        if core.runnable or core.stopped:
            updates = core.tick()
            if updates:
                send(("updates", updates))
        if pacer.due(idle=not core.runnable, told=bool(messages)):
            send(("stats", core.stats()))


class _ConnectionInbox:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def take(self, timeout: float | None) -> list[Message]:
        messages: list[Message] = []
        if self._conn.poll(timeout):
            messages.append(self._conn.recv())
            while self._conn.poll(0):
                messages.append(self._conn.recv())
        return messages


def engine_process(fd: int) -> None:
    """The engine process: read its configuration, load the model, say so, then serve
    until told to stop. ``fd`` is its end of the socket pair the worker made."""
    conn = Connection(fd)
    settings, pool, parent = conn.recv()
    exit_with_parent(parent)
    if settings.engine_niceness:
        os.nice(settings.engine_niceness)
    logging.basicConfig(level=settings.log_level.upper())
    try:
        core, info = build_core(settings, pool)
    except BaseException as err:
        conn.send(("failed", f"{type(err).__name__}: {err}"))
        raise
    conn.send(("ready", info))
    with contextlib.suppress(EOFError, BrokenPipeError):  # the worker went away
        serve(core, _ConnectionInbox(conn), conn.send)


# --- the activities' side --------------------------------------------------------------
class Driver(Protocol):
    async def start(self, deliver: Callable[[Message], None]) -> EngineInfo: ...

    def send(self, message: Message) -> None: ...

    @property
    def pid(self) -> int | None: ...  # the process the core runs in while it is up, else None

    async def stop(self) -> None: ...


class Engine:
    """What render activities use: ``async with engine.render(job) as ticket`` holds
    the job in the engine for the block, and ``ticket.updates`` says what happens."""

    def __init__(
        self, driver: Driver, on_stats: Callable[[EngineStats], None] | None = None
    ) -> None:
        self._driver = driver
        self._tickets: dict[str, Ticket] = {}
        self._keys = itertools.count()
        self._flags: tuple[set[str], set[str]] = (set(), set())
        self._on_stats = on_stats  # told what the core says of itself (workers/metrics.py)
        self.info: EngineInfo | None = None

    async def start(self) -> EngineInfo:
        self.info = await self._driver.start(self._receive)
        return self.info

    async def stop(self) -> None:
        await self._driver.stop()

    @asynccontextmanager
    async def render(self, job: RenderJob) -> AsyncIterator[Ticket]:
        ticket = Ticket(f"{job.job_id}#{next(self._keys)}", job)
        self._tickets[ticket.key] = ticket
        self._driver.send(("submit", ticket.key, job))
        try:
            yield ticket
        finally:
            del self._tickets[ticket.key]
            self._driver.send(("withdraw", ticket.key))

    def flags(self, watched: set[str], stopped: set[str]) -> None:
        """Which jobs are watched and which ended elsewhere (when that changed)."""
        if (watched, stopped) != self._flags:
            self._flags = (set(watched), set(stopped))
            self._driver.send(("flags", *self._flags))

    @property
    def holding(self) -> int:
        return len(self._tickets)

    @property
    def pid(self) -> int | None:
        """The engine core's process while it is up; None while it is down."""
        return self._driver.pid

    def _receive(self, message: Message) -> None:
        kind = message[0]
        if kind == "updates":
            for key, update in message[1]:
                ticket = self._tickets.get(key)
                if ticket is not None:  # gone: its activity ended (cancelled)
                    ticket.updates.put_nowait(update)
        elif kind == "lost":
            # The engine process died: every render it held fails, and is retried.
            for ticket in self._tickets.values():
                ticket.updates.put_nowait(Update("failed", error=RuntimeError(message[1])))
            self._driver.send(("flags", *self._flags))  # the new process knows nothing
        elif kind == "stats" and self._on_stats is not None:
            self._on_stats(message[1])


class ProcessDriver:
    """The core in a child process: a new interpreter (the worker's threads must not be
    forked), joined to the worker by a socket pair that carries pickled messages."""

    def __init__(self, settings: Settings, pool: PoolSettings) -> None:
        self._settings = settings
        self._pool = pool
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._outbox: queue.SimpleQueue[Message | None] = queue.SimpleQueue()
        self._sender: threading.Thread | None = None
        self._deliver: Callable[[Message], None] = lambda message: None
        self._stopping = False
        self._respawning: asyncio.Task[None] | None = None

    async def start(self, deliver: Callable[[Message], None]) -> EngineInfo:
        self._deliver = deliver
        return await self._spawn()

    async def _spawn(self) -> EngineInfo:
        mine, theirs = socket.socketpair()
        # It imports what this process imports (a test's model plugin, say).
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        process = subprocess.Popen(
            [sys.executable, "-m", "daguerre.workers.engine_main", str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            env=env,
        )
        theirs.close()
        ours = Connection(mine.detach())
        ours.send((self._settings, self._pool, os.getpid()))
        try:
            first = await asyncio.to_thread(ours.recv)
        except EOFError:
            first = ("failed", f"it exited with code {process.wait()}")
        if first[0] != "ready":
            ours.close()
            raise RuntimeError(f"the engine process could not load the model: {first[1]}")
        self._process, self._conn = process, ours
        # Sends go through a thread: a big message (an edit's images) must not block the
        # event loop while the core is busy with a step and not reading.
        self._sender = threading.Thread(
            target=self._send_loop, args=(ours, self._outbox), daemon=True
        )
        self._sender.start()
        asyncio.get_running_loop().add_reader(ours.fileno(), self._readable)
        info: EngineInfo = first[1]
        return info

    def send(self, message: Message) -> None:
        self._outbox.put(message)

    @property
    def pid(self) -> int | None:
        process = self._process if self._conn is not None else None  # None: being replaced
        return process.pid if process is not None and process.poll() is None else None

    @staticmethod
    def _send_loop(conn: Connection, outbox: queue.SimpleQueue[Message | None]) -> None:
        while (message := outbox.get()) is not None:
            try:
                conn.send(message)
            except (OSError, EOFError):
                return  # the process is gone; _readable notices and starts another

    def _readable(self) -> None:
        conn = self._conn
        assert conn is not None
        try:
            while conn.poll(0):
                self._deliver(conn.recv())
        except (EOFError, OSError):
            self._lost()

    def _lost(self) -> None:
        loop = asyncio.get_running_loop()
        if self._conn is not None:
            loop.remove_reader(self._conn.fileno())
            self._conn.close()
            self._conn = None
        self._outbox.put(None)
        if self._stopping:
            return
        log.error("the engine process died (exit code %s); starting another", self._exitcode())
        self._deliver(("lost", "the worker's engine process died"))
        self._outbox = queue.SimpleQueue()
        self._respawning = loop.create_task(self._respawn())

    async def _respawn(self) -> None:
        delay = 1.0
        while not self._stopping:
            await asyncio.sleep(delay)
            try:
                await self._spawn()
                return
            except Exception:
                log.exception("could not start another engine process; trying again")
                delay = min(delay * 2, 30.0)

    def _exitcode(self) -> int | None:
        if self._process is None:
            return None
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(1)
        return self._process.returncode

    async def stop(self) -> None:
        self._stopping = True
        self._outbox.put(("stop",))
        self._outbox.put(None)
        if self._conn is not None:
            asyncio.get_running_loop().remove_reader(self._conn.fileno())
        if self._process is not None:
            try:
                await asyncio.to_thread(self._process.wait, 10)
            except subprocess.TimeoutExpired:
                self._process.kill()


class _QueueInbox:
    def __init__(self, inbox: queue.SimpleQueue[Message]) -> None:
        self._inbox = inbox

    def take(self, timeout: float | None) -> list[Message]:
        messages: list[Message] = []
        try:
            if timeout == 0:
                messages.append(self._inbox.get_nowait())
            else:
                messages.append(self._inbox.get(timeout=timeout))
            while True:
                messages.append(self._inbox.get_nowait())
        except queue.Empty:
            pass
        return messages


class ThreadDriver:
    """The core in a thread of this process: for tests (and for debugging a model),
    where a process per engine would cost seconds each. The GIL makes it slower under
    load, which is why workers do not use it."""

    def __init__(self, core: EngineCore, info: EngineInfo) -> None:
        self._core = core
        self._info = info
        self._inbox: queue.SimpleQueue[Message] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    async def start(self, deliver: Callable[[Message], None]) -> EngineInfo:
        loop = asyncio.get_running_loop()

        def send(message: Message) -> None:
            loop.call_soon_threadsafe(deliver, message)

        self._thread = threading.Thread(
            target=serve, args=(self._core, _QueueInbox(self._inbox), send), daemon=True
        )
        self._thread.start()
        return self._info

    def send(self, message: Message) -> None:
        self._inbox.put(message)

    @property
    def pid(self) -> int | None:
        alive = self._thread is not None and self._thread.is_alive()
        return os.getpid() if alive else None

    async def stop(self) -> None:
        self._inbox.put(("stop",))
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 10)
