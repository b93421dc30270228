"""``loopline demo``: the lifecycle on embedded defaults, from nothing, in a fresh project.

The demo is a list of stages run in order over one project; each stage records what it
made and where it went. Later parts of loopline add their stages to :data:`STAGES`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loopline.config import Settings
from loopline.pipeline.errors import PipelineError
from loopline.project.create import InitReport, init_project
from loopline.store.db.events import list_events, record_event
from loopline.store.errors import BlobIntegrityError
from loopline.store.stores import Stores


@dataclass
class Item:
    """One thing the demo made: what it is, where it lives, and how to find it."""

    stage: str
    what: str
    where: str
    detail: str


@dataclass
class DemoContext:
    project_dir: Path
    settings: Settings
    stores: Stores
    items: list[Item] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)

    def add(self, stage: str, what: str, where: str, detail: str) -> None:
        self.items.append(Item(stage, what, where, detail))


@dataclass
class DemoReport:
    project_dir: Path
    init: InitReport
    items: list[Item]

    def as_dict(self) -> dict[str, object]:
        return {
            "project_dir": str(self.project_dir),
            "metadata_url": self.init.as_dict()["metadata_url"],
            "artifacts_url": self.init.settings.artifacts_url,
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

    result = run_pipeline(example.pipeline, ctx.stores, source=example.__file__)
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
    for name in ("baseline", "tuned"):
        m = evaluation[name]["metrics"]
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
    ctx.add(
        "registry",
        f"model {reg['model']} v{reg['version']} ({reg['winner']})",
        "aliases: challenger" + (", champion" if reg["promoted"] else ""),
        f"gates {passed}/{total} passed; "
        + ("promoted to champion" if reg["promoted"] else "not promoted"),
    )
    ctx.state["model"] = reg
    again = run_pipeline(example.pipeline, ctx.stores, source=example.__file__)
    cached = sum(r.status == "cached" for r in again.steps.values())
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

    def call(path: str, body: object) -> tuple[int, dict[str, object]]:
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
        version = answered[0][0].get("version") if answered else "-"
        ctx.add(
            "serve",
            f"endpoint {model} (version {version})",
            base,
            f"{len(answered)} requests answered (4 rows each); a request with a text "
            f"income and no age got HTTP {bad_status} listing "
            f"{len(problems) if isinstance(problems, list) else 1} problems",
        )
        stored = fb_body.get("stored", 0)
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
    ctx.add(
        "monitor",
        f"prediction log ({logged.num_rows} rows)",
        f"{ctx.stores.objects.url}/predictions/",
        "Parquet, partitioned by model and hour",
    )


def stage_audit(ctx: DemoContext) -> None:
    with ctx.stores.db.read() as conn:
        events = list_events(conn, limit=10)
    kinds = ", ".join(sorted({e.kind for e in events}))
    ctx.add("record", f"audit log ({len(events)} events)", ctx.stores.db.display_url, kinds)


Stage = tuple[str, str, Callable[[DemoContext], None]]

#: (name, description, function), run in order.
STAGES: list[Stage] = [
    ("dataset", "store a dataset as Parquet and read it back", stage_store_dataset),
    ("artifact", "store an artifact and verify its hash", stage_store_artifact),
    ("pipeline", "credit-risk pipeline: data, tuning, evaluation, gates, registry", stage_pipeline),
    ("serve", "serve the champion over HTTP, log predictions, take feedback", stage_serve),
    ("audit", "read back the audit log", stage_audit),
]


def run_demo(
    project_dir: Path,
    *,
    on_stage: Callable[[str, str], None] | None = None,
    environ: dict[str, str] | None = None,
) -> DemoReport:
    """Run every stage in a project at ``project_dir`` (created if missing)."""
    init = init_project(project_dir, environ=environ)
    stores = Stores.open(init.settings)
    ctx = DemoContext(project_dir=init.project_dir, settings=init.settings, stores=stores)
    ctx.add(
        "init",
        "project settings",
        str(init.project_dir / "loopline.toml"),
        "created" if "loopline.toml" in init.created else "kept",
    )
    ctx.add("init", "metadata store", stores.db.display_url, f"revision {init.revision_after}")
    ctx.add("init", "artifact store", stores.objects.url, "checked readable and writable")
    try:
        for name, description, fn in STAGES:
            if on_stage is not None:
                on_stage(name, description)
            fn(ctx)
    finally:
        stores.close()
    return DemoReport(init.project_dir, init, ctx.items)
