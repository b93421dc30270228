"""One populated project per module (SQLite and a local folder), and clients of the UI
over it with auth on and off."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from loopline.ui.app import create_app

from .support import Project, populate


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    from conftest import open_stores

    root = tmp_path_factory.mktemp("ui")
    with open_stores(root, f"sqlite:///{root / 'meta.db'}") as stores:
        yield populate(stores)


@pytest.fixture
def client(project: Project) -> TestClient:
    """The UI with auth off, as on a laptop."""
    return TestClient(create_app(project.stores.settings, project.stores, auth=False))


@pytest.fixture
def secured(project: Project) -> TestClient:
    """The UI with auth on: nothing without a login."""
    app = create_app(project.stores.settings, project.stores, auth=True)
    return TestClient(app, follow_redirects=False)
