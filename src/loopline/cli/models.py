"""``loopline models``: list, show, alias, promote and roll back registered models."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from loopline.cli.output import console, json_option, print_json, table

if TYPE_CHECKING:
    from loopline.config import Settings
    from loopline.registry import AliasMove, ModelVersion, PromotionCheck, Registry
    from loopline.store.stores import Stores


@click.group("models", no_args_is_help=True)
def models_group() -> None:
    """List, show, alias, promote and roll back registered models.

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
    if manifest.onnx is not None:
        onnx = manifest.onnx
        detail = onnx.get("reason") or (
            f"parity max abs diff {onnx['parity']['max_abs_diff']:.2g} "
            f"on {onnx['parity']['rows_checked']} rows"
        )
        console.print(f"onnx: {onnx.get('status')} ({detail})")
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
