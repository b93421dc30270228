"""The ``--executor`` and ``--address`` options, shared by the commands that fan work out
(``run``, ``monitor run``, ``predict``), and opening what they ask for."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from loopline.config import Settings
    from loopline.execute import Executor

F = TypeVar("F", bound=Callable[..., Any])


def executor_options(what: str) -> Callable[[F], F]:
    """``--executor local|ray`` and ``--address``; ``what`` says what runs there."""

    def decorate(fn: F) -> F:
        fn = click.option(
            "--address",
            metavar="ADDRESS",
            default=None,
            help="The Ray cluster (ray://HOST:10001, or auto); default: [executor] address, "
            "else a Ray instance started here.",
        )(fn)
        return click.option(
            "--executor",
            "executor_kind",
            type=click.Choice(["local", "ray"]),
            default=None,
            help=f"Where {what} run: this process, or Ray tasks (default: [executor] kind).",
        )(fn)

    return decorate


@contextmanager
def opened_executor(
    settings: Settings,
    kind: str | None,
    address: str | None,
    *,
    workers: int | None = None,
    thread_name: str = "loopline",
) -> Iterator[Executor]:
    """The executor asked for, shut down when the block ends."""
    from loopline.execute import open_executor

    executor = open_executor(
        settings, kind=kind, workers=workers, address=address, thread_name=thread_name
    )
    try:
        yield executor
    finally:
        executor.shutdown()
