"""A rollout: retrain, gate, canary, bake, then promote or roll back, as a state machine
persisted in the database.

::

    pending -> preparing -> training -> gating -> deploying -> baking -> promoting -> promoted
                  |            |          |           |           |
                  v            v          v           v           v
               refused       failed    refused    stood_down  rolling_back -> rolled_back

``pending``      asked for (an alarm's retrain action, ``loopline loop retrain``)
``preparing``    the training data: the newest dataset version plus the production rows
                 labelled since, the fresh holdout kept out of it (:mod:`loopline.loop.data`)
``training``     the model's retraining pipeline, as a pipeline run whose id is recorded
                 before it starts: the challenger is the version it registered
``gating``       challenger and champion on the gate holdout and on the fresh holdout
``deploying``    the traffic split that gives the challenger its canary (or shadow) share
``baking``       monitor windows judged by the bake criteria (:mod:`loopline.loop.bake`)
``promoting``    the serving alias moves to the challenger; the split is removed
``rolling_back`` the split is removed: the champion serves everything again

Every step is safe to repeat after a crash, and no finished step is repeated: a state is
recorded *before* its side effect starts, and the side effect checks what it finds
(a pipeline run is resumed from its finished steps, a split or an alias already where the
step would put it is taken as done). Each state is entered once (a unique key on the
events), every write checks the controller's lease in its transaction, and alias and
split moves are compare-and-set: when a person moves the alias or the split during a
rollout, the move conflicts and the rollout *stands down*, recording what it found.
"""

from __future__ import annotations

import logging
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from loopline.loop.errors import (
    LoopConfigError,
    LoopError,
    RolloutActiveError,
    RolloutNotFoundError,
)
from loopline.loop.tables import loop_models, rollout_events, rollouts
from loopline.store.db import dialects

if TYPE_CHECKING:
    from loopline.config import Settings
    from loopline.loop.lease import Lease
    from loopline.loop.settings import LoopSettings
    from loopline.registry import ModelVersion, Registry, TrafficSplit
    from loopline.store.stores import Stores

log = logging.getLogger("loopline.loop")

#: Who the controller's registry moves are recorded as.
ACTOR = "loopline-loop"

PENDING = "pending"
PREPARING = "preparing"
TRAINING = "training"
GATING = "gating"
DEPLOYING = "deploying"
BAKING = "baking"
PROMOTING = "promoting"
ROLLING_BACK = "rolling_back"
PROMOTED = "promoted"
REFUSED = "refused"
ROLLED_BACK = "rolled_back"
FAILED = "failed"
STOOD_DOWN = "stood_down"

ACTIVE = (PENDING, PREPARING, TRAINING, GATING, DEPLOYING, BAKING, PROMOTING, ROLLING_BACK)
TERMINAL = (PROMOTED, REFUSED, ROLLED_BACK, FAILED, STOOD_DOWN)
STATES = ACTIVE + TERMINAL


@dataclass
class Rollout:
    id: str
    model: str
    state: str
    trigger: str
    cause: dict[str, Any]
    alias: str
    mode: str
    percent: float
    champion_version: int | None
    challenger_version: int | None
    retrain: bool
    data: dict[str, Any] | None
    pipeline_run_id: str | None
    verdict: dict[str, Any] | None
    split: dict[str, Any] | None
    bake: list[dict[str, Any]]
    reason: str | None
    error: str | None
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None
    trigger_key: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @classmethod
    def from_row(cls, r: Any) -> Rollout:
        return cls(
            r.id,
            r.model,
            r.state,
            r.trigger,
            dict(r.cause or {}),
            r.alias,
            r.mode,
            float(r.percent),
            r.champion_version,
            r.challenger_version,
            bool(r.retrain),
            None if r.data is None else dict(r.data),
            r.pipeline_run_id,
            None if r.verdict is None else dict(r.verdict),
            None if r.split is None else dict(r.split),
            list(r.bake or []),
            r.reason,
            r.error,
            r.created_at,
            r.updated_at,
            r.ended_at,
            r.trigger_key,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "state": self.state,
            "active": self.active,
            "trigger": self.trigger,
            "cause": self.cause,
            "alias": self.alias,
            "mode": self.mode,
            "percent": self.percent,
            "champion_version": self.champion_version,
            "challenger_version": self.challenger_version,
            "retrain": self.retrain,
            "data": self.data,
            "pipeline_run_id": self.pipeline_run_id,
            "verdict": self.verdict,
            "split": self.split,
            "bake": self.bake,
            "reason": self.reason,
            "error": self.error,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "ended_at": None if self.ended_at is None else self.ended_at.isoformat(),
            "events": self.events,
        }


# -- reading and asking ---------------------------------------------------------------------


class Rollouts:
    """Rollouts in the database: start one, read them, pause a model's loop. Any process
    may call these (the command line, an action); only the controller drives them."""

    def __init__(self, stores: Stores) -> None:
        self.stores = stores

    def start(
        self,
        model: str,
        settings: LoopSettings,
        *,
        trigger: str,
        cause: Mapping[str, Any] | None = None,
        trigger_key: str | None = None,
        challenger: int | None = None,
        actor: str | None = None,
    ) -> Rollout:
        """Ask for a rollout of ``model``: a retraining, or (``challenger``) the rollout of
        that existing version. Idempotent on ``trigger_key``: the same key returns the
        rollout it started. RolloutActiveError when another one is in progress."""
        from loopline.store.db.events import current_actor, record_event

        who = actor or current_actor()

        def fn(conn: sa.Connection) -> Rollout:
            if trigger_key is not None:
                found = conn.execute(
                    sa.select(rollouts).where(rollouts.c.trigger_key == trigger_key)
                ).first()
                if found is not None:
                    return Rollout.from_row(found)
            now = dialects.current_time(conn)
            state = _model_row(conn, model, now, who, lock=True)
            if state.active_rollout is not None:
                current = conn.execute(
                    sa.select(rollouts.c.state).where(rollouts.c.id == state.active_rollout)
                ).scalar()
                if current in ACTIVE:
                    raise RolloutActiveError(model, state.active_rollout, str(current))
            rollout_id = uuid.uuid4().hex
            conn.execute(
                rollouts.insert().values(
                    id=rollout_id,
                    model=model,
                    state=PENDING,
                    trigger=trigger,
                    trigger_key=trigger_key,
                    cause=_jsonable(dict(cause or {}) | {"asked_by": who}),
                    alias=settings.alias,
                    mode=settings.mode,
                    percent=settings.percent,
                    champion_version=None,
                    challenger_version=challenger,
                    retrain=challenger is None,
                    bake=[],
                    created_at=now,
                    updated_at=now,
                )
            )
            conn.execute(
                loop_models.update()
                .where(loop_models.c.model == model)
                .values(active_rollout=rollout_id)
            )
            conn.execute(
                rollout_events.insert().values(
                    rollout_id=rollout_id,
                    at=now,
                    from_state=None,
                    to_state=PENDING,
                    reason=f"asked for by {trigger}",
                    detail=_jsonable(dict(cause or {})),
                )
            )
            record_event(
                conn, "rollout.started", f"{model}:{rollout_id}", {"trigger": trigger}, actor=who
            )
            row = conn.execute(sa.select(rollouts).where(rollouts.c.id == rollout_id)).one()
            return Rollout.from_row(row)

        return self.stores.db.run_write(fn, conflicts=3)

    def get(self, rollout_id: str, *, events: bool = True) -> Rollout:
        """The rollout whose id is (or starts with) ``rollout_id``."""
        wanted = str(rollout_id).strip().lower()
        with self.stores.db.read() as conn:
            rows = conn.execute(
                sa.select(rollouts).where(rollouts.c.id.startswith(wanted, autoescape=True))
            ).all()
            if len(rows) != 1 or not wanted:
                what = "several rollouts" if len(rows) > 1 else "no rollout"
                raise RolloutNotFoundError(
                    f"The id {rollout_id!r} matches {what}",
                    hint="List them with: loopline loop history MODEL",
                )
            out = Rollout.from_row(rows[0])
            if events:
                out.events = _events(conn, out.id)
        return out

    def history(self, model: str | None = None, *, limit: int = 20) -> list[Rollout]:
        """The newest rollouts (of ``model``), newest first, with their events."""
        query = sa.select(rollouts).order_by(rollouts.c.created_at.desc()).limit(limit)
        if model is not None:
            query = query.where(rollouts.c.model == model)
        with self.stores.db.read() as conn:
            out = [Rollout.from_row(r) for r in conn.execute(query).all()]
            for r in out:
                r.events = _events(conn, r.id)
        return out

    def active(self) -> list[Rollout]:
        with self.stores.db.read() as conn:
            rows = conn.execute(
                sa.select(rollouts)
                .where(rollouts.c.state.in_(ACTIVE))
                .order_by(rollouts.c.created_at)
            ).all()
        return [Rollout.from_row(r) for r in rows]

    def models(self) -> dict[str, dict[str, Any]]:
        """Per model the controller knows: paused, why, the newest monitored window."""
        with self.stores.db.read() as conn:
            rows = conn.execute(sa.select(loop_models)).all()
        return {
            r.model: {
                "paused": bool(r.paused),
                "reason": r.reason,
                "changed_at": r.changed_at.isoformat(),
                "changed_by": r.changed_by,
                "last_window_end": None
                if r.last_window_end is None
                else r.last_window_end.isoformat(),
                "active_rollout": r.active_rollout,
            }
            for r in rows
        }

    def set_paused(self, model: str, paused: bool, *, reason: str | None = None) -> bool:
        """Pause (or resume) the loop of ``model``: a paused model gets no new rollout and
        its rollout in progress waits where it is. Returns whether it changed."""
        from loopline.store.db.events import current_actor, record_event

        who = current_actor()

        def fn(conn: sa.Connection) -> bool:
            now = dialects.current_time(conn)
            row = _model_row(conn, model, now, who, lock=True)
            if bool(row.paused) == paused:
                return False
            conn.execute(
                loop_models.update()
                .where(loop_models.c.model == model)
                .values(paused=paused, reason=reason, changed_at=now, changed_by=who)
            )
            record_event(
                conn,
                "loop.paused" if paused else "loop.resumed",
                model,
                {"reason": reason},
                actor=who,
            )
            return True

        return bool(self.stores.db.run_write(fn))

    def paused(self, model: str) -> bool:
        with self.stores.db.read() as conn:
            value = conn.execute(
                sa.select(loop_models.c.paused).where(loop_models.c.model == model)
            ).scalar()
        return bool(value)


def _model_row(conn: sa.Connection, model: str, now: datetime, who: str, *, lock: bool) -> Any:
    query = sa.select(loop_models).where(loop_models.c.model == model)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        try:
            with conn.begin_nested():
                conn.execute(
                    loop_models.insert().values(
                        model=model, paused=False, changed_at=now, changed_by=who
                    )
                )
        except sa.exc.IntegrityError:
            pass  # another process added it first
        row = conn.execute(query.with_for_update() if lock else query).one()
    return row


def _events(conn: sa.Connection, rollout_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        sa.select(rollout_events)
        .where(rollout_events.c.rollout_id == rollout_id)
        .order_by(rollout_events.c.id)
    ).all()
    return [
        {
            "at": r.at.isoformat(),
            "from": r.from_state,
            "to": r.to_state,
            "reason": r.reason,
            "detail": r.detail,
        }
        for r in rows
    ]


def _jsonable(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value, default=str))


# -- driving ---------------------------------------------------------------------------------


class _Stale(Exception):
    """The rollout moved on (another step recorded first): this step's result is dropped."""


@dataclass
class Context:
    """What a step needs beside the rollout: the project's settings and the stores."""

    stores: Stores
    settings: Settings
    registry: Registry
    lease: Lease
    #: Names of [actions.NAME] tables to notify on each transition, per model.
    notify: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: The kinds of those actions (for their runs' records).
    action_kinds: Mapping[str, str] = field(default_factory=dict)


class RolloutDriver:
    """Moves rollouts through their steps, one step per :meth:`advance`."""

    def __init__(self, ctx: Context, loops: Mapping[str, LoopSettings]) -> None:
        self.ctx = ctx
        self.loops = dict(loops)
        self.rollouts = Rollouts(ctx.stores)
        self._steps: dict[str, Callable[[Rollout, LoopSettings], None]] = {
            PENDING: self._pending,
            PREPARING: self._preparing,
            TRAINING: self._training,
            GATING: self._gating,
            DEPLOYING: self._deploying,
            BAKING: self._baking,
            PROMOTING: self._promoting,
            ROLLING_BACK: self._rolling_back,
        }

    @property
    def stores(self) -> Stores:
        return self.ctx.stores

    @property
    def registry(self) -> Registry:
        return self.ctx.registry

    def settings_for(self, model: str) -> LoopSettings:
        from loopline.loop.settings import LoopSettings

        return self.loops.get(model) or LoopSettings(model=model)

    def advance(self, rollout_id: str) -> str:
        """Do the rollout's next step; returns its state afterwards. A step that raises
        ends the rollout ``failed`` with the traceback (a lost lease or a rollout moved
        on by another step raises nothing: the step is dropped)."""
        from loopline.loop.errors import LeaseLostError

        rollout = self.rollouts.get(rollout_id, events=False)
        if not rollout.active:
            return rollout.state
        if self.rollouts.paused(rollout.model):
            return rollout.state
        step = self._steps[rollout.state]
        try:
            step(rollout, self.settings_for(rollout.model))
        except (_Stale, LeaseLostError) as exc:
            log.info("rollout %s: step %s dropped: %s", rollout.id[:12], rollout.state, exc)
        except Exception as exc:
            log.exception("rollout %s: step %s failed", rollout.id[:12], rollout.state)
            message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            try:
                self._move(
                    rollout,
                    FAILED,
                    f"{rollout.state} failed: {type(exc).__name__}: {message}",
                    error=traceback.format_exc(),
                )
            except (_Stale, LeaseLostError):
                pass
        return self.rollouts.get(rollout_id, events=False).state

    # -- recording ------------------------------------------------------------------------

    def _move(
        self,
        rollout: Rollout,
        to_state: str,
        reason: str,
        *,
        detail: Mapping[str, Any] | None = None,
        also: Sequence[tuple[str, str, Mapping[str, Any]]] = (),
        **values: Any,
    ) -> None:
        """Record the transition ``rollout.state -> to_state`` (with ``values``), its event
        and its notifications, in one transaction checked against the lease; ``also``
        are further events (kind, subject, detail) of the same step."""
        from loopline.alarm.actions import ActionEvent
        from loopline.alarm.engine import enqueue
        from loopline.store.db.events import record_event

        ctx = self.ctx

        def fn(conn: sa.Connection) -> None:
            ctx.lease.check(conn)
            now = dialects.current_time(conn)
            row = conn.execute(
                sa.select(rollouts.c.state).where(rollouts.c.id == rollout.id).with_for_update()
            ).first()
            if row is None or row.state != rollout.state:
                raise _Stale(f"it is {None if row is None else row.state} now")
            update = dict(values, state=to_state, updated_at=now, reason=reason)
            if to_state in TERMINAL:
                update["ended_at"] = now
            conn.execute(
                rollouts.update()
                .where(rollouts.c.id == rollout.id)
                .values(**_jsonable_values(update))
            )
            event_detail = _jsonable(dict(detail or {}))
            conn.execute(
                rollout_events.insert().values(
                    rollout_id=rollout.id,
                    at=now,
                    from_state=rollout.state,
                    to_state=to_state,
                    reason=reason,
                    detail=event_detail,
                )
            )
            if to_state in TERMINAL:
                conn.execute(
                    loop_models.update()
                    .where(
                        loop_models.c.model == rollout.model,
                        loop_models.c.active_rollout == rollout.id,
                    )
                    .values(active_rollout=None)
                )
            record_event(
                conn,
                f"rollout.{to_state}",
                f"{rollout.model}:{rollout.id}",
                {
                    "from": rollout.state,
                    "reason": reason,
                    "champion_version": values.get("champion_version", rollout.champion_version),
                    "challenger_version": values.get(
                        "challenger_version", rollout.challenger_version
                    ),
                },
                actor=ACTOR,
            )
            for kind, subject, extra in also:
                record_event(conn, kind, subject, _jsonable(dict(extra)), actor=ACTOR)
            event = ActionEvent(
                kind=f"rollout.{to_state}",
                subject=rollout.id,
                at=now,
                model=rollout.model,
                state=to_state,
                previous_state=rollout.state,
                reason=reason,
                detail={
                    "rollout": rollout.id,
                    "champion_version": values.get("champion_version", rollout.champion_version),
                    "challenger_version": values.get(
                        "challenger_version", rollout.challenger_version
                    ),
                    **event_detail,
                },
                id=f"rollout:{rollout.id}:{to_state}",
            )
            for name in ctx.notify.get(rollout.model, ()):
                enqueue(
                    conn,
                    name,
                    ctx.action_kinds.get(name, "webhook"),
                    f"rollout:{rollout.id}:{to_state}",
                    event,
                )

        try:
            self.stores.db.run_write(fn, conflicts=3)
        except sa.exc.IntegrityError as exc:
            raise _Stale(f"{to_state} was recorded already") from exc
        log.info(
            "rollout %s of %s: %s -> %s: %s",
            rollout.id[:12],
            rollout.model,
            rollout.state,
            to_state,
            reason,
        )

    def _update(self, rollout: Rollout, **values: Any) -> None:
        """Record ``values`` on the rollout without a transition (still in its state)."""
        ctx = self.ctx

        def fn(conn: sa.Connection) -> None:
            ctx.lease.check(conn)
            now = dialects.current_time(conn)
            done = conn.execute(
                rollouts.update()
                .where(rollouts.c.id == rollout.id, rollouts.c.state == rollout.state)
                .values(updated_at=now, **_jsonable_values(values))
            ).rowcount
            if not done:
                raise _Stale("it moved on")

        self.stores.db.run_write(fn, conflicts=3)
        for key, value in values.items():
            setattr(rollout, key, value)

    # -- the steps ------------------------------------------------------------------------

    def _holder(self, model: str, alias: str) -> int | None:
        return self.registry.aliases(model).get(alias)

    def _pending(self, r: Rollout, cfg: LoopSettings) -> None:
        from loopline.registry.errors import RegistryError

        try:
            champion = self._holder(r.model, r.alias)
        except RegistryError as exc:
            self._move(r, FAILED, f"model {r.model!r}: {exc.message}")
            return
        if champion is None:
            self._move(
                r,
                FAILED,
                f"{r.model} has no {r.alias!r} alias: there is no champion to roll out against",
            )
            return
        if r.retrain:
            if not cfg.pipeline:
                self._move(
                    r,
                    FAILED,
                    f'[loop.{r.model}] names no retraining pipeline (pipeline = "...")',
                )
                return
            self._move(r, PREPARING, f"champion {r.model}/{champion}", champion_version=champion)
            return
        assert r.challenger_version is not None
        if r.challenger_version == champion:
            self._move(
                r,
                REFUSED,
                f"{r.model}/{champion} already holds {r.alias!r}: nothing to roll out",
                champion_version=champion,
            )
            return
        self._move(
            r,
            GATING,
            f"rolling out {r.model}/{r.challenger_version} against champion {r.model}/{champion}",
            champion_version=champion,
        )

    def _preparing(self, r: Rollout, cfg: LoopSettings) -> None:
        from loopline.loop.data import build_training_data

        assert r.champion_version is not None
        champion = self.registry.get(r.model, r.champion_version)
        target = self._target(r.model)
        if cfg.min_production_rows:
            from loopline.loop.data import labels_since_newest_version

            labelled = labels_since_newest_version(self.stores, champion)
            if labelled < cfg.min_production_rows:
                waited = (_utc_now() - r.created_at).total_seconds()
                if waited < cfg.max_wait_s:
                    return  # wait for more labels (this step runs again on the next tick)
                self._move(
                    r,
                    REFUSED,
                    f"only {labelled} labelled production rows after waiting {waited:.0f} s "
                    f"(min_production_rows={cfg.min_production_rows}, max_wait={cfg.max_wait})",
                )
                return
        data = build_training_data(self.stores, champion, cfg, target=target, rollout_id=r.id)
        detail = data.to_dict()
        if not data.ok:
            self._move(
                r,
                REFUSED,
                "not retrained on broken data: " + "; ".join(data.problems),
                data=detail,
                detail=detail,
            )
            return
        trained_on = {(d.name, d.version) for d in champion.datasets if d.role == "train"}
        if (data.dataset, data.version) in trained_on and not data.production_rows:
            self._move(
                r,
                REFUSED,
                f"no new data: {champion.ref} was trained on {data.ref} and no labelled "
                "production rows arrived since",
                data=detail,
                detail=detail,
            )
            return
        self._move(
            r,
            TRAINING,
            f"training on {data.ref} ({data.production_rows} labelled production rows added"
            + (
                f", {data.holdout_rows} kept as the fresh holdout {data.holdout}"
                if data.holdout
                else ""
            )
            + ")",
            data=detail | {"pipeline_runs": []},
            pipeline_run_id=uuid.uuid4().hex,
            detail=detail,
        )

    def _target(self, model: str) -> str:
        from loopline.loop.gates import gate_configs
        from loopline.monitor.settings import monitor_config

        gates = gate_configs(self.ctx.settings).get(model)
        if gates is not None and gates.target:
            return gates.target
        monitor = monitor_config(self.ctx.settings, model)
        if monitor.target:
            return monitor.target
        raise LoopConfigError(
            f"the loop of {model!r} needs the label column: set target in [gates.{model}]",
            source=str(self.ctx.settings.config_file or "loopline.toml"),
        )

    def _training(self, r: Rollout, cfg: LoopSettings) -> None:
        from loopline.pipeline.loader import load_pipeline
        from loopline.pipeline.reaper import abandon_pipeline_run
        from loopline.pipeline.runner import run_pipeline
        from loopline.pipeline.tables import pipeline_runs

        assert r.pipeline_run_id is not None
        assert r.data is not None
        assert cfg.pipeline
        with self.stores.db.read() as conn:
            found = conn.execute(
                sa.select(pipeline_runs).where(pipeline_runs.c.id == r.pipeline_run_id)
            ).first()
        resume: str | None = None
        if found is not None:
            if found.status == "finished":
                self._trained(r, cfg, found.id)
                return
            if found.status == "failed":
                self._pipeline_failed(r, found.id, found.error)
                return
            if found.status == "running":
                # This controller holds the lease, so the process that ran it is gone.
                abandon_pipeline_run(
                    self.stores,
                    found.id,
                    "the controller running this pipeline died; another one resumes it",
                )
            resume = found.id
            attempts = [*list(r.data.get("pipeline_runs") or []), found.id]
            self._update(
                r,
                pipeline_run_id=uuid.uuid4().hex,
                data=dict(r.data) | {"pipeline_runs": attempts},
            )
        assert r.pipeline_run_id is not None
        assert r.data is not None
        pipeline, path = load_pipeline(self._pipeline_target(cfg.pipeline))
        params = dict(cfg.params)
        if cfg.data_param:
            params[cfg.data_param] = r.data["ref"]
        from loopline.execute import open_executor

        # [executor] decides where the retraining's steps run (Ray: the cluster's workers).
        executor = open_executor(self.ctx.settings, thread_name="loopline-step")
        try:
            result = run_pipeline(
                pipeline,
                self.stores,
                params=params,
                resume=resume,
                source=path,
                run_id=r.pipeline_run_id,
                tags={"loopline.rollout": r.id},
                executor=executor,
            )
        finally:
            executor.shutdown()
        if result.ok:
            self._trained(r, cfg, result.id)
        else:
            self._pipeline_failed(r, result.id, result.error, result)

    def _pipeline_target(self, target: str) -> str:
        """A pipeline file relative to the project's folder (not this process's cwd)."""
        from pathlib import Path

        from loopline.pipeline.loader import EXAMPLE_PREFIX

        if target.startswith(EXAMPLE_PREFIX) or Path(target).is_absolute():
            return target
        return str(self.ctx.settings.project_dir / target)

    def _pipeline_failed(
        self, r: Rollout, run_id: str, error: str | None, result: Any = None
    ) -> None:
        trace = None
        if result is not None:
            for rec in result.steps.values():
                if rec.status == "failed":
                    trace = rec.traceback or rec.error
                    break
        if trace is None:
            trace = self._step_traceback(run_id)
        self._move(
            r,
            FAILED,
            f"the retraining pipeline failed ({error or 'no error recorded'}); the champion "
            f"{r.model}/{r.champion_version} keeps serving",
            error=trace or error,
            detail={"pipeline_run": run_id},
        )

    def _step_traceback(self, run_id: str) -> str | None:
        from loopline.pipeline.tables import step_runs

        with self.stores.db.read() as conn:
            row = conn.execute(
                sa.select(step_runs.c.error).where(
                    step_runs.c.pipeline_run_id == run_id, step_runs.c.status == "failed"
                )
            ).first()
        return None if row is None else row.error

    def _trained(self, r: Rollout, cfg: LoopSettings, run_id: str) -> None:
        version = self._registered_by(r, run_id)
        if version is None:
            self._move(
                r,
                FAILED,
                f"the retraining pipeline finished without registering a version of {r.model}",
                detail={"pipeline_run": run_id},
            )
            return
        self._move(
            r,
            GATING,
            f"the retraining pipeline registered {r.model}/{version}",
            challenger_version=version,
            detail={"pipeline_run": run_id, "challenger_version": version},
        )

    def _registered_by(self, r: Rollout, run_id: str) -> int | None:
        """The newest version of the model registered by this rollout's pipeline runs
        (the last run, and the earlier ones it resumed)."""
        from loopline.registry.tables import model_versions
        from loopline.tracking.tables import tags

        attempts = [run_id, *((r.data or {}).get("pipeline_runs") or [])]
        tracked = (
            sa.select(tags.c.run_id)
            .where(tags.c.key == "loopline.pipeline_run", tags.c.value.in_(attempts))
            .scalar_subquery()
        )
        with self.stores.db.read() as conn:
            version = conn.execute(
                sa.select(sa.func.max(model_versions.c.version)).where(
                    model_versions.c.model == r.model, model_versions.c.run_id.in_(tracked)
                )
            ).scalar()
        return None if version is None else int(version)

    def _gating(self, r: Rollout, cfg: LoopSettings) -> None:
        from dataclasses import replace

        from loopline.loop.gates import GATE_FAILED, check_candidate, failure_event, gate_configs

        assert r.challenger_version is not None
        assert r.champion_version is not None
        config = gate_configs(self.ctx.settings).get(r.model)
        if config is None:
            raise LoopConfigError(
                f"the loop of {r.model!r} needs gates: add a [gates.{r.model}] table "
                "(the gates decide whether a challenger may go live)",
                source=str(self.ctx.settings.config_file or "loopline.toml"),
            )
        challenger = self.registry.get(r.model, r.challenger_version)
        champion = self.registry.get(r.model, r.champion_version)
        holdout = (r.data or {}).get("holdout")
        on_gate, on_fresh = config, config
        if holdout and cfg.compare_on == "fresh":
            from loopline.evaluate.gates import Gate

            # The pinned holdout is a fixed reference: the absolute criteria (the release
            # floor) hold there, comparable across every version. The comparison with
            # the champion is made on today's rows: after a drift the world of the pinned
            # rows is gone, and a challenger that fits today may be worse there by design.
            parsed = [(c, Gate.parse(c)) for c in config.criteria]
            on_gate = replace(config, criteria=tuple(c for c, g in parsed if not g.uses_champion))
            on_fresh = replace(
                config,
                criteria=tuple(c for c, g in parsed if g.uses_champion or g.is_data_check),
            )
        checks = [
            (
                "gate holdout",
                check_candidate(
                    self.stores, on_gate, challenger, registry=self.registry, champion=champion
                ),
            )
        ]
        if holdout:
            fresh = replace(on_fresh, holdout=holdout, split=None)
            checks.append(
                (
                    "fresh holdout",
                    check_candidate(
                        self.stores, fresh, challenger, registry=self.registry, champion=champion
                    ),
                )
            )
        verdict = {
            "passed": all(c.passed for _, c in checks),
            "checks": [{"on": name, **c.as_dict()} for name, c in checks],
        }
        failing = [
            f"{name}: {reason}"
            for name, c in checks
            for _, status, _, _, reason in c.verdict.rows()
            if status == "fail"
        ]
        if not verdict["passed"]:
            gate_events = []
            for name, c in checks:
                if not c.passed:
                    subject, gate_detail = failure_event(c, "rollout")
                    gate_detail.update(on=name, rollout=r.id)
                    gate_events.append((GATE_FAILED, subject, gate_detail))
            self._move(
                r,
                REFUSED,
                f"{challenger.ref} failed the gates: " + "; ".join(failing[:6]),
                verdict=verdict,
                detail={"failing": failing},
                also=gate_events,
            )
            return
        self._build_reference(challenger)
        on = " and ".join(name for name, _ in checks)
        self._move(
            r,
            DEPLOYING,
            f"{challenger.ref} passed the gates on the {on}",
            verdict=verdict,
        )

    def _build_reference(self, challenger: ModelVersion) -> None:
        """The challenger's monitoring reference, built (and stored) before it takes
        traffic, so the first bake window is judged without waiting for it. A version
        the monitor cannot describe still deploys: its windows say why."""
        from loopline.monitor.reference import try_model_reference

        built, why = try_model_reference(self.stores, challenger, registry=self.registry)
        if built is None:
            log.warning("no monitoring reference for %s: %s", challenger.ref, why)

    def _split_is_ours(self, r: Rollout, split: TrafficSplit | None) -> bool:
        return (
            split is not None
            and split.candidate == f"{r.model}/{r.challenger_version}"
            and split.mode == r.mode
            and abs(split.percent - r.percent) < 1e-9
        )

    def _deploying(self, r: Rollout, cfg: LoopSettings) -> None:
        from loopline.registry.errors import ConflictError

        holder = self._holder(r.model, r.alias)
        if holder != r.champion_version:
            self._stand_down(r, f"{r.alias!r} moved to version {holder} before the {r.mode}")
            return
        current = self.registry.traffic(r.model, r.alias)
        if not self._split_is_ours(r, current):
            if current is not None:
                self._stand_down(
                    r,
                    f"{r.model}@{r.alias} already has a traffic split ({current.percent:g}% "
                    f"{current.mode} to {current.candidate}, set by {current.updated_by})",
                    clear_ours=False,
                )
                return
            try:
                current = self.registry.set_traffic(
                    r.model,
                    f"{r.model}/{r.challenger_version}",
                    r.percent,
                    alias=r.alias,
                    mode=r.mode,
                    reason=f"rollout {r.id[:12]}: {r.mode} of version {r.challenger_version}",
                    actor=ACTOR,
                    expect=None,
                )
            except ConflictError as exc:
                self._stand_down(
                    r, f"the traffic split changed meanwhile: {exc.message}", clear_ours=False
                )
                return
        assert current is not None
        self._move(
            r,
            BAKING,
            f"{r.percent:g}% {r.mode} of {r.model}/{r.challenger_version} beside "
            f"{r.model}/{r.champion_version}; baking for {cfg.bake_windows} windows",
            split=current.to_dict(),
        )

    def _baking(self, r: Rollout, cfg: LoopSettings) -> None:
        from loopline.loop.bake import judge_window, windows_since

        assert r.split is not None
        assert r.challenger_version is not None
        assert r.champion_version is not None
        holder = self._holder(r.model, r.alias)
        if holder != r.champion_version:
            self._stand_down(
                r,
                f"{r.alias!r} was moved to version {holder} during the bake (by hand?)",
            )
            return
        current = self.registry.traffic(r.model, r.alias)
        if not self._split_is_ours(r, current):
            what = (
                "removed"
                if current is None
                else f"changed to {current.percent:g}% {current.mode} to {current.candidate}"
            )
            self._stand_down(r, f"the traffic split was {what} during the bake", clear_ours=False)
            return
        since = datetime.fromisoformat(str(r.split["updated_at"]))
        judged = list(r.bake)
        after = datetime.fromisoformat(judged[-1]["window_end"]) if judged else None
        role = "canary" if r.mode == "canary" else "shadow"
        new = []
        for window in windows_since(self.stores, r.model, r.challenger_version, role, since, after):
            new.append(
                judge_window(
                    self.stores,
                    r.model,
                    window,
                    challenger=r.challenger_version,
                    champion=r.champion_version,
                    role=role,
                    criteria=cfg.bake,
                ).to_dict()
            )
        if not new:
            return
        judged += new
        failed = [w for w in judged if w["passed"] is False]
        passed = [w for w in judged if w["passed"] is True]
        empty = [w for w in judged if w["empty"]]
        if failed:
            reasons = [str(res["reason"]) for res in failed[0]["results"] if not res["passed"]]
            self._move(
                r,
                ROLLING_BACK,
                f"the {r.mode} failed its bake in the window ending "
                f"{failed[0]['window_end']}: " + "; ".join(reasons),
                bake=judged,
                detail={"window": failed[0]},
            )
        elif len(passed) >= cfg.bake_windows:
            self._move(
                r,
                PROMOTING,
                f"{r.model}/{r.challenger_version} baked healthy for {len(passed)} windows",
                bake=judged,
                detail={"windows": [w["window_end"] for w in passed]},
            )
        elif len(empty) > cfg.max_empty_windows:
            self._move(
                r,
                ROLLING_BACK,
                f"the {r.mode} got no traffic in {len(empty)} windows (max_empty_windows="
                f"{cfg.max_empty_windows}): nothing to judge it on",
                bake=judged,
            )
        else:
            self._update(r, bake=judged)

    def _promoting(self, r: Rollout, cfg: LoopSettings) -> None:
        from loopline.registry.errors import ConflictError

        assert r.challenger_version is not None
        holder = self._holder(r.model, r.alias)
        if holder != r.challenger_version:
            if holder != r.champion_version:
                self._stand_down(
                    r, f"{r.alias!r} was moved to version {holder} before the promotion"
                )
                return
            try:
                self.registry.promote(
                    r.model,
                    r.challenger_version,
                    r.alias,
                    reason=f"rollout {r.id[:12]}: passed the gates and baked healthy",
                    actor=ACTOR,
                    expect=r.champion_version,
                )
            except ConflictError as exc:
                if self._holder(r.model, r.alias) != r.challenger_version:
                    self._stand_down(r, f"the promotion conflicted: {exc.message}")
                    return
        self._clear_split(r)
        self._move(
            r,
            PROMOTED,
            f"{r.model}/{r.challenger_version} now holds {r.alias!r} (was "
            f"{r.model}/{r.champion_version})",
        )

    def _rolling_back(self, r: Rollout, cfg: LoopSettings) -> None:
        cleared = self._clear_split(r)
        self._move(
            r,
            ROLLED_BACK,
            (r.reason or "rolled back")
            + (
                f"; all traffic back on {r.model}/{r.champion_version}"
                if cleared is not False
                else "; the traffic split was not ours any more: left as it is"
            ),
        )

    def _clear_split(self, r: Rollout) -> bool | None:
        """Remove the rollout's split if it is still the one it set: True (removed), None
        (already gone), False (someone else's now: left alone)."""
        from loopline.registry.errors import ConflictError

        current = self.registry.traffic(r.model, r.alias)
        if current is None:
            return None
        if not self._split_is_ours(r, current):
            return False
        try:
            self.registry.clear_traffic(
                r.model,
                r.alias,
                reason=f"rollout {r.id[:12]}: {r.mode} ended",
                actor=ACTOR,
                expect=current,
            )
        except ConflictError:
            return False
        return True

    def _stand_down(self, r: Rollout, reason: str, *, clear_ours: bool = True) -> None:
        note = ""
        if clear_ours and r.split is not None:
            cleared = self._clear_split(r)
            if cleared:
                note = f"; removed its own {r.mode} split"
        self._move(r, STOOD_DOWN, f"stood down: {reason}{note}")


def _utc_now() -> datetime:
    from datetime import UTC

    return datetime.now(UTC)


def _jsonable_values(values: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in values.items():
        out[key] = _jsonable(value) if isinstance(value, dict | list) else value
    return out


def cooldown_left(stores: Stores, model: str, seconds: float, now: datetime) -> float:
    """Seconds until a new rollout of ``model`` may start (its last one ended ``seconds``
    of cooldown ago); 0 when it may now."""
    if seconds <= 0:
        return 0.0
    with stores.db.read() as conn:
        ended = conn.execute(
            sa.select(sa.func.max(rollouts.c.ended_at)).where(rollouts.c.model == model)
        ).scalar()
    if ended is None:
        return 0.0
    from loopline.store.db.types import to_utc

    left = to_utc(ended) + timedelta(seconds=seconds) - now
    return float(max(0.0, left.total_seconds()))


__all__ = [
    "ACTIVE",
    "STATES",
    "TERMINAL",
    "Context",
    "LoopError",
    "Rollout",
    "RolloutDriver",
    "Rollouts",
]
