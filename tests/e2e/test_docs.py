"""The documentation matches the code: every shell example marked runnable (a fenced
block opened with ```` ```sh runnable ````) runs, in order, in a fresh folder per
document; every command is listed; the doctor sample shows the current revision."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from e2e.cli import TIMEOUT_S, clean_env
from loopline.cli.main import COMMANDS
from loopline.store.db.migrate import HEAD

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```sh runnable\n(.*?)^```", re.MULTILINE | re.DOTALL)
#: Documents whose examples train models (a minute or so): left out of quick runs.
SLOW = {"README.md", "pipeline.md", "trigger.md"}


def runnable_blocks(doc: Path) -> list[str]:
    return FENCE.findall(doc.read_text(encoding="utf-8"))


def test_the_marker_finds_the_examples() -> None:
    found = {doc.name: len(runnable_blocks(doc)) for doc in DOCS}
    assert found["README.md"] >= 1
    assert sum(found.values()) >= 4, found


@pytest.mark.parametrize(
    "doc",
    [
        pytest.param(doc, id=doc.name, marks=[pytest.mark.slow] if doc.name in SLOW else [])
        for doc in DOCS
        if runnable_blocks(doc)
    ],
)
def test_runnable_shell_examples_run(doc: Path, tmp_path: Path) -> None:
    """All runnable blocks of one document, as one bash script (so ``cd`` carries over),
    stopping at the first failing command: ``loopline`` is this interpreter's."""
    script = "set -euo pipefail\n" + "\n".join(runnable_blocks(doc))
    env = clean_env()
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    done = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S * 2,
    )
    assert done.returncode == 0, f"{doc.name}:\n{done.stderr}\n{done.stdout[-3000:]}"


@pytest.mark.parametrize("doc", ["README.md", "docs/cli.md"])
def test_every_command_is_listed(doc: str) -> None:
    text = (ROOT / doc).read_text(encoding="utf-8")
    missing = [name for name in COMMANDS if f"`loopline {name}" not in text]
    assert missing == [], f"{doc} does not list: {', '.join(missing)}"


def test_the_doctor_sample_shows_the_current_revision() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"at revision {HEAD} (latest)" in text


def test_the_doc_index_lists_every_document() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"\]\(docs/([a-z_]+\.md)\)", text))
    assert {p.name for p in DOCS[1:]} - listed == set()
