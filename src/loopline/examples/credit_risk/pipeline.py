"""Credit risk: from data to a gated, served champion, in plain steps.

applications -> ingest -> validate -> profile -> split -> features -> baseline + tuned
-> evaluation -> register (as ``challenger``; promoted to ``champion`` when the project's
``[gates.credit_risk]`` table passes: the same gates ``loopline check`` runs in CI)

    loopline run example:credit_risk -p n_rows=20000     # the copy shipped with loopline
    loopline run pipelines/example.py                     # the copy `loopline init` wrote

Each step is a plain function; ``ctx`` gives it the tracked run and the project stores.
The dataset is versioned by content: run it twice and the second run reuses everything.
To start from your own data, make ``applications`` return your table (``pd.read_csv``)
and set DATASET, TARGET and MODEL; the gates are the ``[gates.MODEL]`` table of
loopline.toml (:data:`GATES_TOML` is what ``loopline init`` writes there).
"""

from __future__ import annotations

from typing import Any

from loopline.examples.credit_risk.data import generate_applications
from loopline.pipeline import Pipeline, StepContext, step

DATASET = "credit_applications"
TARGET = "default"


@step
def applications(ctx: StepContext, n_rows: int = 5_000, seed: int = 0, data: str = "") -> Any:
    """Collect: this month's applications (generated from a seed here), or the dataset
    version ``data`` names (``credit_applications@4``: what the loop retrains on)."""
    if data:
        from loopline.data import Datasets

        name, _, version = data.partition("@")
        return Datasets(ctx.stores).load(name, int(version) if version else None)
    return generate_applications(n_rows=n_rows, seed=seed)


@step
def ingest(applications: Any, ctx: StepContext) -> dict[str, Any]:
    """Version the data: a new dataset version only when the content changed."""
    from loopline.data import Datasets

    version = Datasets(ctx.stores).add(DATASET, applications, description="loan applications")
    ctx.log_input(version.name, version.version, version.digest)
    ctx.run.log_metrics({"rows": version.rows, "new_version": float(version.created)})
    return {
        "name": version.name,
        "version": version.version,
        "digest": version.digest,
        "rows": version.rows,
    }


@step
def validate(ingest: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Check the version against the dataset's schema; errors stop the pipeline."""
    from loopline.data import Datasets

    datasets = Datasets(ctx.stores)
    table = datasets.load_table(ingest["name"], ingest["version"])
    report = datasets.validate(ingest["name"], table)
    ctx.run.log_metrics(
        {"validation.errors": len(report.errors), "validation.warnings": len(report.warnings)}
    )
    if not report.ok:
        raise ValueError(
            f"dataset {ingest['name']}@{ingest['version']} failed validation: {report.summary()}"
        )
    return report.to_dict()


@step
def profile(ingest: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """The statistics later used as the drift reference."""
    from loopline.data import Datasets

    prof = Datasets(ctx.stores).profile(ingest["name"], ingest["version"])
    nulls = {col.name: col.null_rate for col in prof.columns}
    ctx.run.log_metrics({f"null_rate.{k}": v for k, v in nulls.items()})
    return {"rows": prof.rows, "null_rates": nulls}


@step
def split(
    ingest: dict[str, Any], validate: dict[str, Any], ctx: StepContext, seed: int = 0
) -> dict[str, Any]:
    """Deterministic, stratified train/validation/test split, recorded with its version."""
    from loopline.data import Datasets

    parts = Datasets(ctx.stores).split(
        ingest["name"], ingest["version"], fractions=(0.7, 0.15, 0.15), seed=seed, stratify=TARGET
    )
    ctx.run.log_metrics(
        {
            f"rows.{k}": len(v)
            for k, v in (
                ("train", parts.train),
                ("validation", parts.validation),
                ("test", parts.test),
            )
        }
    )
    return {
        "train": parts.train,
        "validation": parts.validation,
        "test": parts.test,
        "split_id": parts.record.id,
    }


@step
def features(
    split: dict[str, Any], ingest: dict[str, Any], ctx: StepContext, strict_categories: bool = False
) -> dict[str, Any]:
    """Fit the default preprocessing on the training part only (no leakage).

    ``strict_categories`` makes a category the training data never had an error instead of
    "none of the known ones" (a setting that looks tidy and fails in production)."""
    from loopline.data import Datasets, default_preprocessor

    schema = Datasets(ctx.stores).schema(ingest["name"])
    prep = default_preprocessor(schema, target=TARGET)
    if strict_categories:
        prep.set_params(categorical__onehot__handle_unknown="error")
    train = split["train"]
    matrix = prep.fit_transform(train.drop(columns=[TARGET]))
    ctx.run.log_metrics({"features": matrix.shape[1]})
    return {"preprocessor": prep, "n_features": int(matrix.shape[1])}


MODEL = "credit_risk"
#: The ``[gates.credit_risk]`` table ``loopline init`` writes into loopline.toml. The
#: holdout is pinned to the first version, so every later check (in CI too) evaluates on
#: the same rows; omit ``split`` (or write "all") to evaluate on all of its rows.
GATES_TOML = f"""
[gates.{MODEL}]
# Promotion to champion (by the example pipeline) and `loopline check` (in CI) use these.
criteria = [
    "roc_auc >= 0.75",
    "roc_auc >= champion.roc_auc - 0.005",
    "log_loss <= 0.6",
    "data.valid",
]
holdout = "{DATASET}@1"   # pinned: the same rows for every candidate
split = "test"
target = "{TARGET}"
"""


def _xy(frame: Any) -> tuple[Any, Any]:
    return frame.drop(columns=[TARGET]), frame[TARGET]


@step
def baseline(split: dict[str, Any], features: dict[str, Any], ctx: StepContext) -> Any:
    """A logistic regression on the default preprocessing: the bar to beat."""
    from sklearn.base import clone
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from loopline.train import fit

    model = make_pipeline(clone(features["preprocessor"]), LogisticRegression(max_iter=1000))
    x, y = _xy(split["train"])
    xv, yv = _xy(split["validation"])
    fit(ctx.run, model, x, y, X_valid=xv, y_valid=yv)
    return model


@step
def tuned(
    split: dict[str, Any],
    features: dict[str, Any],
    ingest: dict[str, Any],
    ctx: StepContext,
    n_trials: int = 12,
    seed: int = 0,
) -> Any:
    """LightGBM tuned with Optuna (TPE, median pruning) on the validation part.

    Each trial grows its model in stages and reports the validation ROC AUC after each,
    so the pruner stops bad trials early. The study is named after the dataset version:
    a killed search resumes where it stopped.
    """
    from lightgbm import LGBMClassifier
    from sklearn.base import clone
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline

    from loopline.train import FloatRange, IntRange, fit, search, search_progress

    prep = clone(features["preprocessor"])
    x, y = _xy(split["train"])
    xv, yv = _xy(split["validation"])
    xt = prep.fit_transform(x)
    xvt = prep.transform(xv)

    def make(params: dict[str, Any], n_estimators: int) -> Any:
        return LGBMClassifier(
            n_estimators=n_estimators,
            learning_rate=params["learning_rate"],
            num_leaves=params["num_leaves"],
            min_child_samples=params["min_child_samples"],
            reg_lambda=params["reg_lambda"],
            random_state=seed,
            n_jobs=1,
            verbose=-1,
        )

    def objective(params: dict[str, Any], report: Any, run: Any) -> float:
        score = 0.0
        for stage, n_estimators in enumerate((50, 150, 300)):
            model = make(params, n_estimators).fit(xt, y)
            score = float(roc_auc_score(yv, model.predict_proba(xvt)[:, 1]))
            if report(score, stage):
                break
        return score

    space = {
        "learning_rate": FloatRange(0.01, 0.2, log=True),
        "num_leaves": IntRange(4, 32),
        "min_child_samples": IntRange(10, 80),
        "reg_lambda": FloatRange(1e-3, 10.0, log=True),
    }
    with search_progress(n_trials, title="tuning") as show:
        result = search(
            ctx.stores,
            objective,
            space,
            n_trials=n_trials,
            run=ctx.run,
            study=f"{MODEL}-{ingest['digest'][:12]}-{seed}",
            seed=seed,
            progress=show,
            executor=ctx.executor,  # on Ray, the trials fan out over its workers
        )
    model = make_pipeline(clone(features["preprocessor"]), make(result.best_params, 300))
    fit(ctx.run, model, x, y, X_valid=xv, y_valid=yv)
    return model


@step
def evaluation(
    baseline: Any, tuned: Any, split: dict[str, Any], ingest: dict[str, Any], ctx: StepContext
) -> dict[str, Any]:
    """Both models on the untouched test part; reports (JSON + HTML) kept with the run."""
    from loopline.evaluate import evaluate

    x, y = _xy(split["test"])
    data_id = f"{ingest['name']}@{ingest['version']}#split{split['split_id']}.test"
    out: dict[str, Any] = {"data_id": data_id}
    for name, model in (("baseline", baseline), ("tuned", tuned)):
        ev = evaluate(model, x, y, data_id=data_id, slices=["employment", "purpose", ("income", 4)])
        reports = ev.log_to(ctx.run, prefix=f"{name}.", name=f"{name}_evaluation")
        out[name] = {"metrics": ev.metrics, "report": reports[f"{name}_evaluation.json"]}
    scores = {n: out[n]["metrics"].get("roc_auc") or 0.0 for n in ("baseline", "tuned")}
    out["winner"] = max(scores, key=lambda n: scores[n])
    ctx.run.set_tag("winner", out["winner"])
    return out


@step
def register(
    evaluation: dict[str, Any],
    baseline: Any,
    tuned: Any,
    split: dict[str, Any],
    ingest: dict[str, Any],
    ctx: StepContext,
    promote: bool = True,
) -> dict[str, Any]:
    """Register the winner as ``challenger``; promote it to ``champion`` if it passes the
    project's ``[gates.credit_risk]`` (without that table it stays challenger).

    ``promote=false`` only registers: the loop controller, which retrains with this
    pipeline, gates the challenger itself and rolls it out as a canary."""
    from loopline.loop.gates import check_candidate, gate_configs
    from loopline.registry import DatasetRef, Registry
    from loopline.registry.errors import PromotionRefusedError

    winner = evaluation["winner"]
    model = tuned if winner == "tuned" else baseline
    reg = Registry(ctx.stores)
    x_train, _ = _xy(split["train"])
    x_test, _ = _xy(split["test"])
    mv = reg.register(
        MODEL,
        model,
        sample=x_train,
        run_id=ctx.run.id,
        datasets=[
            DatasetRef(
                ingest["name"], ingest["version"], ingest["digest"], "train", split["split_id"]
            )
        ],
        metrics=evaluation[winner]["metrics"],
        report_digest=evaluation[winner]["report"],
        description=f"{winner} model, split {split['split_id']}",
        onnx_eval=x_test,
    )
    ctx.note(f"registered {mv.ref} ({winner} model); {reg.serving_path(mv)}")
    reg.set_alias(MODEL, "challenger", mv.version, reason="trained by the credit_risk pipeline")
    config = gate_configs(ctx.stores.settings).get(MODEL)
    verdicts: list[Any] = []
    promoted = False
    if not promote:
        ctx.note(f"not promoted: promote=false (the loop controller rolls {mv.ref} out)")
    elif config is None:
        ctx.note(
            f"not promoted: loopline.toml has no [gates.{MODEL}] table (loopline init writes "
            "one; see docs/evaluate.md)"
        )
    else:

        def check(candidate: Any, champion: Any) -> Any:
            verdicts.append(
                check_candidate(
                    ctx.stores, config, candidate, champion=champion, registry=reg
                ).verdict
            )
            return verdicts[-1]

        try:
            reg.promote(
                MODEL, mv.version, "champion", check=check, reason="passed the gates after training"
            )
            promoted = True
        except PromotionRefusedError as exc:
            ctx.note(f"not promoted: {exc.message}")
    if promoted:
        passed = len(verdicts[-1].results) if verdicts else 0
        ctx.note(f"promoted {mv.ref} to champion: {passed} of {passed} gates passed")
        ctx.note(
            f"next: loopline check; loopline serve {MODEL}@champion; "
            f"loopline predict {MODEL}@champion FILE.csv scores.csv"
        )
    ctx.run.log_metrics({"registered_version": mv.version, "promoted": float(promoted)})
    return {
        "model": MODEL,
        "version": mv.version,
        "winner": winner,
        "promoted": promoted,
        "verdict": verdicts[-1].to_dict() if verdicts else None,
    }


pipeline = Pipeline(
    "credit_risk",
    [
        applications,
        ingest,
        validate,
        profile,
        split,
        features,
        baseline,
        tuned,
        evaluation,
        register,
    ],
)
