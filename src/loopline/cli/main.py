"""The ``loopline`` command: a lazy root group, and the one place errors become exit codes.

Subcommands live in their own modules and are imported only when invoked, so
``loopline --help`` and ``loopline --version`` load click and nothing heavy. The table
below is the whole command list; each entry names its module and its one-line help.

Exit codes: 0 success, 1 a check or command failed, 2 bad usage or configuration,
3 a store is unreachable, full or not migrated, 4 stored data failed verification,
130 interrupted.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
from collections.abc import Sequence
from importlib import import_module

import click

from loopline import __version__

#: name -> ("module:attribute", one-line help shown by ``loopline --help``)
COMMANDS: dict[str, tuple[str, str]] = {
    "init": (
        "loopline.cli.project:init_command",
        "Create a project: loopline.toml, stores, a real example pipeline and its gates.",
    ),
    "doctor": (
        "loopline.cli.project:doctor_command",
        "Show where each store lives and check it is reachable and migrated.",
    ),
    "db": ("loopline.cli.db:db_group", "Migrate and inspect the metadata database."),
    "data": (
        "loopline.cli.data:data_group",
        "Add, list, show, split and validate versioned datasets.",
    ),
    "runs": (
        "loopline.cli.runs:runs_group",
        "List, show and compare tracked runs; get their artifacts.",
    ),
    "run": (
        "loopline.cli.run:run_command",
        "Run a pipeline: steps with caching, retries and lineage.",
    ),
    "models": (
        "loopline.cli.models:models_group",
        "List, show, register, alias, promote and roll back registered models.",
    ),
    "traffic": (
        "loopline.cli.traffic:traffic_group",
        "Share a served alias's requests with a candidate (canary, shadow), or stop.",
    ),
    "check": (
        "loopline.cli.check:check_command",
        "CI gate: evaluate every model's gates on holdout data; exit 1 on failure.",
    ),
    "serve": (
        "loopline.cli.serve:serve_command",
        "Serve a model over HTTP: batching, hot swap, canary, logging.",
    ),
    "keys": ("loopline.cli.keys:keys_group", "Create, list and revoke API keys of the server."),
    "feedback": (
        "loopline.cli.feedback:feedback_group",
        "Import ground-truth labels for logged predictions.",
    ),
    "predict": (
        "loopline.cli.predict:predict_command",
        "Batch transform: score a CSV/Parquet file with a registered model.",
    ),
    "watch": (
        "loopline.cli.watch:watch_command",
        "Score every new file in a folder or S3 prefix, exactly once.",
    ),
    "monitor": (
        "loopline.cli.monitor:monitor_group",
        "Drift, data quality, anomalies and performance of a served model, over time.",
    ),
    "alarms": (
        "loopline.cli.alarms:alarms_group",
        "Alarms over the monitor's series: states, history, a dry run, Prometheus rules.",
    ),
    "events": (
        "loopline.cli.events:events_group",
        "The project's events and their delivery to webhooks: ls, show, deliver, retry.",
    ),
    "loop": (
        "loopline.cli.loop:loop_group",
        "The closed loop: the controller, rollouts (retrain, canary, promote), pause.",
    ),
    "predictions": (
        "loopline.cli.predictions:predictions_group",
        "List and export the prediction log of a model.",
    ),
    "demo": (
        "loopline.cli.demo:demo_command",
        "Run the lifecycle on embedded defaults in a fresh project.",
    ),
    "store": (
        "loopline.cli.store:store_group",
        "Verify the artifact store: re-hash every blob, find missing ones, repair.",
    ),
    "ui": (
        "loopline.ui.command:ui_command",
        "Web UI: runs, datasets, models, deployments, monitors, alarms; JSON twins.",
    ),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target[0].split(":")
        command: click.Command = getattr(import_module(module_name), attr)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_text) for name, (_, help_text) in sorted(COMMANDS.items())]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if name and not name.startswith("-") and name not in COMMANDS:
            import difflib

            close = difflib.get_close_matches(name, list(COMMANDS), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise click.UsageError(f"No such command {name!r}.{hint}", ctx)
        return super().resolve_command(ctx, args)


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(
    __version__, "-V", "--version", prog_name="loopline", message="%(prog)s %(version)s"
)
@click.option(
    "--debug",
    is_flag=True,
    help="Show whole tracebacks of failures (also LOOPLINE_DEBUG=1).",
)
def cli(debug: bool) -> None:
    """loopline: the machine-learning lifecycle, end to end, from a laptop to a cluster.

    Data, experiments, models, endpoints, monitoring and retraining in one program.
    Settings come from loopline.toml (found in this folder or above) and LOOPLINE_*
    environment variables.
    """
    if debug:
        import warnings

        os.environ["LOOPLINE_DEBUG"] = "1"  # also for the processes a command starts
        warnings.resetwarnings()


def exit_code_for(exc: BaseException) -> int:
    from loopline.errors import ConfigError, IntegrityError
    from loopline.store.errors import MetadataStoreError, StoreFullError, StoreUnreachableError

    if isinstance(exc, ConfigError):
        return 2
    if isinstance(exc, IntegrityError):
        return 4
    if isinstance(exc, StoreUnreachableError | StoreFullError | MetadataStoreError):
        return 3
    return 1


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the console script and ``python -m loopline``."""
    import warnings

    from loopline.errors import LooplineError

    if not _debug():
        # Libraries' warnings (an Optuna feature marked experimental, a deprecation deep in
        # a dependency) are for their developers, not for the person at the terminal;
        # loopline reports its own problems as errors and notes. --debug shows them.
        warnings.simplefilter("ignore")
    try:
        result = cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="loopline",
            standalone_mode=False,
        )
    except LooplineError as exc:
        if _debug():
            import traceback

            traceback.print_exc()
        _print_error(str(exc))
        sys.exit(exit_code_for(exc))
    except click.exceptions.Abort:
        _print_error("interrupted")
        sys.exit(130)
    except KeyboardInterrupt:
        _print_error("interrupted")
        sys.exit(130)
    except click.UsageError as exc:
        # Bad usage (a missing argument, an unknown option, a bad value): one line, exit 2,
        # like a bad configuration.
        command = exc.ctx.command_path if exc.ctx is not None else "loopline"
        message = exc.format_message().rstrip()
        sep = " " if message.endswith((".", "!", "?")) else ". "
        _print_error(f"{command}: {message}{sep}See: {command} --help")
        sys.exit(2)
    except click.ClickException as exc:
        _print_error(exc.format_message())
        sys.exit(exc.exit_code)
    sys.exit(result if isinstance(result, int) else 0)


#: The exit status of the command :func:`run` ran (None until it ended with one).
_status: int | None = None


def run() -> None:
    """The console script and ``python -m loopline``: :func:`main`, then an exit that
    skips the native libraries' teardown.

    After a command has done its work and printed its result, pyarrow's thread pools
    can abort the process in their C++ destructors at the very end of its exit
    ("terminate called without an active exception", status 134): with four running at
    once, about one ``loopline data validate`` in seven did. So once Python's own exit
    work is done (non-daemon threads joined, every other ``atexit`` handler run: open
    runs finished, Ray shut down, worker processes reaped), :func:`_end` flushes the
    logs and standard streams and ends the process with the command's status, without
    that teardown. (Each command has closed its database and files by then.)
    :func:`main` called from Python (a notebook, a test) exits as usual.
    """
    global _status
    atexit.register(_end)  # registered first (nothing else is yet), so it runs last
    try:
        main()
    except SystemExit as exc:
        _status = _exit_status(exc.code)
        raise


def _exit_status(code: object) -> int:
    """The process status Python gives ``sys.exit(code)``: None 0, an int itself, else 1."""
    if code is None:
        return 0
    return code if isinstance(code, int) else 1


def _end() -> None:
    if _status is None:
        return  # the command ended with an uncaught exception: Python's exit as usual
    status = _status
    if "logging" in sys.modules:
        import logging

        logging.shutdown()
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        if sys.stderr is not None:
            _print_error(f"the command's output could not be written out: {reason}")
        if status == 0:
            status = 120  # what Python returns when it cannot flush its output
    with contextlib.suppress(OSError, ValueError):
        if sys.stderr is not None:
            sys.stderr.flush()
    os._exit(status)


def _debug() -> bool:
    return os.environ.get("LOOPLINE_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")


def _print_error(message: str) -> None:
    one_line = " ".join(message.split())
    if sys.stderr.isatty() and not os.environ.get("NO_COLOR"):
        sys.stderr.write(f"\x1b[1;31merror:\x1b[0m {one_line}\n")
    else:
        sys.stderr.write(f"error: {one_line}\n")
