"""Auth and forms: nothing without a key when auth is on, sessions that scripts cannot
read, CSRF tokens on every change, roles enforced by the server, names escaped."""

from __future__ import annotations

import html
import re

import pytest
from starlette.testclient import TestClient

from loopline.registry import Registry
from loopline.ui.app import create_app
from loopline.ui.errors import UnsafeUIBindError
from loopline.ui.server import check_bind

from .support import SCRIPT, Project


def _login(client: TestClient, key: str) -> None:
    form = client.get("/login?next=/models/churn")
    assert form.status_code == 200
    token = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert token is not None
    done = client.post("/login", data={"key": key, "csrf": token.group(1), "next": "/models/churn"})
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/models/churn"
    cookie = done.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    assert key not in cookie  # the key itself is never kept in the cookie


def _csrf(client: TestClient, path: str = "/models/churn") -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None
    return found.group(1)


def test_auth_on_refuses_every_page_without_a_key(secured: TestClient) -> None:
    page = secured.get("/runs")
    assert page.status_code == 303
    assert page.headers["location"].startswith("/login?next=")
    for path in ("/api/runs", "/api/models/churn", "/api/monitors/churn"):
        answer = secured.get(path)
        assert answer.status_code == 401
        assert answer.json()["error"] == "unauthorized"
    bad = secured.get("/api/runs", headers={"authorization": "Bearer ll_000000000000_" + "x" * 43})
    assert bad.status_code == 401
    secured.cookies.set("ll_ui_session", "eyJrIjoiYWJjIn0.forged")
    assert secured.get("/runs").status_code == 303


def test_a_wrong_key_or_an_expired_form_does_not_log_in(secured: TestClient) -> None:
    form = secured.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert token is not None
    wrong = secured.post("/login", data={"key": "ll_nope", "csrf": token.group(1)})
    assert wrong.status_code == 401
    assert "Unknown or revoked API key" in wrong.text
    stale = TestClient(secured.app, follow_redirects=False)
    refused = stale.post("/login", data={"key": "whatever", "csrf": "made-up"})
    assert refused.status_code == 403


def test_a_read_key_reads_but_cannot_promote(secured: TestClient, project: Project) -> None:
    _login(secured, project.keys["read"])
    page = secured.get("/models/churn")
    assert page.status_code == 200
    assert "need an API key with the admin role" in page.text
    assert 'id="promote-form"' not in page.text
    csrf = _csrf(secured)
    before = Registry(project.stores).aliases("churn")
    refused = secured.post(
        "/models/churn/promote",
        data={"csrf": csrf, "version": "2", "alias": "production", "confirmed": "1"},
    )
    assert refused.status_code == 403
    assert "this needs 'admin'" in html.unescape(refused.text)
    bearer = TestClient(secured.app).post(
        "/api/models/churn/rollback",
        data={"alias": "production"},
        headers={"authorization": f"Bearer {project.keys['read']}"},
    )
    assert bearer.status_code == 403
    assert Registry(project.stores).aliases("churn") == before


def test_a_change_without_its_csrf_token_is_refused(client: TestClient, project: Project) -> None:
    client.get("/models/churn")  # the session (auth off: no key, role admin)
    before = Registry(project.stores).aliases("churn")
    for data in ({}, {"csrf": "not-the-token"}):
        answer = client.post(
            "/models/churn/promote", data={**data, "version": "2", "confirmed": "1"}
        )
        assert answer.status_code == 403
        assert "CSRF" in answer.text
    other = TestClient(client.app)
    stolen = _csrf(client)
    elsewhere = other.post(
        "/models/churn/promote", data={"csrf": stolen, "version": "2", "confirmed": "1"}
    )
    assert elsewhere.status_code == 403  # a token belongs to its own session
    assert Registry(project.stores).aliases("churn") == before


def test_an_admin_promotes_after_confirming_and_rolls_back(
    secured: TestClient, project: Project
) -> None:
    _login(secured, project.keys["admin"])
    reg = Registry(project.stores)
    held = reg.aliases("churn")["production"]
    other = 2 if held == 1 else 1
    csrf = _csrf(secured)
    reason = f"ui test {SCRIPT}"
    asked = secured.post(
        "/models/churn/promote",
        data={"csrf": csrf, "version": str(other), "alias": "production", "reason": reason},
    )
    assert asked.status_code == 200
    assert 'id="confirm-form"' in asked.text
    assert reg.aliases("churn")["production"] == held  # nothing moves before confirming
    done = secured.post(
        "/models/churn/promote",
        data={
            "csrf": csrf,
            "version": str(other),
            "alias": "production",
            "reason": reason,
            "confirmed": "1",
        },
    )
    assert done.status_code == 303, done.text
    assert reg.aliases("churn")["production"] == other
    move = reg.alias_history("churn", "production")[-1]
    assert (move.action, move.to_version, move.reason) == ("promote", other, reason)
    assert move.actor.startswith("ui key admin-key")
    page = secured.get(done.headers["location"])
    assert 'id="moved"' in page.text
    assert SCRIPT not in page.text
    back = secured.post(
        "/models/churn/rollback",
        data={"csrf": csrf, "alias": "production", "confirmed": "1", "reason": "undo"},
    )
    assert back.status_code == 303
    assert reg.aliases("churn")["production"] == held


def test_an_admin_key_moves_aliases_through_the_api(client: TestClient, project: Project) -> None:
    app = create_app(project.stores.settings, project.stores, auth=True)
    api = TestClient(app, headers={"authorization": f"Bearer {project.keys['admin']}"})
    reg = Registry(project.stores)
    held = reg.aliases("churn")["challenger"]
    answer = api.post("/api/models/churn/promote", data={"version": "1", "alias": "challenger"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["move"]["to_version"] == 1
    back = api.post("/api/models/churn/rollback", data={"alias": "challenger"})
    assert back.json()["move"]["to_version"] == held
    missing = api.post("/api/models/churn/promote", data={"version": "99"})
    assert missing.status_code == 404


def test_user_strings_are_escaped_everywhere(client: TestClient, project: Project) -> None:
    pages = [
        "/runs",
        f"/runs/{project.run_ids[0]}",
        f"/runs/compare?run={project.run_ids[0]}&run={project.run_ids[1]}",
        "/models/churn",
        "/models/churn/versions/1",
    ]
    for path in pages:
        text = client.get(path).text
        assert SCRIPT not in text, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text, path
    assert (
        client.get("/api/runs?filter=tags.team+like+%27%3C%25%27").json()["runs"][0]["name"]
        == SCRIPT
    )


def test_responses_carry_a_content_security_policy(client: TestClient) -> None:
    headers = client.get("/runs").headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"


def test_a_public_address_needs_auth() -> None:
    with pytest.raises(UnsafeUIBindError, match="without authentication"):
        check_bind("0.0.0.0", auth=False, insecure=False)
    check_bind("0.0.0.0", auth=True, insecure=False)
    check_bind("0.0.0.0", auth=False, insecure=True)
    check_bind("127.0.0.1", auth=False, insecure=False)
