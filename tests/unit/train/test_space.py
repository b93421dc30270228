"""Search spaces: checked up front with the param's name, sampled through Optuna, branches."""

from __future__ import annotations

from typing import Any

import pytest

from loopline.train import Choice, FloatRange, IntRange, SearchSpace
from loopline.train.errors import SearchSpaceError


def _trials(space: SearchSpace, n: int, seed: int = 0) -> list[dict[str, Any]]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        trial = study.ask()
        out.append(space.sample(trial))
        study.tell(trial, 0.0)
    return out


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        (IntRange(5, 1), "low 5 is above high 1"),
        (IntRange(1, 10, step=0), "step must be an integer >= 1"),
        (IntRange(1, 10, step=2), "not a multiple of step.*high=9"),
        (IntRange(0, 10, log=True), "log IntRange needs low >= 1"),
        (IntRange(1, 9, step=2, log=True), "log IntRange needs step=1"),
        (IntRange(1.5, 3), "bounds must be integers"),  # type: ignore[arg-type]
        (FloatRange(1.0, 0.0), "low 1.0 is above high 0.0"),
        (FloatRange(0.0, 1.0, log=True), "log FloatRange needs low > 0"),
        (FloatRange(0.1, 1.0, step=0.1, log=True), "step or log=True, not both"),
        (FloatRange(0.0, 1.0, step=0.3), "not a multiple of step.*high=0.9"),
        (FloatRange(0.0, float("inf")), "must be finite"),
        (FloatRange("a", 1.0), "must be numbers"),  # type: ignore[arg-type]
        (Choice([]), "at least one option"),
        (Choice(["a", "a"]), "duplicates"),
        (Choice([[1, 2]]), "cannot be stored"),  # type: ignore[list-item]
        ({"nested": IntRange(1, 2)}, "not a range, a choice or a constant"),
    ],
)
def test_bad_specs_name_the_param(spec: Any, match: str) -> None:
    with pytest.raises(SearchSpaceError, match=match) as info:
        SearchSpace({"alpha": spec})
    assert info.value.param == "alpha"
    assert "'alpha'" in str(info.value)


def test_bad_spaces() -> None:
    with pytest.raises(SearchSpaceError, match="it is empty"):
        SearchSpace({})
    with pytest.raises(SearchSpaceError, match="not list"):
        SearchSpace([IntRange(1, 2)])  # type: ignore[arg-type]
    with pytest.raises(SearchSpaceError, match="Choice takes"):
        Choice("abc")  # type: ignore[arg-type]
    with pytest.raises(SearchSpaceError, match="branch of option 'a' is int"):
        SearchSpace({"m": Choice({"a": 3})})  # type: ignore[dict-item]


def test_a_name_in_two_branches_needs_one_spec() -> None:
    SearchSpace({"m": Choice({"a": {"depth": IntRange(1, 5)}, "b": {"depth": IntRange(1, 5)}})})
    with pytest.raises(SearchSpaceError, match="declared twice with different specs") as info:
        SearchSpace({"m": Choice({"a": {"depth": IntRange(1, 5)}, "b": {"depth": IntRange(1, 8)}})})
    assert info.value.param == "m=b/depth"


def test_sampling_stays_in_bounds_and_follows_branches() -> None:
    space = SearchSpace(
        {
            "n": IntRange(50, 300, step=50),
            "lr": FloatRange(1e-3, 0.3, log=True),
            "frac": FloatRange(0.1, 0.9, step=0.1),
            "seed": 7,
            "model": Choice(
                {
                    "rf": {"max_depth": IntRange(2, 10)},
                    "xgb": {"max_depth": IntRange(2, 10), "eta": FloatRange(0.01, 0.5)},
                    "linear": {"penalty": "l2"},
                }
            ),
        }
    )
    drawn = _trials(space, 40)
    assert {d["model"] for d in drawn} == {"rf", "xgb", "linear"}
    for d in drawn:
        assert d["n"] in range(50, 301, 50)
        assert 1e-3 <= d["lr"] <= 0.3
        assert round(d["frac"] * 10) == pytest.approx(d["frac"] * 10)
        assert d["seed"] == 7
        if d["model"] == "linear":
            assert d["penalty"] == "l2"
            assert "max_depth" not in d
        else:
            assert 2 <= d["max_depth"] <= 10
            assert ("eta" in d) == (d["model"] == "xgb")


def test_complete_adds_the_constants_of_the_branch_taken() -> None:
    space = SearchSpace(
        {"seed": 3, "model": Choice({"rf": {"depth": IntRange(1, 4)}, "lin": {"pen": "l1"}})}
    )
    assert space.complete({"model": "lin"}) == {"seed": 3, "model": "lin", "pen": "l1"}
    assert space.complete({"model": "rf", "depth": 2}) == {"seed": 3, "model": "rf", "depth": 2}


def test_a_space_function_is_called_with_the_trial() -> None:
    def space_fn(trial: Any) -> dict[str, Any]:
        layers = trial.suggest_int("layers", 1, 3)
        return {
            "layers": layers,
            "units": [trial.suggest_int(f"u{i}", 4, 8) for i in range(layers)],
        }

    space = SearchSpace(space_fn)
    for d in _trials(space, 5):
        assert len(d["units"]) == d["layers"]
    assert "space_fn" in space.describe()

    with pytest.raises(SearchSpaceError, match="returned int"):
        _trials(SearchSpace(lambda trial: 3), 1)  # type: ignore[arg-type,return-value]
