"""The model registry: register versions, resolve references, move aliases, load packages.

:class:`Registry` is a thin facade over the project's two stores: package files and
manifests go to the content-addressed store, rows to the metadata database. Every alias
move (set, promote, rollback) and traffic change is also written to the audit log.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import sqlalchemy as sa

from loopline.registry import aliases as _aliases
from loopline.registry import traffic as _traffic
from loopline.registry.errors import (
    AliasNotFoundError,
    ConflictError,
    ModelNotFoundError,
    ModelPackageError,
    ModelVersionNotFoundError,
    PackageIntegrityError,
    PromotionRefusedError,
    RegistryArgumentError,
    RegistryError,
)
from loopline.registry.flavors import (
    ModelFlavor,
    detect_flavor,
    flavor_named,
    library_versions,
    qualified_name,
    require_flavor,
)
from loopline.registry.loaded import LoadedModel
from loopline.registry.onnx_runtime import DEFAULT_TOLERANCE, EXPORTER, ONNX_FILE, serving_path
from loopline.registry.package import (
    MANIFEST_FILE,
    Manifest,
    put_manifest,
    read_files,
    read_manifest,
    store_files,
)
from loopline.registry.records import (
    AliasMove,
    DatasetRef,
    ModelSummary,
    ModelVersion,
    TrafficSplit,
)
from loopline.registry.refs import check_alias, check_name, parse_ref
from loopline.registry.signature import Signature, json_scalar
from loopline.registry.tables import model_aliases, model_versions, models
from loopline.store.db.events import current_actor, record_event
from loopline.store.db.types import to_utc
from loopline.types import UNSET, Unset

if TYPE_CHECKING:
    from loopline.store.stores import Stores

T = TypeVar("T")

#: Attempts at a write that lost a race on a unique constraint (version number, alias row).
_CONFLICT_ATTEMPTS = 60


class Verdict(Protocol):
    """What a promotion check returns: anything with a ``passed`` attribute.

    ``reasons`` (a list of strings) and ``to_dict()`` are used when present.
    """

    @property
    def passed(self) -> bool: ...


#: ``check(candidate, champion)``: the champion is the alias's current holder, or None.
PromotionCheck = Callable[[ModelVersion, ModelVersion | None], Verdict]


class Registry:
    """Registered models of one project. ``Registry(stores)``; see docs/registry.md."""

    def __init__(self, stores: Stores) -> None:
        self.stores = stores

    def __repr__(self) -> str:
        return f"Registry({self.stores.db.display_url!r})"

    # -- registering ---------------------------------------------------------------------

    def register(
        self,
        name: str,
        model: Any,
        *,
        sample: Any = None,
        signature: Signature | None = None,
        run_id: str | None = None,
        datasets: Iterable[Any] = (),
        metrics: Mapping[str, Any] | None = None,
        report_digest: str | None = None,
        code_commit: str | None = None,
        description: str | None = None,
        onnx: bool = True,
        onnx_eval: Any = None,
        onnx_tolerance: float = DEFAULT_TOLERANCE,
        actor: str | None = None,
    ) -> ModelVersion:
        """Package ``model`` and register it as the next version of ``name``.

        ``sample`` (input rows, training rows are best) gives the signature, unless
        ``signature`` is passed. A scikit-learn model is also exported to ONNX (the
        server's fast path) and the export kept only if it matches the original on
        ``onnx_eval`` rows (default: the sample) within ``onnx_tolerance``, relative to the
        outputs' scale; the manifest records the outcome either way, and
        :meth:`serving_path` says it in a line. ``onnx=False`` skips the export.
        Versions are numbered 1, 2, 3... without gaps, also when processes register at once.
        """
        check_name(name)
        flavor = detect_flavor(model)
        if signature is None:
            if sample is None:
                raise ModelPackageError(
                    f"Registering {name!r} needs input rows to infer its signature",
                    hint="Pass sample=X (a DataFrame of training inputs) or signature=...",
                )
            sample = _fit_order(model, sample, name)
            signature = Signature.infer(sample, model=model)
        packed = flavor.save(model)
        files = dict(packed.files)
        onnx_info: dict[str, Any] | None = None
        libraries = packed.libraries
        if onnx:
            onnx_bytes, onnx_info = self._export_onnx(
                flavor, model, signature, sample if onnx_eval is None else onnx_eval, onnx_tolerance
            )
            if onnx_bytes is not None:
                files[ONNX_FILE] = onnx_bytes
                libraries = (*libraries, "onnx", "onnxruntime", "skl2onnx")
        entries = store_files(self.stores.cas, files)
        dataset_refs = tuple(DatasetRef.coerce(d) for d in datasets)
        clean_metrics = _clean_metrics(metrics or {})
        actor = actor or current_actor()
        self._ensure_model(name, description, actor)
        template = Manifest(
            name=name,
            version=0,
            flavor=flavor.name,
            model_class=qualified_name(model),
            signature=signature,
            files=entries,
            flavor_info=packed.info,
            metrics=clean_metrics,
            libraries=library_versions(tuple(dict.fromkeys(libraries))),
            python=platform.python_version(),
            onnx=onnx_info,
        )

        taken: list[int] = []

        def insert(conn: sa.Connection) -> int:
            # The next number, read in the transaction; the manifest names it, so it is
            # written here too (content-addressed: a retry that redoes it is harmless).
            latest = conn.execute(
                sa.select(sa.func.max(model_versions.c.version)).where(
                    model_versions.c.model == name
                )
            ).scalar()
            version = int(latest or 0) + 1
            taken.append(version)
            now = datetime.now(UTC)
            manifest = replace(template, version=version, created_at=now.isoformat())
            digest = put_manifest(self.stores.cas, manifest)
            conn.execute(
                model_versions.insert().values(
                    model=name,
                    version=version,
                    run_id=run_id,
                    datasets=[d.to_dict() for d in dataset_refs],
                    code_commit=code_commit,
                    metrics=clean_metrics,
                    report_digest=report_digest,
                    manifest_digest=digest,
                    flavor=flavor.name,
                    signature=signature.to_dict(),
                    created_at=now,
                    created_by=actor,
                    description=description,
                    status="ready",
                )
            )
            conn.execute(models.update().where(models.c.name == name).values(updated_at=now))
            record_event(
                conn,
                "model.register",
                f"{name}/{version}",
                {"flavor": flavor.name, "manifest": digest, "run_id": run_id},
                actor=actor,
            )
            return version

        def raced(exc: Exception) -> bool:
            # Another process took this number first: take the next one. Any other
            # constraint failing is not a race, and retrying would not help.
            return self._latest_version(name) >= taken[-1]

        version = self.stores.db.run_write(insert, conflicts=_CONFLICT_ATTEMPTS, is_conflict=raced)
        return self.get(name, version)

    def _export_onnx(
        self, flavor: ModelFlavor, model: Any, signature: Signature, rows: Any, tol: float
    ) -> tuple[bytes | None, dict[str, Any]]:
        if flavor.name != "sklearn":
            return None, {
                "status": "omitted",
                "reason": f"ONNX export covers scikit-learn models; {flavor.name} models are "
                "served by their native library",
            }
        if rows is None:
            return None, {"status": "omitted", "reason": "no evaluation rows for the parity check"}
        missing = [c for c in signature.columns if c not in rows.columns]
        if missing:
            raise ModelPackageError(f"onnx_eval lacks the signature's columns {', '.join(missing)}")
        from importlib import import_module

        module, _, attr = EXPORTER.partition(":")
        export = getattr(import_module(module), attr)
        result: tuple[bytes | None, dict[str, Any]] = export(
            model, signature, rows[signature.columns], tolerance=tol
        )
        return result

    def _ensure_model(self, name: str, description: str | None, actor: str) -> None:
        with self.stores.db.read() as conn:
            if conn.execute(sa.select(models.c.id).where(models.c.name == name)).first():
                return
        now = datetime.now(UTC)

        def create(conn: sa.Connection) -> None:
            conn.execute(
                models.insert().values(
                    name=name,
                    description=description,
                    created_at=now,
                    created_by=actor,
                    updated_at=now,
                )
            )

        try:
            self.stores.db.run_write(create)
        except sa.exc.IntegrityError:
            pass  # created by a concurrent registration: just as good

    def _latest_version(self, name: str) -> int:
        with self.stores.db.read() as conn:
            value = conn.execute(
                sa.select(sa.func.max(model_versions.c.version)).where(
                    model_versions.c.model == name
                )
            ).scalar()
        return int(value or 0)

    # -- reading -------------------------------------------------------------------------

    def list_models(self) -> list[ModelSummary]:
        latest = (
            sa.select(model_versions.c.model, sa.func.max(model_versions.c.version).label("v"))
            .group_by(model_versions.c.model)
            .subquery()
        )
        with self.stores.db.read() as conn:
            rows = conn.execute(
                sa.select(models, latest.c.v)
                .select_from(models.outerjoin(latest, latest.c.model == models.c.name))
                .order_by(models.c.name)
            ).all()
            held: dict[str, dict[str, int]] = {}
            for model, alias, version in conn.execute(
                sa.select(
                    model_aliases.c.model, model_aliases.c.alias, model_aliases.c.version
                ).order_by(model_aliases.c.model, model_aliases.c.alias)
            ):
                held.setdefault(model, {})[alias] = int(version)
        return [
            ModelSummary(
                name=row.name,
                latest_version=None if row.v is None else int(row.v),
                aliases=held.get(row.name, {}),
                description=row.description,
                created_at=to_utc(row.created_at),
                updated_at=to_utc(row.updated_at),
            )
            for row in rows
        ]

    def versions(self, name: str) -> list[ModelVersion]:
        """Every version of ``name``, oldest first."""
        check_name(name)
        with self.stores.db.read() as conn:
            self._require_model(conn, name)
            held = _aliases.aliases_of(conn, name)
            rows = conn.execute(
                sa.select(model_versions)
                .where(model_versions.c.model == name)
                .order_by(model_versions.c.version)
            ).all()
        return [_version(row, held) for row in rows]

    def versions_by_run(self, run_ids: Iterable[str]) -> list[ModelVersion]:
        """The versions (of any model) registered by these runs, by model then version."""
        wanted = list(dict.fromkeys(run_ids))
        if not wanted:
            return []
        with self.stores.db.read() as conn:
            rows = conn.execute(
                sa.select(model_versions)
                .where(model_versions.c.run_id.in_(wanted))
                .order_by(model_versions.c.model, model_versions.c.version)
            ).all()
            held = {name: _aliases.aliases_of(conn, name) for name in {r.model for r in rows}}
        return [_version(row, held[row.model]) for row in rows]

    def get(self, name: str, version: int | None = None) -> ModelVersion:
        """Version ``version`` of ``name``, or its latest when None."""
        check_name(name)
        with self.stores.db.read() as conn:
            return self._get(conn, name, version)

    def resolve(self, ref: str | ModelVersion) -> ModelVersion:
        """``name@alias``, ``name/3`` or ``name`` (its latest version) to a ModelVersion."""
        if isinstance(ref, ModelVersion):
            return ref
        parsed = parse_ref(ref)
        with self.stores.db.read() as conn:
            if parsed.alias is None:
                return self._get(conn, parsed.name, parsed.version)
            self._require_model(conn, parsed.name)
            version = _aliases.current_holder(conn, parsed.name, parsed.alias)
            if version is None:
                latest = self._latest_in(conn, parsed.name)
                known = list(_aliases.aliases_of(conn, parsed.name))
                raise AliasNotFoundError(parsed.name, parsed.alias, latest, known)
            return self._get(conn, parsed.name, version)

    def serving_path(self, ref: str | ModelVersion) -> str:
        """How a version is served (ONNX Runtime, or the native model and why), as a line
        for the terminal: ``serves with ONNX Runtime, parity 3e-08 on 750 rows``."""
        return serving_path(self.manifest(ref).onnx)

    def manifest(self, ref: str | ModelVersion) -> Manifest:
        """The verified manifest of a version's package."""
        mv = self.resolve(ref)
        return read_manifest(self.stores.cas, mv.manifest_digest, mv.ref)

    def load(self, ref: str | ModelVersion) -> LoadedModel:
        """Load a version's package after verifying every file against the registry.

        Raises PackageIntegrityError (naming the file) on any mismatch,
        FlavorUnavailableError when the flavor's library is missing, UnsafeModelError when
        a skops file holds untrusted types.
        """
        mv = self.resolve(ref)
        manifest = read_manifest(self.stores.cas, mv.manifest_digest, mv.ref)
        if manifest.flavor != mv.flavor:
            raise PackageIntegrityError(
                mv.ref, MANIFEST_FILE, f"flavor {mv.flavor}", f"flavor {manifest.flavor}"
            )
        flavor = flavor_named(manifest.flavor)
        require_flavor(flavor, mv.ref)
        files = read_files(self.stores.cas, manifest)
        native = flavor.load(files, manifest.flavor_info, mv.ref)
        onnx_bytes = files.get(ONNX_FILE) if manifest.has_onnx else None
        return LoadedModel(mv, manifest, native, onnx_bytes)

    def _get(self, conn: sa.Connection, name: str, version: int | None) -> ModelVersion:
        query = sa.select(model_versions).where(model_versions.c.model == name)
        if version is None:
            query = query.where(model_versions.c.status == "ready")
            query = query.order_by(model_versions.c.version.desc()).limit(1)
        else:
            query = query.where(model_versions.c.version == int(version))
        row = conn.execute(query).first()
        if row is None:
            self._require_model(conn, name)
            latest = self._latest_in(conn, name)
            raise ModelVersionNotFoundError(name, version, latest)
        return _version(row, _aliases.aliases_of(conn, name))

    def _latest_in(self, conn: sa.Connection, name: str) -> int | None:
        value = conn.execute(
            sa.select(sa.func.max(model_versions.c.version)).where(model_versions.c.model == name)
        ).scalar()
        return None if value is None else int(value)

    def _require_model(self, conn: sa.Connection, name: str) -> None:
        if conn.execute(sa.select(models.c.id).where(models.c.name == name)).first():
            return
        query = sa.select(models.c.name).order_by(models.c.name).limit(11)
        known = list(conn.execute(query).scalars())
        raise ModelNotFoundError(name, known)

    # -- aliases -------------------------------------------------------------------------

    def aliases(self, name: str) -> dict[str, int]:
        """Each alias of ``name`` and the version holding it."""
        check_name(name)
        with self.stores.db.read() as conn:
            self._require_model(conn, name)
            return _aliases.aliases_of(conn, name)

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        reason: str | None = None,
        actor: str | None = None,
        forced: bool = False,
        expect: int | Unset | None = UNSET,
    ) -> AliasMove:
        """Point ``alias`` at ``version``; returns the move (the earlier one if unchanged).

        ``expect`` (the version you saw holding it, or None for none) makes it a
        compare-and-set: ConflictError if another process moved it meanwhile.
        """
        self.get(name, version)
        return self._move(
            name, check_alias(alias), int(version), "set", actor, reason, forced, None, expect
        )

    def promote(
        self,
        name: str,
        version: int,
        alias: str,
        *,
        check: PromotionCheck | None = None,
        force: bool = False,
        reason: str | None = None,
        actor: str | None = None,
        expect: int | Unset | None = UNSET,
    ) -> AliasMove:
        """Move ``alias`` to ``version`` if ``check`` passes (or there is no check).

        ``check(candidate, champion)`` returns a verdict with ``.passed``. A failing
        verdict raises PromotionRefusedError (carrying the verdict) unless ``force`` is
        True with a non-empty ``reason``; the move is then recorded as forced. A refusal
        is recorded in the audit log as a ``gate.failed`` event.

        With a check, the verdict judges the candidate against the holder read first, and
        the move happens only if that holder still holds the alias (compare-and-set): when
        another process moved it during the check, ConflictError is raised and nothing
        changes. ``expect`` pins the holder the caller saw before calling.
        """
        check_alias(alias)
        if force and not (reason and reason.strip()):
            raise RegistryArgumentError(
                f"Forcing the promotion of {name}/{version} to {alias!r} needs a reason",
                hint="Pass reason='...' (on the command line: --reason TEXT)",
                argument="reason",
                value=reason,
            )
        candidate = self.get(name, version)
        detail: dict[str, Any] | None = None
        forced = False
        with self.stores.db.read() as conn:
            held = _aliases.current_holder(conn, name, alias)
            champion = None if held is None else self._get(conn, name, held)
        if not isinstance(expect, Unset) and expect != held:
            raise ConflictError(f"Alias {alias!r} of model {name!r}", expect, held)
        if check is not None:
            verdict = check(candidate, champion)
            detail = {
                "verdict": _verdict_summary(verdict),
                "champion": None if champion is None else champion.version,
            }
            if not bool(getattr(verdict, "passed", False)):
                if not force:
                    self._record_refusal(candidate, champion, alias, verdict)
                    raise PromotionRefusedError(name, int(version), alias, verdict)
                forced = True
        return self._move(name, alias, int(version), "promote", actor, reason, forced, detail, held)

    def _record_refusal(
        self, candidate: ModelVersion, champion: ModelVersion | None, alias: str, verdict: Any
    ) -> None:
        """A ``gate.failed`` event for a promotion its gates refused."""
        summary = _verdict_summary(verdict)
        reasons = getattr(verdict, "reasons", None)
        detail = {
            "model": candidate.name,
            "candidate": candidate.ref,
            "champion": None if champion is None else champion.ref,
            "alias": alias,
            "summary": summary.get("summary") if isinstance(summary, Mapping) else None,
            "failing": [str(r) for r in reasons] if reasons is not None else [],
            "source": "promote",
        }
        self.stores.db.run_write(
            lambda conn: record_event(conn, "gate.failed", candidate.ref, _json_safe(detail))
        )

    def rollback(
        self,
        name: str,
        alias: str,
        *,
        reason: str | None = None,
        actor: str | None = None,
        expect: int | Unset | None = UNSET,
    ) -> AliasMove:
        """Move ``alias`` back to the version that held it before the current one.

        ``expect``: the version the caller saw holding it (ConflictError if another)."""
        check_name(name)
        check_alias(alias)
        who = actor or current_actor()

        def fn(conn: sa.Connection) -> AliasMove:
            self._require_model(conn, name)
            current = _aliases.current_holder(conn, name, alias, lock=True)
            if not isinstance(expect, Unset) and expect != current:
                raise ConflictError(f"Alias {alias!r} of model {name!r}", expect, current)
            if current is None:
                raise AliasNotFoundError(name, alias, self._latest_in(conn, name))
            stack = _aliases.holders(_aliases.history(conn, name, alias))
            if len(stack) < 2:
                raise RegistryError(
                    f"Alias {alias!r} of model {name!r} has no earlier version to roll back "
                    f"to (it has only pointed at version {current})",
                    hint=f"Point it elsewhere with: loopline models alias {name} VERSION {alias}",
                )
            move = _aliases.move_alias(
                conn, name, alias, stack[-2], action="rollback", actor=who, reason=reason
            )
            assert move is not None  # stack[-2] differs from the current holder
            return move

        return self._write(fn)

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasMove]:
        """Every move of ``name``'s aliases (or of one), oldest first."""
        check_name(name)
        with self.stores.db.read() as conn:
            self._require_model(conn, name)
            return _aliases.history(conn, name, alias)

    def alias_at(self, name: str, alias: str, when: datetime) -> int | None:
        """The version that held ``alias`` at ``when`` (None if none did yet).

        A naive ``when`` is local time, as Python's ``datetime.astimezone`` reads it.
        """
        check_name(name)
        with self.stores.db.read() as conn:
            self._require_model(conn, name)
            return _aliases.alias_at(conn, name, alias, when)

    def _move(
        self,
        name: str,
        alias: str,
        version: int,
        action: str,
        actor: str | None,
        reason: str | None,
        forced: bool,
        detail: Mapping[str, Any] | None,
        expect: int | Unset | None = UNSET,
    ) -> AliasMove:
        who = actor or current_actor()

        def fn(conn: sa.Connection) -> AliasMove:
            move = _aliases.move_alias(
                conn,
                name,
                alias,
                version,
                action=action,
                actor=who,
                reason=reason,
                forced=forced,
                detail=detail,
                expect=expect,
            )
            if move is None:  # it held the alias already: the move that put it there
                earlier = _aliases.last_move_to(conn, name, alias, version)
                assert earlier is not None
                return earlier
            return move

        return self._write(fn)

    def _write(self, fn: Callable[[sa.Connection], T]) -> T:
        """``run_write`` that also retries a transaction that lost an insert race."""
        return self.stores.db.run_write(fn, conflicts=_CONFLICT_ATTEMPTS)

    # -- traffic -------------------------------------------------------------------------

    def traffic(self, name: str, alias: str = "production") -> TrafficSplit | None:
        """The split of ``name@alias`` (None: all traffic goes to the alias)."""
        check_name(name)
        with self.stores.db.read() as conn:
            return _traffic.get_split(conn, name, check_alias(alias))

    def traffic_splits(self, name: str) -> list[TrafficSplit]:
        check_name(name)
        with self.stores.db.read() as conn:
            return _traffic.splits(conn, name)

    def set_traffic(
        self,
        name: str,
        candidate: str,
        percent: float,
        *,
        alias: str = "production",
        mode: str = "canary",
        sticky_key: str | None = None,
        reason: str | None = None,
        actor: str | None = None,
        expect: TrafficSplit | Unset | None = UNSET,
    ) -> TrafficSplit:
        """Send ``percent`` of ``name@alias``'s traffic to ``candidate`` (a model reference).

        The candidate must resolve now; it is stored as written, so ``churn@challenger``
        follows that alias as it moves. ``expect`` (the split you read, or None for none)
        makes it a compare-and-set: ConflictError if another process changed it first.
        """
        check_alias(alias)
        percent = _traffic.check_split(percent, mode)
        cand = parse_ref(candidate)
        if cand.name != name:
            raise RegistryArgumentError(
                f"The traffic candidate {candidate!r} is not a version of model {name!r}",
                argument="candidate",
                value=candidate,
            )
        self.resolve(candidate)
        who = actor or current_actor()

        def fn(conn: sa.Connection) -> TrafficSplit:
            _traffic.check_expected(conn, name, alias, expect)
            return _traffic.put_split(
                conn,
                name,
                alias,
                candidate=str(cand),
                percent=percent,
                mode=mode,
                sticky_key=sticky_key,
                actor=who,
                reason=reason,
            )

        return self._write(fn)

    def clear_traffic(
        self,
        name: str,
        alias: str = "production",
        *,
        reason: str | None = None,
        actor: str | None = None,
        expect: TrafficSplit | Unset | None = UNSET,
    ) -> bool:
        """Send all of ``name@alias``'s traffic to the alias again; False if no split was set.

        ``expect``: the split the caller saw (ConflictError if it changed meanwhile)."""
        check_name(name)
        check_alias(alias)
        who = actor or current_actor()

        def fn(conn: sa.Connection) -> bool:
            _traffic.check_expected(conn, name, alias, expect)
            return _traffic.delete_split(conn, name, alias, actor=who, reason=reason)

        return self._write(fn)


def _fit_order(model: Any, sample: Any, name: str) -> Any:
    """The sample with its columns in the order the model was fitted on (when it knows)."""
    import pandas as pd

    if not isinstance(sample, pd.DataFrame):
        raise ModelPackageError(
            f"The sample for {name!r} must be a pandas DataFrame of input rows, "
            f"not {type(sample).__module__}.{type(sample).__name__}"
        )
    fitted = getattr(model, "feature_names_in_", None)
    if fitted is None:
        n = getattr(model, "n_features_in_", None)
        if isinstance(n, int) and n != sample.shape[1]:
            raise ModelPackageError(
                f"The sample for {name!r} has {sample.shape[1]} columns; the model was "
                f"fitted on {n}"
            )
        return sample
    order = [str(c) for c in fitted]
    missing = [c for c in order if c not in sample.columns]
    if missing:
        raise ModelPackageError(
            f"The sample for {name!r} lacks columns the model was fitted on: {', '.join(missing)}"
        )
    return sample[order]


def _clean_metrics(metrics: Mapping[str, Any]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for key, value in metrics.items():
        scalar = json_scalar(value)
        if scalar is not None and not isinstance(scalar, int | float):
            raise ModelPackageError(f"Metric {key!r} is not a number: {value!r}")
        out[str(key)] = None if scalar is None else float(scalar)
    return out


def _verdict_summary(verdict: Any) -> Any:
    for method in ("to_dict", "as_dict"):
        fn = getattr(verdict, method, None)
        if callable(fn):
            data = fn()
            break
    else:
        data = {"passed": bool(getattr(verdict, "passed", False))}
        reasons = getattr(verdict, "reasons", None)
        if reasons is not None:
            data["reasons"] = [str(r) for r in reasons]
    return _json_safe(data)


def _json_safe(value: Any) -> Any:
    """Whatever the gate engine returns, as JSON the database accepts (no NaN)."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_safe(v) for v in value]
    return json_scalar(value)


def _version(row: Any, held: Mapping[str, int]) -> ModelVersion:
    return ModelVersion(
        name=row.model,
        version=int(row.version),
        flavor=row.flavor,
        manifest_digest=row.manifest_digest,
        signature=Signature.from_dict(row.signature),
        created_at=to_utc(row.created_at),
        created_by=row.created_by,
        status=row.status,
        run_id=row.run_id,
        datasets=tuple(DatasetRef.coerce(d) for d in row.datasets or ()),
        code_commit=row.code_commit,
        metrics=dict(row.metrics or {}),
        report_digest=row.report_digest,
        description=row.description,
        aliases=tuple(sorted(a for a, v in held.items() if v == int(row.version))),
    )
