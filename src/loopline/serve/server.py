"""Running the app: uvicorn (uvloop + httptools, no access log), one SO_REUSEPORT socket per
worker process, and a small supervisor when there are several workers.

Why a socket per worker: ``uvicorn --workers N`` shares one listening socket, and under
keep-alive load one worker ends up with most connections. With SO_REUSEPORT each worker
has its own listening socket on the same port and the kernel spreads new connections
over them evenly.

The supervisor (only with ``workers > 1``) starts the workers with the ``spawn`` method,
restarts one that dies (giving up if they keep dying at start), forwards an admin reload
(SIGUSR1) to every worker, and on SIGTERM/SIGINT asks each worker to stop gracefully:
it finishes its requests, answers its queued batches and flushes its prediction log.
Workers stop by themselves if the supervisor disappears.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.errors import ServeError, UnsafeBindError
from loopline.serve.settings import ServeSettings, is_loopback

if TYPE_CHECKING:
    from loopline.config import Settings

log = logging.getLogger("loopline.serve")

#: A worker that dies this soon after starting, this many times in a row, stops the server.
_CRASH_WINDOW_S = 15.0
_CRASH_LIMIT = 3


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
                    raise ServeError(
                        f"The {mode} {split.ref!r} is not a version of {mv.name!r}",
                        hint="A canary or shadow must be another version of the served model",
                    )
    return f"{target.model} (now {mv.ref})"


def make_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` with SO_REUSEPORT (not yet listening)."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise ServeError(
            f"Cannot listen on {host}:{port}: {exc.strerror or exc}",
            hint="Pick another port with --port, or stop what uses this one",
        ) from exc
    sock.setblocking(False)
    return sock


def run(
    settings: Settings,
    serve: ServeSettings,
    target: ServeTarget,
    *,
    insecure: bool = False,
) -> int:
    """Serve until stopped; returns the exit code."""
    check_bind(serve, insecure=insecure)
    if serve.workers <= 1:
        run_worker(settings, serve, target, index=0, count=1, run_dir=None, supervisor_pid=None)
        return 0
    return Supervisor(settings, serve, target).run()


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
) -> None:
    """One server process: the app on uvicorn, on its own SO_REUSEPORT socket."""
    import uvicorn

    from loopline.serve.app import WorkerInfo, create_app

    worker = WorkerInfo(index=index, count=count, run_dir=run_dir, supervisor_pid=supervisor_pid)
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
    config = uvicorn.Config(
        app,
        loop=_available("uvloop", "auto"),
        http=_available("httptools", "auto"),
        lifespan="on",
        access_log=False,
        log_level="warning",
        server_header=False,
        proxy_headers=False,
        backlog=4096,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=int(serve.graceful_timeout_s) or None,
    )
    server = uvicorn.Server(config)
    if supervisor_pid is not None:
        _watch_parent(supervisor_pid)
    server.run(sockets=[listener])


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
) -> None:
    # Its own process group: a terminal's Ctrl+C reaches the supervisor only, which then
    # sends one SIGTERM. (Two signals would make uvicorn skip the graceful shutdown, and
    # with it the flush of the prediction log.)
    with contextlib.suppress(OSError):
        os.setpgrp()
    logging.basicConfig(
        level=logging.WARNING,
        format=f"%(asctime)s worker {index} %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        run_worker(
            settings,
            serve,
            target,
            index=index,
            count=count,
            run_dir=Path(run_dir),
            supervisor_pid=supervisor_pid,
        )
    except ServeError as exc:
        sys.stderr.write(f"error: worker {index}: {exc}\n")
        sys.exit(3)


class Supervisor:
    """Starts ``serve.workers`` worker processes and keeps them running until stopped."""

    def __init__(self, settings: Settings, serve: ServeSettings, target: ServeTarget) -> None:
        self.settings = settings
        self.serve = serve
        self.target = target
        self.stopping = False
        self.procs: dict[int, Any] = {}
        self.started: dict[int, float] = {}
        self.crashes: dict[int, int] = {}
        self.run_dir = Path(tempfile.mkdtemp(prefix="loopline-serve-"))
        self.metrics_dir = self.run_dir / "metrics"

    def run(self) -> int:
        from loopline.serve.metrics import MULTIPROC_ENV, mark_process_dead

        self.metrics_dir.mkdir()
        # Set before any worker starts (and before prometheus_client is imported there).
        previous = os.environ.get(MULTIPROC_ENV)
        os.environ[MULTIPROC_ENV] = str(self.metrics_dir)
        ctx = multiprocessing.get_context("spawn")
        handlers = {
            sig: signal.signal(sig, self._on_stop) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        usr1 = signal.signal(signal.SIGUSR1, self._on_reload)
        code = 0
        try:
            # Reserve the port while the workers start, so port 0 means one port for all.
            holder = make_socket(self.serve.host, self.serve.port)
            serve = self.serve
            if serve.port == 0:
                serve = serve.with_overrides(port=holder.getsockname()[1])
                self.serve = serve
            for index in range(serve.workers):
                self._start(ctx, index)
            holder.close()
            while not self.stopping:
                time.sleep(0.2)
                for index, proc in list(self.procs.items()):
                    if proc.is_alive() or self.stopping:
                        continue
                    mark_process_dead(proc.pid)
                    with contextlib.suppress(OSError):
                        (self.run_dir / f"ready-{index}").unlink()
                    quick = time.monotonic() - self.started[index] < _CRASH_WINDOW_S
                    self.crashes[index] = self.crashes.get(index, 0) + 1 if quick else 0
                    if self.crashes[index] >= _CRASH_LIMIT:
                        sys.stderr.write(
                            f"error: worker {index} keeps exiting (code {proc.exitcode}); "
                            "stopping the server\n"
                        )
                        self.stopping = True
                        code = 1
                        break
                    sys.stderr.write(
                        f"worker {index} exited with code {proc.exitcode}; restarting it\n"
                    )
                    self._start(ctx, index)
        finally:
            self._stop_all()
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            signal.signal(signal.SIGUSR1, usr1)
            if previous is None:
                os.environ.pop(MULTIPROC_ENV, None)
            else:
                os.environ[MULTIPROC_ENV] = previous
            shutil.rmtree(self.run_dir, ignore_errors=True)
        return code

    def _start(self, ctx: Any, index: int) -> None:
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
            ),
            name=f"loopline-serve-{index}",
            daemon=False,
        )
        proc.start()
        self.procs[index] = proc
        self.started[index] = time.monotonic()

    def _on_stop(self, signum: int, frame: Any) -> None:
        self.stopping = True

    def _on_reload(self, signum: int, frame: Any) -> None:
        for proc in self.procs.values():
            if proc.is_alive() and proc.pid is not None:
                with contextlib.suppress(OSError):
                    os.kill(proc.pid, signal.SIGUSR1)

    def _stop_all(self) -> None:
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
