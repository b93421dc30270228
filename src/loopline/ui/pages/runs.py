"""Runs: the paged, sortable, filterable table; one run; runs side by side; artifacts.

The table never loads every run: the tracker counts the matches and returns one page,
sorted and filtered in SQL (the filter syntax of ``loopline runs ls``), read as listings
in one statement (:mod:`loopline.tracking.listing`), the path ``loopline runs ls`` takes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from loopline.ui import charts
from loopline.ui.errors import PageArgumentError, PageNotFoundError
from loopline.ui.query import integer, text, texts
from loopline.ui.render import Page

if TYPE_CHECKING:
    from starlette.responses import Response

    from loopline.tracking import RunRecord
    from loopline.tracking.listing import ListedRun
    from loopline.ui.app import Call

PER_PAGE = 100
MAX_PER_PAGE = 1000
#: Runs that ``compare`` takes at most.
MAX_COMPARED = 10
#: Child runs listed on a run's page.
MAX_CHILDREN = 200
#: Metric charts on a run's page (metrics logged at more than one step).
MAX_CHARTS = 40
_DEFAULT_METRICS = 4
_DEFAULT_PARAMS = 3
_PREVIEW_ROWS = 20
_PREVIEW_BYTES = 64 * 1024
_TEXT_SUFFIXES = (".txt", ".json", ".csv", ".md", ".log", ".yaml", ".yml", ".toml", ".py")


def run_row(r: ListedRun) -> dict[str, Any]:
    """A run as a row of the table (and of its JSON twin): everything it logged, latest
    value of each metric."""
    from loopline.tracking.listing import duration

    end = r["end_time"]
    return {
        "id": r["id"],
        "name": r["name"],
        "experiment": r["experiment"],
        "status": r["status"],
        "parent_id": r["parent_id"],
        "start_time": r["start_time"].isoformat(),
        "end_time": None if end is None else end.isoformat(),
        "duration_s": duration(r),
        "params": r["params"],
        "metrics": r["metrics"],
        "tags": r["tags"],
        "datasets": [f"{i['name']}@{i['version']}" for i in r["inputs"] if i["kind"] == "dataset"],
    }


def runs_page(call: Call) -> Page:
    from loopline.tracking.errors import InvalidRunFilterError
    from loopline.tracking.search import parse_filter, parse_sort

    q = call.query
    tracker = call.ui.tracker
    experiment = text(q, "experiment")
    statuses = [s for s in q.getlist("status") if s]
    filters = texts(q, "filter")
    sort = text(q, "sort")
    page = integer(q, "page", 1, low=1, high=10**7)
    per_page = integer(q, "per_page", PER_PAGE, low=1, high=MAX_PER_PAGE)
    chosen = [c for value in q.getlist("col") for c in value.split(",") if c.strip()]
    error = None
    named: list[str] = []
    try:
        named = [str(parse_filter(f).field) for f in filters]
        if sort:
            named.append(str(parse_sort(sort).field))
    except InvalidRunFilterError as exc:
        error = str(exc)
    keys = call.ui.run_keys(experiment)
    total, rows = 0, []
    if error is None:
        args: dict[str, Any] = {
            "experiment": experiment,
            "filters": filters,
            "status": statuses or None,
        }
        total = tracker.count_runs(**args)
        listed = tracker.list_runs(
            **args, order_by=[sort] if sort else [], limit=per_page, offset=(page - 1) * per_page
        )
        rows = [run_row(r) for r in listed]
    columns = chosen or _default_columns(named, keys)
    data = {
        "runs": rows,
        "total": total,
        "page": page,
        "per_page": per_page,
        "pages": max(1, math.ceil(total / per_page)),
        "experiment": experiment,
        "status": statuses,
        "filters": filters,
        "sort": sort,
        "columns": columns,
        "available": keys,
        "experiments": tracker.experiments(),
        "error": error,
    }
    sort_field = (sort or "").lstrip("-+").removesuffix(" desc").removesuffix(" asc")
    descending = bool(sort) and (sort or "").startswith("-")
    extra = {"sort_field": sort_field, "descending": descending}
    return Page("runs.html", data, title="Runs", status=400 if error else 200, extra=extra)


def _default_columns(named: Sequence[str], keys: dict[str, list[str]]) -> list[str]:
    """Columns when none are chosen: those the filters and sort name, a few metrics, a few
    params."""
    out = [f for f in named if f.startswith(("params.", "metrics.", "tags."))]
    out += [f"metrics.{k}" for k in keys["metrics"][:_DEFAULT_METRICS]]
    out += [f"params.{k}" for k in keys["params"][:_DEFAULT_PARAMS]]
    return list(dict.fromkeys(out))


def run_page(call: Call) -> Page:
    ui = call.ui
    tracker = ui.tracker
    record = tracker.get_run(call.arg("run_id"))
    children = tracker.search_runs(parent_id=record.id, limit=MAX_CHILDREN)
    parent = None
    if record.parent_id is not None:
        p = tracker.get_run(record.parent_id)
        parent = {"id": p.id, "name": p.name, "status": p.status}
    produced = ui.registry.versions_by_run([record.id, *(c.id for c in children)])
    histories = tracker.metric_histories([record.id])[record.id]
    curves = {
        key: [[p.step, p.value] for p in pts]
        for key, pts in sorted(histories.items())
        if len(pts) > 1
    }
    data = record.as_dict()
    data["artifacts"] = [{**a, "preview": _preview_kind(a["name"])} for a in data["artifacts"]]
    data.update(
        parent=parent,
        children=[
            {
                "id": c.id,
                "name": c.name,
                "status": c.status,
                "duration_s": c.duration,
                "metrics": dict(c.metrics),
            }
            for c in children
        ],
        models=[
            {"name": mv.name, "version": mv.version, "aliases": list(mv.aliases), "run": mv.run_id}
            for mv in produced
        ],
        traceback=_traceback(call, record, children),
        curves=curves,
    )
    figures = [
        charts.figure(
            [charts.line(key, [p[0] for p in pts], [p[1] for p in pts])],
            title=key,
            x_title="step",
            height=240,
        )
        for key, pts in list(curves.items())[:MAX_CHARTS]
    ]
    title = f"Run {record.name or record.id[:12]}"
    return Page("run.html", data, title=title, extra={"figures": figures})


def _preview_kind(name: str) -> str | None:
    lower = name.lower()
    if lower.endswith((".parquet", ".pq")):
        return "table"
    if lower.endswith((".html", ".htm")):
        return "html"
    if lower.endswith(_TEXT_SUFFIXES):
        return "text"
    return None


def _traceback(call: Call, record: RunRecord, children: Sequence[RunRecord]) -> str | None:
    """The traceback a failed run kept (a pipeline step's), or that of its failed child."""
    from loopline.pipeline.executors import TRACEBACK_ARTIFACT

    for run in (record, *sorted(children, key=lambda c: c.start_time, reverse=True)):
        if run.status != "failed":
            continue
        if run is not record:
            run = call.ui.tracker.get_run(run.id)
        for artifact in run.artifacts:
            if artifact.name == TRACEBACK_ARTIFACT:
                data: bytes = call.ui.stores.cas.get(artifact.digest)
                return data.decode("utf-8", "replace")
    return None


def _artifact(call: Call) -> tuple[RunRecord, str, bytes]:
    record = call.ui.tracker.get_run(call.arg("run_id"))
    name = call.arg("name")
    found = {a.name: a for a in record.artifacts}
    if name not in found:
        raise PageNotFoundError(f"Run {record.id[:12]} has no artifact {name!r}")
    data: bytes = call.ui.stores.cas.get(found[name].digest)
    return record, name, data


def artifact_file(call: Call) -> Response:
    """The artifact's bytes (verified against their sha256): a download, or with
    ``?inline=1`` an HTML report shown in a frame, sandboxed (no scripts, no cookies)."""
    import mimetypes
    from urllib.parse import quote

    from starlette.responses import Response

    _, name, data = _artifact(call)
    base = name.rsplit("/", 1)[-1]
    if call.query.get("inline") == "1" and _preview_kind(name) == "html":
        return Response(
            data,
            media_type="text/html",
            headers={
                "content-security-policy": "sandbox; default-src 'none'; style-src "
                "'unsafe-inline'; img-src data:"
            },
        )
    media = mimetypes.guess_type(base)[0] or "application/octet-stream"
    headers = {"content-disposition": f"attachment; filename*=UTF-8''{quote(base)}"}
    return Response(data, media_type=media, headers=headers)


def artifact_page(call: Call) -> Page:
    """A look inside an artifact: the first rows of a Parquet file, the start of a text
    file, an HTML report in a sandboxed frame."""
    record, name, data = _artifact(call)
    kind = _preview_kind(name)
    out: dict[str, Any] = {
        "run": {"id": record.id, "name": record.name},
        "name": name,
        "size": len(data),
        "kind": kind,
    }
    if kind == "table":
        out.update(_parquet_head(data))
    elif kind == "text":
        out["text"] = data[:_PREVIEW_BYTES].decode("utf-8", "replace")
        out["truncated"] = len(data) > _PREVIEW_BYTES
    elif kind is None:
        raise PageArgumentError(
            f"No preview for {name!r}: download it instead", argument="name", value=name
        )
    return Page("artifact.html", out, title=f"{name} of run {record.name or record.id[:12]}")


def _parquet_head(data: bytes) -> dict[str, Any]:
    import io

    import pyarrow.parquet as pq

    file = pq.ParquetFile(io.BytesIO(data))
    head = next(file.iter_batches(batch_size=_PREVIEW_ROWS), None)
    columns = [f.name for f in file.schema_arrow]
    rows: list[list[Any]] = []
    if head is not None:
        for item in head.to_pylist():
            rows.append([_cell(item.get(c)) for c in columns])
    return {
        "columns": columns,
        "types": [str(f.type) for f in file.schema_arrow],
        "rows": rows,
        "total_rows": file.metadata.num_rows,
    }


def _cell(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def compare_page(call: Call) -> Page:
    ids = [i for value in texts(call.query, "run") for i in value.split(",") if i.strip()]
    tracker = call.ui.tracker
    records: list[RunRecord] = []
    for run_id in ids:
        record = tracker.get_run(run_id.strip())
        if all(record.id != r.id for r in records):
            records.append(record)
    if not 2 <= len(records) <= MAX_COMPARED:
        raise PageArgumentError(
            f"Compare needs 2 to {MAX_COMPARED} different runs, not {len(records)}: tick them "
            "in the runs table",
            argument="run",
        )
    histories = tracker.metric_histories([r.id for r in records])
    keys = sorted({k for h in histories.values() for k, pts in h.items() if len(pts) > 1})
    curves = {
        key: {r.id: [[p.step, p.value] for p in histories[r.id].get(key, [])] for r in records}
        for key in keys
    }
    runs = [
        {"id": r.id, "name": r.name, "experiment": r.experiment, "status": r.status}
        for r in records
    ]
    label = {r.id: r.name or r.id[:8] for r in records}
    figures = [
        charts.figure(
            [
                charts.line(label[run_id], [p[0] for p in pts], [p[1] for p in pts])
                for run_id, pts in by_run.items()
                if pts
            ],
            title=key,
            x_title="step",
            height=260,
            legend=True,
        )
        for key, by_run in list(curves.items())[:MAX_CHARTS]
    ]
    data = {"runs": runs, "rows": compare_rows(records), "curves": curves}
    return Page("compare.html", data, title="Compare runs", extra={"figures": figures})


def compare_rows(records: Sequence[RunRecord]) -> list[dict[str, Any]]:
    """Attributes, then params, then latest metrics: each with every run's value (None
    where a run lacks it) and whether they differ."""
    rows: list[dict[str, Any]] = []

    def add(name: str, values: list[Any]) -> None:
        differs = any(not _same(values[0], v) for v in values[1:])
        rows.append({"field": name, "values": values, "differs": differs})

    add("experiment", [r.experiment for r in records])
    add("status", [r.status for r in records])
    add("git_commit", [r.git_commit[:12] if r.git_commit else None for r in records])
    add("duration_s", [None if r.duration is None else round(r.duration, 3) for r in records])
    add("datasets", [", ".join(f"{i.name}@{i.version}" for i in r.inputs) or None for r in records])
    for key in sorted({k for r in records for k in r.params}):
        add(f"params.{key}", [r.params.get(key) for r in records])
    for key in sorted({k for r in records for k in r.metrics}):
        add(f"metrics.{key}", [r.metrics.get(key) for r in records])
    return rows


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


ROUTES = [
    ("/runs", runs_page, "GET", "read"),
    ("/runs/compare", compare_page, "GET", "read"),
    ("/runs/{run_id}", run_page, "GET", "read"),
    ("/runs/{run_id}/artifacts/{name:path}", artifact_file, "GET", "read"),
    ("/runs/{run_id}/preview/{name:path}", artifact_page, "GET", "read"),
]
