"""Real servers for the serving tests: a project with registered models, and ``loopline
serve`` subprocesses on 127.0.0.1 (uvicorn, uvloop, httptools, SO_REUSEPORT workers).

The project is built once per session; each server gets its own alias when a test moves
aliases, so servers do not disturb each other.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from loopline.config import default_toml, settings_for
from loopline.registry import Registry
from loopline.store.db import migrate
from loopline.store.db.engine import Database
from loopline.store.stores import Stores

COLUMNS = ["age", "income", "plan", "active", "region"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def make_frame(n: int = 300, seed: int = 7) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "age": rng.integers(18, 80, n),
            "income": rng.normal(50.0, 12.0, n),
            "plan": rng.choice(["basic", "plus", "pro"], n),
            "active": rng.random(n) > 0.4,
            "region": pd.Categorical(rng.choice(["north", "south", "east"], n)),
        }
    )
    y = pd.Series(((X["income"] + (X["plan"] == "pro") * 8) > 52).astype(int), name="churned")
    return X, y


def make_pipeline(X: pd.DataFrame, y: pd.Series, c: float) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    pre = ColumnTransformer(
        [
            ("num", StandardScaler(), ["age", "income"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["plan", "region"]),
        ],
        remainder="passthrough",
    )
    return Pipeline([("pre", pre), ("clf", LogisticRegression(C=c, max_iter=500))]).fit(X, y)


@dataclass
class Project:
    path: Path
    X: pd.DataFrame
    y: pd.Series
    models: dict[int, Any] = field(default_factory=dict)

    def stores(self) -> Stores:
        return Stores.open(settings_for(self.path, environ={}))

    def set_alias(self, alias: str, version: int) -> None:
        with self.stores() as stores:
            Registry(stores).set_alias("churn", alias, version)

    def rows(self, n: int, start: int = 0) -> list[dict[str, Any]]:
        frame = self.X.iloc[start : start + n]
        out = []
        for rec in frame.to_dict("records"):
            out.append(
                {
                    "age": int(rec["age"]),
                    "income": float(rec["income"]),
                    "plan": str(rec["plan"]),
                    "active": bool(rec["active"]),
                    "region": str(rec["region"]),
                }
            )
        return out

    def expected_proba(self, version: int, rows: list[dict[str, Any]]) -> Any:
        frame = pd.DataFrame(rows)[COLUMNS]
        frame["region"] = pd.Categorical(frame["region"], categories=["east", "north", "south"])
        return self.models[version].predict_proba(frame)


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A project on SQLite + a local folder with model ``churn`` v1 (alias prod) and v2."""
    path = tmp_path_factory.mktemp("serve-project")
    (path / "loopline.toml").write_text(default_toml())
    settings = settings_for(path, environ={})
    with Database(settings.metadata_url, create=True) as db:
        migrate.upgrade(db)
    (path / ".loopline" / "artifacts").mkdir(parents=True, exist_ok=True)
    X, y = make_frame()
    proj = Project(path, X, y)
    with Stores.open(settings) as stores:
        reg = Registry(stores)
        for version, c in ((1, 1.0), (2, 0.05)):
            model = make_pipeline(X, y, c)
            mv = reg.register("churn", model, sample=X, onnx=True)
            assert mv.version == version
            proj.models[version] = model
        reg.set_alias("churn", "prod", 1)
    return proj


@pytest.fixture(scope="session")
def broken_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with ``churn`` v1 (alias good), v2 with a tampered model file (alias
    tampered) and v3 whose model file is gone (alias missing)."""
    path = tmp_path_factory.mktemp("serve-broken")
    (path / "loopline.toml").write_text(default_toml())
    settings = settings_for(path, environ={})
    with Database(settings.metadata_url, create=True) as db:
        migrate.upgrade(db)
    (path / ".loopline" / "artifacts").mkdir(parents=True, exist_ok=True)
    X, y = make_frame()
    with Stores.open(settings) as stores:
        reg = Registry(stores)
        for c in (1.0, 0.3, 0.05):
            reg.register("churn", make_pipeline(X, y, c), sample=X)
        for alias, version in (("good", 1), ("tampered", 2), ("missing", 3)):
            reg.set_alias("churn", alias, version)
        key = stores.cas.key_for(reg.manifest("churn/2").files["model.skops"].sha256)
        data = bytearray(stores.objects.get(key))
        data[len(data) // 2] ^= 0x01
        stores.objects.put(key, bytes(data))
        stores.objects.delete(
            stores.cas.key_for(reg.manifest("churn/3").files["model.skops"].sha256)
        )
    return path


@dataclass
class Server:
    url: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30.0, **kwargs)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return int(self.proc.returncode)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


ServerFactory = Callable[..., Server]


@pytest.fixture(scope="session")
def start_server(
    project: Project, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerFactory]:
    """Start ``loopline serve`` on a free port; it is stopped (SIGTERM) at session end."""
    started: list[Server] = []
    logs = tmp_path_factory.mktemp("serve-logs")

    def start(
        ref: str = "churn@prod",
        *args: str,
        env: dict[str, str] | None = None,
        ready: bool = True,
        cwd: Path | None = None,
        port: int | None = None,
    ) -> Server:
        """``loopline serve REF --port PORT ARGS`` in ``cwd`` (default: the session project)."""
        port = free_port() if port is None else port
        environ = {
            **os.environ,
            "LOOPLINE_SERVE_POLL_INTERVAL_S": "0.5",
            "LOOPLINE_SERVE_LOG_FLUSH_S": "1",
            "LOOPLINE_SERVE_GRACEFUL_TIMEOUT_S": "20",
            **(env or {}),
        }
        environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        log = logs / f"server-{port}-{len(started)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "loopline", "serve", ref, "--port", str(port), *args],
                cwd=cwd or project.path,
                env=environ,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        server = Server(f"http://127.0.0.1:{port}", port, proc, log)
        started.append(server)
        if ready:
            wait_ready(server)
        return server

    yield start
    for server in started:
        server.stop()


def wait_ready(server: Server, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise AssertionError(f"server exited ({server.proc.returncode}):\n{server.output()}")
        try:
            r = httpx.get(server.url + "/health/ready", timeout=2.0)
            if r.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"server not ready after {timeout}s:\n{server.output()}")


@pytest.fixture(scope="session")
def server(start_server: ServerFactory) -> Server:
    """The shared server of churn@prod with two workers (routes, protocols, schemathesis)."""
    return start_server("churn@prod", "--workers", "2")
