"""Fixtures shared by every test folder: real S3 (moto's server), real PostgreSQL, projects.

- ``s3_endpoint``: moto's standalone S3 server over real HTTP on 127.0.0.1 (one per session).
- ``s3_settings`` / ``s3_url``: credentials for it and a fresh bucket per test.
- ``postgres_url``: a fresh PostgreSQL database per test, on the server named by
  ``LOOPLINE_TEST_POSTGRES_URL`` (``make test`` starts it); tests marked ``postgres`` are
  skipped without it, unless ``LOOPLINE_REQUIRE_POSTGRES=1`` (set by ``make test``), which
  turns a missing server into a failure so CI can never skip them silently.
- ``ray_executor``: a local Ray instance (``ray.init(num_cpus=2)``), one per test process;
  tests using it are marked ``ray``.
- ``metadata_url``: parametrised over SQLite and PostgreSQL, for tests of the stores.
- ``stores`` / ``sqlite_stores``: a migrated project store (artifacts in a local folder) on
  each metadata backend, or on SQLite only for logic that does not depend on it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.cli import free_port
from loopline.config import S3Settings, settings_for
from loopline.execute import Executor
from loopline.store.db import migrate
from loopline.store.db.engine import Database
from loopline.store.stores import Stores

S3_KEY = "testing-key"
S3_SECRET = "testing-secret"
S3_REGION = "us-east-1"


_E2E = Path(__file__).parent / "e2e"
#: A test using one of these fixtures needs that service: it gets the marker.
_SERVICE_FIXTURES = {"postgres_url": "postgres", "s3_endpoint": "s3", "ray_executor": "ray"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark what needs a service or a subprocess of the command, so ``make unit`` can
    leave it out by marker: ``postgres`` and ``s3`` from the fixtures a test uses (also
    through other fixtures), ``e2e`` for everything under tests/e2e."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        for fixture, marker in _SERVICE_FIXTURES.items():
            if fixture in names:
                item.add_marker(marker)
        if _E2E in Path(str(item.path)).parents:
            item.add_marker("e2e")
    items[:] = longest_files_first(items)


def longest_files_first(items: list[pytest.Item]) -> list[pytest.Item]:
    """``items`` with their files reordered, longest expected first, each file's tests in
    their own order.

    ``make test`` hands whole files to its workers in this order (``--dist loadfile
    --no-loadscope-reorder``), and each worker takes the next file when it is done: a long
    file handed out last would run alone at the end while the other worker idles. Expected
    length, longest first: a test's own ``timeout`` mark (set only on tests that need more
    than the default), then the number of tests. The long servers-and-subprocess files
    stay spread over the run (they slow each other down when they start together).
    """
    files: dict[Path, list[pytest.Item]] = {}
    for item in items:
        files.setdefault(Path(str(item.path)), []).append(item)

    def expected(group: list[pytest.Item]) -> tuple[float, int]:
        timeouts = [
            float(mark.args[0])
            for item in group
            for mark in item.iter_markers("timeout")
            if mark.args
        ]
        return (max(timeouts, default=0.0), len(group))

    ordered = sorted(files.values(), key=expected, reverse=True)
    return [item for group in ordered for item in group]


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1, reached over HTTP like any S3 endpoint."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_settings(s3_endpoint: str) -> S3Settings:
    return S3Settings(
        endpoint_url=s3_endpoint,
        region=S3_REGION,
        access_key_id=S3_KEY,
        secret_access_key=S3_SECRET,
    )


@pytest.fixture
def s3_bucket(s3_settings: S3Settings) -> str:
    """A new, empty bucket for one test."""
    import boto3

    name = f"ll-{uuid.uuid4().hex[:16]}"
    client = boto3.client(
        "s3",
        endpoint_url=s3_settings.endpoint_url,
        region_name=S3_REGION,
        aws_access_key_id=S3_KEY,
        aws_secret_access_key=S3_SECRET,
    )
    client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_url(s3_bucket: str) -> str:
    return f"s3://{s3_bucket}/artifacts"


@pytest.fixture
def s3_env(s3_settings: S3Settings) -> dict[str, str]:
    """Environment variables that point a loopline subprocess at the S3 server."""
    assert s3_settings.endpoint_url is not None
    return {
        "AWS_ENDPOINT_URL": s3_settings.endpoint_url,
        "AWS_ACCESS_KEY_ID": S3_KEY,
        "AWS_SECRET_ACCESS_KEY": S3_SECRET,
        "AWS_DEFAULT_REGION": S3_REGION,
    }


@pytest.fixture(scope="session")
def ray_executor() -> Iterator[Executor]:
    """A Ray executor over a local Ray instance with 2 CPUs, one per test process."""
    import ray

    from loopline.execute.ray import RayExecutor

    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", namespace="loopline")
    try:
        yield RayExecutor()
    finally:
        ray.shutdown()


def _postgres_server_url() -> str | None:
    return os.environ.get("LOOPLINE_TEST_POSTGRES_URL") or None


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    server = _postgres_server_url()
    if server is None:
        if os.environ.get("LOOPLINE_REQUIRE_POSTGRES") == "1":
            pytest.fail("LOOPLINE_TEST_POSTGRES_URL is not set but PostgreSQL tests are required")
        pytest.skip("no PostgreSQL server (set LOOPLINE_TEST_POSTGRES_URL; make test does)")
    from pgdb import fresh_database

    with fresh_database(server) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def metadata_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store test runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'meta.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


#: A SQLite database migrated once per test session; each SQLite store test gets a copy
#: (a file copy instead of running every migration again).
_SQLITE_TEMPLATE: list[Path] = []


def migrate_database(url: str) -> None:
    """Bring the (new) database at ``url`` to the latest revision: a fresh SQLite file is
    a copy of a database migrated once per session, anything else is migrated."""
    prefix = "sqlite:///"
    target = Path(url[len(prefix) :]) if url.startswith(prefix) else None
    if target is None or target.exists():
        with Database(url, create=True) as db:
            migrate.upgrade(db)
        return
    if not _SQLITE_TEMPLATE:
        folder = Path(tempfile.mkdtemp(prefix="loopline-test-template-"))
        with Database(f"{prefix}{folder / 'template.db'}", create=True) as db:
            migrate.upgrade(db)
        _SQLITE_TEMPLATE.append(folder / "template.db")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_SQLITE_TEMPLATE[0], target)


def pytest_sessionfinish(session: pytest.Session) -> None:
    for template in _SQLITE_TEMPLATE:
        shutil.rmtree(template.parent, ignore_errors=True)


def open_stores(project: Path, metadata_url: str) -> Stores:
    """Migrated stores for a project folder: ``metadata_url`` + ``project/artifacts``."""
    (project / "artifacts").mkdir(parents=True, exist_ok=True)
    settings = settings_for(
        project,
        environ={
            "LOOPLINE_METADATA_URL": metadata_url,
            "LOOPLINE_ARTIFACTS_URL": str(project / "artifacts"),
        },
    )
    migrate_database(settings.metadata_url)
    return Stores.open(settings)


@pytest.fixture
def stores(tmp_path: Path, metadata_url: str) -> Iterator[Stores]:
    """A migrated project store on each metadata backend."""
    with open_stores(tmp_path, metadata_url) as opened:
        yield opened


@pytest.fixture
def sqlite_stores(tmp_path: Path) -> Iterator[Stores]:
    """The same on SQLite only, for logic that does not depend on the backend."""
    with open_stores(tmp_path, f"sqlite:///{tmp_path / 'meta.db'}") as opened:
        yield opened
