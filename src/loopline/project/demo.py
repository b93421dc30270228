"""``loopline demo``: the lifecycle on embedded defaults, from nothing, in a fresh project.

The demo is a list of stages run in order over one project; each stage records what it
made and where it went, twice: as :class:`Item` rows for people (the table ``loopline
demo`` prints) and as typed facts on the :class:`DemoReport` (counts, versions, ids,
statuses) for scripts and tests. Later parts of loopline add their stages to :data:`STAGES`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.config import Settings
from loopline.pipeline.errors import PipelineError
from loopline.project.create import InitReport, init_project
from loopline.store.db.events import list_events, record_event
from loopline.store.errors import BlobIntegrityError
from loopline.store.stores import Stores

if TYPE_CHECKING:
    from loopline.execute import Executor
    from loopline.loop.timeline import Entry

#: Marks the tables the loop stage adds to loopline.toml (replaced on a second run).
LOOP_MARKER = "# -- added by `loopline demo`: the loop stage's monitor, alarms and loop --"


@dataclass
class Item:
    """One thing the demo made: what it is, where it lives, and how to find it."""

    stage: str
    what: str
    where: str
    detail: str


@dataclass(frozen=True)
class StoredTable:
    """The ``dataset`` stage: a table put into the content store and read back."""

    digest: str
    key: str
    rows: int
    columns: int
    bytes: int
    #: Putting the same table again gave the same digest (and stored nothing new).
    deduplicated: bool


@dataclass(frozen=True)
class StoredArtifact:
    """The ``artifact`` stage: a JSON blob stored and verified on read."""

    digest: str
    key: str
    verified: bool


@dataclass(frozen=True)
class TrainedModel:
    """One model the pipeline trained, with its test metrics."""

    name: str
    run_id: str | None
    roc_auc: float | None
    log_loss: float | None


@dataclass(frozen=True)
class PipelineOutcome:
    """The ``pipeline`` stage: the example's run, its data, its models, and a second run."""

    pipeline_run_id: str
    tracked_run_id: str | None
    status: str
    #: step name -> status, in run order
    steps: dict[str, str]
    dataset: str
    dataset_version: int
    rows: int
    split_id: int
    #: "train" / "validation" / "test" -> rows
    split_rows: dict[str, int]
    features: int
    models: tuple[TrainedModel, ...]
    rerun_id: str
    #: steps of the second run that reused their cached output
    rerun_cached: int
    #: Where the steps ran ("local", "ray").
    executor: str = "local"


@dataclass(frozen=True)
class RegisteredModel:
    """The ``pipeline`` stage's registration and gated promotion."""

    model: str
    version: int
    winner: str
    aliases: tuple[str, ...]
    promoted: bool
    gates_passed: int
    gates_total: int


@dataclass(frozen=True)
class ServedEndpoint:
    """The ``serve`` stage: requests to the champion's endpoint, feedback, the log."""

    model_ref: str
    version: int | None
    url: str
    requests_answered: int
    rows_per_request: int
    rejected_status: int
    rejected_problems: int
    feedback_status: int
    feedback_stored: int
    logged_rows: int


@dataclass(frozen=True)
class AuditLog:
    """The ``audit`` stage: the latest events of the audit log."""

    events: int
    kinds: tuple[str, ...]


@dataclass(frozen=True)
class LoopScenario:
    """The ``loop`` stage: one scenario played against the served champion, unattended."""

    scenario: str
    title: str
    #: How it should end, and how it ended (promoted, rolled_back, refused, "").
    expect: str
    final: str
    ok: bool
    #: Monitor windows, and seconds, from the change to the first alarm.
    detection_windows: int | None
    detection_s: float | None
    #: Seconds from the change to the rollout's end.
    outcome_s: float | None
    fired: tuple[str, ...]
    #: What serves at the end: "credit_risk/3", and the split if one is left.
    serving: str
    split: str | None
    requests: int
    failed_requests: int
    failed_during_moves: int
    moves: int
    labels: int
    webhooks: int
    seconds: float
    #: Why the scenario's last rollout ended as it did ("" when none started).
    reason: str = ""


@dataclass(frozen=True)
class Infrastructure:
    """Where the demo ran and what crossed it: the stores, the executor, the server's
    worker processes, the prediction log they wrote, and the feedback they took."""

    metadata: str
    artifacts_url: str
    executor: str
    serve_workers: int
    #: Distinct writers (server worker processes) of the loop stage's prediction log.
    log_writers: int
    #: Requests the loop stage's traffic sent labels for (answered 200), and the requests
    #: the metadata database holds labels for (the serve stage's included).
    labels_sent: int
    labels_stored: int


@dataclass
class StageFacts:
    """What each stage did, as typed values (None for a stage that did not run)."""

    dataset: StoredTable | None = None
    artifact: StoredArtifact | None = None
    pipeline: PipelineOutcome | None = None
    model: RegisteredModel | None = None
    serving: ServedEndpoint | None = None
    audit: AuditLog | None = None
    loop: tuple[LoopScenario, ...] = ()
    infrastructure: Infrastructure | None = None


@dataclass
class DemoContext:
    project_dir: Path
    settings: Settings
    stores: Stores
    items: list[Item] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    facts: StageFacts = field(default_factory=StageFacts)
    #: The loop stage's scenarios (none: the stage does nothing).
    scenarios: tuple[str, ...] = ()
    #: Called with each timeline entry (monitor run, alarm change, rollout step) as the
    #: loop stage sees it, and with each of its notes (traffic phases, the server).
    on_entry: Callable[[Entry], None] | None = None
    on_note: Callable[[str], None] | None = None
    #: Where the stores' settings come from (None: the process's environment).
    environ: dict[str, str] | None = None
    #: Where pipeline steps run (from [executor], or the demo's --executor).
    executor: Executor | None = None
    #: Worker processes of the loop stage's server.
    serve_workers: int = 1

    def add(self, stage: str, what: str, where: str, detail: str) -> None:
        self.items.append(Item(stage, what, where, detail))


@dataclass
class DemoReport:
    """What the demo did: the rows people read (``items``) and each stage's ``facts``
    (``report.facts.serving.requests_answered``)."""

    project_dir: Path
    init: InitReport
    items: list[Item]
    facts: StageFacts = field(default_factory=StageFacts)

    def as_dict(self) -> dict[str, object]:
        return {
            "project_dir": str(self.project_dir),
            "metadata_url": self.init.as_dict()["metadata_url"],
            "artifacts_url": self.init.settings.artifacts_url,
            **asdict(self.facts),
            "items": [vars(i) for i in self.items],
        }


def stage_store_dataset(ctx: DemoContext) -> None:
    """A seeded table goes into the content-addressed store as Parquet and comes back equal."""
    import numpy as np
    import pandas as pd

    from loopline.store.objects.tables import get_dataframe, put_table

    rng = np.random.default_rng(7)
    n = 5_000
    frame = pd.DataFrame(
        {
            "tenure": rng.integers(1, 72, n),
            "monthly_charges": rng.normal(70, 20, n).round(2),
            "plan": rng.choice(["basic", "plus", "pro"], n),
            "churned": rng.random(n) < 0.25,
        }
    )
    digest = put_table(ctx.stores.cas, frame)
    back = get_dataframe(ctx.stores.cas, digest)
    if not back.equals(frame):
        raise BlobIntegrityError(
            ctx.stores.cas.key_for(digest),
            "the table written",
            "a different table",
            ctx.stores.objects.url,
        )
    again = put_table(ctx.stores.cas, frame)
    size = ctx.stores.objects.stat(ctx.stores.cas.key_for(digest)).size
    ctx.state["dataset"] = (digest, frame)
    ctx.stores.db.run_write(
        lambda c: record_event(
            c, "demo.dataset", digest, {"rows": n, "columns": list(frame.columns), "bytes": size}
        )
    )
    key = ctx.stores.cas.key_for(digest)
    ctx.facts.dataset = StoredTable(digest, key, n, frame.shape[1], size, again == digest)
    ctx.add(
        "store",
        f"dataset ({n:,} rows x {frame.shape[1]} columns, Parquet)",
        f"{ctx.stores.objects.url}/{ctx.stores.cas.key_for(digest)}",
        f"sha256 {digest[:12]}…, {size:,} bytes; re-adding it stored nothing new "
        f"({'same digest' if again == digest else 'DIFFERENT digest'})",
    )


def stage_store_artifact(ctx: DemoContext) -> None:
    """A JSON artifact derived from the dataset, stored and verified on read."""
    digest, frame = ctx.state["dataset"]
    summary = {
        "dataset": digest,
        "rows": len(frame),
        "churn_rate_by_plan": frame.groupby("plan")["churned"].mean().round(4).to_dict(),
    }
    blob = json.dumps(summary, sort_keys=True, indent=2).encode()
    art = ctx.stores.cas.put(blob)
    if json.loads(ctx.stores.cas.get(art)) != summary:
        raise BlobIntegrityError(
            ctx.stores.cas.key_for(art),
            "the summary written",
            "a different summary",
            ctx.stores.objects.url,
        )
    ctx.stores.db.run_write(lambda c: record_event(c, "demo.artifact", art, {"of": digest}))
    ctx.facts.artifact = StoredArtifact(art, ctx.stores.cas.key_for(art), verified=True)
    ctx.add(
        "store",
        "artifact (churn summary, JSON)",
        f"{ctx.stores.objects.url}/{ctx.stores.cas.key_for(art)}",
        f"sha256 {art[:12]}…, verified on read",
    )


def stage_pipeline(ctx: DemoContext) -> None:
    """The credit-risk example: ingest, validate, profile, split, prepare features."""
    from loopline.examples.credit_risk import pipeline as example
    from loopline.pipeline.runner import run_pipeline

    result = run_pipeline(
        example.pipeline, ctx.stores, source=example.__file__, executor=ctx.executor
    )
    if not result.ok:
        raise PipelineError(f"The example pipeline {result.status}: {result.error}")
    ctx.state["pipeline"] = result
    ingest = result.output("ingest")
    split = result.output("split")
    features = result.output("features")
    ctx.add(
        "data",
        f"dataset {ingest['name']} v{ingest['version']} ({ingest['rows']:,} rows)",
        ctx.stores.db.display_url,
        f"content sha256 {ingest['digest'][:12]}…, validated, profiled",
    )
    ctx.add(
        "data",
        "split (stratified, seeded)",
        f"split #{split['split_id']}",
        f"train {len(split['train']):,} / validation {len(split['validation']):,} / "
        f"test {len(split['test']):,}",
    )
    ctx.add(
        "pipeline",
        f"pipeline run {result.id[:12]} ({len(result.steps)} steps)",
        f"tracked run {result.run_id[:12] if result.run_id else '-'}",
        f"features: {features['n_features']} columns after preprocessing; "
        + ", ".join(f"{n} {r.status}" for n, r in result.steps.items()),
    )
    evaluation = result.output("evaluation")
    models = []
    for name in ("baseline", "tuned"):
        m = evaluation[name]["metrics"]
        models.append(
            TrainedModel(name, result.steps[name].run_id, m.get("roc_auc"), m.get("log_loss"))
        )
        ctx.add(
            "train",
            f"{name} model",
            f"tracked run {(result.steps[name].run_id or '-')[:12]}",
            f"test ROC AUC {m.get('roc_auc') or 0:.3f}, log loss {m.get('log_loss') or 0:.3f}",
        )
    reg = result.output("register")
    verdict = reg.get("verdict") or {}
    passed = sum(1 for r in verdict.get("results", []) if r.get("passed"))
    total = len(verdict.get("results", []))
    aliases = ("challenger", "champion") if reg["promoted"] else ("challenger",)
    ctx.facts.model = RegisteredModel(
        reg["model"], reg["version"], reg["winner"], aliases, reg["promoted"], passed, total
    )
    ctx.add(
        "registry",
        f"model {reg['model']} v{reg['version']} ({reg['winner']})",
        "aliases: " + ", ".join(aliases),
        f"gates {passed}/{total} passed; "
        + ("promoted to champion" if reg["promoted"] else "not promoted"),
    )
    ctx.state["model"] = reg
    again = run_pipeline(
        example.pipeline, ctx.stores, source=example.__file__, executor=ctx.executor
    )
    cached = sum(r.status == "cached" for r in again.steps.values())
    ctx.facts.pipeline = PipelineOutcome(
        pipeline_run_id=result.id,
        tracked_run_id=result.run_id,
        status=result.status,
        steps={n: r.status for n, r in result.steps.items()},
        dataset=ingest["name"],
        dataset_version=ingest["version"],
        rows=ingest["rows"],
        split_id=split["split_id"],
        split_rows={part: len(split[part]) for part in ("train", "validation", "test")},
        features=features["n_features"],
        models=tuple(models),
        rerun_id=again.id,
        rerun_cached=cached,
        executor=ctx.executor.name if ctx.executor is not None else "local",
    )
    ctx.add(
        "pipeline",
        "the same pipeline again",
        f"pipeline run {again.id[:12]}",
        f"{cached} of {len(again.steps)} steps reused from the cache",
    )


def stage_serve(ctx: DemoContext) -> None:
    """The champion behind a real HTTP endpoint on 127.0.0.1: predictions, a rejected
    request, feedback for the answered ones, and the prediction log they left."""
    import json
    import socket
    import threading
    import time
    import urllib.error
    import urllib.request

    import uvicorn

    from loopline.monitor.predictions import read_predictions
    from loopline.serve import create_app, load_serve_settings

    result = ctx.state["pipeline"]
    test = result.output("split")["test"]
    model = f"{result.output('register')['model']}@champion"
    serve = load_serve_settings(ctx.settings).with_overrides(log_flush_s=0.2, log_flush_rows=1)
    app = create_app(ctx.settings, serve, model=model, stores=ctx.stores)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="error", access_log=False, lifespan="on"
        )
    )
    thread = threading.Thread(target=server.run, name="demo-server", daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"

    def call(path: str, body: object) -> tuple[int, dict[str, Any]]:
        req = urllib.request.Request(
            base + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(base + "/health/ready", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            if time.monotonic() > deadline:
                raise PipelineError("The demo endpoint did not become ready within 60 s")
            time.sleep(0.1)
        features = test.drop(columns=["default"])
        answered = []
        for start in range(0, 40, 4):
            rows = features.iloc[start : start + 4]
            status, body = call("/predict", json.loads(rows.to_json(orient="records")))
            if status == 200:
                answered.append((body, test["default"].iloc[start : start + 4].tolist()))
        bad = json.loads(features.iloc[:1].to_json(orient="records"))
        bad[0]["income"] = "a lot"
        del bad[0]["age"]
        bad_status, bad_body = call("/predict", bad)
        problems = bad_body.get("problems") or bad_body.get("errors") or []
        time.sleep(0.6)  # let the log flush, so feedback finds the requests
        fb_status, fb_body = call(
            "/feedback",
            {
                "feedback": [
                    {"request_id": body["request_id"], "labels": [bool(v) for v in labels]}
                    for body, labels in answered
                ]
            },
        )
        version = answered[0][0].get("version") if answered else None
        n_problems = len(problems) if isinstance(problems, list) else 1
        ctx.add(
            "serve",
            f"endpoint {model} (version {'-' if version is None else version})",
            base,
            f"{len(answered)} requests answered (4 rows each); a request with a text "
            f"income and no age got HTTP {bad_status} listing {n_problems} problems",
        )
        stored = int(fb_body.get("stored", 0))
        ctx.add(
            "serve",
            "feedback (ground truth)",
            base + "/feedback",
            f"HTTP {fb_status}: {stored} labels matched to logged predictions",
        )
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    logged = read_predictions(ctx.stores.objects, model=result.output("register")["model"])
    ctx.facts.serving = ServedEndpoint(
        model_ref=model,
        version=None if version is None else int(version),
        url=base,
        requests_answered=len(answered),
        rows_per_request=4,
        rejected_status=bad_status,
        rejected_problems=n_problems,
        feedback_status=fb_status,
        feedback_stored=stored,
        logged_rows=int(logged.num_rows),
    )
    ctx.add(
        "monitor",
        f"prediction log ({logged.num_rows} rows)",
        f"{ctx.stores.objects.url}/predictions/",
        "Parquet, partitioned by model and hour",
    )


def stage_audit(ctx: DemoContext) -> None:
    with ctx.stores.db.read() as conn:
        events = list_events(conn, limit=10)
    kinds = tuple(sorted({e.kind for e in events}))
    ctx.facts.audit = AuditLog(len(events), kinds)
    ctx.add(
        "record", f"audit log ({len(events)} events)", ctx.stores.db.display_url, ", ".join(kinds)
    )


def stage_loop(ctx: DemoContext) -> None:
    """The other half of the cycle, unattended: the champion is served by ``loopline
    serve``, seeded traffic comes in with labels a few seconds late, and the loop
    controller watches (windows of a few seconds), alarms, retrains, bakes a canary and
    promotes it or rolls it back, once per scenario (see :mod:`loopline.project.cycle`)."""
    from loopline.project.cycle import (
        SCENARIOS,
        Cycle,
        CycleSettings,
        Hooks,
        cycle_gates,
        loop_toml,
    )

    if not ctx.scenarios:
        return
    shared = (
        ctx.serve_workers > 1
        or not ctx.stores.db.is_sqlite
        or "://" in ctx.stores.objects.url
        or (ctx.executor is not None and ctx.executor.name != "local")
    )
    cfg = CycleSettings(
        reconnect_every=20 if ctx.serve_workers > 1 else 0, patience=3.0 if shared else 1.0
    )
    hooks = Hooks()
    logged_before = set(_log_keys(ctx))
    try:
        toml = ctx.project_dir / "loopline.toml"
        text = cycle_gates(toml.read_text().split(LOOP_MARKER)[0].rstrip("\n"))
        toml.write_text(f"{text}\n\n{LOOP_MARKER}\n{loop_toml(cfg, hooks.url)}")
        with Cycle(
            ctx.project_dir,
            cfg,
            hooks,
            on_entry=ctx.on_entry,
            on_note=ctx.on_note,
            environ=ctx.environ,
            serve_workers=ctx.serve_workers,
        ) as c:
            played = []
            for name in ctx.scenarios:
                scenario = SCENARIOS[name]
                if ctx.on_note is not None:
                    ctx.on_note(f"scenario {name}: {scenario.title}")
                out = c.play(scenario)
                played.append(
                    LoopScenario(
                        scenario=name,
                        title=scenario.title,
                        expect=out.expect,
                        final=out.final,
                        ok=out.ok,
                        detection_windows=out.detection_windows,
                        detection_s=out.detection_s,
                        outcome_s=out.outcome_s,
                        fired=tuple(out.fired),
                        serving=out.serving,
                        split=out.split,
                        requests=out.requests,
                        failed_requests=out.failed_requests,
                        failed_during_moves=out.failed_during_moves,
                        moves=out.moves,
                        labels=out.labels,
                        webhooks=out.webhooks,
                        seconds=out.seconds,
                        reason=out.rollouts[-1][2] if out.rollouts else "",
                    )
                )
                ctx.add("loop", f"scenario {name}", out.serving, _loop_detail(out))
        # Counted once the traffic has stopped: labels keep coming due after the last
        # scenario's outcome was taken, until the cycle closes.
        loop_labels = c.traffic.stats.labels_sent if c.traffic is not None else 0
    finally:
        hooks.close()
    ctx.facts.loop = tuple(played)
    writers = {_writer(k) for k in set(_log_keys(ctx)) - logged_before}
    ctx.facts.infrastructure = Infrastructure(
        metadata="sqlite" if ctx.stores.db.is_sqlite else "postgresql",
        artifacts_url=ctx.stores.objects.url,
        executor=ctx.executor.name if ctx.executor is not None else "local",
        serve_workers=ctx.serve_workers,
        log_writers=len(writers),
        labels_sent=loop_labels
        + (ctx.facts.serving.requests_answered if ctx.facts.serving is not None else 0),
        labels_stored=_labelled_requests(ctx),
    )
    ctx.add(
        "loop",
        f"served by {ctx.serve_workers} worker process(es)",
        ctx.stores.objects.url + "/predictions/",
        f"{len(writers)} log writer(s); labels for {ctx.facts.infrastructure.labels_stored:,} "
        f"requests stored of {ctx.facts.infrastructure.labels_sent:,} sent",
    )


def _log_keys(ctx: DemoContext) -> list[str]:
    from loopline.monitor.predictions import prediction_files

    return prediction_files(ctx.stores.objects)


def _writer(key: str) -> str:
    """The writer id in a log file's name (``<stamp>-<writer>-<seq>.parquet``)."""
    return key.rsplit("/", 1)[-1].split("-")[-2]


def _labelled_requests(ctx: DemoContext) -> int:
    import sqlalchemy as sa

    from loopline.monitor.tables import feedback

    with ctx.stores.db.read() as conn:
        return int(
            conn.execute(sa.select(sa.func.count(sa.distinct(feedback.c.request_id)))).scalar_one()
        )


def _loop_detail(out: Any) -> str:
    parts = []
    if out.fired:
        seen = list(dict.fromkeys(out.fired))
        parts.append(
            "alarm " + ", ".join(seen) + f" after {out.detection_windows} window(s)"
            if out.detection_windows is not None
            else "alarm " + ", ".join(seen)
        )
    else:
        parts.append("no alarm")
    if out.rollouts:
        rid, state, reason = out.rollouts[-1]
        line = f"rollout {rid[:8]} {state.replace('_', ' ')}"
        if out.outcome_s is not None:
            line += f" {out.outcome_s:.0f} s after the change"
        if reason and state != "promoted":
            # The first clause says why; `loopline loop show` has the whole reason.
            line += f" ({reason.split(' in the window ending ')[0].split(': ')[0]})"
        parts.append(line)
    else:
        parts.append("nothing moved")
    parts.append(f"{out.failed_requests} of {out.requests:,} requests failed")
    if out.webhooks:
        parts.append(f"{out.webhooks} webhook(s) to ops")
    if out.expect != out.final:
        parts.append(f"EXPECTED {out.expect or 'nothing to move'}")
    return "; ".join(parts)


Stage = tuple[str, str, Callable[[DemoContext], None]]

#: (name, description, function), run in order.
STAGES: list[Stage] = [
    ("dataset", "store a dataset as Parquet and read it back", stage_store_dataset),
    ("artifact", "store an artifact and verify its hash", stage_store_artifact),
    ("pipeline", "credit-risk pipeline: data, tuning, evaluation, gates, registry", stage_pipeline),
    ("serve", "serve the champion over HTTP, log predictions, take feedback", stage_serve),
    ("loop", "watch, alarm, retrain, bake a canary, promote or roll back", stage_loop),
    ("audit", "read back the audit log", stage_audit),
]


def run_demo(
    project_dir: Path,
    *,
    on_stage: Callable[[str, str], None] | None = None,
    environ: dict[str, str] | None = None,
    scenarios: tuple[str, ...] | None = None,
    on_entry: Callable[[Entry], None] | None = None,
    on_note: Callable[[str], None] | None = None,
    serve_workers: int = 1,
) -> DemoReport:
    """Run every stage in a project at ``project_dir`` (created if missing); the loop
    stage plays ``scenarios`` (default :data:`loopline.project.cycle.DEMO_SCENARIOS`;
    empty: no loop stage).

    The stores and the executor come from the project's settings and ``environ``
    (``LOOPLINE_METADATA_URL``, ``LOOPLINE_ARTIFACTS_URL``, ``LOOPLINE_EXECUTOR_KIND``
    ...): the same stages run on PostgreSQL, S3 and Ray. ``serve_workers`` is how many
    worker processes serve the loop stage's endpoint."""
    from loopline.project.cycle import DEMO_SCENARIOS, SCENARIOS

    chosen = DEMO_SCENARIOS if scenarios is None else tuple(scenarios)
    unknown = [s for s in chosen if s not in SCENARIOS]
    if unknown:
        from loopline.errors import ConfigError

        raise ConfigError(
            f"No scenario named {', '.join(map(repr, unknown))}; "
            f"expected one of {', '.join(SCENARIOS)}"
        )
    from loopline.config import CONFIG_FILE
    from loopline.execute import open_executor

    env = environ or {}
    new = not (project_dir / CONFIG_FILE).exists()
    init = init_project(
        project_dir,
        environ=environ,
        # A new project keeps the stores it was made on (loopline doctor shows them later).
        metadata_url=env.get("LOOPLINE_METADATA_URL") if new else None,
        artifacts_url=env.get("LOOPLINE_ARTIFACTS_URL") if new else None,
    )
    stores = Stores.open(init.settings)
    try:
        executor = open_executor(init.settings, thread_name="loopline-step")
    except BaseException:
        stores.close()
        raise
    ctx = DemoContext(
        project_dir=init.project_dir,
        settings=init.settings,
        stores=stores,
        scenarios=chosen,
        on_entry=on_entry,
        on_note=on_note,
        environ=environ,
        executor=executor,
        serve_workers=serve_workers,
    )
    ctx.add(
        "init",
        "project settings",
        str(init.project_dir / "loopline.toml"),
        "created" if "loopline.toml" in init.created else "kept",
    )
    ctx.add("init", "metadata store", stores.db.display_url, f"revision {init.revision_after}")
    ctx.add("init", "artifact store", stores.objects.url, "checked readable and writable")
    if executor.name != "local":
        ctx.add("init", "executor", executor.name, f"{executor.parallelism} units at once")
    try:
        for name, description, fn in STAGES:
            if on_stage is not None:
                on_stage(name, description)
            fn(ctx)
    finally:
        executor.shutdown()
        stores.close()
    return DemoReport(init.project_dir, init, ctx.items, ctx.facts)
