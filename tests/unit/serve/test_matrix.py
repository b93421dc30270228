"""The float-matrix path (:mod:`loopline.serve.matrix`): which rows it takes as one matrix
and which it leaves to the validator, which JSON bodies it reads straight into a matrix
(bit for bit what the general path reads) and which it leaves to the general path, and,
through the app, that a model whose inputs are
all floats answers, refuses and logs exactly as on the general path: the same
probabilities whatever the body's form or column order, the same 4xx bodies naming the
bad column, mixed batches, and every row in the prediction log."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from loopline.config import Settings, settings_for
from loopline.monitor.predictions import read_predictions
from loopline.registry import Registry, Signature
from loopline.registry.validation import InputValidator
from loopline.serve.app import ServerApp, create_app
from loopline.serve.batching import Job
from loopline.serve.bodies import decode_invocations, decode_predict
from loopline.serve.matrix import (
    FAST_MIN_BYTES,
    float_matrix,
    json_matrix,
    matrix_result,
    records_matrix,
    takes_floats,
)
from loopline.serve.settings import ServeSettings
from loopline.store.db import migrate
from loopline.store.db.engine import Database
from loopline.store.stores import Stores

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

NAMES = ("f0", "f1", "f2", "f3")


# -- which rows become a matrix -----------------------------------------------------------


def test_numbers_in_lists_or_tuples_become_one_float64_matrix() -> None:
    for rows in ([[1, 2.5, -3, 0.0]], [(1, 2.5, -3, 0.0)], [[0.5, 1, 2, 3]] * 100):
        matrix = float_matrix(rows, 4)
        assert matrix is not None
        assert matrix.dtype == np.float64
        assert matrix.shape == (len(rows), 4)
        assert matrix.flags.c_contiguous
        np.testing.assert_array_equal(matrix, np.asarray(rows, dtype=np.float64))


@pytest.mark.parametrize("n", [1, 100])
@pytest.mark.parametrize(
    "bad",
    [True, False, None, "1.5", [1.0], {"a": 1}, float("inf"), float("nan"), 10**400],
    ids=["true", "false", "null", "text", "list", "object", "inf", "nan", "huge-int"],
)
def test_anything_but_a_finite_number_leaves_the_rows_to_the_validator(n: int, bad: Any) -> None:
    rows: list[list[Any]] = [[0.0, 1.0, 2.0, 3.0] for _ in range(n)]
    rows[n // 2][1] = bad
    assert float_matrix(rows, 4) is None


def test_a_whole_request_of_booleans_is_not_numbers() -> None:
    assert float_matrix([[True, False, True, True]] * 100, 4) is None


def test_rows_of_the_wrong_shape_are_left_to_the_validator() -> None:
    assert float_matrix([], 4) is None
    assert float_matrix([[1.0, 2.0, 3.0]], 4) is None  # too short
    assert float_matrix([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0]], 4) is None  # ragged
    assert float_matrix([{"f0": 1.0}], 4) is None  # not a list
    assert float_matrix([[1.0, 2.0, 3.0, 4.0, 5.0]] * 100, 4) is None  # too long


def test_records_need_exactly_the_signature_columns() -> None:
    matrix = records_matrix([{"f3": 4, "f1": 2.0, "f0": 1.0, "f2": 3.0}], NAMES)
    assert matrix is not None
    np.testing.assert_array_equal(matrix, [[1.0, 2.0, 3.0, 4.0]])
    one = records_matrix([{"x": 2.5}], ("x",))
    assert one is not None
    assert one.tolist() == [[2.5]]
    assert records_matrix([{"f0": 1.0, "f1": 2.0, "f2": 3.0}], NAMES) is None  # missing
    extra = {"f0": 1.0, "f1": 2.0, "f2": 3.0, "f3": 4.0, "f4": 5.0}
    assert records_matrix([extra], NAMES) is None
    renamed = {"f0": 1.0, "f1": 2.0, "f2": 3.0, "g": 4.0}
    assert records_matrix([renamed], NAMES) is None
    assert records_matrix([[1.0, 2.0, 3.0, 4.0]], NAMES) is None
    assert records_matrix([], NAMES) is None


def test_only_signatures_of_plain_floats_take_the_matrix_path() -> None:
    floats = Signature.infer(pd.DataFrame({"a": [1.0, 2.0], "b": [0.5, 1.5]}))
    assert takes_floats(InputValidator(floats))
    assert not takes_floats(InputValidator(floats, check_ranges=True))
    mixed = Signature.infer(pd.DataFrame({"a": [1.0, 2.0], "plan": ["x", "y"]}))
    assert not takes_floats(InputValidator(mixed))
    nullable = Signature.infer(pd.DataFrame({"a": [1.0, None], "b": [0.5, 1.5]}))
    assert not takes_floats(InputValidator(nullable))


# -- rows read straight from the JSON text -----------------------------------------------


def _big_rows(n: int = 200, seed: int = 5) -> list[list[float]]:
    """Rows whose JSON is larger than FAST_MIN_BYTES, with values of every magnitude."""
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(n, 4)) * 10.0 ** rng.integers(-300, 300, size=(n, 4))
    rows: list[list[Any]] = values.tolist()
    rows[0][:4] = [0, -0.0, 5e-324, 1.7976931348623157e308]  # an int, -0, subnormal, max
    rows[1][0] = 9007199254740993  # an int a float64 cannot hold exactly
    return rows


def _json(value: Any) -> bytes:
    import orjson

    return orjson.dumps(value)


def _forms(rows: list[list[Any]]) -> list[tuple[bytes, bool, tuple[str, ...] | None]]:
    """(body, mlflow, names) for every form the fast read takes."""
    return [
        (_json({"dataframe_split": {"columns": list(NAMES), "data": rows}}), True, NAMES),
        (_json({"dataframe_split": {"data": rows, "columns": list(NAMES)}}), True, NAMES),
        (_json({"dataframe_split": {"data": rows}}), True, None),
        (_json({"instances": rows}), True, None),
        (_json({"inputs": rows}), True, None),
        (_json(rows), False, None),
        # pretty-printed, as a client may send it
        (json_module_dumps({"inputs": rows}), True, None),
    ]


def json_module_dumps(value: Any) -> bytes:
    import json

    return json.dumps(value, indent=2).encode()


def test_rows_of_numbers_are_read_from_the_text_bit_for_bit_as_the_general_path() -> None:
    rows = _big_rows()
    expected = np.array(rows, dtype=np.float64)
    for body, mlflow, names in _forms(rows):
        assert len(body) >= FAST_MIN_BYTES
        found = json_matrix(body, mlflow=mlflow)
        assert found is not None, body[:80]
        assert found.names == names
        assert found.matrix.dtype == np.float64
        assert found.matrix.flags.c_contiguous
        assert found.matrix.tobytes() == expected.tobytes()  # -0.0 and the last bit too


def _with_row(row: Any, n: int = 400) -> list[Any]:
    rows: list[Any] = [[0.25, 1.5, -2.0, 3.0] for _ in range(n)]
    rows[n // 2] = row
    return rows


@pytest.mark.parametrize(
    "body",
    [
        _json({"dataframe_split": {"columns": list(NAMES), "data": _big_rows()}, "params": {}}),
        _json({"inputs": _big_rows(), "instances": _big_rows()}),
        b'{"inputs": ' + _json(_big_rows()) + b', "inputs": [[1, 2, 3, 4]]}',
        _json({"dataframe_split": {"columns": list(NAMES), "data": _big_rows(), "index": []}}),
        b'{"dataframe_split": {"data": ' + _json(_big_rows()) + b', "data": [[1, 2, 3, 4]]}}',
        _json({"dataframe_split": {"columns": ["f0", "f1", "f2"], "data": _big_rows()}}),
        _json({"dataframe_split": {"columns": ["f0", "f1", "f2", "f[3]"], "data": _big_rows()}}),
        _json({"dataframe_split": {"columns": ["f0", "f1", "f2", 3], "data": _big_rows()}}),
        _json({"dataframe_split": {"columns": "f0", "data": _big_rows()}}),
        _json({"dataframe_split": [_big_rows()]}),
        _json({"dataframe_split": {"columns": list(NAMES), "data": {"f0": [1.0] * 2000}}}),
        _json({"instances": {"f0": [1.0] * 2000}}),
        _json({"dataframe_records": [dict(zip(NAMES, r, strict=True)) for r in _big_rows()]}),
        _json({"inputs": _with_row([0.25, True, -2.0, 3.0])}),
        _json({"inputs": _with_row([0.25, None, -2.0, 3.0])}),
        _json({"inputs": _with_row([0.25, "1.5", -2.0, 3.0])}),
        _json({"inputs": _with_row([0.25, [1.5], -2.0, 3.0])}),  # nested, same count
        _json({"inputs": _with_row([0.25, {"a": 1}, -2.0, 3.0])}),
        _json({"inputs": _with_row([0.25, 1.5, -2.0])}),  # ragged
        _json({"inputs": _with_row([0.25, 1.5, -2.0, 3.0, 4.0])}),
        _json({"inputs": _with_row({"f0": 1, "f1": 2, "f2": 3, "f3": 4})}),  # an object row
        _json({"inputs": _with_row("abcd")}),  # a text row
        _json({"inputs": _with_row(1.5)}),  # a number among the rows
        _json({"inputs": [[] for _ in range(2000)]}),
        _json({"inputs": [1.5] * 2000}),  # one column's values: the general path's case
        _json({"inputs": _with_row([0.25, 1.5, -2.0, 3.0])}).replace(b"0.25", b"1e400", 1),
        _json({"inputs": _with_row([0.25, 18446744073709551615, -2.0, 3.0])}).replace(
            b"18446744073709551615", b"18446744073709551616"
        ),
        _json({"inputs": _big_rows()})[:-1],  # cut short
        _json({"inputs": _big_rows()}) + b" x",
        _json({"inputs": _big_rows()}).replace(b"[[", b"[[NaN,", 1),
        b'{"inputs": [[1.5, 2.5, 3.5, 4.5]], "x": "\xff' + b"\xff" * 4096 + b'"}',
        b"\xff" + _json({"inputs": _big_rows()}),
    ],
    ids=[
        "params",
        "two-keys",
        "key-twice",
        "index",
        "data-twice",
        "names-too-few",
        "bracket-in-a-name",
        "name-not-text",
        "columns-not-a-list",
        "split-not-an-object",
        "data-an-object",
        "instances-an-object",
        "records",
        "bool",
        "null",
        "text",
        "nested",
        "object-in-a-row",
        "short-row",
        "long-row",
        "object-row",
        "text-row",
        "number-row",
        "empty-rows",
        "scalars",
        "out-of-range",
        "beyond-64-bits",
        "cut-short",
        "trailing",
        "nan",
        "not-utf8",
        "not-utf8-first",
    ],
)
def test_anything_but_plain_rows_of_numbers_is_left_to_the_general_path(body: bytes) -> None:
    assert len(body) >= FAST_MIN_BYTES
    assert json_matrix(body, mlflow=True) is None


def test_the_rows_the_refusals_start_from_are_read_fast() -> None:
    """The bodies above are these, each with one thing changed."""
    plain = _with_row([0.25, 1.5, -2.0, 3.0])
    for body in (_json({"inputs": plain}), _json({"inputs": _big_rows()})):
        found = json_matrix(body, mlflow=True)
        assert found is not None
        assert found.matrix.shape[1] == 4


def test_the_predict_path_reads_only_a_top_level_list_of_lists() -> None:
    rows = _big_rows()
    assert json_matrix(_json({"inputs": rows}), mlflow=False) is None
    assert json_matrix(_json(rows), mlflow=True) is None
    records = [dict(zip(NAMES, r, strict=True)) for r in rows]
    assert json_matrix(_json(records), mlflow=False) is None
    assert json_matrix(_json(_with_row([0.25, [1.5], -2.0, 3.0])), mlflow=False) is None


def test_a_small_body_takes_the_general_path() -> None:
    small = _json({"inputs": [[0.25, 1.5, -2.0, 3.0]] * 4})
    assert len(small) < FAST_MIN_BYTES
    assert json_matrix(small, mlflow=True) is None


def test_a_body_read_fast_falls_back_whole_for_a_model_that_does_not_take_it() -> None:
    """Other names, another width, a model with text inputs, a routing field among the
    columns, and a sticky field's value all get the general path's answer."""
    rows = _big_rows()
    floats = InputValidator(Signature.infer(pd.DataFrame({n: [1.0] for n in NAMES})))
    other = InputValidator(Signature.infer(pd.DataFrame({n: [1.0] for n in "abcd"})))
    texts = InputValidator(
        Signature.infer(pd.DataFrame({"f0": [1.0], "f1": [1.0], "f2": [1.0], "f3": ["x"]}))
    )
    body = _json({"dataframe_split": {"columns": list(NAMES), "data": rows}})
    split = decode_invocations("application/json", body)
    fast = split.validate(floats, frozenset())
    assert fast.ok
    assert fast.matrix.tobytes() == np.array(rows, dtype=np.float64).tobytes()
    # Other column names: the validator names what is missing, as on the general path.
    renamed = split.validate(other, frozenset())
    assert not renamed.ok
    assert {p.column for p in renamed.problems} >= {"a", "b", "c", "d"}
    typed = split.validate(texts, frozenset())
    assert not typed.ok
    assert {p.column for p in typed.problems} == {"f3"}
    # f3 is a routing field, not an input: the general path drops it before validating.
    three = InputValidator(Signature.infer(pd.DataFrame({n: [1.0] for n in NAMES[:3]})))
    routed = split.validate(three, frozenset({"f3"}))
    assert routed.ok
    assert routed.n_rows == len(rows)
    # The sticky value is the text of the value as sent (an int stays an int).
    assert split.sticky("f0") == "0"
    positional = decode_invocations("application/json", _json({"inputs": rows}))
    assert positional.sticky("f0") is None
    assert positional.validate(floats, frozenset()).ok
    wide = InputValidator(Signature.infer(pd.DataFrame({f"x{i}": [1.0] for i in range(5)})))
    assert not positional.validate(wide, frozenset()).ok
    listed = decode_predict("application/json", _json(rows))
    assert listed.validate(floats, frozenset()).ok


# -- through the app ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Any, pd.DataFrame]:
    """``floats`` v1 (alias live): a forest on four float columns."""
    from sklearn.ensemble import RandomForestClassifier

    path = tmp_path_factory.mktemp("serve-matrix")
    settings = settings_for(
        path,
        environ={
            "LOOPLINE_METADATA_URL": f"sqlite:///{path / 'meta.db'}",
            "LOOPLINE_ARTIFACTS_URL": str(path / "artifacts"),
        },
    )
    (path / "artifacts").mkdir()
    with Database(settings.metadata_url, create=True) as db:
        migrate.upgrade(db)
    rng = np.random.default_rng(3)
    X = pd.DataFrame(rng.normal(size=(200, 4)), columns=list(NAMES))
    y = (X["f0"] + X["f2"] > 0).astype(int)
    model = RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0).fit(X, y)
    with Stores.open(settings) as stores:
        reg = Registry(stores)
        reg.register("floats", model, sample=X)
        reg.set_alias("floats", "live", 1)
    return settings, model, X


Call = Callable[[httpx.AsyncClient, ServerApp], Awaitable[Any]]


def _with_app(settings: Settings, call: Call) -> Any:
    async def main() -> Any:
        serve = ServeSettings(poll_interval_s=3600.0, log_flush_s=3600.0)
        app = create_app(settings, serve, model="floats@live")
        state: ServerApp = app.state.loopline
        await state.startup()
        try:
            for _ in range(3000):
                if state.is_ready():
                    break
                assert state.failure is None, state.failure
                await asyncio.sleep(0.02)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://serve") as client:
                return await call(client, state)
        finally:
            await state.shutdown()

    return asyncio.run(main())


def _split(frame: pd.DataFrame) -> dict[str, Any]:
    return {"dataframe_split": {"columns": list(frame.columns), "data": frame.to_numpy().tolist()}}


def test_every_body_form_and_column_order_gives_the_same_probabilities(
    project: tuple[Settings, Any, pd.DataFrame],
) -> None:
    settings, model, X = project
    rows = X.iloc[:7]
    expected = model.predict_proba(rows)
    reordered = rows[["f2", "f0", "f3", "f1"]]  # the validator's general path
    bodies = [
        ("/invocations", _split(rows)),
        ("/invocations", _split(reordered)),
        ("/invocations", {"dataframe_records": rows.to_dict(orient="records")}),
        ("/invocations", {"inputs": rows.to_numpy().tolist()}),
    ]

    async def call(client: httpx.AsyncClient, state: ServerApp) -> list[Any]:
        out = []
        for path, body in bodies:
            r = await client.post(path, params={"method": "predict_proba"}, json=body)
            assert r.status_code == 200, r.text
            assert r.headers["x-model-name"] == "floats"
            assert r.headers["x-model-version"] == "1"
            assert r.headers["x-served-by"] == "primary"
            assert r.headers["content-type"] == "application/json"
            out.append(np.asarray(r.json()["predictions"]))
        r = await client.post("/predict", json=rows.to_dict(orient="records"))
        assert r.status_code == 200, r.text
        out.append(np.asarray(r.json()["probabilities"]))
        return out

    for got in _with_app(settings, call):
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_bad_values_get_the_validators_4xx_naming_the_column(
    project: tuple[Settings, Any, pd.DataFrame],
) -> None:
    settings, _, _ = project
    good = [0.1, 0.2, 0.3, 0.4]
    cases: list[tuple[list[Any], str]] = [
        ([0.1, True, 0.3, 0.4], "f1"),
        ([0.1, 0.2, "high", 0.4], "f2"),
        ([None, 0.2, 0.3, 0.4], "f0"),
        ([0.1, 0.2, 0.3, 10**30], ""),  # a number: valid as a float
    ]

    async def call(client: httpx.AsyncClient, state: ServerApp) -> None:
        for row, column in cases:
            body = {"dataframe_split": {"columns": list(NAMES), "data": [good, row]}}
            r = await client.post("/invocations", json=body)
            if not column:
                assert r.status_code == 200, r.text
                continue
            assert r.status_code == 422, r.text
            problems = r.json()["problems"]
            assert {p["column"] for p in problems} == {column}
            assert problems[0]["row"] == 1
            assert problems[0]["value"] == row[NAMES.index(column)]
            records = [dict(zip(NAMES, good, strict=True)), dict(zip(NAMES, row, strict=True))]
            r = await client.post("/predict", json=records)
            assert r.status_code == 422, r.text
            assert r.json()["problems"][0]["column"] == column
        r = await client.post("/invocations", json={"inputs": [good, good[:3]]})
        assert r.status_code == 422, r.text
        r = await client.post("/predict", json=[{"f0": 0.1, "f1": 0.2, "f2": 0.3}])
        assert r.status_code == 422, r.text
        assert r.json()["problems"][0]["column"] == "f3"

    _with_app(settings, call)


def test_a_batch_mixing_both_paths_answers_and_logs_every_request(
    project: tuple[Settings, Any, pd.DataFrame],
) -> None:
    settings, model, X = project
    frames = [X.iloc[i : i + 1 + i % 3] for i in range(24)]

    async def call(client: httpx.AsyncClient, state: ServerApp) -> tuple[list[Any], list[str]]:
        async def one(i: int, frame: pd.DataFrame) -> tuple[Any, str]:
            body = _split(frame if i % 2 else frame[list(reversed(NAMES))])
            r = await client.post("/invocations", params={"method": "predict_proba"}, json=body)
            assert r.status_code == 200, r.text
            return np.asarray(r.json()["predictions"]), r.headers["x-request-id"]

        answers = await asyncio.gather(*(one(i, f) for i, f in enumerate(frames)))
        # One model call for jobs of both kinds (a matrix, and validated columns).
        served = state.traffic.primary.current
        assert served is not None
        a, b, c = (frames[i][list(NAMES)].to_numpy() for i in (2, 4, 5))
        matrix = float_matrix(a.tolist(), 4)
        assert matrix is not None
        jobs = [
            Job.of(matrix_result(matrix), "mixed-a", time.time(), time.perf_counter()),
            Job.of(
                served.validator.validate_columns(dict(zip(NAMES, b.T, strict=True))),
                "mixed-b",
                time.time(),
                time.perf_counter(),
            ),
            Job.of(
                served.validator.validate_rows(c.tolist()),
                "mixed-c",
                time.time(),
                time.perf_counter(),
            ),
        ]
        assert [j.matrix is not None for j in jobs] == [True, False, False]
        results = served.run_batch(jobs)
        for got, rows in zip(results, (a, b, c), strict=True):
            np.testing.assert_allclose(
                got.outputs.probabilities,
                model.predict_proba(pd.DataFrame(rows, columns=list(NAMES))),
                atol=1e-5,
            )
        return [a for a, _ in answers], [rid for _, rid in answers]

    answers, ids = _with_app(settings, call)
    for frame, got in zip(frames, answers, strict=True):
        np.testing.assert_allclose(got, model.predict_proba(frame), atol=1e-5)
    with Stores.open(settings) as stores:
        table = read_predictions(stores.objects, model="floats").to_pandas()
    for frame, rid in zip(frames, ids, strict=True):
        logged = table[table["request_id"] == rid].sort_values("row")
        inputs = logged[[f"input.{n}" for n in NAMES]].to_numpy()
        np.testing.assert_array_equal(inputs, frame[list(NAMES)].to_numpy())


def test_only_a_post_to_a_prediction_path_takes_the_shortcut(
    project: tuple[Settings, Any, pd.DataFrame],
) -> None:
    settings, _, X = project

    async def call(client: httpx.AsyncClient, state: ServerApp) -> None:
        assert (await client.get("/invocations")).status_code == 405
        assert (await client.put("/predict", json=[])).status_code == 405
        assert (await client.post("/predict/nothing", json=[])).status_code == 404
        r = await client.post("/predict", json=X.iloc[:2].to_dict(orient="records"))
        assert r.status_code == 200, r.text
        assert len(r.json()["predictions"]) == 2
        assert r.headers["x-request-id"] == r.json()["request_id"]
        live = await client.get("/health/live")
        assert live.status_code == 200

    _with_app(settings, call)


def test_large_bodies_read_fast_answer_and_refuse_as_on_the_general_path(
    project: tuple[Settings, Any, pd.DataFrame],
) -> None:
    settings, model, X = project
    rows = X.to_numpy().tolist()
    assert len(_json(rows)) >= FAST_MIN_BYTES
    expected = model.predict_proba(X)
    bodies = [
        ("/invocations", {"dataframe_split": {"columns": list(NAMES), "data": rows}}),
        ("/invocations", {"instances": rows}),
        ("/invocations", {"inputs": rows}),
    ]
    bad = [list(r) for r in rows]
    bad[150][1] = True

    async def call(client: httpx.AsyncClient, state: ServerApp) -> list[Any]:
        out = []
        for path, body in bodies:
            r = await client.post(path, params={"method": "predict_proba"}, json=body)
            assert r.status_code == 200, r.text
            out.append(np.asarray(r.json()["predictions"]))
        r = await client.post("/predict", json=rows)
        assert r.status_code == 200, r.text
        out.append(np.asarray(r.json()["probabilities"]))
        for path, body in (
            ("/invocations", {"dataframe_split": {"columns": list(NAMES), "data": bad}}),
            ("/invocations", {"inputs": bad}),
            ("/predict", bad),
        ):
            r = await client.post(path, json=body)
            assert r.status_code == 422, r.text
            (problem,) = r.json()["problems"]
            assert (problem["row"], problem["column"], problem["value"]) == (150, "f1", True)
        return out

    for got in _with_app(settings, call):
        np.testing.assert_allclose(got, expected, atol=1e-5)
