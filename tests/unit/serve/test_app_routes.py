"""Every route of ``create_app`` in process (httpx's ASGI transport; the app's lifespan runs
on an event loop in a thread, driven by ASGI lifespan messages as uvicorn drives it), on
SQLite and PostgreSQL: the happy paths and main errors of each protocol, the problem style
of each route, request ids, the request metrics (route, status, answering version), the
arrivals that micro-batching waits for, API keys and the canary, sticky keys and shadow.
The real servers (sockets, signals, workers) are tested in tests/integration/serve."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest

from loopline.config import Settings, settings_for
from loopline.registry import Registry
from loopline.serve.app import create_app
from loopline.serve.keys import KeyStore
from loopline.serve.settings import ServeSettings
from loopline.store.db import migrate
from loopline.store.db.engine import Database
from loopline.store.stores import Stores

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

COLUMNS = ["age", "income", "plan"]
ROWS = [
    {"age": 41, "income": 52.5, "plan": "pro"},
    {"age": 29, "income": 38.0, "plan": "basic"},
    {"age": 63, "income": 71.25, "plan": "plus"},
]
MAX_BODY = 64 * 1024
GENERATED_ID = re.compile(r"[0-9a-f]{24}")


# -- the project and the apps ---------------------------------------------------------------


@dataclass
class Project:
    path: Path
    settings: Settings
    models: dict[int, Any]

    def stores(self) -> Stores:
        return Stores.open(self.settings)

    def proba(self, version: int, rows: list[dict[str, Any]]) -> Any:
        return self.models[version].predict_proba(pd.DataFrame(rows)[COLUMNS])


def _fit(c: float) -> tuple[Any, pd.DataFrame]:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(5)
    n = 150
    X = pd.DataFrame(
        {
            "age": rng.integers(18, 80, n),
            "income": rng.normal(50.0, 10.0, n),
            "plan": rng.choice(["basic", "plus", "pro"], n),
        }
    )
    y = pd.Series((X["income"] > 50).astype(int))
    pre = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), ["plan"])], remainder="passthrough"
    )
    model = Pipeline([("pre", pre), ("clf", LogisticRegression(C=c, max_iter=300))]).fit(X, y)
    return model, X


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def metadata(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A fresh metadata database for this module, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('serve-routes-db') / 'meta.db'}"
        return
    server = os.environ.get("LOOPLINE_TEST_POSTGRES_URL")
    if not server:
        if os.environ.get("LOOPLINE_REQUIRE_POSTGRES") == "1":
            pytest.fail("LOOPLINE_TEST_POSTGRES_URL is not set but PostgreSQL tests are required")
        pytest.skip("no PostgreSQL server (set LOOPLINE_TEST_POSTGRES_URL; make test does)")
    from pgdb import fresh_database

    with fresh_database(server) as url:
        yield url


@pytest.fixture(scope="module")
def project(metadata: str, tmp_path_factory: pytest.TempPathFactory) -> Project:
    """``churn`` v1 (alias live) and v2 (aliases cand and shadowed)."""
    path = tmp_path_factory.mktemp("serve-routes")
    (path / "artifacts").mkdir()
    settings = settings_for(
        path,
        environ={
            "LOOPLINE_METADATA_URL": metadata,
            "LOOPLINE_ARTIFACTS_URL": str(path / "artifacts"),
        },
    )
    with Database(settings.metadata_url, create=True) as db:
        migrate.upgrade(db)
    fitted = {1: _fit(1.0), 2: _fit(0.01)}
    models = {version: model for version, (model, _) in fitted.items()}
    with Stores.open(settings) as stores:
        reg = Registry(stores)
        for version, (model, sample) in fitted.items():
            assert reg.register("churn", model, sample=sample).version == version
        reg.set_alias("churn", "live", 1)
        reg.set_alias("churn", "cand", 2)
        reg.set_alias("churn", "shadowed", 2)
    return Project(path, settings, models)


def _serve(**changes: Any) -> ServeSettings:
    base = ServeSettings(max_body_bytes=MAX_BODY, poll_interval_s=3600.0, log_flush_s=3600.0)
    return base.with_overrides(**changes)


class AppClient:
    """Blocking requests to an ASGI app whose lifespan and requests run on an event loop
    in a thread (what a server does with its app), through httpx's ASGI transport."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.state = app.state.loopline
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="app-loop", daemon=True)
        self._thread.start()
        self._lifespan: list[dict[str, Any]] = []
        self._events: asyncio.Queue[dict[str, Any]] | None = None
        try:
            self._run(self._start())
        except BaseException:
            self._end_loop()
            raise
        transport = httpx.ASGITransport(app=app)
        self.client = httpx.AsyncClient(transport=transport, base_url="http://serve")

    def _run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(120)

    async def _start(self) -> None:
        self._events = asyncio.Queue()
        self._events.put_nowait({"type": "lifespan.startup"})
        done = asyncio.get_running_loop().create_future()

        async def receive() -> dict[str, Any]:
            assert self._events is not None
            return await self._events.get()

        async def send(message: dict[str, Any]) -> None:
            self._lifespan.append(message)
            if not done.done():
                done.set_result(message)

        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self._task = asyncio.get_running_loop().create_task(self.app(scope, receive, send))
        started = await done
        assert started["type"] == "lifespan.startup.complete", started

    async def _stop(self) -> None:
        await self.client.aclose()
        assert self._events is not None
        self._events.put_nowait({"type": "lifespan.shutdown"})
        await self._task
        assert self._lifespan[-1]["type"] == "lifespan.shutdown.complete", self._lifespan

    def close(self) -> None:
        try:
            self._run(self._stop())
        finally:
            self._end_loop()

    def _end_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._loop.close()

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        response: httpx.Response = self._run(self.client.request(method, url, **kwargs))
        return response

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)


def _running(app: Any) -> Iterator[AppClient]:
    client = AppClient(app)
    try:
        state = client.state
        deadline = time.monotonic() + 60
        while not state.is_ready():  # the models load in the background
            assert state.failure is None, state.failure
            assert time.monotonic() < deadline, "the model did not load"
            time.sleep(0.02)
        while any(slot.current is None for slot in state.traffic.slots.values() if slot):
            assert time.monotonic() < deadline, "a candidate did not load"
            time.sleep(0.02)
        yield client
    finally:
        client.close()


@pytest.fixture(scope="module")
def client(project: Project) -> Iterator[AppClient]:
    """churn@live, auth off."""
    yield from _running(create_app(project.settings, _serve(), model="churn@live"))


@pytest.fixture(scope="module")
def keys(project: Project) -> dict[str, str]:
    with project.stores() as stores:
        store = KeyStore(stores.db)
        return {role: store.create(role).secret for role in ("read", "predict", "admin")}


@pytest.fixture(scope="module")
def guarded(project: Project, keys: dict[str, str]) -> Iterator[AppClient]:
    """churn@live with auth on, a 50% canary (churn@cand, sticky by customer) and a shadow."""
    app = create_app(
        project.settings,
        _serve(auth=True),
        model="churn@live",
        canary="churn@cand:50",
        shadow="churn@shadowed",
        sticky_key="customer",
    )
    yield from _running(app)


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _requests(
    client: AppClient, headers: dict[str, str] | None = None
) -> dict[tuple[str, ...], float]:
    """``loopline_requests_total`` by (route, status, version)."""
    text = client.get("/metrics", headers=headers).text
    out: dict[tuple[str, ...], float] = {}
    for line in text.splitlines():
        m = re.match(
            r'loopline_requests_total\{route="(.*?)",status="(.*?)",version="(.*?)"\} (.*)', line
        )
        if m:
            out[m.group(1, 2, 3)] = float(m.group(4))
    return out


def _grown(
    before: dict[tuple[str, ...], float], after: dict[tuple[str, ...], float]
) -> dict[tuple[str, ...], float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}


def _metric(
    client: AppClient, name: str, headers: dict[str, str] | None = None
) -> dict[str, float]:
    """A metric's samples by their label text."""
    out = {}
    for line in client.get("/metrics", headers=headers).text.splitlines():
        if line.startswith(name):
            labels, _, value = line[len(name) :].rpartition(" ")
            out[labels] = float(value)
    return out


# -- /predict ---------------------------------------------------------------------------------


def _close(got: Any, expected: Any) -> None:
    """Probabilities as served (ONNX computes in float32) against scikit-learn's."""
    np.testing.assert_allclose(got, expected, atol=1e-5)


def _parquet(rows: list[dict[str, Any]]) -> bytes:
    buf = io.BytesIO()
    pd.DataFrame(rows).to_parquet(buf)
    return buf.getvalue()


def test_predict_answers_every_body_format_with_the_model_headers(
    client: AppClient, project: Project
) -> None:
    expected = project.proba(1, ROWS)
    columns = {c: [r[c] for r in ROWS] for c in COLUMNS}
    positional = [[r[c] for c in COLUMNS] for r in ROWS]
    csv = pd.DataFrame(ROWS).to_csv(index=False).encode()
    bodies = [
        (orjson.dumps(ROWS), "application/json", ROWS),
        (orjson.dumps(columns), "application/json", ROWS),
        (orjson.dumps(positional), "application/json", ROWS),
        (orjson.dumps(ROWS[0]), "application/json", ROWS[:1]),
        (orjson.dumps(ROWS), None, ROWS),
        (csv, "text/csv", ROWS),
        (_parquet(ROWS), "application/vnd.apache.parquet", ROWS),
    ]
    for content, ctype, rows in bodies:
        headers = {} if ctype is None else {"content-type": ctype}
        r = client.post("/predict", content=content, headers=headers)
        assert r.status_code == 200, (ctype, r.text)
        body = r.json()
        assert body["model"] == "churn"
        assert body["version"] == 1
        assert body["role"] == "primary"
        assert body["classes"] == [0, 1]
        _close(body["probabilities"], expected[: len(rows)])
        assert body["predictions"] == expected[: len(rows)].argmax(axis=1).tolist()
        assert r.headers["content-type"] == "application/json"
        assert r.headers["x-model-name"] == "churn"
        assert r.headers["x-model-version"] == "1"
        assert r.headers["x-served-by"] == "primary"
        assert r.headers["x-request-id"] == body["request_id"]


def test_request_ids_are_the_clients_when_valid_else_made_unique(client: AppClient) -> None:
    r = client.post("/predict", json=ROWS[:1], headers={"X-Request-Id": "order-17:a.b_c"})
    assert r.json()["request_id"] == "order-17:a.b_c"
    assert r.headers["x-request-id"] == "order-17:a.b_c"
    made = set()
    for bad in ("has space", "x" * 65, "", b"\xe9t\xe9"):
        r = client.post("/predict", json=ROWS[:1], headers={"X-Request-Id": bad})
        assert r.status_code == 200
        rid = r.json()["request_id"]
        assert GENERATED_ID.fullmatch(rid), rid
        assert r.headers["x-request-id"] == rid
        made.add(rid)
    r = client.post("/predict", content=b"{", headers={"X-Request-Id": "err-1"})
    assert r.status_code == 400
    assert r.json()["request_id"] == r.headers["x-request-id"] == "err-1"
    r = client.post("/predict", content=b"{")
    assert r.json()["request_id"] == r.headers["x-request-id"]
    made.add(r.json()["request_id"])
    assert len(made) == 5


def test_predict_errors_are_loopline_problems(client: AppClient) -> None:
    cases = [
        (b"{not json", "application/json", 400, "malformed_json"),
        (b"", "application/json", 400, "malformed_json"),
        (b"[]", "application/json", 400, "empty"),
        (b'"text"', "application/json", 400, "bad_shape"),
        (b"age,plan\n1", "text/csv", 400, "malformed_csv"),
        (b"\x00\x01 not parquet", "application/vnd.apache.parquet", 400, "malformed_parquet"),
        (b"<xml/>", "application/xml", 415, "unsupported_media_type"),
        (b"[" + b"1," * MAX_BODY + b"1]", "application/json", 413, "body_too_large"),
    ]
    for content, ctype, status, code in cases:
        r = client.post("/predict", content=content, headers={"content-type": ctype})
        assert r.status_code == status, (code, r.text)
        body = r.json()
        assert set(body) == {"error", "message", "request_id"}, body
        assert body["error"] == code
        assert body["message"]
        assert "x-model-version" not in r.headers
    bad = [dict(ROWS[0], age="old"), {k: v for k, v in ROWS[1].items() if k != "plan"}]
    r = client.post("/predict", json=bad)
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "validation_failed"
    found = {(p["row"], p["column"], p["problem"]) for p in body["problems"]}
    assert found == {(0, "age", "wrong_type"), (1, "plan", "missing_column")}


# -- /invocations (MLflow) ----------------------------------------------------------------------


def test_invocations_answers_mlflow_formats(client: AppClient, project: Project) -> None:
    expected = project.proba(1, ROWS)
    labels = expected.argmax(axis=1).tolist()
    split = {"columns": COLUMNS, "data": [[r[c] for c in COLUMNS] for r in ROWS]}
    for body in (
        {"dataframe_split": split},
        {"dataframe_records": ROWS},
        {"inputs": {c: [r[c] for r in ROWS] for c in COLUMNS}},
        {"instances": ROWS},
    ):
        r = client.post("/invocations", json=body)
        assert r.status_code == 200, (body, r.text)
        assert r.json() == {"predictions": labels}
        assert r.headers["x-model-version"] == "1"
        assert GENERATED_ID.fullmatch(r.headers["x-request-id"])
    csv = pd.DataFrame(ROWS).to_csv(index=False)
    r = client.post("/invocations", content=csv, headers={"content-type": "text/csv"})
    assert r.json() == {"predictions": labels}
    asked = {"dataframe_split": split, "params": {"predict_method": "predict_proba"}}
    _close(client.post("/invocations", json=asked).json()["predictions"], expected)
    by_query = client.post("/invocations?method=predict_proba", json={"dataframe_split": split})
    _close(by_query.json()["predictions"], expected)


def test_invocations_errors_are_mlflow_problems(client: AppClient) -> None:
    split = {"columns": COLUMNS, "data": [[r[c] for c in COLUMNS] for r in ROWS]}
    cases = [
        ({"nothing": 1}, None, 400, "BAD_REQUEST"),
        (
            {"dataframe_split": split, "params": {"predict_method": "decision"}},
            None,
            400,
            "BAD_REQUEST",
        ),
        ({"dataframe_records": [dict(ROWS[0], age="old")]}, None, 422, "INVALID_PARAMETER_VALUE"),
        (None, b"a=1", 415, "UNSUPPORTED_MEDIA_TYPE"),
    ]
    for body, raw, status, code in cases:
        if raw is None:
            r = client.post("/invocations", json=body)
        else:
            r = client.post(
                "/invocations",
                content=raw,
                headers={"content-type": "application/x-www-form-urlencoded"},
            )
        assert r.status_code == status, (body, r.text)
        answer = r.json()
        assert answer["error_code"] == code, answer
        assert answer["message"]
        assert answer["request_id"] == r.headers["x-request-id"]
        assert "error" not in answer
    assert "problems" in client.post("/invocations", json=cases[2][0]).json()


# -- /v2 (Open Inference Protocol) --------------------------------------------------------------


def _v2_inputs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    n = len(rows)
    return [
        {"name": "age", "datatype": "INT64", "shape": [n], "data": [r["age"] for r in rows]},
        {
            "name": "income",
            "datatype": "FP64",
            "shape": [n, 1],
            "data": [[r["income"]] for r in rows],
        },
        {"name": "plan", "datatype": "BYTES", "shape": [n], "data": [r["plan"] for r in rows]},
    ]


def test_v2_metadata_and_readiness(client: AppClient) -> None:
    server = client.get("/v2").json()
    assert server["name"] == "loopline"
    assert server["extensions"] == ["binary_tensor_data"]
    meta = client.get("/v2/models/churn")
    assert meta.status_code == 200
    assert [i["name"] for i in meta.json()["inputs"]] == COLUMNS
    assert {o["name"] for o in meta.json()["outputs"]} == {"predict", "predict_proba"}
    assert meta.json()["versions"] == ["1"]
    assert client.get("/v2/models/churn/versions/1").json()["versions"] == ["1"]
    assert client.get("/v2/models/churn/ready").json() == {"name": "churn", "ready": True}
    assert client.get("/v2/models/churn/versions/1/ready").status_code == 200
    for path, code in (
        ("/v2/models/other", "unknown_model"),
        ("/v2/models/other/ready", "unknown_model"),
        ("/v2/models/churn/versions/2", "unknown_version"),
        ("/v2/models/churn/versions/2/ready", "unknown_version"),
        ("/v2/models/churn/versions/x", "unknown_version"),
    ):
        r = client.get(path)
        assert r.status_code == 404, path
        body = r.json()
        assert body["code"] == code
        assert body["error"]  # the message, in the protocol's field
        assert body["request_id"] == r.headers["x-request-id"]


def test_v2_infer_json_and_binary_tensors(client: AppClient, project: Project) -> None:
    expected = project.proba(1, ROWS)
    r = client.post("/v2/models/churn/infer", json={"id": "v2-req-1", "inputs": _v2_inputs(ROWS)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_name"] == "churn"
    assert body["model_version"] == "1"
    assert body["id"] == "v2-req-1"
    assert r.headers["x-request-id"] == "v2-req-1"  # the request's id is its request id
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["predict"]["data"] == expected.argmax(axis=1).tolist()
    _close(np.array(outputs["predict_proba"]["data"]).reshape(3, 2), expected)
    one = client.post(
        "/v2/models/churn/versions/1/infer",
        json={"inputs": _v2_inputs(ROWS[:1]), "outputs": [{"name": "predict"}]},
    ).json()
    assert [o["name"] for o in one["outputs"]] == ["predict"]
    # Binary tensors (what tritonclient sends), binary outputs asked for.
    ages = np.array([r["age"] for r in ROWS], dtype="<i8").tobytes()
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "age",
                    "datatype": "INT64",
                    "shape": [3],
                    "parameters": {"binary_data_size": len(ages)},
                },
                *_v2_inputs(ROWS)[1:],
            ],
            "parameters": {"binary_data_output": True},
        }
    )
    r = client.post(
        "/v2/models/churn/infer",
        content=header + ages,
        headers={
            "inference-header-content-length": str(len(header)),
            "content-type": "application/octet-stream",
        },
    )
    assert r.status_code == 200, r.text
    size = int(r.headers["inference-header-content-length"])
    head = orjson.loads(r.content[:size])
    blobs = r.content[size:]
    sizes = [o["parameters"]["binary_data_size"] for o in head["outputs"]]
    assert sum(sizes) == len(blobs)
    names = [o["name"] for o in head["outputs"]]
    proba_at = sum(sizes[: names.index("predict_proba")])
    proba = np.frombuffer(blobs[proba_at : proba_at + sizes[names.index("predict_proba")]], "<f8")
    _close(proba.reshape(3, 2), expected)


def test_v2_infer_errors_are_v2_problems(client: AppClient) -> None:
    cases = [
        ("/v2/models/other/infer", {"inputs": _v2_inputs(ROWS)}, 404, "unknown_model"),
        ("/v2/models/churn/versions/7/infer", {"inputs": _v2_inputs(ROWS)}, 404, "unknown_version"),
        ("/v2/models/churn/infer", {"inputs": []}, 400, "bad_shape"),
        ("/v2/models/churn/infer", {"inputs": _v2_inputs(ROWS)[:1]}, 422, "validation_failed"),
        (
            "/v2/models/churn/infer",
            {"inputs": _v2_inputs(ROWS), "outputs": [{"name": "nope"}]},
            400,
            "unknown_output",
        ),
    ]
    for path, body, status, code in cases:
        r = client.post(path, json=body)
        assert r.status_code == status, (path, r.text)
        answer = r.json()
        assert answer["code"] == code
        assert isinstance(answer["error"], str)
        assert answer["request_id"] == r.headers["x-request-id"]
    r = client.post("/v2/models/churn/infer", json={"id": "v2-bad", "inputs": _v2_inputs(ROWS)[:1]})
    assert r.json()["request_id"] == r.headers["x-request-id"] == "v2-bad"


# -- feedback, health, metrics, docs, admin ---------------------------------------------------


def test_feedback_stores_reports_and_refuses(client: AppClient) -> None:
    rid = f"fb-{uuid.uuid4().hex[:8]}"
    assert client.post("/predict", json=ROWS[:2], headers={"X-Request-Id": rid}).status_code == 200
    r = client.post("/feedback", json={"request_id": rid, "labels": [1, 0]})
    assert r.status_code == 200, r.text
    assert r.json()["stored"] == 2  # still in this server's log buffer: known
    assert GENERATED_ID.fullmatch(r.headers["x-request-id"])
    again = client.post(
        "/feedback",
        json=[
            {"request_id": rid, "row": 0, "label": 1},
            {"request_id": rid, "row": 1, "label": 1},
            {"request_id": "never-seen", "label": 0},
            {"label": 1},
        ],
    ).json()
    counts = {k: again[k] for k in ("stored", "duplicate", "updated", "unknown", "invalid")}
    assert counts == {"stored": 0, "duplicate": 1, "updated": 1, "unknown": 1, "invalid": 1}
    none = client.post("/feedback", json=[{"label": 1}])
    assert none.status_code == 422
    assert none.json()["invalid"] == 1
    for content, ctype, status, code in (
        (b"{", "application/json", 400, "malformed_json"),
        (b"request_id,label\nx,1\n", "text/csv", 415, "unsupported_media_type"),
    ):
        r = client.post("/feedback", content=content, headers={"content-type": ctype})
        assert r.status_code == status
        assert r.json()["error"] == code
    items = _metric(client, "loopline_feedback_items_total")
    assert items['{status="stored"}'] >= 2
    assert items['{status="invalid"}'] >= 2


def test_health_routes_answer_without_request_ids_or_counts(client: AppClient) -> None:
    before = _requests(client)
    for path in ("/health/live", "/v2/health/live"):
        r = client.get(path)
        assert r.json() == {"live": True}
        assert "x-request-id" not in r.headers
    for path in ("/health/ready", "/ping", "/v2/health/ready"):
        r = client.get(path)
        assert r.status_code == 200
        assert r.json() == {"ready": True, "model": "churn@live", "version": 1}
        assert "x-request-id" not in r.headers
    assert client.get("/openapi.json").status_code == 200
    # Paths no route takes, and methods a route does not take, are Starlette's answers.
    for r, status in (
        (client.get("/nothing/here"), 404),
        (client.get("/predict"), 405),
        (client.delete("/v2/models/churn"), 405),
    ):
        assert r.status_code == status
        assert "x-request-id" not in r.headers
    grown = _grown(before, _requests(client))
    assert grown == {("metrics", "200", "-"): 1.0}  # the first scrape (counted as it answered)


def test_metrics_count_route_status_and_answering_version(client: AppClient) -> None:
    before = _requests(client)
    latency_before = _metric(client, "loopline_request_latency_seconds_count")
    client.post("/predict", json=ROWS)
    client.post("/predict", json=[dict(ROWS[0], age="old")])
    client.post("/invocations", json={"dataframe_records": ROWS})
    client.post("/invocations", json={"nothing": 1})
    client.post("/v2/models/churn/infer", json={"inputs": _v2_inputs(ROWS)})
    # Refused after the model answered: counted with the version that answered.
    client.post(
        "/v2/models/churn/infer", json={"inputs": _v2_inputs(ROWS), "outputs": [{"name": "x"}]}
    )
    client.get("/v2/models/churn")
    client.get("/admin/status")
    client.post("/feedback", json=[{"label": 1}])
    grown = _grown(before, _requests(client))
    assert grown == {
        ("metrics", "200", "-"): 2.0,  # the two scrapes before
        ("predict", "200", "1"): 1.0,
        ("predict", "422", "-"): 1.0,
        ("invocations", "200", "1"): 1.0,
        ("invocations", "400", "-"): 1.0,
        ("v2_infer", "200", "1"): 1.0,
        ("v2_infer", "400", "1"): 1.0,
        ("v2_metadata", "200", "-"): 1.0,
        ("admin", "200", "-"): 1.0,
        ("feedback", "422", "-"): 1.0,
    }
    latency = _grown(latency_before, _metric(client, "loopline_request_latency_seconds_count"))
    assert latency['{route="predict"}'] == 2.0
    assert latency['{route="v2_infer"}'] == 2.0
    failures = _metric(client, "loopline_validation_failures_total")
    assert failures['{route="predict"}'] >= 1


def test_openapi_docs_and_admin(client: AppClient) -> None:
    schema = client.get("/openapi.json").json()
    assert schema["openapi"].startswith("3.")
    assert set(schema["components"]["schemas"]["Record"]["required"]) == set(COLUMNS)
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert docs.headers["content-type"].startswith("text/html")
    assert "/predict" in docs.text
    status = client.get("/admin/status").json()
    assert status["model"] == "churn@live"
    assert status["ready"] is True
    assert status["worker"]["pid"] == os.getpid()
    assert status["traffic"]["primary"]["serving"]["version"] == 1
    assert status["settings"]["max_body_bytes"] == MAX_BODY
    reload = client.post("/admin/reload")
    assert reload.status_code == 200
    assert reload.json()["swapped"] is False
    assert reload.json()["version"] == 1
    assert reload.json()["status"]["model"] == "churn@live"


# -- errors that are bugs, and the arrivals -------------------------------------------------


def _explode(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("boom")


def test_a_bug_is_a_logged_500_problem_in_the_routes_style(
    client: AppClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from loopline.serve import predict_routes, v2

    monkeypatch.setattr(predict_routes, "decode_predict", _explode)
    monkeypatch.setattr(predict_routes, "decode_invocations", _explode)
    monkeypatch.setattr(v2, "to_columns", _explode)
    before = _requests(client)
    with caplog.at_level(logging.ERROR, logger="loopline.serve"):
        r = client.post("/predict", json=ROWS, headers={"X-Request-Id": "bug-1"})
        assert r.status_code == 500
        assert r.json() == {
            "error": "internal_error",
            "message": "The server failed; this is a bug",
            "request_id": "bug-1",
        }
        assert r.headers["x-request-id"] == "bug-1"
        r = client.post("/invocations", json={"instances": ROWS})
        assert r.status_code == 500
        assert r.json()["error_code"] == "INTERNAL_ERROR"
        invocations_id = r.headers["x-request-id"]
        assert r.json()["request_id"] == invocations_id
        r = client.post("/v2/models/churn/infer", json={"id": "bug-v2", "inputs": _v2_inputs(ROWS)})
        assert r.status_code == 500
        assert r.json()["code"] == "internal_error"
        assert r.json()["request_id"] == r.headers["x-request-id"] == "bug-v2"
    failed = [rec for rec in caplog.records if rec.getMessage().endswith("failed")]
    assert [rec.getMessage() for rec in failed] == [
        "request bug-1 on predict failed",
        f"request {invocations_id} on invocations failed",
        "request bug-v2 on v2_infer failed",
    ]
    assert all(rec.exc_info is not None for rec in failed)
    grown = _grown(before, _requests(client))
    assert grown[("predict", "500", "-")] == 1.0
    assert grown[("invocations", "500", "-")] == 1.0
    assert grown[("v2_infer", "500", "-")] == 1.0
    assert client.state.arrivals.pending == 0


def test_batched_routes_count_among_the_arrivals_until_queued_or_answered(
    client: AppClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    arrivals = client.state.arrivals
    events: list[str] = []
    enter, leave = arrivals.enter, arrivals.leave

    def entered() -> None:
        events.append("enter")
        enter()

    def left() -> None:
        events.append("leave")
        leave()

    monkeypatch.setattr(arrivals, "enter", entered)
    monkeypatch.setattr(arrivals, "leave", left)
    batched = [
        client.post("/predict", json=ROWS),  # queued for a model call
        client.post("/predict", content=b"{"),  # refused before
        client.post("/predict", json=[dict(ROWS[0], age="old")]),  # refused at validation
        client.post("/invocations", json={"instances": ROWS}),
        client.post("/v2/models/churn/infer", json={"inputs": _v2_inputs(ROWS)}),
        client.post("/v2/models/churn/infer", content=b"[" + b"1," * MAX_BODY + b"1]"),
    ]
    assert [r.status_code for r in batched] == [200, 400, 422, 200, 200, 413]
    assert events == ["enter", "leave"] * len(batched)
    assert arrivals.pending == 0
    events.clear()
    for r in (
        client.get("/v2/models/churn"),
        client.get("/admin/status"),
        client.post("/feedback", json=[{"label": 1}]),
        client.get("/health/ready"),
    ):
        assert r.status_code in (200, 422)
    assert events == []  # nothing else makes a batcher wait


# -- auth, canary, sticky keys, shadow --------------------------------------------------------


def test_api_keys_and_roles(guarded: AppClient, keys: dict[str, str]) -> None:
    r = guarded.post("/predict", json=ROWS[:1])
    assert r.status_code == 401
    assert r.json()["error"] == "unauthorized"
    assert r.headers["www-authenticate"] == 'Bearer realm="loopline"'
    assert r.json()["request_id"] == r.headers["x-request-id"]
    for header in ("Basic abc", "Bearer ", "Bearer ll_000000000000_" + "x" * 43):
        assert (
            guarded.post("/predict", json=ROWS[:1], headers={"Authorization": header}).status_code
            == 401
        )
    read, predict, admin = (_bearer(keys[k]) for k in ("read", "predict", "admin"))
    forbidden = guarded.post("/predict", json=ROWS[:1], headers=read)
    assert forbidden.status_code == 403
    assert forbidden.json()["error"] == "forbidden"
    mlflow = guarded.post("/invocations", json={"instances": ROWS[:1]})
    assert (mlflow.status_code, mlflow.json()["error_code"]) == (401, "UNAUTHORIZED")
    v2 = guarded.post("/v2/models/churn/infer", json={"inputs": _v2_inputs(ROWS[:1])}, headers=read)
    assert (v2.status_code, v2.json()["code"]) == (403, "forbidden")
    assert guarded.post("/predict", json=ROWS[:1], headers=predict).status_code == 200
    assert guarded.post("/predict", json=ROWS[:1], headers=admin).status_code == 200
    assert guarded.get("/v2/models/churn", headers=read).status_code == 200
    assert guarded.get("/v2").status_code == 401
    assert guarded.get("/metrics").status_code == 401
    assert guarded.get("/metrics", headers=read).status_code == 200
    assert guarded.post("/feedback", json=[{"label": 1}], headers=read).status_code == 403
    assert guarded.get("/admin/status", headers=predict).status_code == 403
    assert guarded.post("/admin/reload", headers=predict).status_code == 403
    assert guarded.get("/admin/status", headers=admin).status_code == 200
    for path in ("/health/live", "/health/ready", "/ping", "/openapi.json", "/docs"):
        assert guarded.get(path).status_code == 200, path  # open with auth on
    assert guarded.get("/openapi.json").json()["components"]["securitySchemes"]


def test_a_revoked_key_works_until_the_next_refresh(
    guarded: AppClient, project: Project, keys: dict[str, str]
) -> None:
    with project.stores() as stores:
        extra = KeyStore(stores.db).create("predict")
    headers = _bearer(extra.secret)
    assert guarded.post("/predict", json=ROWS[:1], headers=headers).status_code == 200
    with project.stores() as stores:
        KeyStore(stores.db).revoke(extra.key.key_id)
    assert guarded.post("/predict", json=ROWS[:1], headers=headers).status_code == 200  # cached
    assert guarded.post("/admin/reload", headers=_bearer(keys["admin"])).status_code == 200
    assert guarded.post("/predict", json=ROWS[:1], headers=headers).status_code == 401


def test_canary_share_sticky_keys_and_shadow(
    guarded: AppClient, project: Project, keys: dict[str, str]
) -> None:
    predict, read = _bearer(keys["predict"]), _bearer(keys["read"])
    shadow_rows = _metric(guarded, "loopline_rows_total", read).get(
        '{role="shadow",version="2"}', 0.0
    )
    roles: dict[str, str] = {}
    for i in range(60):
        r = guarded.post("/predict", json=[dict(ROWS[0], customer=f"c{i}")], headers=predict)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["version"] == {"primary": 1, "canary": 2}[body["role"]]
        assert r.headers["x-served-by"] == body["role"]
        _close(body["probabilities"], project.proba(body["version"], ROWS[:1]))
        roles[f"c{i}"] = body["role"]
    assert set(roles.values()) == {"primary", "canary"}
    for customer in ("c1", "c2", "c3"):  # sticky: the same side every time
        again = guarded.post("/predict", json=[dict(ROWS[0], customer=customer)], headers=predict)
        assert again.json()["role"] == roles[customer]
        header = guarded.post(
            "/predict", json=ROWS[:1], headers={**predict, "X-Sticky-Key": customer}
        )
        assert header.json()["role"] == roles[customer]
    # A V2 route may name a version: no split applies.
    for version in (1, 2):
        r = guarded.post(
            f"/v2/models/churn/versions/{version}/infer",
            json={"inputs": _v2_inputs(ROWS)},
            headers=predict,
        )
        assert r.json()["model_version"] == str(version)
    assert guarded.get("/v2/models/churn", headers=read).json()["versions"] == ["1", "2"]
    # The shadow predicted a copy of every split request (its answers only logged).
    deadline = time.monotonic() + 10
    while True:
        now = _metric(guarded, "loopline_rows_total", read).get('{role="shadow",version="2"}', 0.0)
        if now - shadow_rows >= 66 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert now - shadow_rows == 66
    traffic = guarded.get("/admin/status", headers=_bearer(keys["admin"])).json()["traffic"]
    assert traffic["canary"]["percent"] == 50
    assert traffic["shadow"]["serving"]["version"] == 2


def test_metrics_export_the_served_versions_newest_monitor_values(
    client: AppClient, project: Project
) -> None:
    """/metrics carries loopline_monitor_value for the versions the server answers with
    (v1 here), the newest window of each series, and not a version it does not serve."""
    from datetime import UTC, datetime, timedelta

    from loopline.monitor.tables import series

    now = datetime.now(UTC).replace(microsecond=0)
    rows = []
    for version, metric, feature, value, end in (
        (1, "drift.share", "", 0.25, now - timedelta(minutes=10)),
        (1, "drift.share", "", 0.5, now),  # the newest window of the series
        (1, "feature_drift.score", "age", 0.125, now),
        (2, "drift.share", "", 0.75, now),  # v2 is not served here
    ):
        rows.append(
            {
                "model": "churn",
                "version": version,
                "role": "primary",
                "window_start": end - timedelta(minutes=5),
                "window_end": end,
                "metric": metric,
                "feature": feature,
                "value": value,
                "threshold": None,
                "status": "ok",
                "rows": 100,
                "run_id": f"gauge-test-{version}",
                "computed_at": now,
            }
        )
    with project.stores() as stores:
        stores.db.run_write(lambda conn: conn.execute(series.insert(), rows))
    # The gauges are read at most once a poll interval (here an hour) or every 10 s,
    # whichever is sooner; a reload reads them at the next scrape.
    assert client.post("/admin/reload").status_code == 200
    text = client.get("/metrics").text
    gauges = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("loopline_monitor_value{")
    }
    base = 'model="churn",version="1",role="primary"'
    assert gauges[f'loopline_monitor_value{{{base},metric="drift.share",feature=""}}'] == 0.5
    assert (
        gauges[f'loopline_monitor_value{{{base},metric="feature_drift.score",feature="age"}}']
        == 0.125
    )
    assert not any('version="2"' in name for name in gauges)
    assert f"loopline_monitor_window_end_seconds{{{base}}} {now.timestamp():.3f}" in text
