"""``loopline events``: a failed CI gate and the registry's moves reach a webhook that
fails then recovers, through ``events deliver`` rounds, each event once; ``events ls``
and ``events show`` tell how each delivery went; ``events retry`` starts a refused one
over."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.cli import init, one_line_error, run
from e2e.test_check_cli import GATES, _fit_models
from loopline.alarm.webhook import verify_signature
from loopline.config import settings_for
from loopline.registry import Registry
from loopline.store.stores import Stores
from unit.alarm.test_webhook import Receiver

SECRET = "ci-hook-secret"
ENV = {"CI_HOOK_SECRET": SECRET}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def project(tmp_path: Path, receiver: Receiver) -> Path:
    """A project gating ``loans`` (a good champion, a constant challenger that fails the
    gates) whose events go to the receiver."""
    root = init(tmp_path)
    toml = root / "loopline.toml"
    toml.write_text(
        toml.read_text().split("[gates.credit_risk]")[0]
        + GATES
        + f"""
[actions.ci]
kind = "webhook"
url = "{receiver.url}"
secret_env = "CI_HOOK_SECRET"

[events]
webhooks = ["ci"]
kinds = ["model.*", "gate.*"]
backoff_s = 0
"""
    )
    with Stores.open(settings_for(root, environ={})) as stores:
        good, dummy = _fit_models(stores)
        reg = Registry(stores)
        reg.set_alias("loans", "champion", good)
        reg.set_alias("loans", "challenger", dummy)
    return root


def _json(*args: str, cwd: Path, code: int = 0) -> object:
    return json.loads(run(*args, "--json", cwd=cwd, env=ENV, code=code).stdout)


def test_events_reach_a_webhook_that_fails_then_recovers(project: Path, receiver: Receiver) -> None:
    run("check", cwd=project, code=1)  # the challenger fails its gates
    (gate,) = _json("events", "ls", "--kind", "gate.failed", cwd=project)  # type: ignore[misc]
    assert gate["subject"] == "loans/2"
    assert gate["detail"]["source"] == "check"
    assert gate["deliveries"] == []  # not queued until a round runs

    receiver.script = [503]
    first = run("events", "deliver", cwd=project, env=ENV)
    assert "ci: queued 5, delivered 0, retrying 1, failed 0" in first.stdout
    assert "HTTP 503" in first.stderr
    pending = _json("events", "ls", "--status", "pending", cwd=project)
    assert isinstance(pending, list)
    assert len(pending) == 5

    second = _json("events", "deliver", cwd=project)
    assert isinstance(second, dict)
    assert (second["queued"], second["delivered"], second["retrying"]) == (0, 5, 0)
    assert _json("events", "ls", "--status", "pending", cwd=project) == []

    listed = run("events", "ls", "--kind", "model.*", cwd=project, env=ENV).stdout
    assert "model.register" in listed
    assert "ci: delivered (2)" in listed  # the oldest: the 503, then its delivery
    assert "ci: delivered (1)" in listed
    shown = run("events", "show", str(gate["id"]), cwd=project, env=ENV).stdout
    assert "delivered" in shown
    assert "200" in shown
    assert "delivery id:" in shown
    detail = _json("events", "show", str(gate["id"]), cwd=project)
    assert isinstance(detail, dict)
    assert detail["deliveries"][0]["attempts"] == 1
    assert detail["deliveries"][0]["response_code"] == 200

    bodies = [json.loads(body) for _, body in receiver.received]
    assert len(bodies) == 6  # five events, one of them twice: the 503 and its retry
    assert len({b["id"] for b in bodies}) == 5
    assert sorted({b["kind"] for b in bodies}) == ["gate.failed", "model.register", "model.set"]
    for headers, body in receiver.received:
        assert verify_signature(SECRET, body, headers)
    gate_body = next(b for b in bodies if b["kind"] == "gate.failed")
    assert gate_body["id"] == detail["delivery_id"]
    assert gate_body["detail"]["candidate"] == "loans/2"
    assert gate_body["detail"]["failing"]

    # A refusal is final; retry starts it over.
    run("models", "alias", "loans", "1", "staging", cwd=project)
    receiver.script = [403]
    refused = run("events", "deliver", cwd=project, env=ENV)
    assert "failed 1" in refused.stdout
    (moved,) = _json("events", "ls", "--status", "failed", cwd=project)  # type: ignore[misc]
    assert moved["deliveries"][0]["response_code"] == 403
    again = run("events", "retry", str(moved["id"]), cwd=project, env=ENV)
    assert "1 delivery of event" in again.stdout
    assert "delivered 1" in run("events", "deliver", cwd=project, env=ENV).stdout

    missing = run("events", "show", "9999", cwd=project, env=ENV, code=1)
    assert "No event 9999" in one_line_error(missing)
    no_secret = run("events", "deliver", cwd=project, code=2)
    assert "CI_HOOK_SECRET" in one_line_error(no_secret)


def test_deliver_without_webhooks_says_how_to_add_them(tmp_path: Path) -> None:
    root = init(tmp_path)
    out = run("events", "deliver", cwd=root).stdout
    assert "No [events] webhooks configured" in out
    listed = run("events", "ls", cwd=root).stdout
    assert "project.init" in listed
    assert "-" in listed
    bad = run("events", "ls", "--status", "lost", cwd=root, code=2)
    assert "'lost' is not one of" in one_line_error(bad)
