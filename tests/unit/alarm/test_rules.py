"""The alarm state machine: M of N windows, missing data, and no flapping at a threshold."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from loopline.alarm.rules import ALARM, INSUFFICIENT, OK, Datapoint, decide
from loopline.alarm.settings import AlarmSettings
from loopline.config import build_section
from loopline.errors import ConfigError

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def _alarm(**kw: object) -> AlarmSettings:
    base: dict[str, object] = {"name": "a", "model": "m@prod", "when": "drift.share > 0.5"}
    base.update(kw)
    return AlarmSettings(**base)  # type: ignore[arg-type]


def _points(*flags: bool | None) -> list[Datapoint]:
    out = []
    for i, f in enumerate(flags):
        start = T0 + timedelta(minutes=5 * i)
        out.append(Datapoint(start, start + timedelta(minutes=5), None if f is None else 1.0, f))
    return out


def _run(alarm: AlarmSettings, flags: list[bool | None]) -> list[str]:
    """The state after each new window arrives."""
    state: str | None = None
    states = []
    for n in range(1, len(flags) + 1):
        state, _ = decide(alarm, _points(*flags[:n]), state)
        states.append(state)
    return states


def test_two_of_three_windows_alarm() -> None:
    alarm = _alarm(periods=3, datapoints=2)
    assert _run(alarm, [False, True, False, True]) == [OK, OK, OK, ALARM]
    assert _run(_alarm(periods=3, datapoints=3), [True, True, False, True, True, True])[-1] == ALARM


def test_a_value_hovering_at_the_threshold_does_not_flap() -> None:
    alarm = _alarm(periods=3, datapoints=2)
    hovering = [True, False] * 10  # above, below, above, below ...
    states = _run(alarm, hovering)
    changes = sum(1 for a, b in itertools.pairwise(states) if a != b)
    assert changes == 1  # into alarm once, and it stays
    assert states[-1] == ALARM
    # It recovers only after `periods` clean windows in a row (the last hovering window,
    # below the threshold, is the first of them).
    assert _run(alarm, [*hovering, False])[-1] == ALARM
    assert _run(alarm, [*hovering, False, False])[-1] == OK


def test_missing_data_policies() -> None:
    flags: list[bool | None] = [None, True, None]
    assert _run(_alarm(periods=3, datapoints=2, missing="ignore"), flags)[-1] == OK
    assert _run(_alarm(periods=3, datapoints=2, missing="breaching"), flags)[-1] == ALARM
    assert _run(_alarm(periods=3, datapoints=2, missing="insufficient"), flags)[-1] == INSUFFICIENT
    # No window at all: a new alarm knows nothing yet.
    assert decide(_alarm(), [], None)[0] == INSUFFICIENT
    # Fewer windows than periods count as missing, too.
    assert _run(_alarm(periods=3, datapoints=2, missing="breaching"), [True])[-1] == ALARM


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"when": "drift.share >> 0.5"}, "when"),
        ({"when": "data.valid"}, "compare a metric"),
        ({"when": "f1 >= champion.f1"}, "champion"),
        ({"model": "m"}, "MODEL@ALIAS"),
        ({"periods": 2, "datapoints": 3}, "cannot exceed"),
        ({"missing": "maybe"}, "missing"),
        ({"periods": 0}, "periods"),
    ],
)
def test_bad_alarm_tables_are_configuration_errors(values: dict[str, object], message: str) -> None:
    table = {"name": "a", "model": "m@prod", "when": "drift.share > 0.5", **values}
    with pytest.raises(ConfigError) as err:
        build_section(AlarmSettings, table, "alarms.a", {}, default_source="loopline.toml")
    assert message in str(err.value)
