"""``loopline alarms ls|show|test|export-prometheus``: the project's alarms."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from loopline.cli.output import console, json_option, print_json, table

if TYPE_CHECKING:
    from collections.abc import Iterator

    from loopline.alarm.engine import AlarmEngine

_STATE_STYLE = {"ok": "green", "alarm": "bold red", "insufficient_data": "yellow"}


@click.group("alarms", no_args_is_help=True)
def alarms_group() -> None:
    """Alarms over the monitor's series: states, history, a dry run, Prometheus rules.

    Alarms are the [alarms.NAME] tables of loopline.toml; the loop controller
    (loopline loop run) evaluates them after each monitored window and runs their actions.
    """


@contextmanager
def _engine() -> Iterator[AlarmEngine]:
    from loopline.alarm.engine import AlarmEngine
    from loopline.alarm.settings import action_configs, alarm_configs
    from loopline.config import load_settings
    from loopline.store.stores import Stores

    settings = load_settings()
    alarms = alarm_configs(settings)
    actions = action_configs(settings)
    with Stores.open(settings) as stores:
        yield AlarmEngine(stores, alarms, actions)


def _state(state: str) -> str:
    style = _STATE_STYLE.get(state)
    return f"[{style}]{state}[/{style}]" if style else state


def _engine_alarm(engine: AlarmEngine, name: str) -> Any:
    from loopline.config import did_you_mean
    from loopline.errors import ConfigError

    if name not in engine.alarms:
        raise ConfigError(
            f"no alarm named {name!r}{did_you_mean(name, engine.alarms)} (alarms: "
            f"{', '.join(sorted(engine.alarms)) or 'none'})",
            hint="Alarms are the [alarms.NAME] tables of loopline.toml",
        )
    return engine.alarms[name]


@alarms_group.command("ls")
@json_option
def ls_command(as_json: bool) -> None:
    """Every alarm with its state, since when, its last value and why."""
    with _engine() as engine:
        states = engine.states()
        rows: list[dict[str, Any]] = []
        for name in sorted(engine.alarms):
            alarm = engine.alarms[name]
            st = states.get(name)
            rows.append(
                {
                    "alarm": name,
                    "model": alarm.model,
                    "when": alarm.when + (f" [{alarm.feature}]" if alarm.feature else ""),
                    "rule": f"{alarm.datapoints} of {alarm.periods} windows",
                    "state": st.state if st else "insufficient_data",
                    "since": st.since.isoformat() if st else None,
                    "value": st.value if st else None,
                    "reason": st.reason if st else "never evaluated",
                    "actions": list(alarm.actions),
                }
            )
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("No alarms: add [alarms.NAME] tables to loopline.toml (docs/alarms.md)")
        return
    console.print(
        table(
            "alarms",
            ["alarm", "model", "when", "rule", "state", "since", "value", "actions", "reason"],
            [
                (
                    r["alarm"],
                    r["model"],
                    r["when"],
                    r["rule"],
                    _state(r["state"]),
                    (r["since"] or "")[:19],
                    _num(r["value"]),
                    ", ".join(r["actions"]),
                    r["reason"],
                )
                for r in rows
            ],
        )
    )


@alarms_group.command("show")
@click.argument("name")
@click.option("--limit", default=20, show_default=True, help="State changes to show.")
@json_option
def show_command(name: str, limit: int, as_json: bool) -> None:
    """The history of alarm NAME: each state change, the windows and values that caused
    it, and what each of its actions did."""
    with _engine() as engine:
        alarm = _engine_alarm(engine, name)
        history = engine.history(name, limit=limit)
        state = engine.states().get(name)
    if as_json:
        print_json(
            {
                "alarm": name,
                "model": alarm.model,
                "when": alarm.when,
                "state": None if state is None else state.to_dict(),
                "history": history,
            }
        )
        return
    now = state.state if state else "insufficient_data"
    console.print(f"[bold]{name}[/bold]: {alarm.when} on {alarm.model} · now {_state(now)}")
    if not history:
        console.print("No state change recorded yet.")
        return
    for change in history:
        console.print(
            f"\n{change['at'][:19]}  {change['from'] or '-'} -> {_state(change['to'])}  "
            f"({change['source']}, version {change['version']}): {change['reason']}"
        )
        points = change.get("datapoints") or []
        if points and "window_end" in points[0]:
            console.print(
                table(
                    None,
                    ["window", "value", "breaching", "rows"],
                    [
                        (
                            f"{p['window_start'][11:19]}..{p['window_end'][11:19]}",
                            _num(p.get("value")),
                            p.get("breaching"),
                            p.get("rows"),
                        )
                        for p in points
                    ],
                )
            )
        for run in change.get("actions") or []:
            error = f": {run['error']}" if run.get("error") else ""
            console.print(
                f"  action {run['action']} ({run['kind']}): {run['status']} after "
                f"{run['attempts']} attempt(s){error}"
            )


@alarms_group.command("test")
@click.argument("name")
@json_option
def test_command(name: str, as_json: bool) -> None:
    """Evaluate alarm NAME now and print what it would do; records and fires nothing."""
    with _engine() as engine:
        alarm = _engine_alarm(engine, name)
        ev = engine.evaluate(name, dry_run=True)
    fires = (
        list(alarm.actions)
        if ev.changed and ev.state == "alarm"
        else list(alarm.ok_actions)
        if ev.changed and ev.state == "ok" and ev.previous == "alarm"
        else []
    )
    if as_json:
        print_json(ev.to_dict() | {"would_run": fires})
        return
    console.print(
        f"[bold]{name}[/bold] on {alarm.model} (version {ev.version}): "
        f"{_state(ev.previous or 'insufficient_data')} -> {_state(ev.state)}: {ev.reason}"
    )
    if ev.datapoints:
        console.print(
            table(
                None,
                ["window", "value", "breaching", "rows"],
                [
                    (
                        f"{p.window_start.isoformat()[:19]}..{p.window_end.isoformat()[11:19]}",
                        _num(p.value),
                        p.breaching,
                        p.rows,
                    )
                    for p in ev.datapoints
                ],
            )
        )
    if fires:
        console.print(f"would run: {', '.join(fires)} (nothing was run: this is a test)")
    else:
        console.print("would run nothing (no state change that has actions)")


@alarms_group.command("export-prometheus")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE."
)
def export_command(output: Path | None) -> None:
    """The alarms as Prometheus alerting rules over the gauges the server exports
    (loopline_monitor_value); check them with promtool check rules FILE."""
    from loopline.alarm.prometheus import rules_yaml
    from loopline.alarm.settings import alarm_configs
    from loopline.config import load_settings
    from loopline.monitor.settings import monitor_configs
    from loopline.registry.refs import parse_ref

    settings = load_settings()
    alarms = alarm_configs(settings)
    monitors = monitor_configs(settings)
    every = {
        parse_ref(a.model).name: monitors[parse_ref(a.model).name].every or ""
        for a in alarms.values()
        if parse_ref(a.model).name in monitors and monitors[parse_ref(a.model).name].every
    }
    text = rules_yaml(alarms, every)
    if output is None:
        click.echo(text, nl=False)
        return
    output.write_text(text)
    console.print(f"wrote {len(alarms)} rule(s) to {output}")


def _num(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
