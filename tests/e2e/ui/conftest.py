"""A real headless Chromium (Debian's, driven by Playwright) for the UI's browser tests.

No browser is ever downloaded: ``bash scripts/services.sh`` (run by ``make test``)
installs Debian's chromium. Without it (or without the playwright package) these tests
are skipped, except in the full run (``LOOPLINE_REQUIRE_POSTGRES=1``, set by ``make
test``), where that is a failure, as a missing PostgreSQL is.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[dev]')"
    if not os.path.exists(CHROMIUM) and shutil.which("chromium") is None:
        return f"Debian's chromium is not installed ({CHROMIUM})"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium for one module. Playwright's sync API keeps an event loop running in the
    main thread until it stops: held for the session, every later test that runs its own
    loop (asyncio.run) would fail, so it stops with the module."""
    missing = _missing()
    if missing is not None:
        message = f"{missing}: run make test, or bash scripts/services.sh to install it"
        if os.environ.get("LOOPLINE_REQUIRE_POSTGRES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    executable = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=executable, headless=True, args=ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
