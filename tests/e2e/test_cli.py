"""The ``loopline`` command as a user runs it: a subprocess, its output and exit code."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from e2e.cli import run
from loopline.store.db.migrate import HEAD

HEAVY = [
    "sqlalchemy",
    "pandas",
    "sklearn",
    "boto3",
    "botocore",
    "s3fs",
    "pyarrow",
    "numpy",
    "alembic",
    "pydantic",
    "typer",
    "rich",
]


@pytest.mark.parametrize("args", [["--help"], ["--version"]])
def test_help_and_version_import_nothing_heavy(args: list[str], tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from loopline.cli.main import main\n"
        f"sys.argv = ['loopline', *{args!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"loaded = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print('LOADED', loaded, file=sys.stderr)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert "LOADED []" in proc.stderr, proc.stderr
    if args == ["--help"]:
        for command in ("init", "doctor", "db", "demo"):
            assert command in proc.stdout
    else:
        assert proc.stdout.startswith("loopline ")


def test_init_then_doctor_reports_both_stores(tmp_path: Path) -> None:
    out = json.loads(run("init", "proj", "--json", cwd=tmp_path).stdout)
    project = tmp_path / "proj"
    assert out["project_dir"] == str(project.resolve())
    assert (project / "loopline.toml").is_file()
    assert (project / "pipelines" / "example.py").is_file()
    assert "/.loopline/" in (project / ".gitignore").read_text()
    assert out["revision"] == HEAD

    doctor = json.loads(run("doctor", "--json", cwd=project / "pipelines").stdout)
    assert doctor["ok"] is True
    by_name = {c["name"]: c for c in doctor["checks"]}
    assert by_name["metadata store"]["status"] == "ok"
    assert "journal wal" in by_name["metadata store"]["detail"]
    assert by_name["schema"]["detail"].startswith(f"at revision {HEAD}")
    assert by_name["artifact store"]["where"] == str(project.resolve() / ".loopline/artifacts")

    table = run("doctor", cwd=project).stdout
    assert "metadata store" in table
    assert "artifact store" in table


def test_init_again_keeps_every_file(tmp_path: Path) -> None:
    run("init", "p", cwd=tmp_path)
    toml = tmp_path / "p" / "loopline.toml"
    toml.write_text(toml.read_text() + "# my edit\n")
    out = json.loads(run("init", "p", "--json", cwd=tmp_path).stdout)
    assert out["created"] == []
    assert "# my edit" in toml.read_text()
    assert (tmp_path / "p" / ".gitignore").read_text().count("/.loopline/") == 1


def test_outside_a_project_the_error_is_one_line_with_the_fix(tmp_path: Path) -> None:
    proc = run("doctor", cwd=tmp_path, code=1)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: No loopline.toml")
    assert "loopline init" in lines[0]
    assert "Traceback" not in proc.stderr


def test_unreachable_database_is_one_line_exit_3(tmp_path: Path) -> None:
    run("init", "p", cwd=tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"LOOPLINE_METADATA_URL": f"postgresql://u:pw@127.0.0.1:{port}/db"}
    proc = run("db", "upgrade", cwd=tmp_path / "p", env=env, code=3)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert f"127.0.0.1:{port}" in lines[0]
    assert "pw@" not in lines[0]

    doctor = run("doctor", "--json", cwd=tmp_path / "p", env=env, code=1)
    checks = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert checks["metadata store"]["status"] == "fail"
    assert checks["artifact store"]["status"] == "ok"


def test_missing_store_folder_is_reported_with_the_fix(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "loopline.toml").write_text("")
    proc = run("db", "current", cwd=project, code=3)
    assert "loopline init" in proc.stderr
    assert "Traceback" not in proc.stderr
    doctor = json.loads(run("doctor", "--json", cwd=project, code=1).stdout)
    statuses = {c["name"]: c["status"] for c in doctor["checks"]}
    assert statuses["metadata store"] == "fail"
    assert statuses["artifact store"] == "fail"


def test_bad_config_exits_2_and_names_the_file() -> None:
    # A project path of a usual length: pytest's own temporary folders are long enough
    # that the table folds the path across two lines.
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "p"
        project.mkdir()
        (project / "loopline.toml").write_text("metdata_url = 'x'\n")
        proc = run("doctor", cwd=project, code=2)
        assert str(project / "loopline.toml") in proc.stdout  # doctor's table says it
        assert "metdata_url" in proc.stdout
        other = run("data", "ls", cwd=project, code=2)  # any other command: one line
        assert str(project / "loopline.toml") in other.stderr
        assert "did you mean 'metadata_url'" in other.stderr


def test_db_upgrade_and_current(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "loopline.toml").write_text("")
    run("db", "current", cwd=project, code=3)  # no database yet
    up = json.loads(run("db", "upgrade", "--json", cwd=project).stdout)
    assert up == {"url": up["url"], "before": None, "after": HEAD, "changed": True}
    again = json.loads(run("db", "upgrade", "--json", cwd=project).stdout)
    assert again["changed"] is False
    cur = json.loads(run("db", "current", "--json", cwd=project).stdout)
    assert cur["revision"] == cur["latest"] == HEAD


@pytest.mark.slow
def test_demo_reports_what_each_stage_did(tmp_path: Path) -> None:
    out = json.loads(
        run(
            "demo",
            "--dir",
            str(tmp_path / "d"),
            "--scenario",
            "drift",
            "--json",
            cwd=tmp_path,
            timeout=600,
        ).stdout
    )
    dataset = out["dataset"]
    stored = Path(out["artifacts_url"]) / dataset["key"]
    assert stored.is_file()
    assert stored.stat().st_size == dataset["bytes"] > 0
    assert (dataset["rows"], dataset["columns"], dataset["deduplicated"]) == (5_000, 4, True)
    assert out["artifact"]["verified"] is True

    pipeline = out["pipeline"]
    assert pipeline["status"] == "finished"
    assert set(pipeline["steps"].values()) == {"done"}
    assert sum(pipeline["split_rows"].values()) == pipeline["rows"]
    baseline, tuned = pipeline["models"]
    assert (baseline["name"], tuned["name"]) == ("baseline", "tuned")
    assert tuned["roc_auc"] > baseline["roc_auc"]  # tuning wins on the example's data
    assert pipeline["rerun_cached"] == len(pipeline["steps"])  # the second run ran nothing

    model = out["model"]
    assert model["winner"] == "tuned"
    assert model["promoted"] is True
    assert model["aliases"] == ["challenger", "champion"]
    assert model["gates_passed"] == model["gates_total"] > 0

    serving = out["serving"]
    assert serving["model_ref"] == f"{model['model']}@champion"
    assert serving["version"] == model["version"]
    assert (serving["requests_answered"], serving["rows_per_request"]) == (10, 4)
    assert (serving["rejected_status"], serving["rejected_problems"]) == (422, 2)
    assert (serving["feedback_status"], serving["feedback_stored"]) == (200, 40)
    assert serving["logged_rows"] == 40
    assert out["audit"]["events"] > 0

    # The loop, unattended: the drift alarm fired within a few windows of the change, the
    # retrained challenger baked as a canary and was promoted, and no request failed.
    (drift,) = out["loop"]
    assert (drift["scenario"], drift["expect"], drift["final"]) == ("drift", "promoted", "promoted")
    assert "drift" in drift["fired"]
    assert drift["detection_windows"] is not None
    assert drift["detection_windows"] <= 4
    assert drift["failed_requests"] == 0 < drift["requests"]
    assert drift["serving"] == f"{model['model']}/{model['version'] + 1}"
    assert drift["split"] is None  # 100% on the new champion
    assert drift["moves"] >= 3  # split set, alias moved, split removed
    assert drift["webhooks"] >= 3  # the alarm, and the rollout's steps, signed
    assert drift["labels"] > 0
    # Every label the traffic had answered 200 is stored, those that came due after the
    # scenario's outcome was taken included (the serve stage's 10 requests besides).
    infra = out["infrastructure"]
    assert infra["labels_sent"] >= drift["labels"] + serving["requests_answered"]
    assert infra["labels_stored"] == infra["labels_sent"]

    human = run("demo", "--dir", str(tmp_path / "d2"), "--scenario", "none", cwd=tmp_path)
    assert "loopline demo" in human.stdout
    for stage in ("store", "data", "pipeline", "train", "registry", "serve", "monitor"):
        assert f"│ {stage} " in human.stdout
    assert "│ loop " not in human.stdout  # no scenario asked for, no loop stage

    wrong = run("demo", "--scenario", "nope", cwd=tmp_path, code=2)
    assert "nope" in wrong.stderr
    assert "drift" in wrong.stderr


@pytest.mark.s3
def test_project_on_s3_and_postgres(
    tmp_path: Path, s3_url: str, s3_env: dict[str, str], postgres_url: str
) -> None:
    """The same commands, moved to shared infrastructure by configuration alone."""
    env = {**s3_env, "LOOPLINE_METADATA_URL": postgres_url, "LOOPLINE_ARTIFACTS_URL": s3_url}
    run("init", "p", cwd=tmp_path, env=env)
    doctor = json.loads(run("doctor", "--json", cwd=tmp_path / "p", env=env).stdout)
    checks = {c["name"]: c for c in doctor["checks"]}
    assert doctor["ok"], doctor
    assert "PostgreSQL" in checks["metadata store"]["detail"]
    assert checks["artifact store"]["where"] == s3_url
    out = json.loads(
        run(
            "demo",
            "--dir",
            str(tmp_path / "p"),
            "--scenario",
            "none",
            "--json",
            cwd=tmp_path,
            env=env,
        ).stdout
    )
    assert out["artifacts_url"] == s3_url
    assert any(i["where"].startswith(s3_url) for i in out["items"])


def test_doctor_reports_a_section_no_layer_reads_and_a_broken_one(tmp_path: Path) -> None:
    run("init", str(tmp_path / "p"), cwd=tmp_path)
    project = tmp_path / "p"
    toml = project / "loopline.toml"
    good = toml.read_text()
    toml.write_text(good + "\n[gatez.m]\ncriteria = []\n")
    typo = run("doctor", "--json", cwd=project, code=2)
    checks = json.loads(typo.stdout)["checks"]
    assert checks[0]["name"] == "settings"
    assert checks[0]["status"] == "fail"
    assert "did you mean 'gates'" in checks[0]["detail"]

    toml.write_text(good + "\n[gates.m]\ncriteria = ['f1 >> 0.8']\n")
    broken = run("doctor", "--json", cwd=project, code=1)
    sections = next(c for c in json.loads(broken.stdout)["checks"] if c["name"] == "sections")
    assert sections["status"] == "fail"
    assert "criteria[0]" in sections["detail"]

    toml.write_text(good + "\n[gates.m]\ncriteria = ['f1 >= 0.8']\n")
    fine = run("doctor", "--json", cwd=project)
    sections = next(c for c in json.loads(fine.stdout)["checks"] if c["name"] == "sections")
    assert "gates for credit_risk, m" in sections["detail"]  # init wrote the example's
