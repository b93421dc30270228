"""``loopline feedback import FILE``: ground-truth labels for logged predictions."""

from __future__ import annotations

from pathlib import Path

import click

from loopline.cli.output import console, json_option, print_json, table


@click.group("feedback", no_args_is_help=True)
def feedback_group() -> None:
    """Ground truth for earlier predictions, matched by request id."""


@feedback_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@json_option
def import_command(file: Path, as_json: bool) -> int:
    """Import labels from FILE (CSV, Parquet or JSON lines: request_id, [row], label).

    Each label is reported as stored, unknown (no logged prediction has that id yet; kept),
    duplicate (the same label again), updated (a new label replaced an earlier one) or
    invalid (not stored). Exits 1 if no label could be stored.
    """
    from loopline.config import load_settings
    from loopline.monitor.feedback import FeedbackStore, read_feedback_file
    from loopline.store.stores import Stores

    items, invalid = read_feedback_file(file)
    with Stores.open(load_settings()) as stores:
        report = FeedbackStore(stores.db).record(items, invalid=invalid, source=f"file:{file.name}")
    if as_json:
        print_json(report.to_dict())
    else:
        counts = report.counts
        console.print(
            table(
                f"feedback from {file.name}",
                ["received", "stored", "unknown", "duplicate", "updated", "invalid", "late"],
                [
                    (
                        len(report.items),
                        counts["stored"],
                        counts["unknown"],
                        counts["duplicate"],
                        counts["updated"],
                        counts["invalid"],
                        counts["late"],
                    )
                ],
            )
        )
        for item in [i for i in report.items if i.status == "invalid"][:10]:
            console.print(f"  invalid: {item.request_id} row {item.row}: {item.message}")
    return 0 if report.accepted or not report.items else 1


@feedback_group.command("ls")
@click.argument("model", metavar="MODEL@ALIAS")
@click.option(
    "-n",
    "--limit",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="The newest N labels.",
)
@json_option
def ls_command(model: str, limit: int, as_json: bool) -> None:
    """The newest labels of MODEL, joined to their logged predictions."""
    from loopline.config import load_settings
    from loopline.monitor.feedback import FeedbackStore
    from loopline.registry import Registry
    from loopline.registry.refs import parse_ref
    from loopline.store.stores import Stores

    name = parse_ref(model).name
    with Stores.open(load_settings()) as stores:
        Registry(stores).resolve(model)
        rows = FeedbackStore(stores.db).joined(stores.objects, name, limit=limit)
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print(
            f"No feedback for {model} yet; send labels to the server's /feedback, or run: "
            "loopline feedback import FILE"
        )
        return
    console.print(
        table(
            f"feedback of {model}",
            ["received (UTC)", "request id", "row", "version", "label", "prediction", "correct"],
            [
                (
                    r["received_at"][:19].replace("T", " "),
                    r["request_id"],
                    r["row"],
                    r["version"],
                    r["label"],
                    r["prediction"],
                    {True: "yes", False: "no"}.get(r["correct"], "-"),
                )
                for r in rows
            ],
        )
    )
