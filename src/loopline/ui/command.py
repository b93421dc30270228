"""``loopline ui``: the web dashboard over the project's stores.

The command lives with the UI (``cli`` and ``ui`` are independent layers); the root
group of :mod:`loopline.cli.main` loads it by name, like every other command, and turns
its errors into one-line messages and exit codes.
"""

from __future__ import annotations

import json
import sys

import click


@click.command("ui")
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="Port (default 8780).")
@click.option(
    "--auth/--no-auth",
    default=None,
    help="Require a login with an API key (default: [serve] auth).",
)
@click.option(
    "--insecure",
    is_flag=True,
    help="Allow a non-loopback address without auth (anyone reaching it can move aliases).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the address as one JSON document.")
def ui_command(
    host: str | None, port: int | None, auth: bool | None, insecure: bool, as_json: bool
) -> int:
    """Serve the web UI: runs, datasets, models, deployments, monitors, alarms, the loop.

    Every page has a JSON twin under /api/... . With auth on (--auth, or [serve] auth in
    loopline.toml), people log in with an API key (loopline keys create --role read;
    admin to promote and roll back). --json prints the address as one JSON document
    once it listens. Exits 0 after Ctrl+C or SIGTERM, 2 when the port is in use.
    """
    from loopline.config import load_settings
    from loopline.serve.settings import load_serve_settings
    from loopline.ui.app import create_app
    from loopline.ui.server import DEFAULT_HOST, DEFAULT_PORT, bind, check_bind, run

    settings = load_settings()
    address = host or DEFAULT_HOST
    enabled = load_serve_settings(settings).auth if auth is None else auth
    check_bind(address, auth=enabled, insecure=insecure)
    app = create_app(settings, auth=enabled)
    sock = bind(address, DEFAULT_PORT if port is None else port)
    bound = sock.getsockname()[1]
    shown = f"[{address}]" if ":" in address else address
    url = f"http://{shown}:{bound}"
    if as_json:
        sys.stdout.write(json.dumps({"url": url, "host": address, "port": bound, "auth": enabled}))
        sys.stdout.write("\n")
        sys.stdout.flush()
    else:
        login = " (log in with an API key)" if enabled else ""
        click.echo(f"loopline ui on {url}{login}; Ctrl+C stops", err=True)
    if enabled and not _has_keys(app):
        click.echo(
            "note: no API key exists yet; create one with: loopline keys create --role admin",
            err=True,
        )
    run(app, sock)
    return 0


def _has_keys(app: object) -> bool:
    from loopline.serve.keys import KeyStore

    ui = app.state.ui  # type: ignore[attr-defined]
    return bool(KeyStore(ui.stores.db).list())
