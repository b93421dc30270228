"""``loopline monitor run|compare|show|report``: drift, quality and performance over time."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from loopline.cli.executing import executor_options, opened_executor
from loopline.cli.output import console, err_console, json_option, print_json, status_text, table

if TYPE_CHECKING:
    from collections.abc import Iterator

    from loopline.monitor.runner import GroupResult, MonitorReport
    from loopline.store.stores import Stores


@click.group("monitor", no_args_is_help=True)
def monitor_group() -> None:
    """Watch a served model: drift, data quality, anomalies, performance, health.

    Results are stored as time series (loopline monitor show); a run exits 1 when it finds
    drift or crosses a quality threshold, so it fits cron and CI.
    """


@contextmanager
def _stores() -> Iterator[Stores]:
    from loopline.config import load_settings
    from loopline.store.stores import Stores

    with Stores.open(load_settings()) as stores:
        yield stores


def _window_options(fn: Any) -> Any:
    options = [
        click.option(
            "--window",
            "window",
            metavar="DURATION",
            help="The last DURATION (1h, 15m, 2d). Default: 1h.",
        ),
        click.option("--since", metavar="TIME", help="Start: ISO 8601 (UTC) or an offset (-2h)."),
        click.option("--until", metavar="TIME", help="End: ISO 8601 (UTC), 'now' or an offset."),
        click.option("--last", type=int, metavar="N", help="The newest N logged rows."),
        click.option(
            "--aligned",
            is_flag=True,
            help="End --window on a multiple of its length (the last complete one).",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _make_window(
    window: str | None, since: str | None, until: str | None, last: int | None, aligned: bool
) -> Any:
    from loopline.monitor.windows import make_window

    return make_window(window=window, since=since, until=until, last=last, align=aligned)


@monitor_group.command("run")
@click.argument("model", metavar="MODEL@ALIAS")
@_window_options
@click.option(
    "--reference",
    "baseline",
    metavar="DATASET@V",
    help="Compare with this dataset version instead of the training data.",
)
@click.option("--no-store", is_flag=True, help="Compute and print, store nothing.")
@click.option("--rebuild-reference", is_flag=True, help="Compute the model's reference again.")
@executor_options("the window's shards")
@json_option
def run_command(
    model: str,
    window: str | None,
    since: str | None,
    until: str | None,
    last: int | None,
    aligned: bool,
    baseline: str | None,
    no_store: bool,
    rebuild_reference: bool,
    executor_kind: str | None,
    address: str | None,
    as_json: bool,
) -> None:
    """Monitor MODEL over a window of its prediction log and store the results.

    Prints a table per model version: each feature's test, statistic, threshold and
    verdict, then quality, anomalies, prediction drift, realized and estimated
    performance and health. Exits 1 on drift or a crossed quality threshold.
    """
    from loopline.monitor.runner import run_monitor

    win = _make_window(window, since, until, last, aligned)
    with (
        _stores() as stores,
        opened_executor(stores.settings, executor_kind, address) as executor,
    ):
        # On the local executor the window is read here, with threads of its own.
        fan_out = None if executor.shares_memory else executor
        if as_json:
            report = run_monitor(
                stores,
                model,
                win,
                baseline=baseline,
                store=not no_store,
                rebuild_reference=rebuild_reference,
                executor=fan_out,
            )
        else:
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            with Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=err_console,
                transient=True,
            ) as progress:
                task = progress.add_task(f"reading the log of {model} ({win.label})")

                def on_progress(rows: int, total: int) -> None:
                    progress.update(task, description=f"{rows:,} rows read ({win.label})")

                report = run_monitor(
                    stores,
                    model,
                    win,
                    baseline=baseline,
                    store=not no_store,
                    rebuild_reference=rebuild_reference,
                    on_progress=on_progress,
                    executor=fan_out,
                )
    if as_json:
        print_json(report.to_dict())
    else:
        print_report(report)
    if report.status in ("drift", "alert"):
        raise click.exceptions.Exit(1)


def print_report(report: MonitorReport) -> None:
    console.print(
        f"[bold]{report.target}[/bold]: {status_text(_style(report.status))} · "
        f"{report.window.label} · {report.rows:,} rows · {report.seconds:.2f} s"
        + ("" if report.stored else " · not stored")
    )
    for group in report.groups:
        print_group(group)
    for alert in report.alerts:
        console.print(f"[bold]alert[/bold]: {alert}")
    console.print()


def _style(status: str) -> str:
    return {"drift": "fail", "alert": "warn", "ok": "ok"}.get(status, status)


def print_group(g: GroupResult) -> None:
    rows = []
    for d in sorted(g.drift, key=lambda d: (not d.drifted, d.feature)):
        q = g.quality.get(d.feature, {})
        rows.append(
            (
                d.feature,
                d.kind,
                d.test,
                _num(d.statistic),
                _num(d.threshold),
                status_text("fail") if d.drifted else d.status,
                _pct(q.get("null_share")),
                _pct(q.get("out_of_range_share", q.get("unseen_share"))),
            )
        )
    console.print(
        table(
            f"version {g.version} ({g.role}): {g.rows:,} rows vs {g.baseline}",
            [
                "feature",
                "kind",
                "test",
                "statistic",
                "threshold",
                "drift",
                "nulls",
                "out of range / unseen",
            ],
            rows,
        )
    )
    summary = [("drift share", _num(g.drift_share))]
    if g.multivariate is not None:
        m = g.multivariate
        summary.append(
            (
                "multivariate error",
                f"{_num(m['reconstruction_error'])} (ok within "
                f"{_num(m['low'])}..{_num(m['high'])}){' DRIFT' if m['drifted'] else ''}",
            )
        )
    if g.anomaly is not None:
        top = ", ".join(a["request_id"] for a in g.anomaly["top"][:3])
        summary.append(
            ("anomalous rows", f"{_pct(g.anomaly['share'])}" + (f" (e.g. {top})" if top else ""))
        )
    if g.prediction is not None:
        summary.append(
            (
                "prediction drift",
                f"{g.prediction.test} {_num(g.prediction.statistic)} {g.prediction.status}",
            )
        )
    for name in ("accuracy", "f1", "roc_auc", "rmse", "mae"):
        realized, estimated = g.realized.get(name), g.estimated.get(name)
        if realized is not None or estimated is not None:
            summary.append((name, f"realized {_num(realized)} · estimated {_num(estimated)}"))
    summary.append(("labels", f"{g.labels:,}"))
    h = g.health
    summary.append(
        (
            "health",
            f"{int(h.get('requests') or 0):,} requests · p50 {_num(h.get('latency_p50_ms'))} ms · "
            f"p99 {_num(h.get('latency_p99_ms'))} ms · rejected {_pct(h.get('error_share'))}",
        )
    )
    console.print(table(None, ["", ""], summary))
    for note in g.notes:
        console.print(f"[dim]note: {note}[/dim]")


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _pct(value: Any) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


@monitor_group.command("compare")
@click.argument("reference", metavar="REFERENCE")
@click.argument("current", metavar="CURRENT")
@json_option
def compare_command(reference: str, current: str, as_json: bool) -> None:
    """Drift and quality of CURRENT against REFERENCE, with no model.

    Each is a CSV or Parquet file (path or URL) or a dataset version NAME@V. Exits 1 on
    drift or a crossed quality threshold.
    """
    from loopline.config import load_settings
    from loopline.monitor.compare import compare_tables, read_side
    from loopline.store.stores import Stores

    stores = None
    try:
        if any("@" in side and not Path(side).exists() for side in (reference, current)):
            stores = Stores.open(load_settings())
        with err_console.status(f"reading {reference}"):
            ref_table, ref_name = read_side(stores, reference)
        with err_console.status(f"reading {current}"):
            cur_table, cur_name = read_side(stores, current)
        with err_console.status("comparing"):
            report = compare_tables(
                ref_table, cur_table, reference_name=ref_name, current_name=cur_name
            )
    finally:
        if stores is not None:
            stores.close()
    if as_json:
        print_json(report.to_dict())
    else:
        console.print(
            f"[bold]{cur_name}[/bold] against [bold]{ref_name}[/bold]: "
            f"{status_text(_style(report.status))}"
        )
        print_group(report.result)
        for alert in report.result.alerts:
            console.print(f"[bold]alert[/bold]: {alert}")
    if report.status in ("drift", "alert"):
        raise click.exceptions.Exit(1)


@monitor_group.command("show")
@click.argument("model", metavar="MODEL@ALIAS")
@click.option("--metric", help="One metric (or a prefix ending in '*': feature_drift.*).")
@click.option("--feature", help='One feature ("" for the model-level metrics).')
@click.option(
    "--last",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="The newest N windows.",
)
@click.option("--version", "version", type=int, help="Only this model version.")
@json_option
def show_command(
    model: str,
    metric: str | None,
    feature: str | None,
    last: int,
    version: int | None,
    as_json: bool,
) -> None:
    """The stored monitoring series of MODEL, newest windows last."""
    from loopline.monitor.series import read_series
    from loopline.registry.refs import parse_ref

    name = parse_ref(model).name
    with _stores() as stores:
        from loopline.registry import Registry

        Registry(stores).resolve(model)  # a clear error for an unknown model or alias
        points = read_series(
            stores, name, metric=metric or None, feature=feature, version=version, last=last
        )
    if as_json:
        print_json([p.to_dict() for p in points])
        return
    if not points:
        console.print(
            f"No stored monitoring results for {model}"
            + (f" ({metric})" if metric else "")
            + "; run: loopline monitor run "
            + model
        )
        return
    rows = [
        (
            p.window_end.strftime("%Y-%m-%d %H:%M:%S"),
            f"{p.version}/{p.role}",
            p.metric,
            p.feature or "-",
            _num(p.value),
            _num(p.threshold),
            status_text(_style(p.status)),
            f"{p.rows:,}",
        )
        for p in points
    ]
    console.print(
        table(
            f"monitor series of {model}",
            [
                "window end (UTC)",
                "version",
                "metric",
                "feature",
                "value",
                "threshold",
                "status",
                "rows",
            ],
            rows,
        )
    )


@monitor_group.command("report")
@click.argument("model", metavar="MODEL@ALIAS")
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The HTML file to write.",
)
@_window_options
@click.option(
    "--history",
    type=click.IntRange(min=1),
    default=48,
    show_default=True,
    help="Stored windows to chart.",
)
@click.option(
    "--reference", "baseline", metavar="DATASET@V", help="Compare with this dataset version."
)
def report_command(
    model: str,
    out: Path,
    window: str | None,
    since: str | None,
    until: str | None,
    last: int | None,
    aligned: bool,
    history: int,
    baseline: str | None,
) -> None:
    """Write a self-contained HTML report of MODEL: this window's distributions, drift over
    the last windows as a heatmap, quality, anomalies, realized vs estimated performance."""
    from loopline.monitor.report import render
    from loopline.monitor.runner import run_monitor
    from loopline.monitor.series import read_series
    from loopline.registry.refs import parse_ref

    win = _make_window(window, since, until, last, aligned)
    with _stores() as stores, err_console.status(f"monitoring {model} ({win.label})"):
        report = run_monitor(stores, model, win, baseline=baseline, store=False)
        points = read_series(stores, parse_ref(model).name, last=history)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(render(report, points), encoding="utf-8")
    tmp.replace(out)
    console.print(
        f"wrote {out} ({report.status}, {report.rows:,} rows, {len(points)} stored points)"
    )
