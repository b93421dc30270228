"""``loopline loop run|status|history|show|retrain|rollout|pause|resume``: the closed loop."""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click
from rich.markup import escape

from loopline.cli.output import console, err_console, json_option, print_json, table

if TYPE_CHECKING:
    from collections.abc import Iterator

    from loopline.loop.rollout import Rollout
    from loopline.loop.timeline import Entry
    from loopline.store.stores import Stores

_STYLE = {
    "promoted": "bold green",
    "rolled_back": "bold red",
    "refused": "yellow",
    "failed": "bold red",
    "stood_down": "yellow",
}


@click.group("loop", no_args_is_help=True)
def loop_group() -> None:
    """The closed loop: monitor, alarm, retrain, gate, canary, promote or roll back.

    loopline loop run is the controller (one per project acts; start two for a standby);
    the other commands read and steer what it does.
    """


@contextmanager
def _stores() -> Iterator[Stores]:
    from loopline.config import load_settings
    from loopline.store.stores import Stores

    with Stores.open(load_settings()) as stores:
        yield stores


def _state(state: str) -> str:
    style = _STYLE.get(state)
    return f"[{style}]{state}[/{style}]" if style else state


def entry_line(entry: Entry) -> str:
    """One timeline line (Rich markup): time, what, event, numbers, reason."""
    at = entry.at.strftime("%H:%M:%S")
    if entry.kind == "monitor":
        groups = ", ".join(entry.numbers.get("groups") or [])
        end = str(entry.numbers.get("window_end"))[11:19]
        line = f"{at}  monitor  {entry.subject}: window to {end}"
        line += f", {entry.numbers.get('rows', 0)} rows ({groups}) -> {entry.event}"
        return line + (f": {escape(entry.reason)}" if entry.reason else "")
    if entry.kind == "alarm":
        values = ", ".join(f"{v:.3g}" for v in entry.numbers.get("values") or [] if v is not None)
        return (
            f"{at}  [bold]alarm[/bold]    {entry.subject} {entry.event}"
            + (" " + escape(f"[{values}]") if values else "")
            + f": {escape(entry.reason)}"
        )
    return (
        f"{at}  [bold]rollout[/bold]  {entry.subject} -> {_state(entry.event)}: "
        f"{escape(entry.reason)}"
    )


def print_entry(entry: Entry) -> None:
    console.print(entry_line(entry), highlight=False)


@loop_group.command("run")
@click.option("--port", type=int, help="Serve /health, /metrics, /alertmanager here.")
@click.option("--host", help="Listen on this address (default [controller] host).")
@click.option("--no-http", is_flag=True, help="Do not serve the HTTP routes.")
@click.option("--quiet", is_flag=True, help="Do not print the timeline.")
def run_command(port: int | None, host: str | None, no_http: bool, quiet: bool) -> None:
    """Run the loop controller until stopped (Ctrl-C or SIGTERM: it ends its current
    steps and gives up its lease, so a standby takes over at once).

    Runs each [monitor.MODEL] on its schedule, evaluates the [alarms.NAME], runs their
    actions and drives the rollouts of [loop.MODEL]; prints what happens as a timeline.
    """
    import signal
    import threading

    from loopline.config import load_settings
    from loopline.loop.controller import Controller
    from loopline.loop.http import ControllerServer
    from loopline.loop.timeline import Timeline
    from loopline.store.stores import Stores

    settings = load_settings()
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with Stores.open(settings) as stores:
            controller = Controller(stores, settings)
            server = None
            if not no_http:
                server = ControllerServer(
                    controller,
                    host or controller.config.host,
                    controller.config.port if port is None else port,
                )
                bound = server.start()
                err_console.print(
                    f"controller {controller.holder}: http://{server.config.host}:{bound} "
                    "(/health, /metrics, POST /alertmanager)"
                )
            timeline = Timeline(stores)
            models = ", ".join(sorted(controller.monitors)) or "none"
            err_console.print(
                f"monitoring {models}; alarms: {', '.join(sorted(controller.alarms)) or 'none'}; "
                f"loops: {', '.join(sorted(controller.loops)) or 'none'}"
            )
            was_leader: bool | None = None
            try:
                while not stop.is_set():
                    controller.tick()
                    if controller.stats.leader != was_leader:
                        was_leader = controller.stats.leader
                        err_console.print(
                            "holding the lease: acting"
                            if was_leader
                            else "another controller holds the lease: standing by"
                        )
                    if not quiet:
                        for entry in timeline.read():
                            print_entry(entry)
                    stop.wait(controller.config.tick_s)
            finally:
                controller.shutdown()
                if server is not None:
                    server.stop()
                if not quiet:
                    for entry in timeline.read():
                        print_entry(entry)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@loop_group.command("status")
@json_option
def status_command(as_json: bool) -> None:
    """Who drives the loop, rollouts in progress, the last monitor runs, alarm states."""
    from loopline.alarm.engine import AlarmEngine
    from loopline.alarm.settings import alarm_configs
    from loopline.config import load_settings
    from loopline.loop.lease import current_lease
    from loopline.loop.rollout import Rollouts
    from loopline.monitor.series import runs
    from loopline.store.stores import Stores

    settings = load_settings()
    with Stores.open(settings) as stores:
        lease = current_lease(stores)
        rollouts = Rollouts(stores)
        active = rollouts.active()
        models = rollouts.models()
        recent = runs(stores, limit=8)
        engine = AlarmEngine(stores, alarm_configs(settings))
        states = engine.states()
    out = {
        "lease": None if lease is None else lease.to_dict(),
        "rollouts": [r.to_dict() for r in active],
        "models": models,
        "monitor_runs": recent,
        "alarms": {n: s.to_dict() for n, s in states.items()},
    }
    if as_json:
        print_json(out)
        return
    if lease is None:
        console.print("controller: [yellow]none running[/yellow] (start one: loopline loop run)")
    else:
        console.print(
            f"controller: {lease.holder} (lease renewed {lease.renewed_at.isoformat()[:19]}, "
            f"expires {lease.expires_at.isoformat()[11:19]})"
        )
    console.print(
        table(
            "rollouts in progress",
            ["id", "model", "state", "champion", "challenger", "since", "reason"],
            [
                (
                    r.id[:12],
                    r.model,
                    _state(r.state),
                    r.champion_version,
                    r.challenger_version,
                    r.updated_at.isoformat()[:19],
                    r.reason,
                )
                for r in active
            ],
        )
        if active
        else "rollouts in progress: none"
    )
    paused = [m for m, v in models.items() if v["paused"]]
    if paused:
        console.print(f"paused: {', '.join(paused)}")
    if recent:
        console.print(
            table(
                "last monitor runs",
                ["model", "window end", "rows", "status"],
                [
                    (
                        r["model"],
                        str(r.get("window_end") or "")[:19],
                        r.get("rows"),
                        r.get("status"),
                    )
                    for r in recent
                ],
            )
        )
    if states:
        console.print(
            table(
                "alarms",
                ["alarm", "state", "since", "reason"],
                [
                    (n, s.state, s.since.isoformat()[:19], s.reason)
                    for n, s in sorted(states.items())
                ],
            )
        )


def _rollout_rows(items: list[Rollout]) -> list[tuple[Any, ...]]:
    return [
        (
            r.id[:12],
            r.created_at.isoformat()[:19],
            r.trigger,
            _state(r.state),
            r.champion_version,
            r.challenger_version,
            r.reason,
        )
        for r in items
    ]


@loop_group.command("history")
@click.argument("model")
@click.option("--limit", default=20, show_default=True)
@json_option
def history_command(model: str, limit: int, as_json: bool) -> None:
    """The rollouts of MODEL, newest first: trigger, outcome, versions, why."""
    from loopline.loop.rollout import Rollouts

    with _stores() as stores:
        items = Rollouts(stores).history(model, limit=limit)
    if as_json:
        print_json([r.to_dict() for r in items])
        return
    if not items:
        console.print(f"No rollout of {model} yet.")
        return
    console.print(
        table(
            f"rollouts of {model}",
            ["id", "started", "trigger", "state", "champion", "challenger", "reason"],
            _rollout_rows(items),
        )
    )


@loop_group.command("show")
@click.argument("rollout_id", metavar="ID")
@json_option
def show_command(rollout_id: str, as_json: bool) -> None:
    """One rollout: each step with its time and reason, the gates, the bake windows."""
    from loopline.loop.rollout import Rollouts

    with _stores() as stores:
        r = Rollouts(stores).get(rollout_id)
    if as_json:
        print_json(r.to_dict())
        return
    console.print(
        f"[bold]rollout {r.id}[/bold] of {r.model}: {_state(r.state)} ({r.trigger}); champion "
        f"{r.champion_version}, challenger {r.challenger_version}, {r.percent:g}% {r.mode}"
    )
    console.print(
        table(
            None,
            ["at", "step", "reason"],
            [(e["at"][:19], _state(e["to"]), e["reason"]) for e in r.events],
        )
    )
    if r.bake:
        console.print(
            table(
                "bake windows",
                ["window end", "challenger rows", "passed", "why"],
                [
                    (
                        w["window_end"][:19],
                        w["challenger_rows"],
                        "empty" if w["empty"] else w["passed"],
                        "; ".join(str(x["reason"]) for x in w["results"] if not x["passed"]),
                    )
                    for w in r.bake
                ],
            )
        )
    if r.error:
        from loopline.cli.output import print_traceback

        err_console.print("[bold]error[/bold]:")
        print_traceback(r.error)


def _start(model: str, challenger: int | None, reason: str | None, as_json: bool) -> None:
    from loopline.config import load_settings
    from loopline.loop.rollout import Rollouts
    from loopline.loop.settings import loop_config
    from loopline.store.stores import Stores

    settings = load_settings()
    cfg = loop_config(settings, model)
    with Stores.open(settings) as stores:
        if challenger is not None:
            from loopline.registry import Registry

            Registry(stores).get(model, challenger)
        rollout = Rollouts(stores).start(
            model,
            cfg,
            trigger="manual",
            cause={"reason": reason} if reason else {},
            challenger=challenger,
        )
    if as_json:
        print_json(rollout.to_dict())
        return
    what = f"version {challenger}" if challenger is not None else "a retraining"
    console.print(
        f"asked for {what} of {model}: rollout {rollout.id[:12]} ({rollout.state}); the "
        f"controller drives it (follow it: loopline loop show {rollout.id[:12]})"
    )


@loop_group.command("retrain")
@click.argument("model")
@click.option("--reason", help="Why (recorded with the rollout).")
@json_option
def retrain_command(model: str, reason: str | None, as_json: bool) -> None:
    """Start a rollout of MODEL now: retrain on the newest data, gate, canary, promote."""
    _start(model, None, reason, as_json)


@loop_group.command("rollout")
@click.argument("model")
@click.argument("version", type=int)
@click.option("--reason", help="Why (recorded with the rollout).")
@json_option
def rollout_command(model: str, version: int, reason: str | None, as_json: bool) -> None:
    """Roll out an existing VERSION of MODEL: gate, canary, bake, promote or roll back."""
    _start(model, version, reason, as_json)


def _pause(model: str, paused: bool, reason: str | None, as_json: bool) -> None:
    from loopline.loop.rollout import Rollouts

    with _stores() as stores:
        changed = Rollouts(stores).set_paused(model, paused, reason=reason)
    word = "paused" if paused else "resumed"
    if as_json:
        print_json({"model": model, "paused": paused, "changed": changed})
        return
    console.print(f"{model}: {word}" if changed else f"{model} was {word} already")


@loop_group.command("pause")
@click.argument("model")
@click.option("--reason", help="Why (shown by loop status).")
@json_option
def pause_command(model: str, reason: str | None, as_json: bool) -> None:
    """Pause the loop of MODEL: no new rollout; one in progress waits where it is."""
    _pause(model, True, reason, as_json)


@loop_group.command("resume")
@click.argument("model")
@json_option
def resume_command(model: str, as_json: bool) -> None:
    """Resume the loop of MODEL."""
    _pause(model, False, None, as_json)
