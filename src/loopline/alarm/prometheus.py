"""``alarms export-prometheus``: the project's alarms as Prometheus alerting rules.

The model server exports the newest stored monitor values of the model it serves as the
gauge ``loopline_monitor_value{model, version, role, metric, feature}`` on ``/metrics``.
Each alarm becomes a rule over that gauge: the same condition (the gate language's
operators are PromQL's), each name a ``max()`` of the series it means (so both sides
compare as plain values, whatever their labels), held ``for`` as long as ``datapoints``
windows of the model's schedule last. The rule's ``loopline_alarm`` label names the
alarm, so Alertmanager's webhook (``POST /alertmanager`` on the controller) runs the same
actions as loopline's own evaluation would.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from loopline.alarm.settings import AlarmSettings

GAUGE = "loopline_monitor_value"


def _quote(value: str) -> str:
    return json.dumps(value)  # a YAML double-quoted scalar, and a PromQL string


def promql(alarm: AlarmSettings) -> str:
    """The alarm's condition as a PromQL expression over the monitor gauge."""
    from loopline.evaluate.gates import Gate
    from loopline.registry.refs import parse_ref

    model = parse_ref(alarm.model).name

    def series(metric: str) -> str:
        labels = (
            f"model={_quote(model)},role={_quote(alarm.role)},metric={_quote(metric)},"
            f"feature={_quote(alarm.feature)}"
        )
        return f"max({GAUGE}{{{labels}}})"

    return Gate.parse(alarm.when).translate(series)


def rules_yaml(
    alarms: Mapping[str, AlarmSettings],
    every: Mapping[str, str] | None = None,
    *,
    group: str = "loopline",
) -> str:
    """A Prometheus rule file (one group) for ``alarms``. ``every`` maps a model name to
    its monitor schedule ("5m"), which sets each rule's ``for``."""
    from loopline.monitor.windows import parse_duration
    from loopline.registry.refs import parse_ref

    lines = ["groups:", f"  - name: {_quote(group)}", "    rules:"]
    if not alarms:
        lines[-1] = "    rules: []"
    for name in sorted(alarms):
        alarm = alarms[name]
        model = parse_ref(alarm.model).name
        schedule = (every or {}).get(model)
        hold = "0s"
        if schedule:
            seconds = int(parse_duration(schedule).total_seconds()) * max(alarm.datapoints - 1, 0)
            hold = f"{seconds}s"
        summary = alarm.description or f"{alarm.when} ({alarm.model})"
        lines += [
            f"      - alert: {_quote(name)}",
            f"        expr: {_quote(promql(alarm))}",
            f"        for: {hold}",
            "        labels:",
            f"          loopline_alarm: {_quote(name)}",
            f"          model: {_quote(model)}",
            '          severity: "warning"',
            "        annotations:",
            f"          summary: {_quote(summary)}",
            "          description: "
            + _quote(f"loopline alarm {name}: {alarm.when} on {alarm.model}"),
        ]
    return "\n".join(lines) + "\n"
