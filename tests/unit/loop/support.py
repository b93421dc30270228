"""A loop to drive in tests: the monitor's churn model as champion, a small retraining
pipeline file, the project's loop tables, and a way to tick a controller through
simulated monitor windows (traffic logged at chosen times, ticks at chosen times)."""

from __future__ import annotations

import math
import time
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from loopline.config import Settings
from loopline.loop.controller import Controller
from loopline.store.stores import Stores
from unit.monitor.support import FEATURES, Trained, make_frame, make_trained

#: The retraining pipeline the tests' loop runs: a logistic regression on the data the
#: loop hands it (``data = "customers@N"``), registered with its lineage. ``fail`` makes
#: its training step raise; ``slow_s`` sleeps in it.
RETRAIN = """
from typing import Any

from loopline.pipeline import Pipeline, StepContext, step

FEATURES = {features!r}


@step
def load(data: str = "", ctx: StepContext = None) -> Any:
    from loopline.data import Datasets

    name, _, version = data.partition("@")
    ds = Datasets(ctx.stores)
    dv = ds.get(name, int(version))
    return {{"frame": ds.load(name, dv.version), "name": name, "version": dv.version,
             "digest": dv.digest}}


@step
def train(load: Any, fail: bool = False, slow_s: float = 0.0) -> Any:
    import time

    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline as SkPipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    if slow_s:
        time.sleep(slow_s)
    if fail:
        raise RuntimeError("the feature store is down")
    frame = load["frame"]
    pre = ColumnTransformer([
        ("num", StandardScaler(), FEATURES[:6]),
        ("cat", OneHotEncoder(handle_unknown="ignore"), ["plan", "region"]),
    ])
    model = SkPipeline([("pre", pre), ("clf", LogisticRegression(max_iter=500))])
    return model.fit(frame[FEATURES], frame["churned"])


@step
def register(train: Any, load: Any, ctx: StepContext) -> dict:
    from loopline.registry import DatasetRef, Registry

    reg = Registry(ctx.stores)
    mv = reg.register(
        "churn", train, sample=load["frame"][FEATURES].head(50), run_id=ctx.run.id,
        datasets=[DatasetRef(load["name"], load["version"], load["digest"], "train")],
        onnx=False,
    )
    return {{"model": "churn", "version": mv.version}}


pipeline = Pipeline("retrain", [load, train, register])
"""

GATES = """
[gates.churn]
criteria = ["roc_auc >= 0.6", "roc_auc >= champion.roc_auc - 0.05", "data.valid"]
holdout = "customers@1"
split = "test"
target = "churned"
champion = "production"
"""


def loop_toml(pipeline: Path, hook: str | None = None, **loop: Any) -> str:
    """The loop tables of a test project (``loop`` overrides [loop.churn] keys)."""
    values: dict[str, Any] = {
        "pipeline": str(pipeline),
        "alias": "production",
        "percent": 50,
        "bake_windows": 2,
        "max_empty_windows": 2,
        "holdout_share": 0.3,
        "min_holdout_rows": 40,
        "bake": [
            "health.error_share <= champion.health.error_share + 0.05",
            "compare.positive_rate_diff <= 0.3",
        ],
    }
    if hook:
        values["actions"] = ["ops"]
    values.update(loop)
    lines = ["[loop.churn]"] + [f"{k} = {_toml(v)}" for k, v in values.items()]
    text = GATES + "\n".join(lines) + '\n\n[monitor.churn]\nevery = "1m"\nwindow = "1m"\n'
    text += 'delay = "0s"\nmin_rows = 20\nmin_labels = 20\n'
    if hook:
        text += f'\n[actions.ops]\nkind = "webhook"\nurl = "{hook}"\nsecret = "s3cret"\n'
        text += "retries = 2\nbackoff_s = 0.01\n"
    return text


def _toml(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return repr(value)


@dataclass
class LoopBed:
    """A champion, its project settings, and simulated time."""

    stores: Stores
    trained: Trained
    settings: Settings
    #: The start of the first simulated window (a minute boundary after now).
    t0: datetime

    def window(self, i: int) -> tuple[datetime, datetime]:
        start = self.t0 + timedelta(minutes=i)
        return start, start + timedelta(minutes=1)

    def controller(self, holder: str | None = None) -> Controller:
        return Controller(self.stores, self.settings, holder=holder)

    def traffic(
        self,
        i: int,
        frame: pd.DataFrame,
        *,
        role: str = "primary",
        version: int | None = None,
        prefix: str | None = None,
        label: bool = False,
        model: Any = None,
    ) -> list[str]:
        """Log ``frame`` as answered in window ``i`` (by ``version`` in ``role``)."""
        start, _ = self.window(i)
        at = start.timestamp() + 5 + (0 if role == "primary" else 1)
        original = self.trained.model
        if model is not None:
            self.trained.model = model
        try:
            ids = self.trained.log(
                frame,
                at=at,
                role=role,
                version=version,
                prefix=prefix or f"w{i}-{role}-{time.monotonic_ns()}",
            )
        finally:
            self.trained.model = original
        if label:
            self.trained.label(ids, frame)
        return ids

    def tick(self, ctl: Controller, i: int, *, settle_s: float = 120.0) -> dict[str, Any]:
        """Tick ``ctl`` just after window ``i`` ended, then until its work settled."""
        _, end = self.window(i)
        now = end + timedelta(seconds=1)
        done = ctl.tick(now=now)
        deadline = time.monotonic() + settle_s
        while time.monotonic() < deadline:
            time.sleep(0.02)
            if ctl.idle():
                break
        return done

    def settle(self, ctl: Controller, i: int, *, ticks: int = 12) -> None:
        """Tick at window ``i`` until the rollouts stop moving."""
        from loopline.loop.rollout import Rollouts

        last: list[tuple[str, str]] = []
        for _ in range(ticks):
            self.tick(ctl, i)
            now = [(r.id, r.state) for r in Rollouts(self.stores).active()]
            if now == last:
                break
            last = now


def make_bed(stores: Stores, tmp_path: Path, hook: str | None = None, **loop: Any) -> LoopBed:
    trained = make_trained(stores, n=3_000)
    pipeline = tmp_path / "retrain.py"
    pipeline.write_text(RETRAIN.format(features=FEATURES))
    text = loop_toml(pipeline, hook, **loop)
    settings = stores.settings.with_overrides(tables=tomllib.loads(text))
    now = datetime.now(UTC)
    t0 = datetime.fromtimestamp(math.ceil(now.timestamp() / 60) * 60 + 60, UTC)
    return LoopBed(stores, trained, settings, t0)


def production(n: int, seed: int, **kwargs: Any) -> pd.DataFrame:
    return make_frame(n, seed, **kwargs)


__all__ = ["FEATURES", "LoopBed", "make_bed", "production"]


# -- a controller in a child process, killed at a chosen point --------------------------

#: Where a child controller kills itself (SIGKILL), right after the named call returned:
#: "module:attribute" of the function, and (for the step recorder) the step it recorded.
CRASH_POINTS: dict[str, tuple[str, str | None]] = {
    "data-built": ("loopline.loop.data:build_training_data", None),
    "model-trained": ("loopline.pipeline.runner:_record_step", "train"),
    "version-registered": ("loopline.pipeline.runner:_record_step", "register"),
    "gates-checked": ("loopline.loop.gates:check_candidate", None),
    "split-set": ("loopline.registry.registry:Registry.set_traffic", None),
    "baking-recorded": ("loopline.loop.rollout:RolloutDriver._move", "baking"),
    "alias-promoted": ("loopline.registry.registry:Registry.promote", None),
    "split-cleared": ("loopline.registry.registry:Registry.clear_traffic", None),
}


def child_main() -> None:
    """The child process: open the bed described by LOOPLINE_TEST_BED (JSON), arm the
    crash point, and drive the controller through windows 0..3."""
    import json
    import os
    import signal
    import sys
    from importlib import import_module

    from loopline.config import settings_for

    spec = json.loads(os.environ["LOOPLINE_TEST_BED"])
    module_name, _, attr = CRASH_POINTS[spec["crash"]][0].partition(":")
    only = CRASH_POINTS[spec["crash"]][1]
    owner: Any = import_module(module_name)
    *parents, leaf = attr.split(".")
    for part in parents:
        owner = getattr(owner, part)
    original = getattr(owner, leaf)

    def armed(*args: Any, **kwargs: Any) -> Any:
        out = original(*args, **kwargs)
        hit = only is None
        if only is not None:
            for value in (*args, *kwargs.values()):
                if getattr(value, "step", None) == only or value == only:
                    hit = True
        if hit:
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return out

    setattr(owner, leaf, armed)
    project = Path(spec["project"])
    settings = settings_for(
        project,
        environ={
            "LOOPLINE_METADATA_URL": spec["metadata_url"],
            "LOOPLINE_ARTIFACTS_URL": str(project / "artifacts"),
        },
    )
    with Stores.open(settings) as stores:
        full = settings.with_overrides(tables=tomllib.loads(spec["toml"]))
        bed = LoopBed(stores, None, full, datetime.fromisoformat(spec["t0"]))  # type: ignore[arg-type]
        ctl = bed.controller()
        for window in range(4):
            bed.settle(ctl, window)
        ctl.shutdown(drain_s=0)


def bed_spec(bed: LoopBed, crash: str) -> dict[str, str]:
    import json

    project = bed.stores.settings.project_dir
    toml = json.dumps(bed.settings.tables)
    return {
        "crash": crash,
        "project": str(project),
        "metadata_url": bed.stores.settings.metadata_url,
        "toml": _dumps(json.loads(toml)),
        "t0": bed.t0.isoformat(),
    }


def _dumps(tables: dict[str, Any]) -> str:
    """The tables back as TOML text (the few shapes the tests' loop tables use)."""
    lines: list[str] = []

    def section(prefix: str, table: dict[str, Any]) -> None:
        scalars = {k: v for k, v in table.items() if not isinstance(v, dict) or k == "params"}
        subs = {k: v for k, v in table.items() if isinstance(v, dict) and k != "params"}
        if scalars and prefix:
            lines.append(f"[{prefix}]")
            lines.extend(f"{k} = {_toml(v)}" for k, v in scalars.items())
        for name, sub in subs.items():
            section(f"{prefix}.{name}" if prefix else name, sub)

    section("", tables)
    return "\n".join(lines) + "\n"
