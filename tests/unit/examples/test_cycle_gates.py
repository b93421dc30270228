"""The cycle judges its challengers at a margin its small fresh holdouts can tell apart."""

from __future__ import annotations

import tomllib

from loopline.examples.credit_risk.pipeline import GATES_TOML, MODEL
from loopline.project.cycle import cycle_gates


def test_the_cycle_widens_the_example_champion_comparison_only() -> None:
    example = tomllib.loads(GATES_TOML)["gates"][MODEL]
    cycle = tomllib.loads(cycle_gates(GATES_TOML))["gates"][MODEL]
    assert "roc_auc >= champion.roc_auc - 0.005" in example["criteria"]
    assert "roc_auc >= champion.roc_auc - 0.02" in cycle["criteria"]
    assert [c for c in cycle["criteria"] if "champion" not in c] == [
        c for c in example["criteria"] if "champion" not in c
    ]
    assert {k: v for k, v in cycle.items() if k != "criteria"} == {
        k: v for k, v in example.items() if k != "criteria"
    }
