"""Pipelines: plain typed functions as steps, composed explicitly, run with caching,
retries and lineage on an executor (in-process threads by default).

    from loopline.pipeline import Pipeline, step

    @step
    def load(n_rows: int = 1000) -> pd.DataFrame: ...

    @step(retries=2)
    def clean(load: pd.DataFrame) -> pd.DataFrame: ...

    pipeline = Pipeline("example", [load, clean])

``run_pipeline`` (and ``loopline run``) lives in :mod:`loopline.pipeline.runner`; it is not
imported here so that defining a pipeline stays cheap.
"""

from loopline.pipeline.graph import Pipeline
from loopline.pipeline.steps import Step, StepContext, step

__all__ = ["Pipeline", "Step", "StepContext", "step"]
