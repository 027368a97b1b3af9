"""``imbot run --workers N``: N processes serving one port on one machine, and their supervisor.

Sharing the port. Each worker is an ordinary ``imbot run`` that binds its own listening
socket with ``SO_REUSEPORT``; Linux spreads new connections across the listening sockets
of the group by a hash of the connection. The alternative, one socket bound by the parent
and inherited by every worker, was rejected: all the workers' event loops wake for every
connection on the shared queue, and the one that wakes first takes every connection waiting
(the accept loop takes up to 64 at a time), so the load gathers on one worker. With a
socket each, no worker steals from another, a worker is restarted by just starting it
again, and nothing has to be passed across ``exec``. What it costs: connections still in a
killed worker's own queue are reset (Inkbox delivers those webhooks again, as it does when
a single process dies; Linux 5.14's ``net.ipv4.tcp_migrate_req=1`` hands them to a sibling
instead).

The parent first probes the port as a plain socket (so a port already served, by anything,
including another group of workers, is refused), then holds it with
``imbot.net.reserve_port``: bound with ``SO_REUSEPORT`` but not listening, so it gets no
connection. ``--port 0`` is resolved there, once, for every worker.

Supervising. The parent starts the workers in their own sessions (Ctrl-C reaches only the
parent, which stops them in order) with ``--parent-pid`` (a worker whose parent is gone
stops by itself) and a pipe on which each says when it listens. Then:

- every worker must listen once: one that exits before it does stops the group, and the
  command exits with its code (the worker has printed why);
- a worker that dies later is started again after a delay that grows with each quick
  failure (``RESTART_DELAYS``); one that served ``STABLE_AFTER`` seconds starts again from
  the first delay. ``MAX_FAILED_STARTS`` restarts in a row that die before listening stop
  the group with exit code 1: the fleet is broken, and the service manager above decides;
- SIGINT and SIGTERM are forwarded to every worker as SIGTERM: the first drains (no new
  webhooks, running handlers get ``drain_timeout``), a second cancels the handlers still
  draining, as with one process. The command exits 0 once every worker has exited.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import anyio
import anyio.abc

from imbot.log import configure_logging, get_logger

__all__ = [
    "MAX_FAILED_STARTS",
    "READY",
    "RESTART_DELAYS",
    "STABLE_AFTER",
    "Supervisor",
    "WorkerSpec",
    "describe_exit",
    "notify_ready",
    "worker_command",
]

RESTART_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
"""Seconds before a dead worker is started again, by failures in a row (the last repeats)."""

STABLE_AFTER = 30.0
"""Seconds a worker must serve for its next restart to wait the first delay again."""

MAX_FAILED_STARTS = 5
"""Restarts in a row that die before listening, after which the whole group stops."""

READY = b"R"
"""What a worker writes on its ready pipe once it listens."""

_log = get_logger("imbot.workers")


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerSpec:
    """How to start the workers: the ``imbot run`` options each one gets.

    Attributes:
        app: the APP argument.
        count: how many workers.
        host: the interface.
        port: the port (already resolved: never 0).
        path: the webhook route.
        log_level: the log level given with ``--log-level``, if any.
        store: the storage URL given with ``--store``, if any.
        command: how to run ``imbot`` (the Python interpreter and ``-m imbot`` by default).
    """

    app: str
    count: int
    host: str
    port: int
    path: str
    log_level: str | None = None
    store: str | None = None
    command: tuple[str, ...] = (sys.executable, "-m", "imbot")


def worker_command(spec: WorkerSpec, index: int, ready_fd: int) -> list[str]:
    """The command line of worker ``index``: ``imbot run`` sharing the port, reporting on a pipe.

    Example:
        >>> worker_command(spec, 0, 5)[3:6]
        ['run', 'app.py', '--host']
    """
    command = [
        *spec.command,
        "run",
        spec.app,
        "--host",
        spec.host,
        "--port",
        str(spec.port),
        "--path",
        spec.path,
        # The parent checked the key once for the whole group.
        "--no-api-check",
        "--parent-pid",
        str(os.getpid()),
        "--worker-index",
        str(index),
        "--ready-fd",
        str(ready_fd),
    ]
    if spec.log_level is not None:
        command += ["--log-level", spec.log_level]
    if spec.store is not None:
        command += ["--store", spec.store]
    return command


def describe_exit(code: int | None) -> str:
    """How a worker ended, for a log line: ``exit code 3``, ``killed by SIGKILL``.

    Example:
        >>> describe_exit(-9)
        'killed by SIGKILL'
    """
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


@dataclass(slots=True)
class _Worker:
    """One worker position: the process filling it now, and how its starts went."""

    index: int
    process: anyio.abc.Process | None = None
    failed_starts: int = 0
    restarts: int = 0
    pids: list[int] = field(default_factory=list)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def signal(self, signum: signal.Signals) -> None:
        if self.alive:
            assert self.process is not None
            # It may exit between the check and the signal.
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signum)


class Supervisor:
    """Starts the workers, keeps them running, and stops them on SIGINT or SIGTERM.

    Example:
        >>> code = Supervisor(WorkerSpec(app="app.py", count=3, host=h, port=p, path=w)).run()

    Args:
        spec: what to start.
        env: the workers' environment (this process's by default).
        log_level: the parent's own log level.
        restart_delays: seconds before a dead worker starts again, by quick failures in a
            row (the last repeats).
        stable_after: seconds a worker must serve for its delays to start over.
        max_failed_starts: restarts in a row dying before they listen that stop the group.
    """

    def __init__(
        self,
        spec: WorkerSpec,
        *,
        env: dict[str, str] | None = None,
        log_level: str | None = None,
        restart_delays: Sequence[float] = RESTART_DELAYS,
        stable_after: float = STABLE_AFTER,
        max_failed_starts: int = MAX_FAILED_STARTS,
    ) -> None:
        self.spec = spec
        self._env = env
        self._log_level = log_level
        self._delays = tuple(restart_delays) or RESTART_DELAYS
        self._stable_after = stable_after
        self._max_failed_starts = max_failed_starts
        self._workers = [_Worker(index) for index in range(spec.count)]
        self._up: set[int] = set()
        self._serving = False  # every worker has listened once
        self._stop = anyio.Event()
        self._signals = 0
        self._exit_code = 0

    def run(self) -> int:
        """Supervise until the workers are stopped; return the command's exit code."""
        configure_logging(self._log_level)
        return anyio.run(self._main)

    async def _main(self) -> int:
        _log.info(
            "starting workers",
            workers=self.spec.count,
            url=f"http://{self.spec.host}:{self.spec.port}{self.spec.path}",
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watch_signals, tg.cancel_scope, name="imbot.workers.signals")
            async with anyio.create_task_group() as keepers:
                for worker in self._workers:
                    keepers.start_soon(self._keep, worker, name=f"imbot.worker.{worker.index}")
            tg.cancel_scope.cancel()  # every worker has exited: stop watching signals
        _log.info("workers stopped", exit_code=self._exit_code)
        return self._exit_code

    async def _watch_signals(self, everything: anyio.CancelScope) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                self._signals += 1
                name = signal.Signals(signum).name
                if self._signals == 1:
                    _log.info("stopping workers: finishing running handlers", signal=name)
                else:
                    _log.warning("second signal: workers cancel their running handlers")
                self._stop.set()
                for worker in self._workers:
                    worker.signal(signal.SIGTERM)

    def _fail(self, code: int, message: str, **fields: object) -> None:
        if self._stop.is_set():
            return
        _log.error(message, **fields)
        self._exit_code = code or 1
        self._stop.set()
        for worker in self._workers:
            worker.signal(signal.SIGTERM)

    async def _keep(self, worker: _Worker) -> None:
        """Keep one worker position filled until the group stops."""
        failures = 0  # quick deaths in a row, for the restart delay
        while not self._stop.is_set():
            started = time.monotonic()
            listened = await self._start(worker)
            process = worker.process
            assert process is not None
            if listened:
                worker.failed_starts = 0
                self._listening(worker, process.pid)
            code = await process.wait()
            self._up.discard(worker.index)
            if self._stop.is_set():
                return
            if not self._serving:
                self._fail(
                    code if code > 0 else 1,
                    "a worker exited before listening; stopping the others",
                    worker=worker.index,
                    pid=process.pid,
                    exit=describe_exit(code),
                )
                return
            if not listened:
                worker.failed_starts += 1
                if worker.failed_starts >= self._max_failed_starts:
                    self._fail(
                        1,
                        "a worker failed to start again several times in a row; stopping",
                        worker=worker.index,
                        attempts=worker.failed_starts,
                        exit=describe_exit(code),
                    )
                    return
            if time.monotonic() - started >= self._stable_after:
                failures = 0
            delay = self._delays[min(failures, len(self._delays) - 1)]
            failures += 1
            _log.warning(
                "a worker exited; starting it again",
                worker=worker.index,
                pid=process.pid,
                exit=describe_exit(code),
                restart_in=delay,
            )
            with anyio.move_on_after(delay):
                await self._stop.wait()
            worker.restarts += 1

    async def _start(self, worker: _Worker) -> bool:
        """Start a process for ``worker``; return once it listens (True) or has exited (False)."""
        ready, ready_w = os.pipe()
        try:
            worker.process = await anyio.open_process(
                worker_command(self.spec, worker.index, ready_w),
                stdin=subprocess.DEVNULL,
                stdout=None,
                stderr=None,
                env=self._env,
                # Its own session: Ctrl-C reaches the parent only, which stops the workers
                # in order (a signal the terminal sent them too would count twice).
                start_new_session=True,
                pass_fds=(ready_w,),
            )
        except BaseException:
            os.close(ready)
            raise
        finally:
            os.close(ready_w)
        worker.pids.append(worker.process.pid)
        try:
            # The child holds the only writing end: a byte means it listens, the end of
            # the pipe that it exited (or closed it) without listening.
            await anyio.wait_readable(ready)
            return os.read(ready, 1) == READY
        finally:
            os.close(ready)

    def _listening(self, worker: _Worker, pid: int) -> None:
        self._up.add(worker.index)
        _log.info("worker listening", worker=worker.index, pid=pid, restarts=worker.restarts)
        if not self._serving and len(self._up) == len(self._workers):
            self._serving = True
            _log.info(
                "all workers listening",
                workers=len(self._workers),
                pids=[w.process.pid for w in self._workers if w.process is not None],
                url=f"http://{self.spec.host}:{self.spec.port}{self.spec.path}",
            )


def notify_ready(fd: int) -> None:
    """Tell the supervisor on ``fd`` that this worker listens; close the pipe.

    Args:
        fd: the writing end the supervisor passed with ``--ready-fd``.
    """
    try:
        os.write(fd, READY)
    except OSError:
        pass  # the supervisor is gone: the parent watch stops this worker
    finally:
        os.close(fd)
