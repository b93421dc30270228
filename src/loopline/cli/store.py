"""``loopline store verify``: re-hash every blob of the artifact store, resolve what the
metadata references, and optionally repair.

The check itself is :func:`loopline.store.objects.verify.verify_store`; this module
gathers the references (which datasets, models, runs and pipeline steps name which
digest) from the tables of the layers that own them, and presents the report.

There is no ``store gc``: digests are also recorded inside blobs (model manifests, step
output bundles), in the audit log, and between a put and the row that records it, so no
query can prove a blob unreferenced; unreferenced blobs are reported, never deleted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click

from loopline.cli.output import console, err_console, json_option, print_json, table

if TYPE_CHECKING:
    from loopline.store.objects.cas import ContentStore
    from loopline.store.objects.verify import BlobRef, VerifyReport
    from loopline.store.stores import Stores

#: Exit status when a blob is corrupt, unreadable or missing (as for any integrity error).
EXIT_DAMAGED = 4
_MAX_OWNERS_SHOWN = 3
_MAX_BUNDLE_DEPTH = 32
_DIGEST_RE = re.compile(r"\b[0-9a-f]{64}\b")


@click.group("store", no_args_is_help=True)
def store_group() -> None:
    """Check the artifact store: every blob against its sha256."""


@store_group.command("verify")
@click.option(
    "--repair",
    is_flag=True,
    help="Remove corrupt blobs (the next put of the same content writes them again) and the "
    "temporary files that killed writers left behind.",
)
@json_option
def verify_command(repair: bool, as_json: bool) -> None:
    """Re-hash every blob, and check that each digest the metadata references is there.

    Reports corrupt, unreadable, missing and unreferenced (orphan) blobs, and stale
    temporary files. Exits 4 when a blob is corrupt, unreadable or missing (also after
    --repair: the data they held is gone until it is added again).
    """
    from loopline.config import load_settings
    from loopline.store.objects.verify import verify_store
    from loopline.store.stores import Stores

    with Stores.open(load_settings()) as stores:
        references = list(collect_references(stores))
        if as_json:
            report = verify_store(stores.cas, references, repair=repair)
        else:
            report = _verify_with_progress(stores, references, repair)
    if as_json:
        print_json(report.to_dict())
    else:
        _print_report(report, repair)
    if report.damaged:
        raise click.exceptions.Exit(EXIT_DAMAGED)


def _verify_with_progress(stores: Stores, references: list[BlobRef], repair: bool) -> VerifyReport:
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from loopline.store.objects.verify import verify_store

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} blobs"),
        TextColumn("{task.fields[size]}"),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    ) as progress:
        task = progress.add_task("verifying", total=None, size="")

        def on_blob(done: int, total: int, nbytes: int) -> None:
            progress.update(task, completed=done, total=total, size=_size(nbytes))

        return verify_store(stores.cas, references, repair=repair, progress=on_blob)


def _print_report(report: VerifyReport, repair: bool) -> None:
    counts = {p: len(report.of(p)) for p in ("corrupt", "unreadable", "missing", "orphan")}
    console.print(
        f"[bold]{report.store}[/bold]: {_count(report.blobs, 'blob')} "
        f"({_size(report.bytes)}) re-hashed: {report.intact:,} intact, "
        f"{counts['corrupt']} corrupt, {counts['unreadable']} unreadable, "
        f"{counts['missing']} missing, "
        f"{counts['orphan']} unreferenced"
    )
    if report.findings:
        rows = []
        for f in report.findings:
            owners = list(f.referenced_by[:_MAX_OWNERS_SHOWN])
            if len(f.referenced_by) > _MAX_OWNERS_SHOWN:
                owners.append(f"... {len(f.referenced_by) - _MAX_OWNERS_SHOWN} more")
            action = "removed" if f.repaired else ""
            detail = _DIGEST_RE.sub(lambda m: m[0][:16] + "…", f.detail)
            rows.append((f.problem, f.digest[:16], detail, "\n".join(owners), action))
        console.print(table(None, ["problem", "sha256", "detail", "referenced by", "repair"], rows))
    temp_bytes = sum(t.size for t in report.temp_files)
    if report.temp_files:
        state = "removed" if report.temp_removed else "left (remove them with --repair)"
        console.print(
            f"{_count(len(report.temp_files), 'stale temporary file')} ({_size(temp_bytes)}): "
            f"{state}"
        )
    corrupt = [f for f in report.of("corrupt") if not f.repaired]
    if corrupt and not repair:
        console.print(
            "next: [bold]loopline store verify --repair[/bold] removes the corrupt blobs; "
            "putting the same content again (for example loopline run --no-cache) "
            "rewrites them"
        )
    elif report.damaged:
        console.print(
            "next: put the same content again (add the data, or re-run what made it with "
            "--no-cache) to restore the blobs"
        )


def collect_references(stores: Stores) -> Iterator[BlobRef]:
    """Every digest the metadata names as a blob, with who names it.

    Rows: dataset versions (data, profile), splits (assignment), model versions
    (manifest, report, and every file the manifest lists), monitor references, run
    artifacts, and pipeline
    step outputs (with the blobs their model and bundle manifests list).
    """
    import sqlalchemy as sa

    from loopline.data.tables import dataset_splits, dataset_versions, datasets
    from loopline.monitor.tables import references as monitor_references
    from loopline.pipeline.tables import step_runs
    from loopline.registry.tables import model_versions
    from loopline.store.objects.verify import BlobRef
    from loopline.tracking.tables import run_artifacts

    models: list[tuple[str, str]] = []
    outputs: list[tuple[str, str, str]] = []
    refs: list[BlobRef] = []
    with stores.db.read() as conn:
        versions = sa.select(
            datasets.c.name,
            dataset_versions.c.version,
            dataset_versions.c.parquet_digest,
            dataset_versions.c.profile_digest,
        ).join_from(dataset_versions, datasets)
        for row in conn.execute(versions):
            owner = f"dataset {row.name}@{row.version}"
            refs.append(BlobRef(row.parquet_digest, f"{owner} (data)"))
            refs.append(BlobRef(row.profile_digest, f"{owner} (profile)"))
        splits = (
            sa.select(
                datasets.c.name,
                dataset_versions.c.version,
                dataset_splits.c.seed,
                dataset_splits.c.assignment_digest,
            )
            .join_from(dataset_splits, dataset_versions)
            .join(datasets)
        )
        for split in conn.execute(splits):
            owner = f"dataset {split.name}@{split.version} split (seed {split.seed})"
            refs.append(BlobRef(split.assignment_digest, owner))
        registered = sa.select(
            model_versions.c.model,
            model_versions.c.version,
            model_versions.c.manifest_digest,
            model_versions.c.report_digest,
        )
        for mv in conn.execute(registered):
            owner = f"model {mv.model}/{mv.version}"
            refs.append(BlobRef(mv.manifest_digest, f"{owner} (manifest)"))
            models.append((owner, mv.manifest_digest))
            if mv.report_digest:
                refs.append(BlobRef(mv.report_digest, f"{owner} (report)"))
        baselines = sa.select(
            monitor_references.c.model,
            monitor_references.c.version,
            monitor_references.c.baseline,
            monitor_references.c.digest,
        )
        for ref in conn.execute(baselines):
            owner = f"model {ref.model}/{ref.version} monitor reference ({ref.baseline})"
            refs.append(BlobRef(ref.digest, owner))
        artifacts = sa.select(run_artifacts.c.run_id, run_artifacts.c.name, run_artifacts.c.digest)
        for art in conn.execute(artifacts):
            refs.append(BlobRef(art.digest, f"run {art.run_id[:12]} artifact {art.name!r}"))
        steps = sa.select(
            step_runs.c.pipeline_run_id,
            step_runs.c.step,
            step_runs.c.output_format,
            step_runs.c.output_digest,
        ).where(step_runs.c.output_digest.is_not(None))
        for out in conn.execute(steps):
            owner = f"pipeline run {out.pipeline_run_id[:12]} step {out.step!r}"
            refs.append(BlobRef(out.output_digest, f"{owner} (output)"))
            outputs.append((owner, out.output_format or "", out.output_digest))
    yield from refs
    # Blobs listed inside other blobs; a manifest that cannot be read is reported by the
    # check itself (corrupt or missing), and what it lists stays unknown.
    for owner, digest in models:
        manifest = _json_blob(stores.cas, digest)
        files = manifest.get("files") if isinstance(manifest, dict) else None
        if isinstance(files, dict):
            for name, entry in files.items():
                if isinstance(entry, dict) and isinstance(entry.get("sha256"), str):
                    yield BlobRef(entry["sha256"], f"{owner} file {name!r}")
    for owner, fmt, digest in outputs:
        yield from _output_children(stores.cas, owner, fmt, digest, 0)


def _output_children(
    cas: ContentStore, owner: str, fmt: str, digest: str, depth: int
) -> Iterator[BlobRef]:
    """The blobs a step output's manifest lists (``model`` files, ``bundle`` items)."""
    from loopline.store.objects.verify import BlobRef

    if fmt not in ("model", "bundle") or depth > _MAX_BUNDLE_DEPTH:
        return
    manifest = _json_blob(cas, digest)
    if not isinstance(manifest, dict):
        return
    if fmt == "model" and isinstance(manifest.get("files"), dict):
        for name, child in manifest["files"].items():
            if isinstance(child, str):
                yield BlobRef(child, f"{owner} (model file {name!r})")
    items = manifest.get("items")
    if fmt == "bundle" and isinstance(items, list):
        for item in items:
            if isinstance(item, list) and len(item) == 3 and isinstance(item[2], str):
                key, child_fmt, child = item
                yield BlobRef(child, f"{owner} (item {key!r})")
                yield from _output_children(cas, owner, str(child_fmt), child, depth + 1)


def _json_blob(cas: ContentStore, digest: str) -> Any:
    from loopline.store.errors import ObjectStoreError

    try:
        return json.loads(cas.get(digest))
    except (ObjectStoreError, ValueError):
        return None


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{n} B"
