"""Drift statistics against scipy's reference implementations, on seeded data; PSI by hand;
the test chosen by sample size; no false alarms on identical distributions; exactly the
shifted columns flagged."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from loopline.monitor.drift import (
    DriftOptions,
    chi2_test,
    feature_drift,
    jensen_shannon,
    ks_statistic,
    normed_wasserstein,
    psi,
    wasserstein,
)
from loopline.monitor.sketches import (
    build_categorical_reference,
    build_numeric_reference,
)


def _numeric(ref: np.ndarray, cur: np.ndarray, chunks: int = 1):  # type: ignore[no-untyped-def]
    reference = build_numeric_reference(pa.array(ref))
    sketch = reference.new_sketch()
    for part in np.array_split(cur, chunks):
        sketch.update(pa.array(part))
    return reference, sketch


@pytest.mark.parametrize("shift", [0.0, 0.05, 0.3, 1.0])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ks_and_wasserstein_match_scipy(shift: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ref = rng.normal(0, 1, 50_000)
    cur = rng.normal(shift, 1.2, 20_000)
    reference, sketch = _numeric(ref, cur, chunks=7)  # merged over batches
    exact = stats.ks_2samp(ref, cur)
    assert ks_statistic(reference, sketch) == pytest.approx(exact.statistic, abs=2e-3)
    w = stats.wasserstein_distance(ref, cur)
    assert wasserstein(reference, sketch) == pytest.approx(w, rel=0.02, abs=2e-3)
    assert normed_wasserstein(reference, sketch) == pytest.approx(
        w / np.std(ref), rel=0.02, abs=2e-3
    )


def test_the_tails_beyond_the_reference_are_exact() -> None:
    rng = np.random.default_rng(4)
    ref = rng.uniform(0, 1, 10_000)
    cur = np.concatenate((rng.uniform(0, 1, 5_000), rng.uniform(3, 9, 2_000), [-50.0]))
    reference, sketch = _numeric(ref, cur)
    assert 2_000 <= sketch.above <= 2_010  # and a few of the first part past its max
    assert 1 <= sketch.below <= 10
    assert wasserstein(reference, sketch) == pytest.approx(
        stats.wasserstein_distance(ref, cur), rel=0.01
    )


def test_discrete_columns_are_exact() -> None:
    rng = np.random.default_rng(5)
    ref = rng.integers(0, 6, 20_000).astype(float)
    cur = np.concatenate((rng.integers(1, 8, 3_000).astype(float), [2.5, 2.5]))
    reference, sketch = _numeric(ref, cur, chunks=3)
    assert reference.discrete
    assert ks_statistic(reference, sketch) == pytest.approx(
        stats.ks_2samp(ref, cur).statistic, abs=1e-9
    )
    assert wasserstein(reference, sketch) == pytest.approx(
        stats.wasserstein_distance(ref, cur), abs=1e-9
    )


def test_ks_p_value_matches_scipy_on_small_samples() -> None:
    rng = np.random.default_rng(6)
    ref = rng.normal(0, 1, 100_000)
    for shift in (0.0, 0.1, 0.3):
        cur = rng.normal(shift, 1, 400)
        reference, sketch = _numeric(ref, cur)
        result = feature_drift("x", reference, sketch)
        assert result.test == "ks"
        p = stats.ks_2samp(ref, cur).pvalue
        got = result.stats["ks_p_value"]
        assert got is not None
        assert math.isclose(got, p, rel_tol=0.15, abs_tol=0.01)


def test_psi_by_hand() -> None:
    expected = np.array([0.1, 0.2, 0.3, 0.4])
    actual = np.array([0.2, 0.2, 0.2, 0.4])
    by_hand = (0.2 - 0.1) * math.log(0.2 / 0.1) + (0.2 - 0.3) * math.log(0.2 / 0.3)
    assert psi(expected, actual) == pytest.approx(by_hand)
    assert psi(expected, expected) == 0.0
    # An empty bucket is floored, not a division by zero.
    assert math.isfinite(psi([0.5, 0.5, 0.0], [0.4, 0.4, 0.2]))


def test_chi2_and_jensen_shannon_match_scipy() -> None:
    rng = np.random.default_rng(7)
    levels = [f"c{i}" for i in range(7)]
    ref = rng.choice(levels, 30_000, p=[0.3, 0.2, 0.15, 0.12, 0.1, 0.08, 0.05])
    cur = rng.choice(levels, 5_000, p=[0.25, 0.2, 0.15, 0.15, 0.1, 0.1, 0.05])
    reference = build_categorical_reference(pa.array(ref))
    sketch = reference.new_sketch()
    for part in np.array_split(cur, 4):
        sketch.update(pa.array(part))
    r = np.array([reference.counts[k] for k in levels], dtype=float)
    c = np.array([sketch.counts[k] for k in levels], dtype=float)
    statistic, p_value = chi2_test(r, c)
    exact = stats.chi2_contingency(np.vstack((r, c)), correction=False)
    assert statistic == pytest.approx(exact.statistic, rel=1e-9)
    assert p_value == pytest.approx(exact.pvalue, rel=1e-6, abs=1e-12)
    assert jensen_shannon(r, c) == pytest.approx(jensenshannon(r / r.sum(), c / c.sum()), abs=1e-12)
    result = feature_drift("plan", reference, sketch)
    assert result.test == "jensenshannon"
    assert result.statistic == pytest.approx(jensenshannon(r / r.sum(), c / c.sum()), abs=1e-12)


def test_unseen_categories_are_counted_and_drift() -> None:
    reference = build_categorical_reference(pa.array(["a", "b"] * 500))
    sketch = reference.new_sketch()
    sketch.update(pa.array(["a", "b", "zzz", None] * 300))
    result = feature_drift("c", reference, sketch)
    assert result.stats["unseen_categories"] == 1
    assert result.stats["unseen_share"] == pytest.approx(1 / 3)
    assert result.drifted
    assert sketch.nulls == 300


def test_the_test_follows_the_sample_size_and_can_be_chosen() -> None:
    rng = np.random.default_rng(8)
    reference, small = _numeric(rng.normal(size=5_000), rng.normal(size=200))
    _, large = _numeric(rng.normal(size=5_000), rng.normal(size=5_000))
    assert feature_drift("x", reference, small).test == "ks"
    assert feature_drift("x", reference, large).test == "wasserstein"
    chosen = feature_drift("x", reference, large, DriftOptions(numeric_test="psi"))
    assert chosen.test == "psi"
    assert chosen.threshold == 0.2
    few = feature_drift("x", reference, _numeric(rng.normal(size=100), rng.normal(size=10))[1])
    assert few.status == "insufficient_data"
    assert few.drifted is False


def _table(n: int, seed: int, shift: bool) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    cols: dict[str, np.ndarray] = {}
    for i in range(20):
        cols[f"num_{i}"] = rng.normal(0.5 if shift and i < 5 else 0.0, 1.0, n)
    for j, levels in enumerate((3, 7, 11, 15, 19)):
        cols[f"cat_{j}"] = rng.choice([f"l{k}" for k in range(levels)], n)
    return cols


def _flagged(ref: dict[str, np.ndarray], cur: dict[str, np.ndarray]) -> set[str]:
    out = set()
    for name in ref:
        if name.startswith("num"):
            reference = build_numeric_reference(pa.array(ref[name]))
        else:
            reference = build_categorical_reference(pa.array(ref[name]))
        sketch = reference.new_sketch()
        sketch.update(pa.array(cur[name]))
        if feature_drift(name, reference, sketch).drifted:
            out.add(name)
    return out


def test_no_drift_on_identical_distributions_over_20_seeds() -> None:
    flagged = 0
    for seed in range(20):
        flagged += len(_flagged(_table(5_000, seed, False), _table(5_000, 100 + seed, False)))
    assert flagged == 0  # distances at this size: no column near its threshold
    small = 0
    for seed in range(20):
        small += len(_flagged(_table(2_000, seed, False), _table(300, 200 + seed, False)))
    assert small / (20 * 25) <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / 500)  # the p-value level


def test_a_known_shift_flags_exactly_the_shifted_columns() -> None:
    for seed in range(3):
        got = _flagged(_table(20_000, seed, False), _table(20_000, 50 + seed, True))
        assert got == {f"num_{i}" for i in range(5)}


@pytest.mark.slow
def test_a_million_rows_flag_nothing_when_nothing_changed() -> None:
    assert _flagged(_table(1_000_000, 1, False), _table(1_000_000, 2, False)) == set()
