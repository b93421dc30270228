"""The references ``loopline store verify`` gathers from every layer's tables, in process
(the command itself is tested in tests/e2e/test_store_cli.py)."""

from __future__ import annotations

from typing import Any

from loopline.store.stores import Stores


def test_references_come_from_every_layer_that_records_digests(sqlite_stores: Stores) -> None:
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from loopline.cli.store import collect_references
    from loopline.data.datasets import Datasets
    from loopline.pipeline import Pipeline, step
    from loopline.pipeline.runner import run_pipeline
    from loopline.registry import Registry
    from loopline.store.objects.verify import verify_store
    from loopline.tracking import Tracker

    frame = pd.DataFrame({"x": [float(i) for i in range(40)], "y": [i % 2 for i in range(40)]})
    ds = Datasets(sqlite_stores)
    ds.add("toy", frame)
    ds.split("toy", fractions=(0.5, 0.25, 0.25), seed=3)
    model = LogisticRegression().fit(frame[["x"]], frame["y"])
    Registry(sqlite_stores).register("toy_model", model, sample=frame[["x"]])
    with Tracker(sqlite_stores).start_run("refs", capture_git=False) as tracked:
        tracked.log_artifact("notes.txt", b"some notes")

    @step
    def fit() -> dict[str, Any]:
        return {"model": LogisticRegression().fit(frame[["x"]], frame["y"]), "n": [1, 2]}

    run_pipeline(Pipeline("refs", [fit]), sqlite_stores)

    refs = list(collect_references(sqlite_stores))
    owners = [r.owner for r in refs]
    for expected in (
        "dataset toy@1 (data)",
        "dataset toy@1 (profile)",
        "dataset toy@1 split (seed 3)",
        "model toy_model/1 (manifest)",
        "run ",
    ):
        assert any(o.startswith(expected) for o in owners), (expected, owners)
    assert any(o.startswith("model toy_model/1 file ") for o in owners), owners
    assert any(o.endswith("artifact 'notes.txt'") for o in owners), owners
    assert any(o.endswith("step 'fit' (output)") for o in owners), owners
    assert any("step 'fit' (item 'model')" in o for o in owners), owners
    assert any("step 'fit' (model file " in o for o in owners), owners

    # Every blob the project wrote is named by some reference: nothing is an orphan.
    report = verify_store(sqlite_stores.cas, refs)
    assert report.findings == []
    assert report.intact == report.blobs == report.referenced
