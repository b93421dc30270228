"""Bad input is a 4xx JSON answer, counted in /metrics, whatever its shape: values nested
hundreds of levels deep, V2 fields of the wrong type, mutated bodies of every route. And a
model that cannot be loaded says so (and why) instead of "still loading"."""

from __future__ import annotations

import asyncio
import copy
import io
import json
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest

from loopline.config import settings_for
from loopline.echo import ECHO_TOTAL, echo
from loopline.registry import Registry, Signature
from loopline.serve import v2
from loopline.serve.bodies import HTTPProblem, decode_invocations
from loopline.store.db import migrate
from loopline.store.db.engine import Database
from loopline.store.stores import Stores

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

COLUMNS = ["age", "income", "plan"]
ROW = {"age": 41, "income": 52.5, "plan": "pro"}
DEPTHS = (300, 600, 5000)


def _nested(depth: int, kind: str) -> str:
    """A JSON value ``depth`` levels deep (written as text: no serialiser nests that far)."""
    if kind == "list":
        return "[" * depth + "1" + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


# -- echoing values ---------------------------------------------------------------------


def test_echo_cuts_depth_items_and_size() -> None:
    deep: Any = 1
    for _ in range(2000):
        deep = [deep]
    assert echo(deep) == [[["[...]"]]]
    assert echo({"a": {"b": {"c": {"d": 1}}}}) == {"a": {"b": {"c": "{...}"}}}
    assert echo(list(range(100))) == [0, 1, 2, 3, 4, "..."]
    assert echo(dict.fromkeys("abcdefg", 1))["..."] == "2 more"
    assert len(echo("x" * 10_000)) == 200
    huge = [["y" * 10_000] * 5] * 5
    assert len(orjson.dumps(echo(huge))) < ECHO_TOTAL * 2
    assert echo(2**80) == str(2**80)  # JSON writers refuse integers beyond 64 bits
    assert echo(float("nan")) == "nan"
    assert echo(np.int64(3)) == 3
    assert echo(np.arange(10)) == [0, 1, 2, 3, 4, "..."]
    orjson.dumps(echo({"k": [np.float32(1.5), b"\xff", object()]}))


def test_a_deep_value_in_an_mlflow_field_is_a_400() -> None:
    body = '{"dataframe_records": [{"age": 1}], "params": {"predict_method": %s}}'
    decoded = decode_invocations("application/json", (body % _nested(900, "list")).encode())
    assert isinstance(decoded.params["predict_method"], list)  # refused by the route: 400


# -- V2 requests ------------------------------------------------------------------------

SIGNATURE = Signature.infer(
    pd.DataFrame({"age": [30, 40], "income": [1.0, 2.0], "plan": ["basic", "pro"]})
)
VALID_V2: dict[str, Any] = {
    "id": "q1",
    "parameters": {"binary_data_output": False},
    "inputs": [
        {"name": "age", "datatype": "INT64", "shape": [1], "data": [41]},
        {"name": "income", "datatype": "FP64", "shape": [1, 1], "data": [[52.5]]},
        {
            "name": "plan",
            "datatype": "BYTES",
            "shape": [1],
            "data": ["pro"],
            "parameters": {},
        },
    ],
    "outputs": [{"name": "predict", "parameters": {"binary_data": False}}],
}
V2_FIELDS: list[tuple[Any, ...]] = [
    ("id",),
    ("parameters",),
    ("parameters", "binary_data_output"),
    ("inputs",),
    ("inputs", 0),
    ("inputs", 0, "name"),
    ("inputs", 0, "datatype"),
    ("inputs", 0, "shape"),
    ("inputs", 0, "shape", 0),
    ("inputs", 0, "data"),
    ("inputs", 0, "data", 0),
    ("inputs", 2, "data", 0),
    ("inputs", 2, "parameters"),
    ("inputs", 2, "parameters", "binary_data_size"),
    ("outputs",),
    ("outputs", 0),
    ("outputs", 0, "name"),
    ("outputs", 0, "parameters"),
    ("outputs", 0, "parameters", "binary_data"),
]
BAD_VALUES: list[Any] = [
    {},
    [],
    [[]],
    ["INT64"],
    {"INT64": 1},
    "",
    "x",
    -1,
    0,
    1.5,
    2**70,
    1e300,
    True,
    None,
    [1] * 40,
    "DEEP_LIST",
    "DEEP_DICT",
]


def _mutated(path: tuple[Any, ...], value: Any) -> bytes:
    body = copy.deepcopy(VALID_V2)
    target: Any = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    text = json.dumps(body)  # the standard library writes integers of any size
    if value in ("DEEP_LIST", "DEEP_DICT"):
        text = text.replace(f'"{value}"', _nested(600, "list" if value == "DEEP_LIST" else "d"))
    return text.encode()


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()  # the standard library writes integers of any size


def _v2_outcome(body: bytes, header_length: str | None = None) -> int:
    """200 when the request decodes to columns, else the status of its HTTPProblem."""
    try:
        request = v2.parse_infer(body, header_length)
        v2.to_columns(request, SIGNATURE)
        v2.output_tensors(np.array([1]), np.array([[0.3, 0.7]]), "INT64", request.outputs)
    except HTTPProblem as problem:
        orjson.dumps(problem.message)
        return problem.status
    return 200


def test_the_valid_v2_request_decodes() -> None:
    assert _v2_outcome(json.dumps(VALID_V2).encode()) == 200


@pytest.mark.parametrize("value", [{}, ["INT64"], 5, None, "int64"])
def test_a_v2_datatype_that_is_not_a_known_string_is_a_400_naming_it(value: Any) -> None:
    with pytest.raises(HTTPProblem) as info:
        v2.parse_infer(_mutated(("inputs", 0, "datatype"), value), None)
    assert info.value.status == 400
    assert "'age': datatype" in info.value.message


@pytest.mark.parametrize("path", V2_FIELDS, ids=lambda p: ".".join(map(str, p)))
def test_no_malformed_v2_field_escapes_as_anything_but_a_4xx(path: tuple[Any, ...]) -> None:
    for value in BAD_VALUES:
        status = _v2_outcome(_mutated(path, value))
        assert status == 200 or 400 <= status < 500, (path, value)


def test_malformed_v2_binary_sizes_are_400s() -> None:
    raw = np.array([41], dtype="<i8").tobytes()
    for size in (-1, 9, 7, True, "8", 1.5, [8], 10**30):
        head = _json(
            {
                "inputs": [
                    {
                        "name": "age",
                        "datatype": "INT64",
                        "shape": [1],
                        "parameters": {"binary_data_size": size},
                    }
                ]
            }
        )
        assert _v2_outcome(head + raw, str(len(head))) == 400, size
    head = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "age",
                    "datatype": "INT64",
                    "shape": [1],
                    "parameters": {"binary_data_size": 8},
                }
            ]
        }
    )
    assert _v2_outcome(head + raw, str(len(head))) == 200
    assert _v2_outcome(head + raw + b"extra", str(len(head))) == 400
    for length in ("-1", "x", str(len(head) + 100), "1"):
        assert _v2_outcome(head + raw, length) == 400


def test_v2_values_are_never_truncated_or_wrapped() -> None:
    for datatype, value in (
        ("INT64", 1.5),
        ("INT8", 300),
        ("UINT8", -1),
        ("INT64", 2**70),
        ("FP16", 1e10),
        ("BOOL", 1),
        ("BYTES", 5),
    ):
        body = {"inputs": [{"name": "age", "datatype": datatype, "shape": [1], "data": [value]}]}
        assert _v2_outcome(json.dumps(body).encode()) == 400, (datatype, value)
    ok = {"inputs": [{"name": "age", "datatype": "INT64", "shape": [1], "data": [3.0]}]}
    request = v2.parse_infer(json.dumps(ok).encode(), None)
    assert request.inputs[0].array.tolist() == [3]


# -- a real app, in process ---------------------------------------------------------------


def _frame(n: int = 120) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(3)
    X = pd.DataFrame(
        {
            "age": rng.integers(18, 80, n),
            "income": rng.normal(50.0, 10.0, n),
            "plan": rng.choice(["basic", "plus", "pro"], n),
        }
    )
    return X, pd.Series((X["income"] > 50).astype(int))


def _model(X: pd.DataFrame, y: pd.Series, c: float) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    pre = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), ["plan"])], remainder="passthrough"
    )
    return Pipeline([("pre", pre), ("clf", LogisticRegression(C=c, max_iter=300))]).fit(X, y)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``churn`` v1 (intact, alias live) and v2 (its model file tampered with)."""
    path = tmp_path_factory.mktemp("serve-bad-input")
    (path / "artifacts").mkdir()
    settings = _settings(path)
    with Database(settings.metadata_url, create=True) as db:
        migrate.upgrade(db)
    X, y = _frame()
    with Stores.open(settings) as stores:
        reg = Registry(stores)
        reg.register("churn", _model(X, y, 1.0), sample=X)
        reg.register("churn", _model(X, y, 0.1), sample=X)
        reg.set_alias("churn", "live", 1)
        digest = reg.manifest("churn/2").files["model.skops"].sha256
        key = stores.cas.key_for(digest)
        data = bytearray(stores.objects.get(key))
        data[len(data) // 2] ^= 0x01
        stores.objects.put(key, bytes(data))
    return path


def _settings(path: Path) -> Any:
    return settings_for(
        path,
        environ={
            "LOOPLINE_METADATA_URL": f"sqlite:///{path / 'meta.db'}",
            "LOOPLINE_ARTIFACTS_URL": str(path / "artifacts"),
        },
    )


Client = httpx.AsyncClient


def _serve(
    project: Path,
    model: str,
    body: Callable[[Client, Any], Awaitable[None]],
    *,
    ready: bool = True,
    stop_server: Callable[[], None] | None = None,
) -> None:
    from loopline.serve.app import create_app
    from loopline.serve.settings import ServeSettings

    serve = ServeSettings(log_predictions=False, poll_interval_s=3600.0)
    app = create_app(_settings(project), serve, model=model)
    state = app.state.loopline
    state.stop_server = stop_server

    async def main() -> None:
        async with state.lifespan(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://serve") as client:
                for _ in range(400):  # the model loads in the background
                    if state.traffic.primary.current is not None or state.failure is not None:
                        break
                    await asyncio.sleep(0.05)
                if ready:
                    assert (await client.get("/health/ready")).status_code == 200
                await body(client, state)

    asyncio.run(main())


def _requests_counted(text: str, route: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("loopline_requests_total{") and f'route="{route}"' in line:
            status = line.split('status="', 1)[1].split('"', 1)[0]
            out[status] = out.get(status, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def _deep_bodies() -> Iterator[tuple[str, str, bytes, str]]:
    """(route, content type, body, what) with a value nested deep in some field."""
    for depth in DEPTHS:
        for kind in ("list", "dict"):
            deep = _nested(depth, kind)
            row = '{"age": ' + deep + ', "income": 1.0, "plan": "pro"}'
            what = f"{kind} {depth}"
            yield "/predict", "application/json", f"[{row}]".encode(), what
            yield "/predict", "application/json", f'{{"age": [{deep}]}}'.encode(), what
            yield (
                "/invocations",
                "application/json",
                f'{{"dataframe_records": [{row}]}}'.encode(),
                what,
            )
            yield (
                "/invocations",
                "application/json",
                f'{{"inputs": {{"age": [{deep}]}}}}'.encode(),
                what,
            )
            params = '{"predict_method": ' + deep + "}"
            records = f'{{"dataframe_records": [{row}], "params": {params}}}'
            yield "/invocations", "application/json", records.encode(), what
            for field in ("data", "datatype", "shape", "name", "parameters"):
                tensor = {"name": "age", "datatype": "INT64", "shape": [1], "data": [1]}
                text = json.dumps({"id": "x", "inputs": [{**tensor, field: "DEEP"}]})
                yield (
                    "/v2/models/churn/infer",
                    "application/json",
                    text.replace('"DEEP"', deep).encode(),
                    f"{what} in {field}",
                )
            v2_body = json.dumps(VALID_V2).replace('"q1"', deep)
            yield "/v2/models/churn/infer", "application/json", v2_body.encode(), f"{what} id"


def _deep_parquet() -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    deep: Any = 1
    for _ in range(40):  # Parquet readers refuse schemas nested much deeper
        deep = [deep]
    table = pa.table({"age": pa.array([deep]), "income": [1.0], "plan": ["pro"]})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def test_deeply_nested_values_are_4xx_json_and_counted(project: Path) -> None:
    async def body(client: Client, state: Any) -> None:
        sent: dict[str, int] = {}
        cases = list(_deep_bodies())
        cases.append(("/predict", "application/vnd.apache.parquet", _deep_parquet(), "parquet 40"))
        for route, ctype, content, what in cases:
            r = await client.post(route, content=content, headers={"content-type": ctype})
            assert 400 <= r.status_code < 500, (route, what, r.status_code, r.text[:300])
            assert r.headers["content-type"] == "application/json", (route, what)
            assert r.json()["request_id"] == r.headers["x-request-id"]
            assert len(r.content) < 20_000, (route, what)
            name = {"/predict": "predict", "/invocations": "invocations"}.get(route, "v2_infer")
            sent[name] = sent.get(name, 0) + 1
        text = (await client.get("/metrics")).text
        for name, count in sent.items():
            counted = _requests_counted(text, name)
            assert sum(counted.values()) == count, (name, counted)
            assert all(400 <= int(status) < 500 for status in counted), (name, counted)

    _serve(project, "churn@live", body)


MUTATIONS: list[Any] = [
    None,
    True,
    -1,
    1e300,
    2**70,
    "",
    "x" * 300,
    [],
    {},
    [None],
    [[]],
    [{}],
    {"a": []},
    [[1, 2], [3]],
]


def _predict_bodies() -> Iterator[tuple[str, bytes]]:
    row = dict(ROW)
    for value in MUTATIONS:
        for column in COLUMNS:
            yield "/predict", json.dumps([{**row, column: value}]).encode()
            yield "/predict", json.dumps({**{c: [row[c]] for c in COLUMNS}, column: value}).encode()
            records = [{**row, column: value}]
            yield "/invocations", json.dumps({"dataframe_records": records}).encode()
        yield "/predict", json.dumps(value).encode()
        yield "/predict", json.dumps([value]).encode()
        yield "/invocations", json.dumps(value).encode()
        for key in ("dataframe_split", "dataframe_records", "inputs", "instances", "params"):
            other = "inputs" if key != "inputs" else "instances"
            payload = {key: value} if key != "params" else {other: [row], key: value}
            yield "/invocations", json.dumps(payload).encode()
        split = {"columns": COLUMNS, "data": [[row[c] for c in COLUMNS]]}
        for key in ("columns", "data", "index"):
            yield "/invocations", json.dumps({"dataframe_split": {**split, key: value}}).encode()
        yield "/feedback", json.dumps({"request_id": value, "label": 1}).encode()
        yield "/feedback", json.dumps({"request_id": "r", "label": value, "row": value}).encode()
        yield "/feedback", json.dumps(value).encode()


def test_mutated_bodies_never_get_a_server_error(project: Path) -> None:
    async def body(client: Client, state: Any) -> None:
        for route, content in _predict_bodies():
            r = await client.post(
                route, content=content, headers={"content-type": "application/json"}
            )
            assert r.status_code < 500, (route, content[:200], r.text[:300])
            assert r.headers["content-type"] == "application/json"
        for path, value in ((p, v) for p in V2_FIELDS for v in BAD_VALUES):
            r = await client.post("/v2/models/churn/infer", content=_mutated(path, value))
            assert r.status_code < 500, (path, value, r.text[:300])
        text = (await client.get("/metrics")).text
        assert not any(s.startswith("5") for s in _requests_counted(text, "predict"))

    _serve(project, "churn@live", body)


def test_a_model_that_cannot_load_says_why_and_stops_the_server(project: Path) -> None:
    stopped: list[bool] = []

    async def body(client: Client, state: Any) -> None:
        from loopline.registry.errors import PackageIntegrityError

        assert isinstance(state.failure, PackageIntegrityError)
        r = await client.post("/predict", json=[ROW])
        assert r.status_code == 503
        assert r.json()["error"] == "load_failed"
        assert "model.skops" in r.json()["message"]
        assert "still loading" not in r.json()["message"]
        assert "retry-after" not in r.headers  # retrying would not help
        ready = await client.get("/health/ready")
        assert ready.status_code == 503
        assert "model.skops" in ready.json()["error"]
        r = await client.post("/v2/models/churn/infer", content=json.dumps(VALID_V2).encode())
        assert r.status_code == 503
        assert r.json()["code"] == "load_failed"

    _serve(project, "churn/2", body, ready=False, stop_server=lambda: stopped.append(True))
    assert stopped == [True]


def test_a_failed_hot_swap_keeps_serving_the_loaded_version(project: Path) -> None:
    async def body(client: Client, state: Any) -> None:
        with Stores.open(_settings(project)) as stores:
            Registry(stores).set_alias("churn", "swap", 2)  # the tampered version
        try:
            result = await state.refresh()
        finally:
            with Stores.open(_settings(project)) as stores:
                Registry(stores).set_alias("churn", "swap", 1)
        assert result["swapped"] is False
        assert result["version"] == 1
        assert "model.skops" in state.traffic.primary.last_error
        assert state.failure is None
        r = await client.post("/predict", json=[ROW])
        assert r.status_code == 200
        assert r.json()["version"] == 1
        assert (await client.get("/health/ready")).status_code == 200

    with Stores.open(_settings(project)) as stores:
        Registry(stores).set_alias("churn", "swap", 1)
    _serve(project, "churn@swap", body)


def test_run_worker_raises_when_the_first_load_fails(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loopline.cli.main import exit_code_for
    from loopline.serve.errors import ServeError
    from loopline.serve.server import ServeTarget, run_worker
    from loopline.serve.settings import ServeSettings

    def load(self: Registry, ref: Any) -> Any:
        raise ValueError("not a model file")

    monkeypatch.setattr(Registry, "load", load)
    serve = ServeSettings(port=0, log_predictions=False, poll_interval_s=3600.0)
    with pytest.raises(ServeError) as info:
        run_worker(
            _settings(project),
            serve,
            ServeTarget("churn@live"),
            index=0,
            count=1,
            run_dir=None,
            supervisor_pid=None,
        )
    assert "Cannot load churn@live: ValueError: not a model file" in str(info.value)
    assert exit_code_for(info.value) == 1


def _parquet_with_duplicate_columns() -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["age", "age"])
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def test_odd_tables_and_paths_are_4xx_json(project: Path) -> None:
    csv, parquet = "text/csv", "application/vnd.apache.parquet"
    cases = [
        ("/predict", csv, b"age,age,income,plan\n1,2,1.0,pro\n", "duplicate_column"),
        ("/invocations", csv, b"age,age,income,plan\n1,2,1.0,pro\n", None),
        ("/predict", csv, b"\xff\xfe,\n\x00,\n", "malformed_csv"),
        ("/invocations", csv, b"\xff\xfe,\n\x00,\n", None),
        ("/predict", parquet, _parquet_with_duplicate_columns(), None),
        # An unclosed quote would make the rest of the body one value: refused, not eaten.
        ("/predict", csv, b'age,income,plan\n1,"2.0,pro\n3,4.0,pro\n', "malformed_csv"),
    ]

    async def body(client: Client, state: Any) -> None:
        for route, ctype, content, code in cases:
            r = await client.post(route, content=content, headers={"content-type": ctype})
            assert r.status_code == 400, (route, content, r.text)
            assert r.headers["content-type"] == "application/json"
            if code is not None:
                assert r.json()["error"] == code
        for path in ("/v2/models/churn/versions/%C2%B2/ready", "/v2/models/churn/versions/%C2%B2"):
            r = await client.get(path)
            assert r.status_code == 404, (path, r.text)
            assert r.json()["code"] == "unknown_version"

    _serve(project, "churn@live", body)
