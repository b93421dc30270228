"""How the ``loopline`` process ends: with its command's status, whatever a native library
does in its teardown, after Python's own exit work (threads, ``atexit`` handlers) is done.

Each test runs a small program in a subprocess that stands a fake command in for
``loopline.cli.main.main`` and then calls the console script's :func:`run`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from e2e.cli import clean_env

#: Stands for a native library that dies in its teardown (pyarrow's thread pools can,
#: with "terminate called without an active exception"): an object whose finalizer
#: aborts the process when the interpreter clears the module at the very end.
ABORTS_IN_TEARDOWN = """
import os
class Teardown:
    def __del__(self):
        os.abort()
keep = Teardown()
"""


def _program(body: str, *, entry: str = "run") -> str:
    return (
        f"import sys\nimport loopline.cli.main as cli\n{body}\ncli.main = command\ncli.{entry}()\n"
    )


def _run(code: str, tmp_path: Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    env = clean_env()
    env.pop("PYTHONUNBUFFERED", None)  # output buffered, as a user's is
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        text=True,
        timeout=60,
        **kwargs,  # type: ignore[call-overload]
    )


def test_a_native_abort_in_teardown_does_not_change_the_status(tmp_path: Path) -> None:
    body = ABORTS_IN_TEARDOWN + "def command():\n    print('done')\n    sys.exit(0)\n"
    proc = _run(_program(body), tmp_path, capture_output=True)
    assert (proc.returncode, proc.stdout) == (0, "done\n"), proc.stderr
    # The same program through plain main(): the teardown runs and aborts.
    plain = _run(_program(body, entry="main"), tmp_path, capture_output=True)
    assert (plain.returncode, plain.stdout) == (-6, "done\n")


def test_the_status_threads_and_exit_handlers_of_the_command_all_hold(tmp_path: Path) -> None:
    body = (
        ABORTS_IN_TEARDOWN + "import atexit, threading, time\n"
        "from pathlib import Path\n"
        "def late():\n"
        "    time.sleep(0.3)\n"
        "    Path('thread-done').write_text('yes')\n"
        "def command():\n"
        "    atexit.register(lambda: Path('handler-ran').write_text(\n"
        "        'after the thread' if Path('thread-done').exists() else 'before'))\n"
        "    threading.Thread(target=late).start()  # not a daemon: the exit waits for it\n"
        "    sys.stdout.write('partial output, never flushed by the command')\n"
        "    sys.exit(3)\n"
    )
    proc = _run(_program(body), tmp_path, capture_output=True)
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout == "partial output, never flushed by the command"
    assert (tmp_path / "thread-done").read_text() == "yes"
    assert (tmp_path / "handler-ran").read_text() == "after the thread"


def test_output_that_cannot_be_flushed_fails_the_command_with_120(tmp_path: Path) -> None:
    body = "def command():\n    sys.stdout.write('x' * 100)\n    sys.exit(0)\n"
    read, write = os.pipe()
    os.close(read)  # nobody reads: the last flush fails with a broken pipe
    try:
        proc = _run(_program(body), tmp_path, stdout=write, stderr=subprocess.PIPE)
    finally:
        os.close(write)
    assert proc.returncode == 120, proc.stderr
    assert proc.stderr == "error: the command's output could not be written out: Broken pipe\n"


def test_an_uncaught_exception_exits_as_python_does(tmp_path: Path) -> None:
    body = ABORTS_IN_TEARDOWN + "def command():\n    raise RuntimeError('boom')\n"
    proc = _run(_program(body), tmp_path, capture_output=True)
    # No status was set: Python's exit runs its course, teardown (and its abort) included.
    assert "RuntimeError: boom" in proc.stderr
    assert proc.returncode == -6


def test_the_console_script_and_python_m_use_run() -> None:
    from importlib.metadata import entry_points

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "loopline"]
    assert script.value == "loopline.cli.main:run"
    import loopline.__main__
    import loopline.cli.main

    assert loopline.__main__.run is loopline.cli.main.run
