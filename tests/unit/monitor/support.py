"""Seeded production data, a trained and registered model with a recorded split, and a way
to log traffic for it as the server does (the real prediction log writer and index), for
the monitor's tests and the command-line tests that need a monitored model."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from loopline.store.stores import Stores

FEATURES = [f"num_{i}" for i in range(6)] + ["plan", "region"]


def make_frame(n: int, seed: int, *, shift: float = 0.0, concept: bool = False) -> pd.DataFrame:
    """Seeded rows: six numbers (num_0..num_2 shifted by ``shift`` sd), two categories,
    and a label from a logistic model of them (``concept``: a different relation)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, (n, 6))
    x[:, :3] += shift
    plan = rng.choice(["basic", "plus", "pro"], n, p=[0.5, 0.3, 0.2])
    region = rng.choice(["north", "south", "east", "west"], n)
    logit = 1.2 * x[:, 0] - 0.8 * x[:, 1] + 0.5 * x[:, 3] + (plan == "pro") * 0.7
    if concept:
        logit = -1.2 * x[:, 0] + 0.8 * x[:, 4]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    frame = pd.DataFrame(x, columns=FEATURES[:6])
    frame["plan"] = plan
    frame["region"] = region
    frame["churned"] = y
    return frame


@dataclass
class Trained:
    stores: Stores
    model: Any
    version: int
    dataset: str

    def log(
        self,
        frame: pd.DataFrame,
        *,
        at: float | None = None,
        role: str = "primary",
        version: int | None = None,
        request_size: int = 4,
        prefix: str = "req",
    ) -> list[str]:
        """Score ``frame`` with the model and log it like the server (requests of
        ``request_size`` rows, arrived at ``at``); returns the request ids."""
        from loopline.monitor.predictions import (
            PredictionBatch,
            PredictionIndex,
            PredictionLogWriter,
        )

        x = frame[FEATURES]
        # The model scores what it can (a server would refuse non-finite numbers; the
        # log keeps the inputs as they came, which is what quality checks look at).
        clean = x.copy()
        numbers = clean.columns[:6]
        clean[numbers] = clean[numbers].replace([np.inf, -np.inf], np.nan).fillna(0.0)
        pred = self.model.predict(clean)
        proba = self.model.predict_proba(clean)
        n = len(frame)
        counts = [min(request_size, n - i) for i in range(0, n, request_size)]
        ids = [f"{prefix}-{i:07d}" for i in range(len(counts))]
        moment = time.time() if at is None else at
        batch = PredictionBatch.from_requests(
            model="churn",
            version=version or self.version,
            role=role,
            request_ids=ids,
            row_counts=counts,
            arrived=[moment] * len(counts),
            latency_ms=list(np.linspace(2.0, 20.0, len(counts))),
            inputs={c: x[c].to_numpy() for c in FEATURES},
            outputs={
                "prediction": np.asarray(pred),
                **{f"proba.{c}": proba[:, i] for i, c in enumerate(self.model.classes_)},
            },
        )
        batch.logged_at = moment
        writer = PredictionLogWriter(
            self.stores.objects,
            flush_interval_s=3600,
            flush_rows=10**9,
            index=PredictionIndex(self.stores.db).add,
        )
        writer.append(batch)
        writer.flush()
        return ids

    def label(self, ids: list[str], frame: pd.DataFrame, request_size: int = 4) -> int:
        """Send the true labels of the logged requests as feedback."""
        from loopline.monitor.feedback import FeedbackStore, parse_feedback

        labels = frame["churned"].tolist()
        payload = [
            {"request_id": rid, "labels": labels[i * request_size : (i + 1) * request_size]}
            for i, rid in enumerate(ids)
        ]
        items, invalid = parse_feedback(payload)
        report = FeedbackStore(self.stores.db).record(items, invalid=invalid, source="test")
        return int(report.counts.get("stored", 0))


def make_trained(stores: Stores, n: int = 6_000, seed: int = 1) -> Trained:
    """A logistic model of make_frame rows, registered as churn@production."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from loopline.data import Datasets
    from loopline.registry import DatasetRef, Registry

    ds = Datasets(stores)
    frame = make_frame(n, seed)
    dv = ds.add("customers", frame)
    split = ds.split("customers", stratify="churned", seed=3)
    train = split.train
    pre = ColumnTransformer(
        [
            ("num", StandardScaler(), FEATURES[:6]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["plan", "region"]),
        ]
    )
    model = Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=500))])
    model.fit(train[FEATURES], train["churned"])
    reg = Registry(stores)
    mv = reg.register(
        "churn",
        model,
        sample=train[FEATURES].head(50),
        datasets=[DatasetRef(dv.name, dv.version, dv.digest, "train", split.record.id)],
    )
    reg.set_alias("churn", "production", mv.version)
    return Trained(stores, model, mv.version, dv.ref)
