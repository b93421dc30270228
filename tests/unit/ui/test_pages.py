"""Every page renders, and its JSON twin holds the numbers of the stores."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from .support import Project

PAGES = [
    "/runs",
    "/datasets",
    "/datasets/customers",
    "/models",
    "/models/churn",
    "/models/churn/versions/1",
    "/deployments",
    "/monitors",
    "/monitors/churn",
    "/monitors/churn/features/age",
    "/alarms",
    "/loop",
]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders_and_has_a_json_twin(client: TestClient, path: str) -> None:
    page = client.get(path)
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    twin = client.get("/api" + path)
    assert twin.status_code == 200, twin.text
    assert twin.headers["content-type"] == "application/json"
    negotiated = client.get(path, headers={"accept": "application/json"})
    assert negotiated.json() == twin.json()


def test_run_pages_render(client: TestClient, project: Project) -> None:
    for run_id in (project.run_ids[0], project.run_ids[-1], project.failed_run):
        assert client.get(f"/runs/{run_id}").status_code == 200
    pair = f"/runs/compare?run={project.run_ids[1]}&run={project.run_ids[2]}"
    assert client.get(pair).status_code == 200
