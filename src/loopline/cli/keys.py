"""``loopline keys``: API keys of the model server (create, list, revoke)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from loopline.cli.output import console, json_option, print_json, table

if TYPE_CHECKING:
    from loopline.serve.keys import KeyStore
    from loopline.store.stores import Stores


@click.group("keys", no_args_is_help=True)
def keys_group() -> None:
    """API keys for ``loopline serve`` with auth on: create, list, revoke.

    Roles: read (metadata, metrics), predict (predictions, feedback), admin (everything).
    A key is shown once, when created; the database keeps only its sha256.
    """


def _store() -> tuple[Stores, KeyStore]:
    from loopline.config import load_settings
    from loopline.serve.keys import KeyStore
    from loopline.store.stores import Stores

    stores = Stores.open(load_settings())
    return stores, KeyStore(stores.db)


@keys_group.command("create")
@click.option(
    "--role", type=click.Choice(["read", "predict", "admin"]), required=True, help="What it may do."
)
@click.option("--name", default=None, help="A note to tell keys apart (who uses it).")
@json_option
def create_command(role: str, name: str | None, as_json: bool) -> None:
    """Create a key and print it (this is the only time it is shown)."""
    stores, store = _store()
    with stores:
        new = store.create(role, name=name)
    if as_json:
        print_json({**new.key.to_dict(), "key": new.secret})
        return
    console.print(f"created key [bold]{new.key.key_id}[/bold] (role {role}); it is shown once:")
    click.echo(new.secret)


@keys_group.command("ls")
@click.option("--all", "show_all", is_flag=True, help="Include revoked keys.")
@json_option
def ls_command(show_all: bool, as_json: bool) -> None:
    """List keys (ids and roles; never the keys themselves)."""
    stores, store = _store()
    with stores:
        keys = store.list(include_revoked=show_all)
    if as_json:
        print_json([k.to_dict() for k in keys])
        return
    if not keys:
        console.print("No API keys. Create one with: loopline keys create --role predict")
        return
    rows = [
        (
            k.key_id,
            k.role,
            k.name or "",
            k.created_at.strftime("%Y-%m-%d %H:%M"),
            k.created_by,
            "active" if k.active else f"revoked {k.revoked_at:%Y-%m-%d %H:%M}",
        )
        for k in keys
    ]
    console.print(table(None, ["id", "role", "name", "created", "by", "state"], rows))


@keys_group.command("revoke")
@click.argument("key_id")
@json_option
def revoke_command(key_id: str, as_json: bool) -> None:
    """Revoke a key by its id (servers refuse it within their poll interval)."""
    stores, store = _store()
    with stores:
        key = store.revoke(key_id)
    if as_json:
        print_json(key.to_dict())
        return
    console.print(f"revoked key {key.key_id} (role {key.role})")
