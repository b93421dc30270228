"""API keys on a real server (401, 403, keys stored hashed) and traffic splits: a canary
answering its share, sticky by key, a shadow whose answers are only logged, and a split
set in the registry while the server runs."""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest
import sqlalchemy as sa

from loopline.registry import Registry
from loopline.serve.keys import KeyStore

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

Project = Any


@pytest.fixture(scope="module")
def keys(project: Project) -> dict[str, str]:
    with project.stores() as stores:
        store = KeyStore(stores.db)
        return {
            role: store.create(role, name=f"test {role}").secret
            for role in ("read", "predict", "admin")
        }


@pytest.fixture(scope="module")
def guarded(start_server: Any, project: Project, keys: dict[str, str]) -> Any:
    """churn@prod with auth on, a 50% canary (churn@cand, sticky by "customer") and a shadow."""
    project.set_alias("cand", 2)
    project.set_alias("shadowed", 2)
    return start_server(
        "churn@prod",
        "--canary",
        "churn@cand:50",
        "--shadow",
        "churn@shadowed",
        "--sticky-key",
        "customer",
        env={"LOOPLINE_SERVE_AUTH": "true"},
    )


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_no_key_401_wrong_role_403(guarded: Any, project: Project, keys: dict[str, str]) -> None:
    rows = project.rows(1)
    with guarded.client() as c:
        r = c.post("/predict", json=rows)
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert (
            c.post("/predict", json=rows, headers=_auth("ll_000000000000_" + "x" * 43)).status_code
            == 401
        )
        assert (
            c.post("/predict", json=rows, headers={"Authorization": "Basic abc"}).status_code == 401
        )
        assert c.post("/predict", json=rows, headers=_auth(keys["read"])).status_code == 403
        assert c.post("/predict", json=rows, headers=_auth(keys["predict"])).status_code == 200
        assert c.post("/predict", json=rows, headers=_auth(keys["admin"])).status_code == 200
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers=_auth(keys["read"])).status_code == 200
        assert c.get("/admin/status", headers=_auth(keys["predict"])).status_code == 403
        assert c.get("/admin/status", headers=_auth(keys["admin"])).status_code == 200
        assert c.get("/health/ready").status_code == 200  # health stays open
        assert c.get("/openapi.json").json()["components"]["securitySchemes"]


def test_keys_are_stored_hashed_and_revocation_applies(
    guarded: Any, project: Project, keys: dict[str, str]
) -> None:
    with project.stores() as stores:
        with stores.db.read() as conn:
            dump = " ".join(
                str(v) for row in conn.execute(sa.text("SELECT * FROM ll_api_keys")) for v in row
            )
        assert all(secret not in dump for secret in keys.values())
        assert all(secret.split("_", 2)[2] not in dump for secret in keys.values())
        extra = KeyStore(stores.db).create("predict")
    rows = project.rows(1)
    with guarded.client() as c:
        assert c.post("/predict", json=rows, headers=_auth(extra.secret)).status_code == 200
        with project.stores() as stores:
            KeyStore(stores.db).revoke(extra.key.key_id)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if c.post("/predict", json=rows, headers=_auth(extra.secret)).status_code == 401:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("a revoked key kept working")


def test_canary_share_sticky_key_and_shadow(
    guarded: Any, project: Project, keys: dict[str, str]
) -> None:
    from loopline.monitor.predictions import read_predictions

    rows = project.rows(1)
    seen: dict[str, int] = {}
    ids: dict[str, tuple[str, int]] = {}
    with guarded.client(headers=_auth(keys["predict"])) as c:
        for i in range(200):
            r = c.post("/predict", json=[dict(rows[0], customer=f"c{i}")])
            assert r.status_code == 200, r.text
            body = r.json()
            seen[body["role"]] = seen.get(body["role"], 0) + 1
            ids[body["request_id"]] = (body["role"], body["version"])
            assert r.headers["x-served-by"] == body["role"]
        assert 60 <= seen.get("canary", 0) <= 140, seen
        # Sticky: the same customer always lands on the same side.
        sides = {
            c.post("/predict", json=[dict(rows[0], customer="alice")]).json()["role"]
            for _ in range(20)
        }
        assert len(sides) == 1
        status = c.get("/admin/status", headers=_auth(keys["admin"])).json()["traffic"]
        assert status["canary"]["percent"] == 50
        assert status["shadow"]["serving"]["version"] == 2
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with project.stores() as stores:
            table = read_predictions(
                stores.objects, model="churn", columns=["request_id", "role", "version"]
            )
        logged = {(r["request_id"], r["role"]) for r in table.to_pylist()}
        if all((rid, "shadow") in logged for rid in ids):
            break
        time.sleep(0.5)
    for rid, (role, _version) in ids.items():
        assert (rid, role) in logged
        assert (rid, "shadow") in logged  # the shadow got a copy of every request


def test_registry_split_changes_without_restart(
    guarded: Any, project: Project, keys: dict[str, str]
) -> None:
    rows = project.rows(1)
    with project.stores() as stores:
        Registry(stores).set_traffic("churn", "churn@cand", 100, alias="prod", mode="canary")
    try:
        with guarded.client(headers=_auth(keys["predict"])) as c:
            reload = c.post("/admin/reload", headers=_auth(keys["admin"]))  # don't wait a poll
            assert reload.status_code == 200, reload.text
            assert reload.json()["status"]["traffic"]["canary"]["percent"] == 100
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                roles = {c.post("/predict", json=rows).json()["role"] for _ in range(10)}
                if roles == {"canary"}:
                    break
                time.sleep(0.3)
            else:
                raise AssertionError("the registry's 100% canary was not applied")
            status = c.get("/admin/status", headers=_auth(keys["admin"])).json()["traffic"]
            assert status["canary"]["source"] == "registry"
    finally:
        with project.stores() as stores:
            Registry(stores).clear_traffic("churn", "prod")


def test_a_server_restarted_during_a_canary_keeps_the_split(
    start_server: Any, project: Project
) -> None:
    """The split lives in the registry, not in the server: a server killed mid-canary and
    started again (as after a crash or a deploy) serves the same shares at once."""
    rows = project.rows(1)
    project.set_alias("cand", 2)
    with project.stores() as stores:
        Registry(stores).set_traffic("churn", "churn@cand", 50, alias="prod", mode="canary")
    try:
        first = start_server("churn@prod")
        with first.client() as c:
            before = {c.post("/predict", json=rows).json()["role"] for _ in range(40)}
        assert before == {"primary", "canary"}
        first.stop(signal.SIGKILL)
        again = start_server("churn@prod", port=first.port)
        with again.client() as c:
            status = c.get("/admin/status").json()["traffic"]
            after = [c.post("/predict", json=rows).json() for _ in range(40)]
        assert status["canary"]["percent"] == 50
        assert status["canary"]["source"] == "registry"
        assert {a["role"] for a in after} == {"primary", "canary"}
        assert {a["version"] for a in after if a["role"] == "canary"} == {2}
        again.stop()
    finally:
        with project.stores() as stores:
            Registry(stores).clear_traffic("churn", "prod")
