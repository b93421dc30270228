"""The whole cycle, unattended: seeded production traffic through a served champion's
HTTP endpoint, delayed labels, the loop controller, and what it did, as a timeline.

A :class:`Cycle` owns one project in which the credit-risk champion was trained
(:func:`prepare_project`): it starts ``loopline serve`` as a subprocess, runs the loop
controller in this process, replays traffic in threads, and plays a :class:`Scenario`,
a list of phases of traffic (normal, drifted, broken ...), each until a number of
monitor windows passed or the rollout reached a state. Windows are a few seconds long
here, so the whole cycle runs in minutes; the code paths are the ones a project runs
with 5-minute windows.

The scenarios (``loopline demo --scenario NAME``, ``bench/loop.py``):

``drift``           the applicants change (a downturn: lower incomes, more debt, and the
                    risk of the self-employed grows with it); the drift alarm fires, the
                    loop retrains on the newest data and labels, the canary bakes, the
                    challenger is promoted
``concept``         the same applicants, but what predicts default changes; the
                    realized-performance alarm fires on the delayed labels, and the same
``broken_feature``  upstream starts sending ``debt_to_income`` in percent: the data
                    quality alarm tells ops (webhook), the retraining it asks for is
                    refused on the broken rows, the champion keeps serving
``bad_challenger``  a scheduled retraining ships a challenger that cannot take a product
                    launched the same week (``strict_categories``): its canary fails
                    requests (the champion answers them instead) and is rolled back
``steady``          nothing changes: nothing fires, nothing moves
"""

from __future__ import annotations

import heapq
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from loopline.loop.controller import Controller
    from loopline.loop.timeline import Entry
    from loopline.store.stores import Stores

MODEL = "credit_risk"
TARGET = "default"
NEW_PURPOSE = "solar_panels"


@dataclass(frozen=True)
class Phase:
    """Traffic of one kind, until ``windows`` windows passed or a rollout reached one of
    ``until`` (or both: whichever first)."""

    name: str
    shift: float = 0.0
    concept: float = 0.0
    percent_dti: bool = False
    new_purpose: float = 0.0
    windows: int | None = None
    until: tuple[str, ...] = ()
    #: Ask for a retraining when the phase starts (a schedule, not an alarm).
    retrain: bool = False
    #: The phase where the world changes (detection delay counts from its start).
    change: bool = False


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    phases: tuple[Phase, ...]
    #: How the scenario should end: promoted, rolled_back, refused, or "" (nothing moves).
    expect: str
    #: Retraining parameters of this scenario (beside [loop.credit_risk] params).
    params: dict[str, Any] = field(default_factory=dict)


ENDED = ("promoted", "rolled_back", "refused", "failed", "stood_down")

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "drift",
            "the applicants drift; the loop retrains, bakes a canary and promotes it",
            (
                Phase("normal", windows=3),
                Phase("downturn", shift=1.5, concept=1.0, change=True, until=ENDED, windows=40),
                Phase("after", shift=1.5, concept=1.0, windows=2),
            ),
            "promoted",
        ),
        Scenario(
            "concept",
            "what predicts default changes; the labels show it, the loop adapts",
            (
                Phase("normal", windows=3),
                Phase("new rules", concept=1.5, change=True, until=ENDED, windows=45),
                Phase("after", concept=1.5, windows=2),
            ),
            "promoted",
        ),
        Scenario(
            "broken_feature",
            "upstream sends debt_to_income in percent; no retraining on broken data",
            (
                Phase("normal", windows=3),
                Phase("broken", percent_dti=True, change=True, until=ENDED, windows=30),
                Phase("after", percent_dti=True, windows=1),
            ),
            "refused",
        ),
        Scenario(
            "bad_challenger",
            "a retraining ships a challenger that fails live; its canary is rolled back",
            (
                Phase("normal", windows=2),
                Phase("retraining", retrain=True, until=("baking", *ENDED), windows=40),
                Phase("launch", new_purpose=0.08, change=True, until=ENDED, windows=30),
                Phase("after", new_purpose=0.08, windows=1),
            ),
            "rolled_back",
            params={"strict_categories": True},
        ),
        Scenario(
            "steady",
            "nothing changes: nothing fires, nothing moves",
            (Phase("normal", windows=8),),
            "",
        ),
    )
}

#: What ``loopline demo`` plays when no scenario is named.
DEMO_SCENARIOS = ("bad_challenger", "drift")


# -- the project --------------------------------------------------------------------------


@dataclass(frozen=True)
class CycleSettings:
    window_s: float = 4.0
    #: Requests per second the traffic replays, and rows per request.
    rate: float = 80.0
    rows_per_request: int = 2
    #: Share of requests whose labels come back, and how late.
    label_share: float = 0.6
    label_delay_s: float = 3.0
    #: Rows of the champion's training data (and n_trials of its tuning, and of retrains).
    train_rows: int = 4_000
    n_trials: int = 3
    percent: float = 30.0
    bake_windows: int = 2
    #: Labels a retraining waits for.
    min_production_rows: int = 900
    #: Open a new connection every N requests (0: one keep-alive connection), so that
    #: several server workers, each taking connections of their own, all get traffic.
    reconnect_every: int = 0
    #: How many times its ``windows`` a phase that waits for a rollout (``until``) may
    #: last: on shared infrastructure a retraining (Ray tasks, PostgreSQL, S3) takes
    #: longer than on the embedded stores. A phase still ends when its rollout does.
    patience: float = 1.0


#: The champion comparison of the example's gates, and the one a cycle judges with. A
#: cycle's fresh holdouts are a few hundred labelled rows, where the AUC of one model moves
#: by about 0.03 between samples: at the example's margin of 0.005, a challenger as good as
#: the champion would be refused about half the time on the noise alone.
EXAMPLE_COMPARISON = '"roc_auc >= champion.roc_auc - 0.005"'
CYCLE_COMPARISON = '"roc_auc >= champion.roc_auc - 0.02"'


def cycle_gates(toml_text: str) -> str:
    """``toml_text`` (a project's loopline.toml) with the champion comparison a cycle's
    small fresh holdouts can tell apart (:data:`CYCLE_COMPARISON`)."""
    return toml_text.replace(EXAMPLE_COMPARISON, CYCLE_COMPARISON)


def loop_toml(cfg: CycleSettings, hook_url: str) -> str:
    """The tables a cycle project adds to loopline.toml: fast windows, the alarms, the
    actions and the loop of the credit-risk model."""
    w = f"{cfg.window_s:g}s"
    return f"""
[serve]
poll_interval_s = 0.5
log_flush_s = 0.5

[controller]
tick_s = 0.25
lease_s = 20.0
port = 0

[monitor.{MODEL}]
every = "{w}"
window = "{w}"
delay = "1.2s"
label_delay = "{cfg.label_delay_s + 2.5:g}s"
min_rows = 60
min_labels = 40

[alarms.drift]
model = "{MODEL}@champion"
when = "drift.share > 0.3"
periods = 2
datapoints = 2
actions = ["ops", "retrain"]
ok_actions = ["ops"]
description = "the applicants are not the ones the champion was trained on"

[alarms.performance]
model = "{MODEL}@champion"
when = "performance.roc_auc < 0.72"
periods = 3
datapoints = 2
actions = ["ops", "retrain"]
ok_actions = ["ops"]
description = "the labels say the champion is worse than it was"

[alarms.broken_input]
model = "{MODEL}@champion"
when = "quality.out_of_range_share > 0.2"
periods = 1
datapoints = 1
actions = ["ops"]
ok_actions = ["ops"]
description = "a feature arrives outside anything seen in training"

[actions.ops]
kind = "webhook"
url = "{hook_url}"
secret = "cycle-secret"
timeout_s = 2
retries = 2
backoff_s = 0.1

[actions.retrain]
kind = "retrain"
model = "{MODEL}"

[loop.{MODEL}]
pipeline = "pipelines/example.py"
params = {{ n_trials = {cfg.n_trials}, promote = false }}
alias = "champion"
percent = {cfg.percent:g}
bake_windows = {cfg.bake_windows}
max_empty_windows = 3
min_holdout_rows = 60
min_production_rows = {cfg.min_production_rows}
max_wait = "90s"
actions = ["ops"]
"""


def prepare_project(
    root: Path,
    cfg: CycleSettings,
    hook_url: str,
    *,
    on_event: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """A fresh project in ``root`` with the credit-risk champion trained and promoted."""
    from loopline.config import settings_for
    from loopline.pipeline.loader import load_pipeline
    from loopline.pipeline.runner import run_pipeline
    from loopline.project.create import init_project
    from loopline.registry import Registry
    from loopline.store.stores import Stores

    init_project(root, environ={})
    toml = root / "loopline.toml"
    toml.write_text(cycle_gates(toml.read_text()) + loop_toml(cfg, hook_url))
    settings = settings_for(root, environ={})
    pipeline, path = load_pipeline(str(root / "pipelines" / "example.py"))
    say = on_event or (lambda _: None)
    started = time.perf_counter()
    with Stores.open(settings) as stores:
        result = run_pipeline(
            pipeline,
            stores,
            params={"n_rows": cfg.train_rows, "n_trials": cfg.n_trials},
            source=path,
            on_event=lambda name, status, rec: say(f"train the champion: {name} {status}"),
        )
        if not result.ok:
            from loopline.pipeline.errors import PipelineError

            raise PipelineError(f"training the champion failed: {result.error}")
        champion = Registry(stores).resolve(f"{MODEL}@champion")
    return {"champion": champion.version, "seconds": time.perf_counter() - started}


# -- traffic -----------------------------------------------------------------------------


def production_rows(phase: Phase, n: int, seed: int) -> pd.DataFrame:
    """Seeded applications as this phase's traffic looks (with the true label)."""
    import numpy as np

    from loopline.examples.credit_risk.data import generate_applications

    frame = generate_applications(n_rows=n, seed=seed, shift=phase.shift, concept=phase.concept)
    rng = np.random.default_rng(seed + 1)
    if phase.percent_dti:
        frame["debt_to_income"] = (frame["debt_to_income"] * 100).round(1)
    if phase.new_purpose:
        launched = rng.random(n) < phase.new_purpose
        frame.loc[launched, "purpose"] = NEW_PURPOSE
    return frame


#: Times a POST of labels is tried before its labels count as failed.
LABEL_TRIES = 4


@dataclass
class TrafficStats:
    sent: int = 0
    answered: int = 0
    failed: int = 0
    #: (time, status, body) of failed requests
    failures: list[tuple[float, int, str]] = field(default_factory=list)
    by_version: dict[str, int] = field(default_factory=dict)
    labels_sent: int = 0
    labels_failed: int = 0


class Traffic:
    """Requests at a steady rate to ``/predict``, labels to ``/feedback`` later."""

    def __init__(self, host: str, port: int, cfg: CycleSettings, seed: int = 100) -> None:
        self.host, self.port = host, port
        self.cfg = cfg
        self.seed = seed
        self.stats = TrafficStats()
        self.phase: Phase = Phase("idle")
        self._frames: dict[str, tuple[Any, list[dict[str, Any]], list[Any]]] = {}
        self._cursor = 0
        self._labels: list[tuple[float, str, list[Any]]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def set_phase(self, phase: Phase) -> None:
        with self._lock:
            if phase.name not in self._frames:
                frame = production_rows(phase, 30_000, self.seed + len(self._frames) * 7)
                records = frame.drop(columns=[TARGET]).to_dict("records")
                for record in records:
                    for key, value in record.items():
                        if isinstance(value, float) and value != value:
                            record[key] = None
                self._frames[phase.name] = (frame, records, frame[TARGET].tolist())
            self.phase = phase
            self._cursor = 0

    @property
    def running(self) -> bool:
        return bool(self._threads)

    def start(self) -> None:
        for target, name in ((self._send, "send"), (self._feedback, "feedback")):
            thread = threading.Thread(target=target, name=f"loopline-cycle-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop sending; returns once the last POSTs in flight were answered (or timed out),
        so that the stats are final."""
        self._stop.set()
        for thread in self._threads:
            # A thread may be in a few POSTs of up to 10 s each (its timeout).
            thread.join(timeout=60)

    def _connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=10)

    def _send(self) -> None:
        conn = self._connection()
        interval = 1.0 / self.cfg.rate
        next_at = time.monotonic()
        k = self.cfg.rows_per_request
        import random

        pick = random.Random(self.seed)
        sent_on_connection = 0
        while not self._stop.is_set():
            if self.cfg.reconnect_every and sent_on_connection >= self.cfg.reconnect_every:
                conn.close()
                conn = self._connection()
                sent_on_connection = 0
            sent_on_connection += 1
            with self._lock:
                _, records, labels = self._frames[self.phase.name]
                start = self._cursor % (len(records) - k)
                self._cursor += k
            body = json.dumps(records[start : start + k]).encode()
            truth = labels[start : start + k]
            try:
                conn.request("POST", "/predict", body, {"Content-Type": "application/json"})
                response = conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                conn = self._connection()
                self._count_failure(0, f"{type(exc).__name__}: {exc}")
            else:
                self.stats.sent += 1
                if response.status == 200:
                    answer = json.loads(data)
                    self.stats.answered += 1
                    key = f"v{answer['version']} {answer['role']}"
                    self.stats.by_version[key] = self.stats.by_version.get(key, 0) + 1
                    if pick.random() < self.cfg.label_share:
                        due = time.monotonic() + self.cfg.label_delay_s
                        with self._lock:
                            heapq.heappush(
                                self._labels,
                                (due, answer["request_id"], [bool(v) for v in truth]),
                            )
                else:
                    self._count_failure(response.status, data.decode("utf-8", "replace")[:300])
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            else:
                next_at = time.monotonic()
        conn.close()

    def _count_failure(self, status: int, text: str) -> None:
        self.stats.sent += status != 0
        self.stats.failed += 1
        self.stats.failures.append((time.time(), status, text))

    def _feedback(self) -> None:
        """Send the labels as they come due. A POST that fails (a dropped connection, a
        server that answered too late) is sent again, up to :data:`LABEL_TRIES` times:
        the server may have stored it already, and storing a label twice changes nothing,
        so a label counts as sent once a POST holding it was answered 200."""
        conn = self._connection()
        retry: list[tuple[int, list[dict[str, Any]]]] = []
        while not self._stop.wait(0.25):
            now = time.monotonic()
            due: list[dict[str, Any]] = []
            with self._lock:
                while self._labels and self._labels[0][0] <= now:
                    _, rid, labels = heapq.heappop(self._labels)
                    due.append({"request_id": rid, "labels": labels})
            batches, retry = retry, []
            if due:
                batches.append((0, due))
            for tries, batch in batches:
                ok, conn = self._post_labels(conn, batch)
                if ok:
                    self.stats.labels_sent += len(batch)
                elif tries + 1 < LABEL_TRIES:
                    retry.append((tries + 1, batch))
                else:
                    self.stats.labels_failed += len(batch)
        self.stats.labels_failed += sum(len(batch) for _, batch in retry)
        conn.close()

    def _post_labels(
        self, conn: http.client.HTTPConnection, batch: list[dict[str, Any]]
    ) -> tuple[bool, http.client.HTTPConnection]:
        """POST ``batch`` to ``/feedback``: whether it was answered 200, and the connection
        to use next (a new one after a failure)."""
        try:
            conn.request(
                "POST",
                "/feedback",
                json.dumps(batch).encode(),
                {"Content-Type": "application/json"},
            )
            response = conn.getresponse()
            response.read()
            return response.status == 200, conn
        except (OSError, http.client.HTTPException):
            conn.close()
            return False, self._connection()


# -- the webhook receiver -----------------------------------------------------------------


class Hooks:
    """An HTTP receiver for the ``ops`` webhook: checks each signature, keeps the events."""

    def __init__(self, secret: str = "cycle-secret") -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from loopline.alarm.webhook import verify_signature

        self.events: list[dict[str, Any]] = []
        self.bad_signatures = 0
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if verify_signature(secret, body, dict(self.headers.items())):
                    hooks.events.append(json.loads(body))
                    status = 200
                else:
                    hooks.bad_signatures += 1
                    status = 401
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/ops"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- the server ---------------------------------------------------------------------------


class Server:
    """``loopline serve credit_risk@champion`` in a subprocess."""

    def __init__(
        self, root: Path, environ: Mapping[str, str] | None = None, workers: int = 1
    ) -> None:
        self.root = root
        self.workers = workers
        #: The stores' settings come from here (as for the controller); the [serve] table
        #: of the cycle's loopline.toml decides the server's own settings.
        self.environ = dict(os.environ if environ is None else environ)
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0
        self.log = root / ".loopline" / "cycle-server.log"

    def start(self, timeout_s: float = 90.0) -> int:
        import re

        from loopline.serve.errors import ServeError

        self.log.parent.mkdir(parents=True, exist_ok=True)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("LOOPLINE_")},
            **{k: v for k, v in self.environ.items() if not k.startswith("LOOPLINE_SERVE_")},
        }
        with self.log.open("w") as out:  # the child writes to its own copy of the file
            self.proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", "loopline", "serve", f"{MODEL}@champion"),
                    *("--port", "0", "--workers", str(self.workers)),
                ],
                cwd=self.root,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            text = self.log.read_text()
            found = re.search(r"on http://127\.0\.0\.1:(\d+)", text)
            if found:
                self.port = int(found.group(1))
                break
            if self.proc.poll() is not None:
                text = self.log.read_text()  # all it wrote before it exited
                raise ServeError(
                    f"The model server exited before it listened (log {self.log}): {text[-2000:]}"
                )
            time.sleep(0.05)
        while time.monotonic() < deadline:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            try:
                conn.request("GET", "/health/ready")
                if conn.getresponse().status == 200:
                    return self.port
            except OSError:
                pass
            finally:
                conn.close()
            time.sleep(0.1)
        raise ServeError(
            f"The model server did not get ready within {timeout_s:g} s (log {self.log}): "
            f"{self.log.read_text()[-2000:]}"
        )

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


# -- playing a scenario --------------------------------------------------------------------


@dataclass
class Outcome:
    """What happened in one scenario, with the figures the benchmark reports."""

    scenario: str
    expect: str
    #: The rollouts started during it: (id, final state, reason).
    rollouts: list[tuple[str, str, str]] = field(default_factory=list)
    #: Windows from the change to the first alarm (None: nothing fired).
    detection_windows: int | None = None
    fired: list[str] = field(default_factory=list)
    serving: str = ""
    split: str | None = None
    requests: int = 0
    failed_requests: int = 0
    #: Failed requests within 5 s of a traffic move (split set, removed, alias moved).
    failed_during_moves: int = 0
    moves: int = 0
    labels: int = 0
    webhooks: int = 0
    seconds: float = 0.0
    #: Seconds from the change to the first alarm, and to the rollout's end.
    detection_s: float | None = None
    outcome_s: float | None = None
    #: When the world changed, and the monitor windows of the scenario (start, end).
    change_at: float | None = None
    windows: list[tuple[float, float]] = field(default_factory=list)
    timeline: list[dict[str, Any]] = field(default_factory=list)

    @property
    def final(self) -> str:
        return self.rollouts[-1][1] if self.rollouts else ""

    @property
    def ok(self) -> bool:
        return self.final == self.expect and self.failed_requests == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "expect": self.expect,
            "final": self.final,
            "ok": self.ok,
            "rollouts": [{"id": i, "state": s, "reason": r} for i, s, r in self.rollouts],
            "detection_windows": self.detection_windows,
            "fired": self.fired,
            "serving": self.serving,
            "split": self.split,
            "requests": self.requests,
            "failed_requests": self.failed_requests,
            "failed_during_moves": self.failed_during_moves,
            "moves": self.moves,
            "labels": self.labels,
            "webhooks": self.webhooks,
            "seconds": round(self.seconds, 1),
            "detection_s": None if self.detection_s is None else round(self.detection_s, 1),
            "outcome_s": None if self.outcome_s is None else round(self.outcome_s, 1),
            "timeline": self.timeline,
        }


class Cycle:
    """A prepared project, its server, its controller and its traffic."""

    def __init__(
        self,
        root: Path,
        cfg: CycleSettings,
        hooks: Hooks,
        *,
        on_entry: Callable[[Entry], None] | None = None,
        on_note: Callable[[str], None] | None = None,
        environ: Mapping[str, str] | None = None,
        serve_workers: int = 1,
    ) -> None:
        self.root = root
        self.environ = environ
        self.cfg = cfg
        self.hooks = hooks
        self.on_entry = on_entry or (lambda _: None)
        self.on_note = on_note or (lambda _: None)
        self.server = Server(root, environ, workers=serve_workers)
        self._stores: Stores | None = None
        self.controller: Controller | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.traffic: Traffic | None = None

    def __enter__(self) -> Cycle:
        from loopline.config import settings_for
        from loopline.loop.controller import Controller
        from loopline.store.stores import Stores

        port = self.server.start()
        workers = f" ({self.server.workers} worker processes)" if self.server.workers > 1 else ""
        self.on_note(f"serving {MODEL}@champion on http://127.0.0.1:{port}{workers}")
        settings = settings_for(self.root, environ=self.environ)
        self._stores = Stores.open(settings)
        self.controller = Controller(self._stores, settings)
        self._thread = threading.Thread(
            target=self.controller.run, args=(self._stop,), name="loopline-cycle-controller"
        )
        self._thread.start()
        self.traffic = Traffic("127.0.0.1", port, self.cfg)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.traffic is not None:
            self.traffic.stop()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=120)
        self.server.stop()
        if self._stores is not None:
            self._stores.close()

    @property
    def stores(self) -> Stores:
        assert self._stores is not None
        return self._stores

    def play(self, scenario: Scenario) -> Outcome:
        """Play ``scenario`` on the running server and controller."""
        from loopline.loop.rollout import Rollouts
        from loopline.loop.settings import loop_config
        from loopline.loop.timeline import Timeline
        from loopline.registry import Registry

        assert self.traffic is not None
        assert self.controller is not None
        started = time.time()
        out = Outcome(scenario.name, scenario.expect)
        timeline = Timeline(self.stores)
        rollouts = Rollouts(self.stores)
        before = {r.id for r in rollouts.history(MODEL, limit=1000)}
        hooks_before = len(self.hooks.events)
        sent_before = self.traffic.stats.sent
        failures_before = len(self.traffic.stats.failures)
        labels_before = self.traffic.stats.labels_sent
        if scenario.params:
            self._set_params(scenario.params)
        w = self.cfg.window_s
        change_at: float | None = None
        alarm_at: float | None = None
        if not self.traffic.running:
            self.traffic.set_phase(scenario.phases[0])
            self.traffic.start()
        for phase in scenario.phases:
            if phase.change:
                # The world changes at a window's start, so that "windows from the change
                # to the alarm" counts whole windows (a change mid-window half-fills one).
                time.sleep(w - time.time() % w)
            self.traffic.set_phase(phase)
            self.on_note(f"traffic: {phase.name}")
            phase_start = time.time()
            if phase.change and change_at is None:
                change_at = phase_start
            if phase.retrain:
                cfg = loop_config(self.controller.settings, MODEL)
                r = rollouts.start(MODEL, cfg, trigger="schedule", cause={"reason": "weekly"})
                self.on_note(f"scheduled retraining: rollout {r.id[:8]}")
            windows = phase.windows or 10_000
            if phase.until:
                windows = int(windows * self.cfg.patience)
            deadline = phase_start + windows * w
            while time.time() < deadline:
                for entry in timeline.read():
                    out.timeline.append(entry.to_dict())
                    self.on_entry(entry)
                    if (
                        entry.kind == "alarm"
                        and entry.event.endswith("-> alarm")
                        and change_at is not None
                        and alarm_at is None
                    ):
                        alarm_at = entry.at.timestamp()
                        out.fired.append(entry.subject)
                    elif entry.kind == "alarm" and entry.event.endswith("-> alarm"):
                        out.fired.append(entry.subject)
                if phase.until and self._reached(rollouts, before, phase.until):
                    break
                time.sleep(0.2)
        # Let the last window's entries in.
        time.sleep(0.5)
        for entry in timeline.read():
            out.timeline.append(entry.to_dict())
            self.on_entry(entry)
        out.change_at = change_at
        if change_at is not None and alarm_at is not None:
            first = int(change_at // w)
            out.detection_windows = max(1, int(alarm_at // w) - first)
            out.detection_s = alarm_at - change_at
        new = [r for r in rollouts.history(MODEL, limit=1000) if r.id not in before]
        out.rollouts = [(r.id, r.state, r.reason or "") for r in reversed(new)]
        if new and new[0].ended_at is not None and change_at is not None:
            out.outcome_s = new[0].ended_at.timestamp() - change_at
        out.windows = [
            (float(e["numbers"]["window_start"]), float(e["numbers"]["window_end_ts"]))
            for e in out.timeline
            if e["kind"] == "monitor"
            and not e["numbers"].get("again")
            and e["numbers"].get("window_start") is not None
        ]
        reg = Registry(self.stores)
        holder = reg.aliases(MODEL).get("champion")
        split = reg.traffic(MODEL, "champion")
        out.serving = f"{MODEL}/{holder}"
        out.split = None if split is None else f"{split.percent:g}% to {split.candidate}"
        stats = self.traffic.stats
        out.requests = stats.sent - sent_before
        failures = stats.failures[failures_before:]
        out.failed_requests = len(failures)
        moves = self._moves(started)
        out.moves = len(moves)
        out.failed_during_moves = sum(
            1 for at, _, _ in failures if any(abs(at - m) <= 5.0 for m in moves)
        )
        out.labels = stats.labels_sent - labels_before
        out.webhooks = len(self.hooks.events) - hooks_before
        out.seconds = time.time() - started
        if scenario.params:
            self._set_params({})
        return out

    def _reached(self, rollouts: Any, before: set[str], states: tuple[str, ...]) -> bool:
        new = [r for r in rollouts.history(MODEL, limit=50) if r.id not in before]
        return bool(new) and new[0].state in states

    def _moves(self, since: float) -> list[float]:
        """When the alias or the split moved since ``since`` (epoch seconds)."""
        from loopline.store.db.events import list_events

        moving = ("model.traffic", "model.set", "model.promote", "model.rollback")
        with self.stores.db.read() as conn:
            events = list_events(conn, limit=1000)
        return [
            e.at.timestamp()
            for e in events
            if e.kind in moving and e.subject.startswith(f"{MODEL}@") and e.at.timestamp() >= since
        ]

    def _set_params(self, params: dict[str, Any]) -> None:
        """Run this scenario's retraining with extra parameters (a config change the team
        made), by changing the controller's copy of [loop.credit_risk]."""
        from dataclasses import replace

        assert self.controller is not None
        base = self.controller.loops[MODEL]
        if not hasattr(self, "_base_params"):
            self._base_params = dict(base.params)
        merged = {**self._base_params, **params}
        cfg = replace(base, params=merged)
        self.controller.loops[MODEL] = cfg
        self.controller.driver.loops[MODEL] = cfg


def now_text() -> str:
    return datetime.now(UTC).strftime("%H:%M:%S")
