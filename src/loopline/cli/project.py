"""``loopline init`` and ``loopline doctor``."""

from __future__ import annotations

from pathlib import Path

import click

from loopline.cli.output import console, json_option, print_json, status_text, table


@click.command("init")
@click.argument("directory", type=click.Path(path_type=Path), default=Path("."))
@click.option(
    "--metadata-url",
    help="Database URL to write into loopline.toml, e.g. postgresql+psycopg://u:p@host/db.",
)
@click.option(
    "--artifacts-url",
    help="Artifact store URL to write into loopline.toml, e.g. s3://bucket/prefix.",
)
@click.option(
    "--ci",
    type=click.Choice(["github"]),
    help="Also write a CI workflow: .github/workflows/loopline.yml (validate, test and "
    "gate pull requests; train and promote on main).",
)
@json_option
def init_command(
    directory: Path,
    metadata_url: str | None,
    artifacts_url: str | None,
    ci: str | None,
    as_json: bool,
) -> None:
    """Create a project in DIRECTORY: loopline.toml (with the example's gates), both
    stores, the example pipeline and a batch of rows to score.

    Running it again in an existing project changes no file; it only applies migrations
    (and writes the CI workflow if --ci asks for one that is missing).
    """
    from loopline.project.create import NEXT_COMMANDS, init_project

    report = init_project(directory, metadata_url=metadata_url, artifacts_url=artifacts_url, ci=ci)
    if as_json:
        print_json(report.as_dict())
        return
    data = report.as_dict()
    console.print(f"[bold]loopline project[/bold] in {report.project_dir}")
    rows = [("created", c) for c in report.created] + [("kept", k) for k in report.kept]
    console.print(table(None, ["", "what"], rows))
    console.print(f"metadata  {data['metadata_url']}  (revision {report.revision_after})")
    console.print(f"artifacts {data['artifacts_url']}")
    for note in report.notes:
        console.print(f"note: {note}", markup=False, highlight=False)
    console.print(
        "next, in order (the example trains, gates and registers a model, then serves it):"
    )
    for command in NEXT_COMMANDS:
        console.print(f"  [bold]{command}[/bold]")


@click.command("doctor")
@json_option
def doctor_command(as_json: bool) -> None:
    """Show where each store lives and check it is reachable and migrated.

    Exits 1 when a check fails.
    """
    from loopline.config import load_settings
    from loopline.errors import ConfigError
    from loopline.project.doctor import diagnose, unreadable_settings

    try:
        report = diagnose(load_settings())
    except ConfigError as exc:
        # A loopline.toml that cannot be read is the first thing doctor reports.
        report = unreadable_settings(exc)
    if as_json:
        print_json(report.as_dict())
    else:
        rows = []
        for c in report.checks:
            detail = c.detail + (f"\n[dim]→ {c.hint}[/dim]" if c.hint else "")
            rows.append((c.name, status_text(c.status), c.where, detail))
        console.print(
            table(
                f"loopline doctor: {report.settings.project_dir}",
                ["check", "status", "where", "detail"],
                rows,
            )
        )
    if not report.ok:
        raise click.exceptions.Exit(2 if report.config_error else 1)
