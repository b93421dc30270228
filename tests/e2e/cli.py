"""The ``loopline`` command as a user runs it: a subprocess in a folder, its output and code.

Every test that drives the command goes through :func:`run`, from any test folder::

    from e2e.cli import one_line_error, run

    proc = run("data", "show", "nope", cwd=project, code=1)
    assert "No dataset 'nope'" in one_line_error(proc)

(``tests`` is on ``sys.path`` through pytest's ``pythonpath`` setting in pyproject.toml.)
The subprocess gets the caller's environment without its ``LOOPLINE_*`` and ``AWS_*``
variables, so the developer's own settings never leak into a test, plus ``NO_COLOR=1``
and a wide ``COLUMNS`` so that tables are plain text on one line per row.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

#: How long one command may take before the test fails (the demo trains and serves).
TIMEOUT_S = 300


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a ``loopline`` subprocess: ours without LOOPLINE_*/AWS_*, plus
    ``extra``, with colour off and 200 columns."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPLINE_", "AWS_"))}
    env.update(extra or {})
    env["NO_COLOR"] = "1"
    env["COLUMNS"] = "200"
    return env


def command(*args: str) -> list[str]:
    """The argument vector of ``loopline ARGS`` (``python -m loopline``, this interpreter)."""
    return [sys.executable, "-m", "loopline", *args]


def run(
    *args: str,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    code: int | None = 0,
    timeout: float = TIMEOUT_S,
) -> subprocess.CompletedProcess[str]:
    """Run ``loopline ARGS`` in ``cwd``; assert it exits ``code`` (None: any) and that a
    failure did not crash with a traceback (a failed step's frames end with the ``error:``
    line; ``--debug`` shows everything); return the finished process (text stdout/stderr)."""
    proc = subprocess.run(
        command(*args),
        cwd=cwd,
        env=clean_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if code is not None:
        assert proc.returncode == code, (
            f"loopline {' '.join(args)} exited {proc.returncode}, expected {code}\n"
            f"--- stderr\n{proc.stderr}--- stdout\n{proc.stdout}"
        )
    debug = "--debug" in args or (env or {}).get("LOOPLINE_DEBUG") == "1"
    if proc.returncode != 0 and not debug and "Traceback (most recent call last)" in proc.stderr:
        # A failing pipeline step shows its frames; loopline itself never crashes with
        # one: whatever it printed, its last line is the error.
        assert proc.stderr.strip().splitlines()[-1].startswith("error: "), proc.stderr
    return proc


def python(
    code: str, *, cwd: Path, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a Python snippet with this interpreter in ``cwd`` (the same environment as
    :func:`run`); assert it succeeds."""
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=clean_env(env),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The single ``error: ...`` line a failed command printed on stderr (asserted)."""
    assert proc.returncode != 0, proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), proc.stderr
    return lines[0]


def init(root: Path, name: str = "p", *args: str) -> Path:
    """``loopline init NAME`` in ``root``; the project's folder."""
    run("init", name, "--json", *args, cwd=root)
    return root / name


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for a server a test starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
