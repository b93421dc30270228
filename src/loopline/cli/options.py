"""Options shared by commands, in a module that imports only click: a command whose fast
path must not import Rich (``loopline runs ls --json``) declares them from here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def json_option(fn: F) -> F:
    """The ``--json`` flag every listing command has (passed as ``as_json``)."""
    return click.option(
        "--json", "as_json", is_flag=True, help="Print the result as one JSON document."
    )(fn)
