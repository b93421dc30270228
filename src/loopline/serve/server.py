"""Running the app: uvicorn (uvloop + httptools, no access log), the listening sockets, a
graceful stop on any sequence of signals, and a small supervisor when there are several
workers.

Listening sockets. A server owns its port: nothing else may take a share of its traffic.

- One worker: one socket without SO_REUSEPORT, so binding fails for anyone else (any user,
  any program) while the server runs, and this server refuses a port already taken.
- Several workers: ``uvicorn --workers N`` shares one listening socket, and under
  keep-alive load one worker ends up with most connections. So each worker gets its own
  SO_REUSEPORT socket on the same port and the kernel spreads new connections over them.
  The supervisor makes the whole group before any worker starts: it first checks with an
  exclusive bind that the port is free, then binds one socket that never listens (the
  anchor, which it holds while it runs, so the port is never free) and one listening
  socket per worker, checks (on Linux, from ``/proc/net/tcp``) that every listener on
  the address is its own, and hands each worker its socket (passed down at spawn).
  Linux lets no other user join a SO_REUSEPORT group, and a second ``loopline serve`` of
  the same user fails on the exclusive check.
  (A program of the same user that sets SO_REUSEPORT itself could still join: the kernel
  trusts a user's own processes, as it lets them signal or trace each other.)

A port in use is a :class:`~loopline.serve.errors.PortInUseError` (``loopline serve`` exits 2).

Stopping. SIGINT and SIGTERM, once or repeatedly and in any order, all ask for the same
graceful stop: in-flight requests finish (for at most ``graceful_timeout_s``), queued
batches are answered and the prediction log is flushed; then the exit status is 0.
(uvicorn's own handlers skip that shutdown on a second Ctrl+C, and re-raise the signal,
which ends the process with status 130 or 143.)

The supervisor (only with ``workers > 1``) starts the workers with the ``spawn`` method,
restarts one that dies (the new one listens only once it has loaded the model, so it
gets no connection it would answer 503; giving up if they keep dying at start), forwards
an admin reload (SIGUSR1) to every worker, and on a stop asks each worker (once) to stop
gracefully. Workers stop by themselves if the supervisor disappears.

Loading. When the very first load of the served model fails (a tampered package, a
missing flavor library...), nothing could ever be served: the server stops and the error
is raised (for several workers, the first worker's error, rebuilt in the supervisor), so
``loopline serve`` prints it and exits with its code (4 for an integrity error). A later
failure (a hot swap) only logs and keeps serving the version already loaded.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import importlib
import logging
import multiprocessing
import os
import pickle
import shutil
import signal
import socket
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.errors import LooplineError
from loopline.serve.errors import (
    ModelLoadError,
    PortInUseError,
    ServeArgumentError,
    ServeError,
    UnsafeBindError,
)
from loopline.serve.settings import ServeSettings, is_loopback

if TYPE_CHECKING:
    from types import FrameType

    import uvicorn

    from loopline.config import Settings

log = logging.getLogger("loopline.serve")

#: A worker that dies this soon after starting, this many times in a row, stops the server.
_CRASH_WINDOW_S = 15.0
_CRASH_LIMIT = 3
#: Pending connections each listening socket queues (uvicorn passes it to listen()).
BACKLOG = 4096
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: ``st`` of a listening socket in /proc/net/tcp.
_TCP_LISTEN = "0A"
#: The garbage collector's thresholds in a server process (Python's default: 700, 10, 10).
GC_THRESHOLDS = (10_000, 20, 10)


@dataclass(frozen=True)
class ServeTarget:
    """What to serve (pickled to each worker)."""

    model: str
    canary: str | None = None
    shadow: str | None = None
    sticky_key: str | None = None


def check_bind(serve: ServeSettings, *, insecure: bool) -> None:
    """Refuse a non-loopback address without auth unless ``insecure``."""
    if not is_loopback(serve.host) and not serve.auth and not insecure:
        raise UnsafeBindError(serve.host)


def preflight(settings: Settings, target: ServeTarget) -> str:
    """Check the stores and that every reference resolves now; a one-line summary."""
    from loopline.registry import Registry
    from loopline.serve.deployment import parse_split
    from loopline.store.stores import Stores

    with Stores.open(settings) as stores:
        reg = Registry(stores)
        mv = reg.resolve(target.model)
        for text, mode in ((target.canary, "canary"), (target.shadow, "shadow")):
            if text is not None:
                split = parse_split(text, mode)
                cand = reg.resolve(split.ref)
                if cand.name != mv.name:
                    raise ServeArgumentError(
                        f"The {mode} {split.ref!r} is not a version of {mv.name!r}",
                        hint="A canary or shadow must be another version of the served model",
                        argument=mode,
                        value=split.ref,
                    )
    return f"{target.model} (now {mv.ref})"


# -- listening sockets ----------------------------------------------------------------------


def make_socket(
    host: str,
    port: int,
    *,
    reuse_port: bool = False,
    listen: bool = True,
    reuse_addr: bool = True,
) -> socket.socket:
    """A TCP socket bound to ``host:port`` (and listening, unless ``listen`` is False).

    Without ``reuse_port`` the address is this socket's alone. It listens at once: on
    Linux two sockets with SO_REUSEADDR may both *bind* a port, and only ``listen()``
    tells which one got it. ``reuse_addr`` (SO_REUSEADDR) lets a server restart over
    connections of a previous run still in TIME_WAIT.
    """
    name = host.strip("[]")
    family = socket.AF_INET6 if ":" in name else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if reuse_addr:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((name, port))
        if listen:
            sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(host, port) from exc
        raise ServeError(
            f"Cannot listen on {host}:{port}: {exc.strerror or exc}",
            hint="Pick another address with --host or port with --port",
        ) from exc
    sock.setblocking(False)
    return sock


@dataclass
class Listeners:
    """The sockets of a server: one, or one SO_REUSEPORT socket per worker.

    With several workers, ``anchor`` is one more socket of the group, bound but never
    listening (so the kernel sends it no connection) and without SO_REUSEADDR: while the
    supervisor holds it the port stays taken, for every other user and for any socket
    without SO_REUSEPORT, even at a moment when no worker listens. The supervisor closes
    its copy of a worker's socket once the worker has it, so a worker that dies takes its
    socket (and its share of new connections) with it at once.
    """

    host: str
    port: int
    sockets: list[socket.socket] = field(default_factory=list)
    anchor: socket.socket | None = None

    def replace(self, index: int) -> socket.socket:
        """A fresh socket for worker ``index`` (whose worker died): bound, not listening
        (the new worker listens once it can accept)."""
        self.sockets[index].close()
        fresh = make_socket(self.host, self.port, reuse_port=True, listen=False)
        self.sockets[index] = fresh
        return fresh

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        if self.anchor is not None:
            self.anchor.close()


def bind_listeners(serve: ServeSettings) -> Listeners:
    """The sockets for ``serve.workers`` workers on ``serve.host:serve.port`` (port 0: a free
    port, the same for all), or :class:`PortInUseError` when the address is taken."""
    if serve.workers <= 1:
        sock = make_socket(serve.host, serve.port)
        return Listeners(serve.host, sock.getsockname()[1], [sock])
    # The exclusive check: fails when anything listens there, a SO_REUSEPORT group included.
    probe = make_socket(serve.host, serve.port)
    port: int = probe.getsockname()[1]
    probe.close()
    group = Listeners(serve.host, port)
    try:
        group.anchor = make_socket(
            serve.host, port, reuse_port=True, listen=False, reuse_addr=False
        )
        for _ in range(serve.workers):
            group.sockets.append(make_socket(serve.host, port, reuse_port=True))
        ours = {os.fstat(s.fileno()).st_ino for s in group.sockets}
        family = group.sockets[0].family
        address = group.sockets[0].getsockname()[0]
        others = foreign_listeners(family, address, port, ours)
        if others:
            # Another server started at the same moment and joined this group.
            raise PortInUseError(
                serve.host,
                port,
                f"{others} socket{'s' if others != 1 else ''} of another process listen there too",
            )
    except BaseException:
        group.close()
        raise
    return group


def foreign_listeners(family: int, address: str, port: int, ours: set[int]) -> int:
    """How many listening TCP sockets on ``address:port`` are not among the inodes
    ``ours``, from ``/proc/net/tcp`` or ``tcp6`` (0 where that file does not exist)."""
    table = Path("/proc/net/tcp6" if family == socket.AF_INET6 else "/proc/net/tcp")
    try:
        lines = table.read_text().splitlines()[1:]
    except OSError:
        return 0
    wanted = socket.inet_pton(family, address)
    count = 0
    for line in lines:
        parts = line.split()
        if len(parts) < 10 or parts[3] != _TCP_LISTEN:
            continue
        hex_address, _, hex_port = parts[1].partition(":")
        if int(hex_port, 16) != port or int(parts[9]) in ours:
            continue
        # The kernel prints the address as 32-bit words in host byte order.
        raw = b"".join(
            struct.pack("=I", int(hex_address[i : i + 8], 16))
            for i in range(0, len(hex_address), 8)
        )
        if raw == wanted:
            count += 1
    return count


# -- stopping -------------------------------------------------------------------------------


class GracefulStop:
    """SIGINT and SIGTERM handlers: each signal, the first or any later one, asks for the
    same graceful stop of the registered servers (never uvicorn's forced exit)."""

    def __init__(self) -> None:
        self.requested = False
        self.servers: list[uvicorn.Server] = []

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            # os.write: a buffered stream's write may be the very call this signal interrupted.
            with contextlib.suppress(OSError):
                os.write(
                    2,
                    b"already stopping: answering the requests in flight and writing the "
                    b"prediction log before exiting\n",
                )
        self.requested = True
        for server in self.servers:
            server.should_exit = True

    def watch(self, server: uvicorn.Server) -> None:
        self.servers.append(server)
        if self.requested:
            server.should_exit = True

    @contextlib.contextmanager
    def installed(self) -> Iterator[GracefulStop]:
        """These handlers for SIGINT and SIGTERM while the block runs (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {sig: signal.signal(sig, self) for sig in _STOP_SIGNALS}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _graceful_server(config: uvicorn.Config, stop: GracefulStop) -> uvicorn.Server:
    """A uvicorn server whose signal handling is ``stop``'s."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Generator[None, None, None]:
            # Replaces uvicorn's: no forced exit on a second signal, no re-raised signal.
            with stop.installed():
                yield

    server = Server(config)
    stop.watch(server)
    return server


# -- running --------------------------------------------------------------------------------


def run(
    settings: Settings,
    serve: ServeSettings,
    target: ServeTarget,
    *,
    insecure: bool = False,
    listeners: Listeners | None = None,
) -> int:
    """Serve until stopped; returns the exit code (0 after a requested stop).

    ``listeners`` are sockets from :func:`bind_listeners` (made here when not given).
    Raises the error of the first load when the served model cannot be loaded at all.
    """
    check_bind(serve, insecure=insecure)
    stop = GracefulStop()
    with stop.installed():
        if listeners is None:
            listeners = bind_listeners(serve)
        try:
            serve = serve.with_overrides(port=listeners.port)
            if serve.workers <= 1:
                run_worker(
                    settings,
                    serve,
                    target,
                    index=0,
                    count=1,
                    run_dir=None,
                    supervisor_pid=None,
                    sock=listeners.sockets[0],
                    stop=stop,
                )
                return 0
            return Supervisor(settings, serve, target, listeners, stop).run()
        finally:
            listeners.close()


def run_worker(
    settings: Settings,
    serve: ServeSettings,
    target: ServeTarget,
    *,
    index: int,
    count: int,
    run_dir: Path | None,
    supervisor_pid: int | None,
    sock: socket.socket | None = None,
    stop: GracefulStop | None = None,
    load_before_start: bool = False,
) -> None:
    """One server process: the app on uvicorn, on ``sock`` (made here if not given).

    With ``load_before_start`` the model is loaded before the socket listens (for a worker
    restarted beside others that serve). Returns after a graceful stop; raises when the
    first load of the model failed.
    """
    from loopline.serve.app import WorkerInfo, create_app

    worker = WorkerInfo(
        index=index,
        count=count,
        run_dir=run_dir,
        supervisor_pid=supervisor_pid,
        load_before_start=load_before_start,
    )
    app = create_app(
        settings,
        serve,
        model=target.model,
        canary=target.canary,
        shadow=target.shadow,
        sticky_key=target.sticky_key,
        worker=worker,
    )
    listener = sock or make_socket(serve.host, serve.port)
    server = _graceful_server(uvicorn_config(app, serve), stop or GracefulStop())
    state = app.state.loopline

    def stop_serving() -> None:
        server.should_exit = True

    state.stop_server = stop_serving
    if supervisor_pid is not None:
        _watch_parent(supervisor_pid)
    # Every request allocates a few hundred containers (rows, futures, messages) that die
    # young: with Python's default threshold of 700 the collector ran every few requests
    # and took a tenth of the CPU of a 100-row request. The long-lived heap is frozen once
    # the model is loaded (see loopline.serve.app), so the rarer collections stay short.
    gc.set_threshold(*GC_THRESHOLDS)
    server.run(sockets=[listener])
    failure = state.failure
    if failure is not None:
        if isinstance(failure, LooplineError):
            raise failure
        raise ModelLoadError(
            f"Cannot load {target.model}: {type(failure).__name__}: {failure}",
            hint="See the log above; the server stopped because it had nothing to serve",
            ref=target.model,
            cause=f"{type(failure).__name__}: {failure}",
        ) from failure


def uvicorn_config(app: Any, serve: ServeSettings) -> uvicorn.Config:
    """How a worker runs ``app`` on uvicorn: uvloop and httptools when installed, no access
    log, no server header (also what ``bench/serving.py`` runs its empty endpoint on)."""
    import uvicorn

    return uvicorn.Config(
        app,
        loop=_available("uvloop", "auto"),
        http=_available("httptools", "auto"),
        lifespan="on",
        access_log=False,
        log_level="warning",
        server_header=False,
        proxy_headers=False,
        backlog=BACKLOG,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=int(serve.graceful_timeout_s) or None,
    )


def _available(module: str, fallback: str) -> str:
    import importlib.util

    return module if importlib.util.find_spec(module) is not None else fallback


def _watch_parent(pid: int) -> None:
    """Stop this worker (gracefully) if the supervisor goes away."""

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != pid:
                os.kill(os.getpid(), signal.SIGTERM)
                return

    threading.Thread(target=watch, name="loopline-parent-watch", daemon=True).start()


def _worker_main(
    settings: Settings,
    serve: ServeSettings,
    target: ServeTarget,
    index: int,
    count: int,
    run_dir: str,
    supervisor_pid: int,
    sock: socket.socket,
    load_before_start: bool,
) -> None:
    # Its own process group: a terminal's Ctrl+C reaches the supervisor only, which then
    # asks each worker to stop, once.
    with contextlib.suppress(OSError):
        os.setpgrp()
    stop = GracefulStop()
    logging.basicConfig(
        level=logging.WARNING,
        format=f"%(asctime)s worker {index} %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    with stop.installed():
        try:
            run_worker(
                settings,
                serve,
                target,
                index=index,
                count=count,
                run_dir=Path(run_dir),
                supervisor_pid=supervisor_pid,
                sock=sock,
                stop=stop,
                load_before_start=load_before_start,
            )
        except LooplineError as exc:
            report_failure(Path(run_dir) / f"failed-{index}", exc)
            sys.exit(1)


def report_failure(path: Path, exc: LooplineError) -> None:
    """Write ``exc`` for :func:`read_failure` in another process (the supervisor).

    Errors are rebuilt from their class and attributes rather than pickled whole: their
    constructors take the data their messages are made of, which pickle does not replay.
    """
    cls = type(exc)
    state = (cls.__module__, cls.__qualname__, exc.args, dict(vars(exc)))
    try:
        data = pickle.dumps(state)
    except Exception:
        plain = (ServeError.__module__, ServeError.__qualname__, (str(exc),), {"message": str(exc)})
        data = pickle.dumps(plain)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def read_failure(path: Path) -> LooplineError | None:
    """The error :func:`report_failure` wrote at ``path``, or None if there is none."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    module, qualname, args, attrs = pickle.loads(data)  # our own private run folder
    cls: Any = None
    if isinstance(module, str) and module.startswith("loopline."):
        with contextlib.suppress(ImportError, AttributeError):
            cls = getattr(importlib.import_module(module), qualname)
    if not (isinstance(cls, type) and issubclass(cls, LooplineError)):
        cls = ServeError
    exc: LooplineError = cls.__new__(cls)
    Exception.__init__(exc, *args)
    vars(exc).update(attrs)
    return exc


class Supervisor:
    """Starts ``serve.workers`` worker processes and keeps them running until stopped."""

    def __init__(
        self,
        settings: Settings,
        serve: ServeSettings,
        target: ServeTarget,
        listeners: Listeners,
        stop: GracefulStop,
    ) -> None:
        self.settings = settings
        self.serve = serve
        self.target = target
        self.listeners = listeners
        self.stop = stop
        self.giving_up = False
        self.procs: dict[int, Any] = {}
        self.started: dict[int, float] = {}
        self.crashes: dict[int, int] = {}
        #: Whether every worker has loaded the model once (then a failed load of a
        #: restarted worker is a crash, not the end of the server).
        self.served = False
        self.run_dir = Path(tempfile.mkdtemp(prefix="loopline-serve-"))
        self.metrics_dir = self.run_dir / "metrics"

    @property
    def stopping(self) -> bool:
        return self.stop.requested or self.giving_up

    def run(self) -> int:
        from loopline.serve.metrics import MULTIPROC_ENV

        self.metrics_dir.mkdir()
        # Set before any worker starts (and before prometheus_client is imported there).
        previous = os.environ.get(MULTIPROC_ENV)
        os.environ[MULTIPROC_ENV] = str(self.metrics_dir)
        ctx = multiprocessing.get_context("spawn")
        usr1 = signal.signal(signal.SIGUSR1, self._on_reload)
        try:
            for index in range(self.serve.workers):
                self._start(ctx, index, self.listeners.sockets[index])
            return self._watch(ctx)
        finally:
            self._stop_all()
            signal.signal(signal.SIGUSR1, usr1)
            if previous is None:
                os.environ.pop(MULTIPROC_ENV, None)
            else:
                os.environ[MULTIPROC_ENV] = previous
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def _watch(self, ctx: Any) -> int:
        from loopline.serve.metrics import mark_process_dead

        while not self.stopping:
            time.sleep(0.2)
            if not self.served:
                self.served = len(list(self.run_dir.glob("ready-*"))) >= self.serve.workers
            for index, proc in list(self.procs.items()):
                if proc.is_alive() or self.stopping:
                    continue
                mark_process_dead(proc.pid)
                with contextlib.suppress(OSError):
                    (self.run_dir / f"ready-{index}").unlink()
                failed = self.run_dir / f"failed-{index}"
                failure = read_failure(failed)
                with contextlib.suppress(OSError):
                    failed.unlink()
                if failure is not None and not self.served:
                    raise failure
                if failure is not None:
                    sys.stderr.write(f"worker {index} stopped: {failure}\n")
                quick = time.monotonic() - self.started[index] < _CRASH_WINDOW_S
                self.crashes[index] = self.crashes.get(index, 0) + 1 if quick else 0
                if self.crashes[index] >= _CRASH_LIMIT:
                    sys.stderr.write(
                        f"error: worker {index} keeps exiting (code {proc.exitcode}); "
                        "stopping the server\n"
                    )
                    self.giving_up = True
                    return 1
                sys.stderr.write(
                    f"worker {index} exited with code {proc.exitcode}; restarting it\n"
                )
                # While the others serve, the new worker listens only once it has loaded
                # the model: until then the kernel sends its share to them.
                self._start(ctx, index, self.listeners.replace(index), restart=self.served)
        return 0

    def _start(self, ctx: Any, index: int, sock: socket.socket, *, restart: bool = False) -> None:
        proc = ctx.Process(
            target=_worker_main,
            args=(
                self.settings,
                self.serve,
                self.target,
                index,
                self.serve.workers,
                str(self.run_dir),
                os.getpid(),
                sock,
                restart,
            ),
            name=f"loopline-serve-{index}",
            daemon=False,
        )
        proc.start()
        sock.close()  # the worker has its own copy now (see Listeners)
        self.procs[index] = proc
        self.started[index] = time.monotonic()

    def _on_reload(self, signum: int, frame: Any) -> None:
        for proc in self.procs.values():
            if proc.is_alive() and proc.pid is not None:
                with contextlib.suppress(OSError):
                    os.kill(proc.pid, signal.SIGUSR1)

    def _stop_all(self) -> None:
        # No new connections from here on: the workers close their copies as they stop.
        self.listeners.close()
        for proc in self.procs.values():
            if proc.is_alive() and proc.pid is not None:
                with contextlib.suppress(OSError):
                    os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.serve.graceful_timeout_s + 15.0
        for proc in self.procs.values():
            proc.join(max(0.1, deadline - time.monotonic()))
        for proc in self.procs.values():
            if proc.is_alive():
                sys.stderr.write(f"worker pid {proc.pid} did not stop in time; killing it\n")
                proc.kill()
                proc.join(5)
