"""Models: registered versions, aliases and their history, lineage, evaluation reports,
gate results; promoting and rolling back, recorded like ``loopline models promote``.

A move is asked for in two steps: the form posts the wish, the page shows what would
change (the alias's holder now, whether gates will be checked) and a confirm button,
which posts it again with ``confirmed=1``. The API twin moves at once. Both need the
``admin`` role, checked on the server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loopline.ui import charts
from loopline.ui.errors import PageArgumentError, PageNotFoundError
from loopline.ui.query import required, text
from loopline.ui.render import Page, wants_json

if TYPE_CHECKING:
    from starlette.responses import Response

    from loopline.registry import AliasMove, ModelVersion, Registry, TrafficSplit
    from loopline.ui.app import Call

#: The alias a promotion moves when the model has no gates naming one.
DEFAULT_ALIAS = "production"
#: Metrics shown as columns of the versions table (those the gates name first).
MAX_METRIC_COLUMNS = 8


def models_page(call: Call) -> Page:
    summaries = call.ui.registry.list_models()
    data = {"models": [s.to_dict() for s in summaries]}
    return Page("models.html", data, title="Models")


def model_page(call: Call) -> Page:
    ui = call.ui
    reg = ui.registry
    name = call.arg("name")
    versions = reg.versions(name)
    moves = reg.alias_history(name)
    splits = reg.traffic_splits(name)
    aliases = reg.aliases(name)
    config = _gates(call, name)
    metric_keys = sorted({k for mv in versions for k in mv.metrics})
    data = {
        "name": name,
        "versions": [_version_row(mv, splits, reg) for mv in versions],
        "metric_keys": metric_keys,
        "aliases": aliases,
        "alias_history": [m.to_dict() for m in moves],
        "gate_results": _gate_results(moves),
        "traffic": [s.to_dict() for s in splits],
        "gates": None
        if config is None
        else {"criteria": list(config.criteria), "champion": config.champion},
        "rollback_aliases": sorted({m.alias for m in moves if _can_roll_back(moves, m.alias)}),
    }
    moved = text(call.query, "moved")
    named = [k for k in metric_keys if config and any(k in c for c in config.criteria)]
    shown = list(dict.fromkeys([*named, *metric_keys]))[:MAX_METRIC_COLUMNS]
    extra = {
        "metric_columns": shown,
        "moved": next((m.to_dict() for m in moves if str(m.id) == moved), None),
        "timeline": _timeline(moves),
        "default_alias": config.champion if config is not None else DEFAULT_ALIAS,
    }
    return Page("model.html", data, title=f"Model {name}", extra=extra)


def version_page(call: Call) -> Page:
    reg = call.ui.registry
    name = call.arg("name")
    version = _version_number(call.arg("version"))
    mv = reg.get(name, version)
    splits = reg.traffic_splits(name)
    row = _version_row(mv, splits, reg)
    manifest = reg.manifest(mv)
    report = _report(call, mv)
    data = {
        **row,
        "signature": mv.signature.to_dict(),
        "manifest_digest": mv.manifest_digest,
        "files": {p: {"size": e.size, "sha256": e.sha256} for p, e in manifest.files.items()},
        "serving_path": reg.serving_path(mv),
        "report": None if report is None else {"metrics": report.get("metrics", {})},
        "gate_results": [
            g for g in _gate_results(reg.alias_history(name)) if g["version"] == mv.version
        ],
    }
    return Page("version.html", data, title=f"{mv.ref}")


def report_file(call: Call) -> Response:
    """The version's evaluation report as HTML, for a sandboxed frame."""
    from starlette.responses import Response

    from loopline.evaluate.evaluation import Evaluation

    mv = call.ui.registry.get(call.arg("name"), _version_number(call.arg("version")))
    report = _report(call, mv)
    if report is None:
        raise PageNotFoundError(f"{mv.ref} was registered without an evaluation report")
    html = Evaluation.from_dict(report).to_html(title=f"{mv.ref} evaluation")
    policy = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    return Response(html, media_type="text/html", headers={"content-security-policy": policy})


def _report(call: Call, mv: ModelVersion) -> dict[str, Any] | None:
    import json

    if not mv.report_digest:
        return None
    data: dict[str, Any] = json.loads(call.ui.stores.cas.get(mv.report_digest))
    return data


def _version_number(raw: str) -> int:
    if not raw.isdigit() or int(raw) < 1:
        raise PageArgumentError(
            f"a version is a number from 1, not {raw!r}", argument="version", value=raw
        )
    return int(raw)


def _version_row(mv: ModelVersion, splits: list[TrafficSplit], reg: Registry) -> dict[str, Any]:
    """A version with its lineage: dataset versions -> run -> version -> what serves it
    (the aliases it holds, and traffic splits whose candidate is it)."""
    serving: list[dict[str, Any]] = [
        {"alias": a, "role": "primary", "percent": None} for a in mv.aliases
    ]
    for split in splits:
        try:
            candidate = reg.resolve(split.candidate)
        except Exception:  # a candidate that no longer resolves serves nothing
            continue
        if candidate.version == mv.version:
            serving.append({"alias": split.alias, "role": split.mode, "percent": split.percent})
    return {
        "name": mv.name,
        "version": mv.version,
        "ref": mv.ref,
        "flavor": mv.flavor,
        "status": mv.status,
        "created_at": mv.created_at.isoformat(),
        "created_by": mv.created_by,
        "description": mv.description,
        "metrics": dict(mv.metrics),
        "aliases": list(mv.aliases),
        "run_id": mv.run_id,
        "datasets": [d.to_dict() for d in mv.datasets],
        "code_commit": mv.code_commit,
        "has_report": bool(mv.report_digest),
        "serving": serving,
    }


def _gate_results(moves: list[AliasMove]) -> list[dict[str, Any]]:
    """The verdicts recorded with promotions, newest first."""
    out = []
    for m in reversed(moves):
        verdict = (m.detail or {}).get("verdict")
        if not verdict:
            continue
        out.append(
            {
                "at": m.at.isoformat(),
                "alias": m.alias,
                "version": m.to_version,
                "champion": (m.detail or {}).get("champion"),
                "passed": bool(verdict.get("passed")),
                "forced": m.forced,
                "summary": verdict.get("summary"),
                "results": verdict.get("results") or [],
            }
        )
    return out


def _can_roll_back(moves: list[AliasMove], alias: str) -> bool:
    holders: list[int] = []
    for m in moves:
        if m.alias == alias and (not holders or holders[-1] != m.to_version):
            holders.append(m.to_version)
    return len(holders) >= 2


def _timeline(moves: list[AliasMove]) -> dict[str, Any] | None:
    """Each alias as a step line over time: which version held it when."""
    if not moves:
        return None
    traces = []
    for alias in sorted({m.alias for m in moves}):
        mine = [m for m in moves if m.alias == alias]
        traces.append(
            charts.line(
                alias,
                [m.at.isoformat() for m in mine],
                [m.to_version for m in mine],
                shape="hv",
                text=[f"{m.action}{' (forced)' if m.forced else ''} by {m.actor}" for m in mine],
            )
        )
    fig = charts.figure(
        traces, title="Alias history", y_title="version", x_type="date", height=260, legend=True
    )
    fig["layout"]["yaxis"]["dtick"] = 1
    return fig


def _gates(call: Call, name: str) -> Any:
    from loopline.loop.gates import gate_configs

    return gate_configs(call.ui.settings).get(name)


# -- moving aliases -----------------------------------------------------------------------


def promote(call: Call) -> Page | Response:
    name = call.arg("name")
    form = call.form
    version = _version_number(required(form, "version"))
    alias = text(form, "alias") or DEFAULT_ALIAS
    reason = text(form, "reason")
    reg = call.ui.registry
    candidate = reg.get(name, version)
    holder = reg.aliases(name).get(alias)
    config = _gates(call, name)
    if not _confirmed(call):
        data = {
            "action": "promote",
            "name": name,
            "version": candidate.version,
            "alias": alias,
            "holder": holder,
            "reason": reason,
            "gates": None if config is None else list(config.criteria),
        }
        return Page("confirm.html", data, title=f"Promote {candidate.ref} to {alias}?")
    check = None
    if config is not None:
        from loopline.loop.gates import check_candidate

        stores = call.ui.stores

        def check(cand: ModelVersion, champion: ModelVersion | None) -> Any:
            return check_candidate(stores, config, cand, champion=champion).verdict

    move = reg.promote(
        name, version, alias, check=check, reason=reason, actor=call.actor, expect=holder
    )
    return _moved(call, move)


def rollback(call: Call) -> Page | Response:
    name = call.arg("name")
    alias = required(call.form, "alias")
    reason = text(call.form, "reason")
    reg = call.ui.registry
    holder = reg.aliases(name).get(alias)
    if not _confirmed(call):
        moves = reg.alias_history(name, alias)
        previous = _previous_holder(moves)
        data = {
            "action": "rollback",
            "name": name,
            "version": previous,
            "alias": alias,
            "holder": holder,
            "reason": reason,
            "gates": None,
        }
        return Page("confirm.html", data, title=f"Roll back {name}@{alias}?")
    move = reg.rollback(name, alias, reason=reason, actor=call.actor, expect=holder)
    return _moved(call, move)


def _previous_holder(moves: list[AliasMove]) -> int | None:
    holders: list[int] = []
    for m in moves:
        if not holders or holders[-1] != m.to_version:
            holders.append(m.to_version)
    return holders[-2] if len(holders) >= 2 else None


def _confirmed(call: Call) -> bool:
    """The API moves at once; a page asks first."""
    as_json = wants_json(call.request.url.path, call.request.headers.get("accept", ""))
    return as_json or call.form.get("confirmed") == "1"


def _moved(call: Call, move: AliasMove) -> Page | Response:
    from starlette.responses import RedirectResponse

    if wants_json(call.request.url.path, call.request.headers.get("accept", "")):
        return Page("confirm.html", {"move": move.to_dict()})
    return RedirectResponse(f"/models/{move.name}?moved={move.id}", status_code=303)


ROUTES = [
    ("/models", models_page, "GET", "read"),
    ("/models/{name}", model_page, "GET", "read"),
    ("/models/{name}/versions/{version}", version_page, "GET", "read"),
    ("/models/{name}/versions/{version}/report", report_file, "GET", "read"),
    ("/models/{name}/promote", promote, "POST", "admin"),
    ("/models/{name}/rollback", rollback, "POST", "admin"),
]
