"""``loopline serve MODEL@ALIAS``: the model as an HTTP endpoint."""

from __future__ import annotations

import click


@click.command("serve")
@click.argument("model", metavar="MODEL@ALIAS")
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default 8080).")
@click.option("--workers", type=int, default=None, help="Worker processes (default 1).")
@click.option(
    "--canary",
    metavar="MODEL@ALIAS:PERCENT",
    default=None,
    help="Answer PERCENT of requests with this candidate.",
)
@click.option(
    "--shadow",
    metavar="MODEL@ALIAS[:PERCENT]",
    default=None,
    help="Send a copy of requests to this candidate; its answers are only logged.",
)
@click.option(
    "--sticky-key",
    default=None,
    help="A request field whose value keeps a caller on one side of the split.",
)
@click.option("--auth/--no-auth", default=None, help="Require API keys (default: [serve] auth).")
@click.option(
    "--insecure",
    is_flag=True,
    help="Allow a non-loopback address without auth (anyone reaching it can call the model).",
)
@click.option("--max-batch-size", type=int, default=None, help="Rows per model call.")
@click.option("--max-wait-ms", type=float, default=None, help="Longest wait to fill a batch.")
def serve_command(
    model: str,
    host: str | None,
    port: int | None,
    workers: int | None,
    canary: str | None,
    shadow: str | None,
    sticky_key: str | None,
    auth: bool | None,
    insecure: bool,
    max_batch_size: int | None,
    max_wait_ms: float | None,
) -> int:
    """Serve MODEL@ALIAS (or MODEL/VERSION) over HTTP until stopped.

    The server follows the alias: when it moves, the new version is loaded in the
    background and swapped in without failing a request. Routes: POST /predict,
    POST /invocations (MLflow), /v2/... (KServe V2), POST /feedback, /metrics, /docs.
    Settings come from [serve] in loopline.toml and LOOPLINE_SERVE_* variables.

    Exits 0 after Ctrl+C or SIGTERM (a graceful stop: requests in flight are answered
    and the prediction log is written), 2 when the port is in use, 4 when the model's
    package fails its integrity check, and non-zero whenever the model cannot be loaded
    at start.
    """
    from loopline.cli.output import err_console
    from loopline.config import load_settings
    from loopline.serve.server import ServeTarget, bind_listeners, check_bind, preflight, run
    from loopline.serve.settings import load_serve_settings

    settings = load_settings()
    serve = load_serve_settings(
        settings,
        host=host,
        port=port,
        workers=workers,
        auth=auth,
        max_batch_size=max_batch_size,
        max_wait_ms=max_wait_ms,
    )
    check_bind(serve, insecure=insecure)
    target = ServeTarget(model=model, canary=canary, shadow=shadow, sticky_key=sticky_key)
    what = preflight(settings, target)
    # Bound before saying anything: a port in use is an error (exit 2), and port 0 is shown
    # as the port it became.
    listeners = bind_listeners(serve)
    try:
        serve = serve.with_overrides(port=listeners.port)
        shown_host = f"[{serve.host}]" if ":" in serve.host else serve.host
        err_console.print(
            f"serving {what} on http://{shown_host}:{serve.port} with {serve.workers} worker"
            f"{'s' if serve.workers != 1 else ''}"
            + (" (auth on)" if serve.auth else "")
            + "; Ctrl+C stops"
        )
    except BaseException:
        listeners.close()
        raise
    return run(settings, serve, target, insecure=insecure, listeners=listeners)
