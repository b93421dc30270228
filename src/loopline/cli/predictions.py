"""``loopline predictions ls|export``: the prediction log of a model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from loopline.cli.output import console, json_option, print_json, table


@click.group("predictions", no_args_is_help=True)
def predictions_group() -> None:
    """Read the prediction log: what each model version answered, and when."""


def _scan(model: str, since: str | None, until: str | None, last: int | None) -> tuple[Any, Any]:
    from loopline.config import load_settings
    from loopline.monitor.windows import LogScan, make_window
    from loopline.registry import Registry
    from loopline.registry.refs import parse_ref
    from loopline.store.stores import Stores

    window = make_window(
        window=None, since=since or ("-1h" if last is None else None), until=until, last=last
    )
    stores = Stores.open(load_settings())
    Registry(stores).resolve(model)
    return stores, LogScan(stores.objects, parse_ref(model).name, window)


def _options(fn: Any) -> Any:
    for option in reversed(
        [
            click.option(
                "--since",
                metavar="TIME",
                help="Start: ISO 8601 (UTC) or an offset (-2h). Default: -1h.",
            ),
            click.option(
                "--until", metavar="TIME", help="End: ISO 8601 (UTC), 'now' or an offset."
            ),
        ]
    ):
        fn = option(fn)
    return fn


@predictions_group.command("ls")
@click.argument("model", metavar="MODEL@ALIAS")
@_options
@click.option(
    "-n",
    "--limit",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="The newest N rows.",
)
@json_option
def ls_command(model: str, since: str | None, until: str | None, limit: int, as_json: bool) -> None:
    """The newest logged predictions of MODEL (request id, row, time, version, output)."""
    import pyarrow as pa

    stores, scan = _scan(model, since, until, None)
    try:
        scan.window = type(scan.window)(scan.window.start, scan.window.end, limit)
        batches = list(scan.batches())
    finally:
        stores.close()
    if not batches:
        if as_json:
            print_json([])
        else:
            console.print(f"No logged predictions of {model} in {scan.window.label}")
        return
    rows = pa.Table.from_batches(batches).to_pylist()[-limit:]
    if as_json:
        print_json(rows)
        return
    outputs = [k for k in rows[0] if k.startswith("output.")][:3]
    console.print(
        table(
            f"predictions of {model}",
            [
                "time (UTC)",
                "request id",
                "row",
                "version",
                "role",
                *[o.removeprefix("output.") for o in outputs],
            ],
            [
                (
                    r["ts"].strftime("%Y-%m-%d %H:%M:%S"),
                    r["request_id"],
                    r["row"],
                    r["version"],
                    r["role"],
                    *[_short(r.get(o)) for o in outputs],
                )
                for r in rows
            ],
        )
    )


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


@predictions_group.command("export")
@click.argument("model", metavar="MODEL@ALIAS")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@_options
@click.option("--last", type=int, metavar="N", help="The newest N rows instead of a time range.")
@json_option
def export_command(
    model: str, out: Path, since: str | None, until: str | None, last: int | None, as_json: bool
) -> None:
    """Write the logged predictions of MODEL to OUT (.parquet or .csv), streaming."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    suffix = out.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise click.BadParameter(f"{out.name}: write a .parquet or a .csv file", param_hint="OUT")
    stores, scan = _scan(model, since, until, last)
    rows = 0
    tmp = out.with_name(f".{out.name}.tmp")
    writer: Any = None
    try:
        for batch in scan.batches():
            if writer is None:
                writer = (
                    pq.ParquetWriter(tmp, batch.schema)
                    if suffix == ".parquet"
                    else pacsv.CSVWriter(tmp, batch.schema)
                )
            writer.write_batch(batch)
            rows += batch.num_rows
    finally:
        if writer is not None:
            writer.close()
        stores.close()
    if writer is None:
        tmp.unlink(missing_ok=True)
    else:
        tmp.replace(out)
    summary = {
        "model": model,
        "rows": rows,
        "out": str(out) if rows else None,
        "window": scan.window.to_dict(),
    }
    if as_json:
        print_json(summary)
    else:
        console.print(
            f"{rows:,} rows written to {out}"
            if rows
            else f"No logged predictions of {model} in {scan.window.label}; nothing written"
        )
