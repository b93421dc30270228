"""``loopline models``: list, show, alias, promote and roll back registered models."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from loopline.cli.output import console, err_console, json_option, print_json, table

if TYPE_CHECKING:
    from loopline.config import Settings
    from loopline.registry import AliasMove, ModelVersion, PromotionCheck, Registry
    from loopline.store.stores import Stores


@click.group("models", no_args_is_help=True)
def models_group() -> None:
    """List, show, register, alias, promote and roll back registered models.

    A model is referred to as NAME (its latest version), NAME/VERSION or NAME@ALIAS.
    """


def _open() -> tuple[Settings, Stores, Registry]:
    from loopline.config import load_settings
    from loopline.registry import Registry
    from loopline.store.stores import Stores

    settings = load_settings()
    stores = Stores.open(settings)
    return settings, stores, Registry(stores)


def _gate_check(stores: Stores, name: str, *, show: bool = True) -> PromotionCheck | None:
    """The promotion check of model ``name``: its ``[gates.NAME]`` criteria, or None.

    The check evaluates the candidate and the alias's current holder on the configured
    holdout rows and prints the table of criteria. A model without gates is promoted
    directly (the move is recorded like any other).
    """
    from loopline.cli.check import print_gate_check
    from loopline.loop.gates import check_candidate, gate_configs

    config = gate_configs(stores.settings).get(name)
    if config is None:
        return None

    def check(candidate: ModelVersion, champion: ModelVersion | None) -> Any:
        result = check_candidate(stores, config, candidate, champion=champion)
        if show:
            print_gate_check(result)
        return result.verdict

    return check


@models_group.command("ls")
@json_option
def ls_command(as_json: bool) -> None:
    """List registered models: latest version, aliases, last change."""
    _, stores, reg = _open()
    with stores:
        summaries = reg.list_models()
    if as_json:
        print_json([s.to_dict() for s in summaries])
        return
    if not summaries:
        console.print("No models registered yet.")
        return
    rows = [
        (
            s.name,
            s.latest_version if s.latest_version is not None else "-",
            ", ".join(f"{a}={v}" for a, v in s.aliases.items()) or "-",
            _when(s.updated_at),
            s.description or "",
        )
        for s in summaries
    ]
    console.print(table(None, ["name", "latest", "aliases", "updated", "description"], rows))


@models_group.command("show")
@click.argument("ref", metavar="NAME[@ALIAS|/VERSION]")
@json_option
def show_command(ref: str, as_json: bool) -> None:
    """Show a model version: lineage, metrics, signature, package files, alias history."""
    _, stores, reg = _open()
    with stores:
        mv = reg.resolve(ref)
        manifest = reg.manifest(mv)
        moves = reg.alias_history(mv.name)
        versions = [v.version for v in reg.versions(mv.name)]
    if as_json:
        print_json(
            {
                **mv.to_dict(),
                "versions": versions,
                "manifest": manifest.to_dict(),
                "alias_history": [m.to_dict() for m in moves],
            }
        )
        return
    console.print(f"[bold]{mv.ref}[/bold]  {mv.flavor} ({manifest.model_class})  {mv.status}")
    console.print(
        f"registered {_when(mv.created_at)} by {mv.created_by}; "
        f"aliases: {', '.join(mv.aliases) or '-'}; versions: {_span(versions)}"
    )
    if mv.description:
        console.print(mv.description)
    lineage = [
        ("run", mv.run_id or "-"),
        ("code commit", mv.code_commit or "-"),
        ("evaluation report", mv.report_digest or "-"),
        ("manifest", mv.manifest_digest),
    ]
    lineage += [
        (f"dataset ({d.role})", f"{d.name} v{d.version} {(d.digest or '')[:12]}")
        for d in mv.datasets
    ]
    console.print(table("lineage", ["", ""], lineage))
    if mv.metrics:
        console.print(table("metrics", ["metric", "value"], sorted(mv.metrics.items())))
    console.print(table("signature", ["column", "kind", "nullable", "values"], _sig_rows(mv)))
    files = [(p, _size(e.size), e.sha256[:16]) for p, e in sorted(manifest.files.items())]
    console.print(table("package files", ["file", "size", "sha256"], files))
    from loopline.registry.onnx_runtime import serving_path

    console.print(f"serving: {serving_path(manifest.onnx)}", highlight=False)
    if moves:
        console.print(
            table("alias history", ["when", "alias", "move", "by", "reason"], _moves(moves))
        )


def _sig_rows(mv: Any) -> list[tuple[Any, ...]]:
    rows = []
    for c in mv.signature.inputs:
        if c.categories is not None:
            shown = ", ".join(str(v) for v in c.categories[:8])
            values = shown + (", ..." if len(c.categories) > 8 else "")
        elif c.min is not None:
            values = f"{c.min} .. {c.max}"
        else:
            values = ""
        rows.append((c.name, c.kind, "yes" if c.nullable else "no", values))
    out = mv.signature.output
    if out.classes is not None:
        rows.append(("→ output", out.kind, "", ", ".join(str(c) for c in out.classes)))
    else:
        rows.append(("→ output", out.kind, "", out.dtype or ""))
    return rows


def _moves(moves: list[AliasMove]) -> list[tuple[Any, ...]]:
    rows = []
    for m in moves:
        arrow = f"{m.from_version if m.from_version is not None else '∅'} → {m.to_version}"
        kind = m.action + (" (forced)" if m.forced else "")
        rows.append((_when(m.at), m.alias, f"{arrow} {kind}", m.actor, m.reason or ""))
    return rows


def _read_rows(path: str, drop: tuple[str, ...]) -> Any:
    """A CSV or Parquet file of input rows as a DataFrame, without the ``drop`` columns."""
    from pathlib import Path

    import pandas as pd

    from loopline.registry.errors import RegistryArgumentError

    file = Path(path)
    if not file.is_file():
        raise RegistryArgumentError(
            f"No file {path!r} of input rows", argument="--sample", value=path
        )
    suffix = file.suffix.lower()
    if suffix in (".parquet", ".pq"):
        frame = pd.read_parquet(file)
    elif suffix == ".csv":
        frame = pd.read_csv(file)
    else:
        raise RegistryArgumentError(
            f"{path!r}: the extension says neither CSV nor Parquet",
            argument="--sample",
            value=path,
            hint="Give a *.csv or *.parquet file of the model's input rows",
        )
    missing = [c for c in drop if c not in frame.columns]
    if missing:
        raise RegistryArgumentError(
            f"{path!r} has no column {missing[0]!r} to drop; its columns are "
            f"{', '.join(map(str, frame.columns))}",
            argument="--drop",
            value=missing[0],
        )
    return frame.drop(columns=list(drop))


def _model_from_file(path: str) -> Any:
    """A scikit-learn model saved with skops (loaded with the registry's trusted types)."""
    from pathlib import Path

    from loopline.registry.errors import RegistryArgumentError
    from loopline.registry.flavors import skops_loads

    file = Path(path)
    if not file.is_file():
        raise RegistryArgumentError(f"No model file {path!r}", argument="MODEL_FILE", value=path)
    if file.suffix.lower() != ".skops":
        raise RegistryArgumentError(
            f"{path!r} is not a .skops file",
            argument="MODEL_FILE",
            value=path,
            hint="Save the model with skops.io.dump(model, 'model.skops'), or register a "
            "pipeline step's output with --from-run RUN_ID",
        )
    return skops_loads(file.read_bytes(), "sklearn", ref=str(file), file=file.name)


def _model_from_run(stores: Stores, run_id: str) -> tuple[Any, str, list[Any]]:
    """The model a pipeline step's run returned, the run's full id, and the dataset
    versions it (or the pipeline run above it) read: the version's lineage."""
    from loopline.pipeline.values import load_value
    from loopline.registry.errors import RegistryArgumentError
    from loopline.tracking import Tracker

    record = Tracker(stores).get_run(run_id)
    digest = record.tags.get("loopline.output")
    fmt = record.tags.get("loopline.output_format")
    if not digest or not fmt:
        raise RegistryArgumentError(
            f"Run {record.id[:12]} ({record.name}) is not a finished pipeline step with an output",
            argument="--from-run",
            value=run_id,
            hint="Give the run of the step that returned the model (loopline runs ls)",
        )
    if fmt != "model":
        raise RegistryArgumentError(
            f"Run {record.id[:12]} ({record.name}) returned a {fmt} value, not a model",
            argument="--from-run",
            value=run_id,
            hint="Give the run of a step that returns the fitted model itself",
        )
    tracker = Tracker(stores)
    inputs, parent = list(record.inputs), record.parent_id
    while not any(i.kind == "dataset" for i in inputs) and parent is not None:
        above = tracker.get_run(parent)
        inputs, parent = list(above.inputs), above.parent_id
    datasets = [i for i in inputs if i.kind == "dataset"]
    return load_value(stores.cas, fmt, digest), record.id, datasets


@models_group.command("register")
@click.argument("name")
@click.argument("model_file", metavar="[MODEL_FILE]", required=False)
@click.option("--from-run", "from_run", metavar="RUN_ID", help="The step run whose output it is.")
@click.option(
    "--sample",
    required=True,
    metavar="FILE",
    help="CSV or Parquet of input rows (training rows are best): the signature, and the "
    "rows the ONNX export is checked on.",
)
@click.option(
    "--drop",
    multiple=True,
    metavar="COLUMN",
    help="A column of --sample that is not an input (the label); repeatable.",
)
@click.option("--description", "-d", help="What this version is.")
@click.option("--no-onnx", is_flag=True, help="Do not try the ONNX export (the fast path).")
@json_option
def register_command(
    name: str,
    model_file: str | None,
    from_run: str | None,
    sample: str,
    drop: tuple[str, ...],
    description: str | None,
    no_onnx: bool,
    as_json: bool,
) -> None:
    """Register a fitted model as the next version of NAME: from MODEL_FILE (a .skops
    file) or from the output of a pipeline step's run (--from-run RUN_ID).

    Prints the new version and the path it will be served with (ONNX Runtime, or the
    native model and why not ONNX).
    """
    if (model_file is None) == (from_run is None):
        raise click.UsageError("give either MODEL_FILE or --from-run RUN_ID")
    _, stores, reg = _open()
    with stores:
        run_id = None
        datasets: list[Any] = []
        if from_run is not None:
            model, run_id, datasets = _model_from_run(stores, from_run)
        else:
            assert model_file is not None
            model = _model_from_file(model_file)
        rows = _read_rows(sample, drop)
        mv = reg.register(
            name,
            model,
            sample=rows,
            run_id=run_id,
            datasets=datasets,
            description=description,
            onnx=not no_onnx,
        )
        path = reg.serving_path(mv)
        onnx = reg.manifest(mv).onnx
        reference, no_reference = _monitor_reference(stores, reg, mv)
    if as_json:
        print_json(
            {
                **mv.to_dict(),
                "serving_path": path,
                "onnx": onnx,
                "monitor_reference": reference,
                "monitor_reference_error": no_reference,
            }
        )
        return
    console.print(f"[bold]{mv.ref}[/bold] registered ({mv.flavor}); {path}", highlight=False)
    if reference is not None:
        console.print(f"monitoring reference: {reference}", highlight=False)
    else:
        console.print(
            f"no monitoring reference yet ({no_reference}); monitor it against a dataset "
            f"with: loopline monitor run {name}@ALIAS --reference DATASET@VERSION",
            highlight=False,
        )
    console.print(
        f"next: loopline models promote {name} {mv.version} --alias production", highlight=False
    )


def _monitor_reference(stores: Any, reg: Any, mv: Any) -> tuple[str | None, str | None]:
    """Build the version's monitoring reference now, from its training data, so the first
    monitored window does not wait for it: (what it was built from, None) or (None, why
    not)."""
    from loopline.monitor.reference import try_model_reference

    with err_console.status("building the monitoring reference"):
        built, why = try_model_reference(stores, mv, registry=reg)
    return (None, why) if built is None else (f"the training data {built.dataset}", None)


@models_group.command("alias")
@click.argument("name")
@click.argument("version", type=click.IntRange(min=1))
@click.argument("alias")
@click.option("--reason", help="Why; kept in the alias history.")
@json_option
def alias_command(name: str, version: int, alias: str, reason: str | None, as_json: bool) -> None:
    """Point ALIAS of model NAME at VERSION (no checks; use promote for gated moves)."""
    _, stores, reg = _open()
    with stores:
        move = reg.set_alias(name, alias, version, reason=reason)
    _print_move(move, as_json)


@models_group.command("promote")
@click.argument("name")
@click.argument("version", type=click.IntRange(min=1))
@click.option("--alias", default="production", show_default=True, help="The alias to move.")
@click.option("--force", is_flag=True, help="Promote even if the check fails (needs --reason).")
@click.option("--reason", help="Why; required with --force, kept in the alias history.")
@json_option
def promote_command(
    name: str, version: int, alias: str, force: bool, reason: str | None, as_json: bool
) -> None:
    """Promote VERSION of model NAME to --alias, if the model's promotion check passes.

    Without gates configured for the model, the alias moves directly. A failing check
    exits 1 with its reasons, unless --force is given with a --reason (recorded as forced).
    """
    if force and not (reason and reason.strip()):
        raise click.UsageError("--force needs --reason TEXT (it is kept in the alias history)")
    _, stores, reg = _open()
    with stores:
        move = reg.promote(
            name,
            version,
            alias,
            check=_gate_check(stores, name, show=not as_json),
            force=force,
            reason=reason,
        )
    _print_move(move, as_json)


@models_group.command("rollback")
@click.argument("name")
@click.option("--alias", default="production", show_default=True, help="The alias to move back.")
@click.option("--reason", help="Why; kept in the alias history.")
@json_option
def rollback_command(name: str, alias: str, reason: str | None, as_json: bool) -> None:
    """Move --alias of model NAME back to the version that held it before."""
    _, stores, reg = _open()
    with stores:
        move = reg.rollback(name, alias, reason=reason)
    _print_move(move, as_json)


def _print_move(move: AliasMove, as_json: bool) -> None:
    if as_json:
        print_json(move.to_dict())
        return
    before = "nothing" if move.from_version is None else f"version {move.from_version}"
    forced = " [bold red](forced)[/bold red]" if move.forced else ""
    console.print(
        f"{move.name}@{move.alias}: {before} → version {move.to_version} "
        f"({move.action}{forced}, {_when(move.at)})"
    )


def _when(value: Any) -> str:
    return str(value.strftime("%Y-%m-%d %H:%M:%S UTC"))


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _span(versions: list[int]) -> str:
    if not versions:
        return "-"
    return str(versions[0]) if len(versions) == 1 else f"{versions[0]}..{versions[-1]}"
