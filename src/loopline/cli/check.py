"""``loopline check``: the CI gate. Evaluates every model's gates; exit code 1 on failure."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from loopline.cli.output import (
    console,
    err_console,
    json_option,
    print_json,
    status_text,
    table,
)

if TYPE_CHECKING:
    from loopline.loop.gates import GateCheck
    from loopline.store.stores import Stores


def print_gate_check(result: GateCheck) -> None:
    """The table of criteria of one check, then its verdict."""
    champion = result.champion.ref if result.champion else "none"
    title = f"gates of {result.model}: candidate {result.candidate.ref}, champion {champion}" + (
        f", data {result.data_ref}" if result.data_ref else ""
    )
    rows = [
        (criterion, status_text(status), value, compared, reason)
        for criterion, status, value, compared, reason in result.verdict.rows()
    ]
    console.print(table(title, ["criterion", "status", "value", "compared with", "reason"], rows))
    for note in result.notes:
        console.print(f"[dim]note: {note}[/dim]")
    verdict = "[green]passed[/green]" if result.passed else "[bold red]failed[/bold red]"
    console.print(f"{result.model}: {verdict}")


def _record_failures(
    stores: Stores, results: list[GateCheck], missing: list[tuple[str, str]]
) -> None:
    """A ``gate.failed`` event per failed check (what ``[events]`` webhooks are told).
    The verdict is what CI needs: a database that refuses the write gets a warning."""
    from loopline.errors import LooplineError
    from loopline.loop.gates import failure_event, record_failures

    failures = [failure_event(r, "check") for r in results if not r.passed] + [
        (model, {"model": model, "candidate": None, "error": why, "source": "check"})
        for model, why in missing
    ]
    try:
        record_failures(stores, failures)
    except LooplineError as exc:
        err_console.print(f"warning: the failed gates are not in the event log: {exc}")


@click.command("check")
@click.option(
    "--model",
    "models",
    multiple=True,
    metavar="NAME",
    help="Check only this model (repeatable; default: every [gates.NAME] table).",
)
@json_option
def check_command(models: tuple[str, ...], as_json: bool) -> None:
    """Evaluate the project's gates (loopline.toml [gates.MODEL]) for CI.

    For each model: validate the holdout rows, evaluate the candidate and the champion on
    them, apply the criteria. Exits 1 when any criterion fails, 0 when all pass; each
    failure is recorded as a gate.failed event (loopline events ls).
    """
    from loopline.config import load_settings
    from loopline.errors import ConfigError
    from loopline.loop.gates import check_candidate, gate_configs, resolve_candidate
    from loopline.registry import Registry
    from loopline.registry.errors import RegistryError
    from loopline.store.stores import Stores

    settings = load_settings()
    configs = gate_configs(settings)
    if models:
        missing = [m for m in models if m not in configs]
        if missing:
            raise ConfigError(
                f"no [gates.{missing[0]}] table in loopline.toml "
                f"(gated models: {', '.join(sorted(configs)) or 'none'})",
                source=str(settings.config_file),
            )
        configs = {m: configs[m] for m in models}
    if not configs:
        raise ConfigError(
            "no gates are configured: add a [gates.MODEL] table with criteria",
            source=str(settings.config_file),
            hint="See docs/evaluate.md for the gate language",
        )
    results: list[GateCheck] = []
    #: Gated models without a candidate to judge: (model, why), each a failed check.
    missing_candidates: list[tuple[str, str]] = []
    with Stores.open(settings) as stores:
        reg = Registry(stores)
        for config in configs.values():
            try:
                candidate = resolve_candidate(reg, config)
            except RegistryError as exc:
                missing_candidates.append((config.model, exc.message))
                if not as_json:
                    console.print(
                        f"{config.model}: [bold red]failed[/bold red]: no candidate to check "
                        f"({exc.message})"
                    )
                continue
            result = check_candidate(stores, config, candidate, registry=reg)
            results.append(result)
            if not as_json:
                print_gate_check(result)
        _record_failures(stores, results, missing_candidates)
    passed = all(r.passed for r in results) and not missing_candidates
    if as_json:
        checks = [r.as_dict() for r in results] + [
            {"model": model, "passed": False, "candidate": None, "error": why}
            for model, why in missing_candidates
        ]
        print_json({"passed": passed, "checks": checks})
    if not passed:
        raise click.exceptions.Exit(1)
