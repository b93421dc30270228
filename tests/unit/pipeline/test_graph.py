from __future__ import annotations

import pytest

from loopline.pipeline import Pipeline, StepContext, step
from loopline.pipeline.errors import PipelineDefinitionError, PipelineParamError


@step
def load(n_rows: int = 10, seed: int = 0) -> list[int]:
    return list(range(seed, seed + n_rows))


@step
def double(load: list[int]) -> list[int]:
    return [2 * x for x in load]


@step(inputs={"values": "load"})
def total(values: list[int], double: list[int], ctx: StepContext) -> int:
    return sum(values) + sum(double)


def test_steps_stay_plain_callables() -> None:
    assert load(3) == [0, 1, 2]
    assert double([1, 2]) == [2, 4]
    assert load.__name__ == "load"


def test_wiring_by_name_and_by_mapping() -> None:
    p = Pipeline("p", [total, double, load])
    assert p.order == ["load", "double", "total"]
    assert {(e.source, e.step, e.param) for e in p.edges} == {
        ("load", "double", "load"),
        ("load", "total", "values"),
        ("double", "total", "double"),
    }
    assert set(p.params) == {"n_rows", "seed"}  # ctx is not a parameter
    assert p.downstream("load") == {"double", "total"}


def test_unknown_mapped_input_is_reported() -> None:
    @step(inputs={"values": "nope"})
    def bad(values: int) -> int:
        return values

    with pytest.raises(PipelineDefinitionError, match="from step 'nope'"):
        Pipeline("p", [bad])


def test_mapping_a_missing_parameter_is_reported() -> None:
    with pytest.raises(PipelineDefinitionError, match="has no parameter"):

        @step(inputs={"missing": "load"})
        def bad(values: int) -> int:
            return values


def test_cycles_are_reported_with_the_path() -> None:
    @step
    def a(b: int) -> int:
        return b

    @step
    def b(a: int) -> int:
        return a

    with pytest.raises(PipelineDefinitionError, match="cycle: a -> b -> a"):
        Pipeline("p", [a, b])


def test_duplicate_step_names_are_refused() -> None:
    with pytest.raises(PipelineDefinitionError, match="two steps named 'load'"):
        Pipeline("p", [load, step(name="load")(double.fn)])


def test_conflicting_defaults_are_refused() -> None:
    @step
    def other(seed: int = 1) -> int:
        return seed

    with pytest.raises(PipelineDefinitionError, match="Parameter 'seed' has default"):
        Pipeline("p", [load, other])


def test_params_resolve_with_coercion_and_clear_errors() -> None:
    p = Pipeline("p", [load, double])
    assert p.resolve_params({"n_rows": "5"}) == {"n_rows": 5, "seed": 0}
    with pytest.raises(PipelineParamError, match="expects int, got 'many'"):
        p.resolve_params({"n_rows": "many"})
    with pytest.raises(PipelineParamError, match="no parameter 'rows'"):
        p.resolve_params({"rows": 1})

    @step
    def needs(threshold: float) -> float:
        return threshold

    q = Pipeline("q", [needs])
    with pytest.raises(PipelineParamError) as info:
        q.resolve_params({})
    assert "-p threshold=VALUE" in str(info.value)
    assert q.resolve_params({"threshold": "0.5"}) == {"threshold": 0.5}


def test_unannotated_cli_values_parse_as_json_or_text() -> None:
    @step
    def free(x=None, y=None):  # type: ignore[no-untyped-def]
        return x

    p = Pipeline("p", [free])
    assert p.resolve_params({"x": "[1, 2]", "y": "hello"}) == {"x": [1, 2], "y": "hello"}


def test_non_json_param_values_are_refused() -> None:
    @step
    def f(x: object = None) -> None:
        return None

    with pytest.raises(PipelineParamError, match="not JSON-representable"):
        Pipeline("p", [f]).resolve_params({"x": object()})


def test_code_hash_changes_with_version() -> None:
    a = step(version="1")(double.fn)
    b = step(version="2")(double.fn)
    assert a.code_hash != b.code_hash
    assert step(double.fn).code_hash == double.code_hash
