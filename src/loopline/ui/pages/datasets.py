"""Datasets: their versions, the schema, one version's per-column profile (the statistics
stored when it was added, the drift reference of models trained on it) as charts, and
its validation report."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loopline.ui import charts
from loopline.ui.query import integer
from loopline.ui.render import Page

if TYPE_CHECKING:
    from loopline.data.profile import ColumnProfile
    from loopline.ui.app import Call

_TOP = 20


def datasets_page(call: Call) -> Page:
    data = {"datasets": [i.to_dict() for i in call.ui.datasets.list()]}
    return Page("datasets.html", data, title="Datasets")


def dataset_page(call: Call) -> Page:
    ds = call.ui.datasets
    name = call.arg("name")
    info = ds.info(name)
    versions = ds.versions(name)
    current = info.current_version or (versions[-1].version if versions else 1)
    wanted = integer(call.query, "version", current, low=1, high=10**9)
    version = ds.get(name, wanted)
    profile = ds.profile(name, version.version)
    data = {
        **info.to_dict(),
        "schema": info.schema.to_dict(),
        "versions": [
            {k: v for k, v in item.to_dict().items() if k != "validation"}
            | {"ok": bool(item.validation.get("ok", True))}
            for item in versions
        ],
        "version": version.to_dict(),
        "profile": profile.to_dict(),
    }
    figures = {c.name: _column_chart(c) for c in profile.columns}
    title = f"Dataset {name}"
    return Page(
        "dataset.html",
        data,
        title=title,
        extra={"figures": {k: v for k, v in figures.items() if v is not None}},
    )


def _column_chart(column: ColumnProfile) -> dict[str, Any] | None:
    if column.numeric is not None:
        hist = column.numeric.histogram
        if not hist.counts:
            return None
        centers = [(a + b) / 2 for a, b in zip(hist.edges[:-1], hist.edges[1:], strict=True)]
        fig = charts.figure(
            [charts.bars(column.name, centers, hist.counts, color="#2563eb")],
            title=f"{column.name} ({column.dtype})",
            height=200,
        )
        fig["layout"]["bargap"] = 0.02
        return fig
    if column.categorical is not None:
        top = column.categorical.top[:_TOP]
        labels = [v for v, _ in top]
        counts = [n for _, n in top]
        if column.categorical.other:
            labels.append("(other)")
            counts.append(column.categorical.other)
        return charts.figure(
            [charts.bars(column.name, labels, counts, color="#f97316")],
            title=f"{column.name} ({column.dtype})",
            height=200,
            x_type="category",
        )
    return None


ROUTES = [
    ("/datasets", datasets_page, "GET", "read"),
    ("/datasets/{name}", dataset_page, "GET", "read"),
]
