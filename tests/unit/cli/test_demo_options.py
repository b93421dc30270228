"""``loopline demo --scenario`` lists the scenarios without importing the cycle."""

from __future__ import annotations

from loopline.cli.demo import SCENARIO_NAMES
from loopline.project.cycle import DEMO_SCENARIOS, SCENARIOS


def test_the_cli_offers_every_scenario_and_only_those() -> None:
    assert tuple(SCENARIOS) == SCENARIO_NAMES
    assert set(DEMO_SCENARIOS) <= set(SCENARIOS)
