"""What a run tells the person running it: notes of the steps that ran, the traceback of
a failing step (kept with its tracked run), parameter mistakes with their likely fix."""

from __future__ import annotations

import pytest

from loopline.pipeline import Pipeline, StepContext, step
from loopline.pipeline.errors import PipelineParamError
from loopline.pipeline.executors import TRACEBACK_ARTIFACT
from loopline.pipeline.runner import run_pipeline
from loopline.store.stores import Stores
from loopline.tracking import Tracker


def _lookup(frame: dict[str, int]) -> int:
    return frame["no such column"]


@step
def features() -> dict[str, int]:
    return {"a": 1}


@step
def train(features: dict[str, int], ctx: StepContext) -> int:
    ctx.note("registered model/1;   serves with ONNX Runtime")
    return features["a"]


@step
def broken(features: dict[str, int]) -> int:
    return _lookup(features)


def test_notes_reach_the_result_and_the_run(sqlite_stores: Stores) -> None:
    result = run_pipeline(Pipeline("noted", [features, train]), sqlite_stores)
    assert result.ok
    assert result.steps["train"].notes == ["registered model/1; serves with ONNX Runtime"]
    assert result.steps["features"].notes == []
    run = Tracker(sqlite_stores).get_run(result.steps["train"].run_id or "")
    assert run.tags["loopline.notes"] == "registered model/1; serves with ONNX Runtime"
    again = run_pipeline(Pipeline("noted", [features, train]), sqlite_stores)
    assert again.steps["train"].status == "cached"
    assert again.steps["train"].notes == []  # nothing ran, nothing new to say


def test_a_failing_step_keeps_its_traceback(sqlite_stores: Stores) -> None:
    result = run_pipeline(Pipeline("failing", [features, broken]), sqlite_stores)
    rec = result.steps["broken"]
    assert rec.status == "failed"
    assert rec.error == "KeyError: 'no such column'"
    assert rec.traceback is not None
    assert rec.traceback.startswith("Traceback (most recent call last):")
    assert f'"{__file__}"' in rec.traceback
    assert "in _lookup" in rec.traceback
    assert "executors.py" not in rec.traceback  # the runner's own frames are left out
    run = Tracker(sqlite_stores).get_run(rec.run_id or "")
    [artifact] = [a for a in run.artifacts if a.name == TRACEBACK_ARTIFACT]
    assert sqlite_stores.cas.get(artifact.digest).decode() == rec.traceback
    assert result.as_dict()["steps"][1]["traceback"] == rec.traceback


def test_a_misspelt_input_is_named_with_the_step_it_meant() -> None:
    @step
    def fit(featurs: dict[str, int]) -> int:
        return 1

    pipeline = Pipeline("typo", [features, fit])
    with pytest.raises(PipelineParamError) as err:
        pipeline.resolve_params({})
    assert "did you mean step 'features'?" in str(err.value)
    assert "Rename the parameter to 'features'" in str(err.value)


def test_an_unknown_parameter_names_the_closest() -> None:
    @step
    def make(n_rows: int = 10) -> int:
        return n_rows

    with pytest.raises(PipelineParamError, match=r"no parameter 'n_row' \(did you mean 'n_rows'"):
        Pipeline("p", [make]).resolve_params({"n_row": "3"})
