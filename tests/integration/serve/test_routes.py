"""Every route and protocol of a real server (uvicorn, two SO_REUSEPORT workers), with real
clients: httpx, requests, MLflow's scoring formats, tritonclient's HTTP client."""

from __future__ import annotations

import io
import uuid
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import requests

COLUMNS = ["age", "income", "plan", "active", "region"]
Project = Any
Server = Any

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_predict_records_answers_probabilities_version_and_request_id(
    server: Server, project: Project
) -> None:
    rows = project.rows(5)
    r = httpx.post(server.url + "/predict", json=rows, timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "churn"
    assert body["version"] == 1
    assert r.headers["x-model-version"] == "1"
    assert r.headers["x-request-id"] == body["request_id"]
    assert body["classes"] == [0, 1]
    np.testing.assert_allclose(body["probabilities"], project.expected_proba(1, rows), atol=1e-5)
    assert body["predictions"] == np.argmax(body["probabilities"], axis=1).tolist()


def test_predict_columns_single_record_and_client_request_id(
    server: Server, project: Project
) -> None:
    rows = project.rows(3, start=10)
    columns = {c: [r[c] for r in rows] for c in COLUMNS}
    with requests.Session() as s:
        r = s.post(server.url + "/predict", json=columns, headers={"X-Request-Id": "abc-123"})
        assert r.status_code == 200, r.text
        assert r.json()["request_id"] == "abc-123"
        assert r.headers["X-Request-Id"] == "abc-123"
        np.testing.assert_allclose(
            r.json()["probabilities"], project.expected_proba(1, rows), atol=1e-5
        )
        one = s.post(server.url + "/predict", json=rows[0])
        assert one.status_code == 200
        assert len(one.json()["predictions"]) == 1


def test_predict_csv_and_parquet_bodies(server: Server, project: Project) -> None:
    rows = project.rows(4, start=20)
    frame = pd.DataFrame(rows)[COLUMNS]
    csv = frame.to_csv(index=False)
    r = httpx.post(
        server.url + "/predict", content=csv, headers={"Content-Type": "text/csv"}, timeout=30
    )
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(
        r.json()["probabilities"], project.expected_proba(1, rows), atol=1e-5
    )
    buf = io.BytesIO()
    frame.to_parquet(buf)
    r = httpx.post(
        server.url + "/predict",
        content=buf.getvalue(),
        headers={"Content-Type": "application/vnd.apache.parquet"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(
        r.json()["probabilities"], project.expected_proba(1, rows), atol=1e-5
    )


def test_validation_422_lists_row_column_value_expected(server: Server, project: Project) -> None:
    rows = project.rows(3)
    rows[0]["age"] = "old"  # wrong type
    rows[1]["region"] = "west"  # outside the declared categories
    rows[2]["income"] = None  # null where none is allowed
    del rows[2]["region"]  # missing column
    rows[1]["extra"] = 1  # unknown column
    r = httpx.post(server.url + "/predict", json=rows, timeout=30)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"] == "validation_failed"
    found = {(p["row"], p["column"], p["problem"]) for p in body["problems"]}
    assert (0, "age", "wrong_type") in found
    assert (1, "region", "out_of_domain") in found
    assert (2, "income", "null") in found
    assert (2, "region", "missing_column") in found
    assert (1, "extra", "unknown_column") in found
    for p in body["problems"]:
        assert {"row", "column", "value", "expected"} <= set(p)
    bad = next(p for p in body["problems"] if p["problem"] == "out_of_domain")
    assert bad["value"] == "west"
    assert "'north'" in bad["expected"]


@pytest.mark.parametrize(
    ("content", "ctype", "status", "code"),
    [
        (b"{not json", "application/json", 400, "malformed_json"),
        (b"", "application/json", 400, "malformed_json"),
        (b"[]", "application/json", 400, "empty"),
        (b'"text"', "application/json", 400, "bad_shape"),
        (b'{"age": [1, 2], "plan": "x"}', "application/json", 400, "bad_shape"),
        (b"age,plan\n1", "text/csv", 400, "malformed_csv"),
        (b"age,plan\n1,x", "text/csv", 422, "validation_failed"),
        (b"\x00\x01 not parquet", "application/vnd.apache.parquet", 400, "malformed_parquet"),
        (b"<xml/>", "application/xml", 415, "unsupported_media_type"),
        (b"a=1", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    ],
)
def test_bad_bodies_get_clear_4xx(
    server: Server, content: bytes, ctype: str, status: int, code: str
) -> None:
    r = httpx.post(
        server.url + "/predict", content=content, headers={"Content-Type": ctype}, timeout=30
    )
    assert r.status_code == status, r.text
    assert r.json()["error"] == code
    assert r.json()["message"]


def test_oversized_body_is_413(server: Server) -> None:
    big = b"[" + b"1," * (9 * 1024 * 1024) + b"1]"
    r = httpx.post(
        server.url + "/predict",
        content=big,
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    assert r.status_code == 413
    assert "limit" in r.json()["message"]


def test_mlflow_invocations_formats(server: Server, project: Project) -> None:
    rows = project.rows(3, start=30)
    expected = project.expected_proba(1, rows)
    labels = expected.argmax(axis=1).tolist()
    split = {"columns": COLUMNS, "data": [[r[c] for c in COLUMNS] for r in rows]}
    bodies = [
        {"dataframe_split": split},
        {"dataframe_records": rows},
        {"inputs": {c: [r[c] for r in rows] for c in COLUMNS}},
        {"instances": rows},
    ]
    for body in bodies:
        r = httpx.post(server.url + "/invocations", json=body, timeout=30)
        assert r.status_code == 200, (body, r.text)
        assert r.json() == {"predictions": labels}
    r = httpx.post(
        server.url + "/invocations",
        json={"dataframe_split": split, "params": {"predict_method": "predict_proba"}},
        timeout=30,
    )
    np.testing.assert_allclose(r.json()["predictions"], expected, atol=1e-5)
    csv = pd.DataFrame(rows)[COLUMNS].to_csv(index=False)
    r = httpx.post(
        server.url + "/invocations", content=csv, headers={"Content-Type": "text/csv"}, timeout=30
    )
    assert r.json() == {"predictions": labels}
    r = httpx.post(server.url + "/invocations", json={"nothing": 1}, timeout=30)
    assert r.status_code == 400
    assert r.json()["error_code"] == "BAD_REQUEST"


def test_open_inference_protocol_with_tritonclient(server: Server, project: Project) -> None:
    import tritonclient.http as triton

    client = triton.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    try:
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.is_model_ready("churn")
        meta = client.get_model_metadata("churn")
        assert [i["name"] for i in meta["inputs"]] == COLUMNS
        assert {o["name"] for o in meta["outputs"]} == {"predict", "predict_proba"}
        rows = project.rows(4, start=40)
        inputs = []
        for name, dtype, values in (
            ("age", "INT64", np.array([[r["age"]] for r in rows], dtype=np.int64)),
            ("income", "FP64", np.array([[r["income"]] for r in rows], dtype=np.float64)),
            ("plan", "BYTES", np.array([[r["plan"]] for r in rows], dtype=object)),
            ("active", "BOOL", np.array([[r["active"]] for r in rows], dtype=bool)),
            ("region", "BYTES", np.array([[r["region"]] for r in rows], dtype=object)),
        ):
            tensor = triton.InferInput(name, list(values.shape), dtype)
            tensor.set_data_from_numpy(values)  # binary tensor data, the client's default
            inputs.append(tensor)
        result = client.infer("churn", inputs)
        np.testing.assert_allclose(
            result.as_numpy("predict_proba"), project.expected_proba(1, rows), atol=1e-5
        )
        assert (
            result.as_numpy("predict").tolist()
            == project.expected_proba(1, rows).argmax(axis=1).tolist()
        )
        assert result.get_response()["model_version"] == "1"
        # JSON tensors, outputs asked by name.
        for tensor, values in zip(inputs, [[r[c] for r in rows] for c in COLUMNS], strict=True):
            arr = np.array(
                [[v] for v in values], dtype=object if tensor.datatype() == "BYTES" else None
            )
            tensor.set_data_from_numpy(arr.astype(arr.dtype), binary_data=False)
        out = client.infer(
            "churn", inputs, outputs=[triton.InferRequestedOutput("predict", binary_data=False)]
        )
        assert out.as_numpy("predict").tolist() == result.as_numpy("predict").tolist()
        with pytest.raises(Exception, match="not served"):
            client.get_model_metadata("other")
    finally:
        client.close()


def test_v2_validation_error_is_4xx(server: Server) -> None:
    body = {"inputs": [{"name": "age", "datatype": "INT64", "shape": [1], "data": [3]}]}
    r = httpx.post(server.url + "/v2/models/churn/infer", json=body, timeout=30)
    assert r.status_code == 422
    assert "income" in r.text
    r = httpx.post(
        server.url + "/v2/models/churn/infer",
        json={"inputs": [{"name": "age", "datatype": "FP32", "shape": [2], "data": [1]}]},
        timeout=30,
    )
    assert r.status_code == 400
    r = httpx.post(server.url + "/v2/models/nope/infer", json=body, timeout=30)
    assert r.status_code == 404


def test_health_metrics_and_docs(server: Server) -> None:
    with server.client() as c:
        assert c.get("/health/live").json() == {"live": True}
        ready = c.get("/health/ready")
        assert ready.status_code == 200
        assert ready.json()["version"] == 1
        for _ in range(3):
            c.post("/predict", json={"age": "x"})
        metrics = c.get("/metrics")
        assert metrics.status_code == 200
        text = metrics.text
        for name in (
            "loopline_requests_total",
            "loopline_request_latency_seconds_bucket",
            "loopline_batch_rows_bucket",
            "loopline_rows_total",
            "loopline_validation_failures_total",
            "loopline_model_load_seconds",
            "loopline_queue_depth",
        ):
            assert name in text, name
        assert 'route="predict",status="422"' in text
        schema = c.get("/openapi.json").json()
        assert schema["openapi"].startswith("3.")
        assert set(schema["components"]["schemas"]["Record"]["required"]) == set(COLUMNS)
        docs = c.get("/docs")
        assert docs.status_code == 200
        assert "/predict" in docs.text
        assert c.get("/admin/status").json()["traffic"]["primary"]["serving"]["inference"] == "onnx"


def test_metrics_merge_the_workers(server: Server, project: Project) -> None:
    rows = project.rows(1)
    with server.client() as c:
        before = _count(c.get("/metrics").text)
        for _ in range(40):
            with httpx.Client(base_url=server.url, timeout=30) as fresh:  # new connections
                assert fresh.post("/predict", json=rows).status_code == 200
        after = _count(c.get("/metrics").text)
    assert after - before == 40


def _count(text: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith('loopline_requests_total{route="predict",status="200"'):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_feedback_single_bulk_repeated_unknown(server: Server, project: Project) -> None:
    rows = project.rows(2)
    rid = f"fb-{uuid.uuid4().hex[:8]}"
    with server.client() as c:
        assert c.post("/predict", json=rows, headers={"X-Request-Id": rid}).status_code == 200
        _wait_indexed(project, rid)
        r = c.post("/feedback", json={"request_id": rid, "labels": [1, 0]})
        assert r.status_code == 200, r.text
        assert r.json()["stored"] == 2
        again = c.post(
            "/feedback",
            json=[
                {"request_id": rid, "row": 0, "label": 1},  # the same again
                {"request_id": rid, "row": 1, "label": 1},  # changed
                {"request_id": rid, "row": 5, "label": 1},  # no such row
                {"request_id": "never-seen", "label": 0},
                {"label": 1},
            ],
        )
        assert again.status_code == 200, again.text
        body = again.json()
        assert [i["status"] for i in body["items"]].count("duplicate") == 1
        assert body["updated"] == 1
        assert body["unknown"] == 1
        assert body["invalid"] == 2
        assert c.post("/feedback", json=[{"label": 1}]).status_code == 422
        assert (
            c.post(
                "/feedback", content=b"{", headers={"content-type": "application/json"}
            ).status_code
            == 400
        )
    from loopline.monitor.feedback import FeedbackStore

    with project.stores() as stores:
        labels = FeedbackStore(stores.db).labels(request_ids=[rid])
    assert [(f.row, f.label, f.revisions, f.version) for f in labels] == [
        (0, 1, 0, 1),
        (1, 1, 1, 1),
    ]


def _wait_indexed(project: Project, rid: str, timeout: float = 20.0) -> None:
    import time

    from loopline.monitor.predictions import PredictionIndex

    deadline = time.monotonic() + timeout
    with project.stores() as stores:
        while time.monotonic() < deadline:
            if rid in PredictionIndex(stores.db).lookup([rid]):
                return
            time.sleep(0.2)
    raise AssertionError(f"request {rid} never reached the prediction index")
