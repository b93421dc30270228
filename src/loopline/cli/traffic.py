"""``loopline traffic set|clear MODEL``: canary and shadow shares of a served alias, at runtime.

Servers of ``MODEL@ALIAS`` read the split from the registry and follow it within their
poll interval; every change is a compare-and-set against the split this command read
(another process changing it meanwhile makes the command fail, changing nothing) and is
written to the audit log.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from loopline.cli.output import console, json_option, print_json

if TYPE_CHECKING:
    from loopline.registry import TrafficSplit


@click.group("traffic", no_args_is_help=True)
def traffic_group() -> None:
    """Share a served alias's requests with a candidate (canary, shadow), or stop sharing."""


def _shown(split: TrafficSplit | None, name: str, alias: str) -> str:
    if split is None:
        return f"all of {name}@{alias}"
    sticky = f", sticky on {split.sticky_key}" if split.sticky_key else ""
    return f"{split.mode} {split.percent:g}% to {split.candidate}{sticky}"


@traffic_group.command("set")
@click.argument("model", metavar="MODEL")
@click.argument("candidate", metavar="CANDIDATE")
@click.argument("percent", type=click.FloatRange(0, 100))
@click.option("--alias", default="production", show_default=True, help="The served alias.")
@click.option(
    "--mode",
    type=click.Choice(["canary", "shadow"]),
    default="canary",
    show_default=True,
    help="canary: PERCENT of requests are answered by the candidate; shadow: PERCENT of "
    "requests are also sent to it, its answers only logged.",
)
@click.option(
    "--sticky-key", metavar="FIELD", help="A request field that keeps a caller on one side."
)
@click.option("--reason", help="Why; kept in the audit log.")
@json_option
def set_command(
    model: str,
    candidate: str,
    percent: float,
    alias: str,
    mode: str,
    sticky_key: str | None,
    reason: str | None,
    as_json: bool,
) -> None:
    """Send PERCENT of MODEL@ALIAS's requests to CANDIDATE (MODEL@ALIAS or MODEL/VERSION).

    E.g. loopline traffic set churn churn@challenger 10
    """
    from loopline.config import load_settings
    from loopline.registry import Registry
    from loopline.store.stores import Stores

    with Stores.open(load_settings()) as stores:
        reg = Registry(stores)
        before = reg.traffic(model, alias)
        after = reg.set_traffic(
            model,
            candidate,
            percent,
            alias=alias,
            mode=mode,
            sticky_key=sticky_key,
            reason=reason,
            expect=before,
        )
    if as_json:
        print_json(
            {"before": None if before is None else before.to_dict(), "after": after.to_dict()}
        )
        return
    console.print(
        f"{model}@{alias}: {_shown(before, model, alias)} → {_shown(after, model, alias)}",
        highlight=False,
    )


@traffic_group.command("clear")
@click.argument("model", metavar="MODEL")
@click.option("--alias", default="production", show_default=True, help="The served alias.")
@click.option("--reason", help="Why; kept in the audit log.")
@json_option
def clear_command(model: str, alias: str, reason: str | None, as_json: bool) -> None:
    """Send all of MODEL@ALIAS's requests to the alias again (end a canary or shadow)."""
    from loopline.config import load_settings
    from loopline.registry import Registry
    from loopline.store.stores import Stores

    with Stores.open(load_settings()) as stores:
        reg = Registry(stores)
        before = reg.traffic(model, alias)
        cleared = reg.clear_traffic(model, alias, reason=reason, expect=before)
    if as_json:
        print_json({"before": None if before is None else before.to_dict(), "cleared": cleared})
        return
    if not cleared:
        console.print(f"{model}@{alias}: no split was set; all requests go to the alias")
        return
    console.print(
        f"{model}@{alias}: {_shown(before, model, alias)} → all of {model}@{alias}",
        highlight=False,
    )
