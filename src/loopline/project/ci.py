"""CI/CD for a project: ``loopline init --ci github`` writes a GitHub Actions workflow.

The workflow is the project's own commands, in order, so what CI runs is what anyone
runs at a terminal:

- on pull requests: install, migrate the metadata database, validate the new data
  against its dataset's schema, run the project's tests (when it has a ``tests/``
  folder), and ``loopline check``: the ``[gates.*]`` criteria on their pinned holdout,
  exit 1 when one fails;
- on pushes to main: run the training pipeline, which registers the model as challenger
  and promotes it to champion when it passes the same gates.

Both jobs end by delivering the events they recorded (``loopline events deliver``) to
the ``[events]`` webhooks, if the project has any. The stores are the project's shared
ones (PostgreSQL, S3), named by repository secrets the workflow maps to
``LOOPLINE_METADATA_URL`` and ``LOOPLINE_ARTIFACTS_URL``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from loopline import __version__

if TYPE_CHECKING:
    from loopline.config import Settings

#: The kinds of CI ``loopline init --ci`` writes a configuration for.
CI_KINDS = ("github",)
GITHUB_WORKFLOW = Path(".github") / "workflows" / "loopline.yml"
#: What the workflow installs: the command, training (the example tunes a gradient
#: boosting model), ONNX export at registration, and the drivers of the shared stores.
LOOPLINE_REQUIREMENT = f"loopline[train,onnx,postgres,s3]=={__version__}"
#: Repository secrets the workflow passes to every command, as the variables loopline
#: (and boto, for S3) read.
SECRETS = (
    "LOOPLINE_METADATA_URL",
    "LOOPLINE_ARTIFACTS_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
)


@dataclass(frozen=True)
class WorkflowInputs:
    """What the workflow runs: the training pipeline, and the dataset a new batch is
    validated against (with the batch's file; ``features_only``: it has no label)."""

    pipeline: str
    dataset: str
    batch: str
    features_only: bool = True


def github_workflow(inputs: WorkflowInputs) -> str:
    """The text of ``.github/workflows/loopline.yml``."""
    validate = f"loopline data validate {inputs.dataset} {inputs.batch}" + (
        " --features-only" if inputs.features_only else ""
    )
    env = "\n".join(f"  {name}: ${{{{ secrets.{name} }}}}" for name in SECRETS)
    install = f"""      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
      - name: Install
        run: |
          python -m pip install --upgrade pip
          if [ -f requirements.txt ]; then python -m pip install -r requirements.txt; fi
          if [ -d tests ]; then python -m pip install pytest; fi
          python -m pip install "{LOOPLINE_REQUIREMENT}"
      - name: Migrate the metadata database
        run: loopline db upgrade"""
    return f"""\
# loopline CI/CD (written by `loopline init --ci github`).
#
# Pull requests: install, migrate the metadata database, validate the new data against
# its dataset's schema, run the project's tests, then the model gates: `loopline check`
# evaluates the [gates.*] tables of loopline.toml and exits 1 when a criterion fails.
# Keep each gate's holdout pinned (holdout = "NAME@VERSION"), so that every run judges
# on the same rows.
# Pushes to main: run the training pipeline; it registers the model as challenger and
# promotes it to champion when it passes the same gates.
# Both jobs end by delivering the events they recorded (a gate that failed, a version
# registered, an alias moved) to the [events] webhooks of loopline.toml, if any.
#
# The stores are the project's shared ones, from repository secrets (Settings > Secrets
# and variables > Actions):
#   LOOPLINE_METADATA_URL   postgresql+psycopg://USER:PASSWORD@HOST:5432/DB
#   LOOPLINE_ARTIFACTS_URL  s3://BUCKET/PREFIX
#   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY   credentials of the bucket
# (for MinIO or another S3-compatible server, add AWS_ENDPOINT_URL to env below, and a
# webhook's secret_env variable when [events] webhooks sign their requests). Without
# the secrets (a pull request from a fork gets none) the commands use the embedded
# stores of loopline.toml, empty in every job: `loopline check` then finds no model.
name: loopline

on:
  pull_request:
  push:
    branches: [main]

env:
{env}
  NO_COLOR: "1"

jobs:
  check:
    name: validate, test, gates
    if: github.event_name == 'pull_request'
    runs-on: ubuntu-latest
    steps:
{install}
      - name: Validate the new data
        run: {validate}
      - name: Tests
        run: if [ -d tests ]; then python -m pytest tests; else echo "no tests/ folder"; fi
      - name: Gates on the pinned holdout
        run: loopline check
      - name: Deliver the events
        if: always()
        run: loopline events deliver

  train:
    name: train, gate, promote
    if: github.event_name == 'push'
    runs-on: ubuntu-latest
    # One training at a time: each one gates against the champion the last one left.
    concurrency: loopline-train
    steps:
{install}
      - name: Train, gate and promote
        run: loopline run {inputs.pipeline}
      - name: Deliver the events
        if: always()
        run: loopline events deliver
"""


def unpinned_holdouts(settings: Settings) -> list[str]:
    """Notes on ``[gates.*]`` tables whose holdout is not pinned to a version (CI would
    judge each run on whatever the newest version is)."""
    from loopline.loop.gates import gate_configs

    notes = []
    for name, gate in sorted(gate_configs(settings).items()):
        if gate.holdout is not None and "@" not in gate.holdout:
            notes.append(
                f"[gates.{name}] holdout {gate.holdout!r} is not pinned: pin it "
                f'(holdout = "{gate.holdout}@VERSION") so that every CI run judges on the '
                "same rows"
            )
    return notes


def write_ci(target: Path, kind: str, inputs: WorkflowInputs) -> tuple[str, bool]:
    """Write the CI configuration of ``kind`` into the project ``target`` unless the file
    exists (it is never overwritten); returns its relative path and whether it was
    written."""
    if kind not in CI_KINDS:
        from loopline.errors import ConfigError

        raise ConfigError(
            f"--ci {kind!r}: loopline writes CI for {', '.join(CI_KINDS)}",
            hint="Use --ci github",
        )
    path = target / GITHUB_WORKFLOW
    if path.exists():
        return GITHUB_WORKFLOW.as_posix(), False
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("x", encoding="utf-8") as f:
        f.write(github_workflow(inputs))
    return GITHUB_WORKFLOW.as_posix(), True
