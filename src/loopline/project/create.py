"""``loopline init``: a project folder with its settings, both stores, and an example.

The example is the shipped credit-risk pipeline (:mod:`loopline.examples.credit_risk`),
copied to ``pipelines/example.py`` so it can be read and changed, with its gates written
into ``loopline.toml`` and a batch of new, unlabelled applications in
``data/new_applications.csv``: ``loopline run pipelines/example.py``, ``loopline check``,
``loopline serve credit_risk@champion`` and ``loopline predict`` work in that order.
``ci="github"`` also writes a GitHub Actions workflow running them (:mod:`.ci`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from loopline.config import CONFIG_FILE, Settings, default_toml, redact_url, settings_for
from loopline.errors import ProjectError
from loopline.store.db import migrate
from loopline.store.db.engine import Database
from loopline.store.db.events import record_event
from loopline.store.db.project import bind_project, refuse_foreign
from loopline.store.objects.base import open_object_store

EXAMPLE_PIPELINE = Path("pipelines") / "example.py"
EXAMPLE_BATCH = Path("data") / "new_applications.csv"
#: Rows of the example batch (applications to score, without the label).
EXAMPLE_BATCH_ROWS = 500
#: What to run next in a new project, in order.
NEXT_COMMANDS = (
    f"loopline run {EXAMPLE_PIPELINE.as_posix()}",
    "loopline check",
    "loopline serve credit_risk@champion",
    f"loopline predict credit_risk@champion {EXAMPLE_BATCH.as_posix()} scores.csv",
)


@dataclass
class InitReport:
    project_dir: Path
    settings: Settings
    created: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    revision_before: str | None = None
    revision_after: str = ""
    #: Things to know about the project as written (a gate CI cannot pin ...).
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "project_dir": str(self.project_dir),
            "config_file": str(self.project_dir / CONFIG_FILE),
            "metadata_url": redact_url(self.settings.metadata_url),
            "artifacts_url": self.settings.artifacts_url,
            "created": self.created,
            "kept": self.kept,
            "revision_before": self.revision_before,
            "revision": self.revision_after,
            "notes": self.notes,
            "next": list(NEXT_COMMANDS),
        }


def init_project(
    target: Path,
    *,
    metadata_url: str | None = None,
    artifacts_url: str | None = None,
    environ: dict[str, str] | None = None,
    ci: str | None = None,
) -> InitReport:
    """Create (or complete) the project in ``target``. Safe to run again: it never
    overwrites a file and only applies missing migrations. ``ci`` (``"github"``) also
    writes the CI workflow."""
    target = target.expanduser().resolve()
    if target.exists() and not target.is_dir():
        raise ProjectError(
            f"{target} exists and is not a folder", hint="Choose another path for the project"
        )
    target.mkdir(parents=True, exist_ok=True)
    created: list[str] = []
    kept: list[str] = []

    config_file = target / CONFIG_FILE
    if config_file.exists():
        if metadata_url or artifacts_url:
            raise ProjectError(
                f"{config_file} exists already; init will not change its store URLs",
                hint="Edit loopline.toml (or set LOOPLINE_METADATA_URL / "
                "LOOPLINE_ARTIFACTS_URL) instead",
            )
        kept.append(CONFIG_FILE)
    else:
        from loopline.examples.credit_risk.pipeline import GATES_TOML

        _write_new(config_file, default_toml(metadata_url, artifacts_url) + GATES_TOML)
        created.append(CONFIG_FILE)

    settings = settings_for(target, environ)

    example = target / EXAMPLE_PIPELINE
    if example.exists():
        kept.append(str(EXAMPLE_PIPELINE))
    else:
        example.parent.mkdir(parents=True, exist_ok=True)
        source = resources.files("loopline.examples.credit_risk") / "pipeline.py"
        _write_new(example, source.read_text(encoding="utf-8"))
        created.append(str(EXAMPLE_PIPELINE))
    batch = target / EXAMPLE_BATCH
    if batch.exists():
        kept.append(str(EXAMPLE_BATCH))
    else:
        _write_example_batch(batch)
        created.append(str(EXAMPLE_BATCH))

    notes: list[str] = []
    if ci is not None:
        from loopline.examples.credit_risk.pipeline import DATASET
        from loopline.project.ci import WorkflowInputs, unpinned_holdouts, write_ci

        inputs = WorkflowInputs(
            pipeline=EXAMPLE_PIPELINE.as_posix(), dataset=DATASET, batch=EXAMPLE_BATCH.as_posix()
        )
        written, new = write_ci(target, ci, inputs)
        (created if new else kept).append(written)
        notes.extend(unpinned_holdouts(settings))
        notes.append(
            f"CI: commit {written}, and give the repository the secrets "
            "LOOPLINE_METADATA_URL and LOOPLINE_ARTIFACTS_URL (the shared stores; see the "
            "file's comments)"
        )

    gitignore = target / ".gitignore"
    store_rel = _relative(settings.store_dir, target)
    if store_rel is not None:
        line = f"/{store_rel}/"
        existing = gitignore.read_text(encoding="utf-8") if gitignore.exists() else ""
        if line not in existing.splitlines():
            with gitignore.open("a", encoding="utf-8") as f:
                f.write(("" if not existing or existing.endswith("\n") else "\n") + line + "\n")
            created.append(".gitignore entry " + line)

    # The artifact store: a local folder is created; a bucket must exist already.
    if "://" not in settings.artifacts_url:
        root = Path(settings.artifacts_url)
        if not root.exists():
            root.mkdir(parents=True)
            created.append(f"artifact store {root}")
        else:
            kept.append(f"artifact store {root}")
    objects = open_object_store(settings.artifacts_url, s3=settings.s3)
    objects.check()
    if "://" in settings.artifacts_url:
        kept.append(f"artifact store {settings.artifacts_url}")

    db = Database(settings.metadata_url, busy_timeout=settings.db_busy_timeout, create=True)
    try:
        refuse_foreign(db, settings.artifacts_url)  # before migrating another project's database
        before, after = migrate.upgrade(db)
        bind_project(db, settings.artifacts_url, str(target))
        if before is None:
            created.append(f"metadata database {db.display_url}")
        else:
            kept.append(f"metadata database {db.display_url}")
        db.run_write(
            lambda conn: record_event(
                conn,
                "project.init",
                str(target),
                {"revision_before": before, "revision": after, "created": created},
            )
        )
    finally:
        db.dispose()
    return InitReport(target, settings, created, kept, before, after, notes)


def _write_example_batch(path: Path) -> None:
    """New applications to score, as a CSV without the label (another seed than the
    pipeline's data, so these are rows no model was trained on)."""
    from loopline.examples.credit_risk.data import generate_applications
    from loopline.examples.credit_risk.pipeline import TARGET

    frame = generate_applications(n_rows=EXAMPLE_BATCH_ROWS, seed=2024).drop(columns=[TARGET])
    frame.insert(0, "application_id", range(1, len(frame) + 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_new(path, frame.to_csv(index=False))


def _write_new(path: Path, text: str) -> None:
    """Write a file that must not exist yet (never clobber a user's file)."""
    with path.open("x", encoding="utf-8") as f:
        f.write(text)


def _relative(path: Path, base: Path) -> str | None:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return None
