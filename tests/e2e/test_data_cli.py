"""``loopline data`` as a user runs it: subprocesses in a project made by ``loopline init``."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from e2e.cli import init, one_line_error, run

HEAVY = ["pandas", "pyarrow", "sklearn", "numpy", "sqlalchemy", "polars"]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    p = init(root)
    rows = ["tenure,charges,plan,churned"]
    for i in range(200):
        rows.append(
            f"{i % 70 + 1},{20 + (i * 7) % 90}.5,{['basic', 'plus', 'pro'][i % 3]},{i % 4 == 0}"
        )
    (p / "churn.csv").write_text("\n".join(rows) + "\n")
    bad = rows[:]
    bad[5] = "4,,basic,true"  # a null charge
    bad[9] = "8,31.5,gold,false"  # an unseen plan
    (p / "bad.csv").write_text("\n".join(bad) + "\n")
    (p / "broken.csv").write_text("a,b\n1,2\n3\n4,5,6\n")
    return p


def test_importing_the_data_layer_and_its_cli_is_cheap(tmp_path: Path) -> None:
    code = (
        "import sys, loopline.data, loopline.cli.data\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert proc.stdout.strip() == "[]", proc.stderr


def test_add_ls_show(project: Path) -> None:
    added = json.loads(
        run("data", "add", "churn", "churn.csv", "-d", "Churn", "--json", cwd=project).stdout
    )
    assert (added["ref"], added["created"], added["rows"], added["columns"]) == (
        "churn@1",
        True,
        200,
        4,
    )
    assert added["source"] == str(project / "churn.csv")
    again = run("data", "add", "churn", "churn.csv", cwd=project).stdout
    assert "churn@1 already holds this content" in again

    listed = json.loads(run("data", "ls", "--json", cwd=project).stdout)
    assert [(d["name"], d["versions"], d["current_version"], d["rows"]) for d in listed] == [
        ("churn", 1, 1, 200)
    ]
    table = run("data", "ls", cwd=project).stdout
    for header in ("name", "versions", "latest", "rows", "columns", "updated"):
        assert header in table

    shown = json.loads(run("data", "show", "churn@1", "--json", cwd=project).stdout)
    assert shown["version"]["digest"] == added["digest"]
    assert [c["name"] for c in shown["schema"]["columns"]] == [
        "tenure",
        "charges",
        "plan",
        "churned",
    ]
    plan = next(c for c in shown["profile"]["columns"] if c["name"] == "plan")
    assert plan["categorical"]["distinct"] == 3
    assert shown["splits"] == []
    human = run("data", "show", "churn", cwd=project).stdout
    for text in ("churn@1", "schema and profile", "basic", "source", added["digest"][:12]):
        assert text in human


def test_validate_exits_1_on_errors_and_add_refuses(project: Path) -> None:
    run("data", "add", "churn", "churn.csv", cwd=project)
    assert "valid" in run("data", "validate", "churn", cwd=project).stdout

    proc = run("data", "validate", "churn", "bad.csv", cwd=project, code=1)
    assert "invalid" in proc.stdout
    assert "not_null" in proc.stdout
    assert "charges" in proc.stdout
    assert "unseen_category" in proc.stdout
    assert "gold" in proc.stdout
    report = json.loads(
        run("data", "validate", "churn", "bad.csv", "--json", cwd=project, code=1).stdout
    )
    assert report["ok"] is False
    by_rule = {f["rule"]: f for f in report["findings"]}
    assert by_rule["not_null"]["column"] == "charges"
    assert by_rule["not_null"]["examples"] == [{"row": 4, "value": None}]
    assert by_rule["unseen_category"]["severity"] == "warning"

    line = one_line_error(run("data", "add", "churn", "bad.csv", cwd=project, code=1))
    assert "breaks its schema" in line
    assert "'charges'" in line
    assert "--force" in line
    forced = json.loads(
        run("data", "add", "churn", "bad.csv", "--force", "--json", cwd=project).stdout
    )
    assert forced["version"] == 2
    assert forced["validation"]["ok"] is False


def test_bad_input_and_unknown_names_are_one_line_errors(project: Path) -> None:
    line = one_line_error(run("data", "show", "nope", cwd=project, code=1))
    assert "No dataset 'nope'" in line
    line = one_line_error(run("data", "add", "x", "broken.csv", cwd=project, code=1))
    assert "line 3: 1 fields" in line
    assert "line 4: 3 fields" in line
    line = one_line_error(run("data", "add", "x", "missing.csv", cwd=project, code=1))
    assert "missing.csv: no such file" in line
    run("data", "add", "x", cwd=project, code=2)


def test_add_from_sql(project: Path) -> None:
    db = project / "sales.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE sales (id INTEGER, amount REAL)")
        conn.executemany("INSERT INTO sales VALUES (?, ?)", [(i, i / 2) for i in range(10)])
    out = json.loads(
        run(
            "data",
            "add",
            "sales",
            "--sql",
            "SELECT * FROM sales",
            "--db",
            f"sqlite:///{db}",
            "--json",
            cwd=project,
        ).stdout
    )
    assert out["rows"] == 10
    assert out["source"].startswith("sql 'SELECT * FROM sales' on sqlite:///")
