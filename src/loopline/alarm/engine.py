"""The alarm engine: evaluate rules, record state changes, run their actions exactly once.

A state change, its event in the audit log (``alarm.state_changed``, which ``[events]``
webhooks receive) and the action runs it calls for are written in one transaction (the
change is a compare-and-set on the alarm's state row, so two evaluators never record it
twice), each run as ``pending`` in ``ll_action_runs``; the :class:`ActionRunner` then
claims pending runs and executes them in a thread pool, recording each result. A process
killed between the two leaves the runs ``pending``: the next runner executes them, so no
action is lost; a run killed while ``running`` is retried after a grace period (webhook
receivers drop the duplicate by its delivery id). Actions run side by side with a time
limit each, so a slow webhook never stalls the evaluation of other alarms or the other
actions.

Alertmanager's webhook payloads (``receive_alertmanager``) go through the same path: a
firing alert whose ``alertname`` (or ``loopline_alarm`` label) names an alarm moves it to
``alarm`` and runs its actions; a resolved one to ``ok``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from loopline.alarm.actions import Action, ActionEvent, ActionResult
from loopline.alarm.rules import ALARM, INSUFFICIENT, OK, Evaluation, datapoints, decide
from loopline.alarm.settings import ActionSettings, AlarmSettings
from loopline.alarm.tables import action_runs, alarm_history, alarm_states
from loopline.store.db import dialects

if TYPE_CHECKING:
    from loopline.registry import Registry
    from loopline.store.stores import Stores

log = logging.getLogger("loopline.alarm")

#: A run left "running" this long is taken for dead and run again.
STALE_RUN = timedelta(minutes=10)

ActionFactory = Callable[[ActionSettings], Action]


class _Refused:
    """An action that cannot run in this process (the loop's kinds outside the loop)."""

    def __init__(self, settings: ActionSettings) -> None:
        self.name: str = settings.name
        self.kind: str = settings.kind

    def run(self, event: ActionEvent) -> ActionResult:
        return ActionResult(
            self.name,
            False,
            0,
            error=f"a {self.kind} action runs in the loop controller (loopline loop), "
            "which did not run this one",
        )


def build_actions(
    configs: Mapping[str, ActionSettings],
    factories: Mapping[str, ActionFactory] | None = None,
    environ: dict[str, str] | None = None,
) -> dict[str, Action]:
    """Actions from their settings: webhooks here, the other kinds by ``factories``."""
    from loopline.alarm.webhook import WebhookAction

    out: dict[str, Action] = {}
    for name, cfg in configs.items():
        if cfg.kind == "webhook":
            assert cfg.url is not None
            out[name] = WebhookAction(
                name,
                cfg.url,
                secret=cfg.secret_value(environ),
                timeout_s=cfg.timeout_s,
                retries=cfg.retries,
                backoff_s=cfg.backoff_s,
                headers={str(k): str(v) for k, v in cfg.headers.items()},
            )
        elif factories is not None and cfg.kind in factories:
            out[name] = factories[cfg.kind](cfg)
        else:
            out[name] = _Refused(cfg)
    return out


class ActionRunner:
    """Executes pending action runs in a thread pool and records their results."""

    def __init__(self, stores: Stores, actions: Mapping[str, Action], *, workers: int = 4) -> None:
        self.stores = stores
        self.actions = dict(actions)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="loopline-action")
        self._inflight: set[str] = set()

    def pending(self) -> int:
        with self.stores.db.read() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count())
                    .select_from(action_runs)
                    .where(action_runs.c.status == "pending")
                ).scalar_one()
            )

    def dispatch(self) -> list[Future[ActionResult]]:
        """Claim every pending run (and runs stuck in "running") and start them."""
        cutoff = datetime.now(UTC) - STALE_RUN
        with self.stores.db.read() as conn:
            rows = conn.execute(
                sa.select(action_runs.c.id, action_runs.c.status, action_runs.c.started_at).where(
                    sa.or_(
                        action_runs.c.status == "pending",
                        sa.and_(
                            action_runs.c.status == "running", action_runs.c.started_at < cutoff
                        ),
                    )
                )
            ).all()
        futures = []
        for row in rows:
            if row.id in self._inflight:
                continue
            if self._claim(row.id, row.status, row.started_at):
                self._inflight.add(row.id)
                futures.append(self._pool.submit(self._execute, row.id))
        return futures

    def _claim(self, run_id: str, status: str, started: datetime) -> bool:
        def fn(conn: sa.Connection) -> bool:
            updated = conn.execute(
                action_runs.update()
                .where(
                    action_runs.c.id == run_id,
                    action_runs.c.status == status,
                    action_runs.c.started_at == started,
                )
                .values(status="running", started_at=dialects.current_time(conn))
            ).rowcount
            return bool(updated)

        return self.stores.db.run_write(fn)

    def _execute(self, run_id: str) -> ActionResult:
        try:
            with self.stores.db.read() as conn:
                row = conn.execute(sa.select(action_runs).where(action_runs.c.id == run_id)).one()
            action = self.actions.get(row.action)
            event = _event_from(row.event)
            if action is None:
                result = ActionResult(
                    row.action, False, 0, error=f"no action named {row.action!r} is configured"
                )
            else:
                try:
                    result = action.run(event)
                except Exception as exc:  # an action must report, not raise; record it anyway
                    log.exception("action %s raised", row.action)
                    result = ActionResult(
                        row.action, False, 1, error=f"{type(exc).__name__}: {exc}"
                    )
            self._finish(run_id, result)
            return result
        finally:
            self._inflight.discard(run_id)

    def _finish(self, run_id: str, result: ActionResult) -> None:
        def fn(conn: sa.Connection) -> None:
            conn.execute(
                action_runs.update()
                .where(action_runs.c.id == run_id)
                .values(
                    status="ok" if result.ok else "failed",
                    ended_at=dialects.current_time(conn),
                    attempts=result.attempts,
                    error=result.error,
                    detail=_jsonable(result.detail),
                )
            )

        self.stores.db.run_write(fn)

    def shutdown(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=not wait)


def enqueue(conn: sa.Connection, action: str, kind: str, trigger: str, event: ActionEvent) -> str:
    """Record a pending run of ``action`` for ``event`` (in the caller's transaction)."""
    run_id = uuid.uuid4().hex
    now = dialects.current_time(conn)
    conn.execute(
        action_runs.insert().values(
            id=run_id,
            action=action,
            kind=kind,
            trigger=trigger,
            event=event.to_dict(),
            started_at=now,
            status="pending",
            attempts=0,
        )
    )
    return run_id


def _event_from(data: Mapping[str, Any]) -> ActionEvent:
    return ActionEvent(
        kind=str(data["kind"]),
        subject=str(data["subject"]),
        at=datetime.fromisoformat(str(data["at"])),
        model=data.get("model"),
        alarm=data.get("alarm"),
        state=data.get("state"),
        previous_state=data.get("previous_state"),
        reason=data.get("reason"),
        detail=dict(data.get("detail") or {}),
        id=str(data.get("id") or ""),
    )


def _jsonable(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value, default=str))


@dataclass
class AlarmState:
    alarm: str
    state: str
    since: datetime
    evaluated_at: datetime
    model: str
    version: int | None
    value: float | None
    reason: str
    last_window: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "alarm": self.alarm,
            "state": self.state,
            "since": self.since.isoformat(),
            "evaluated_at": self.evaluated_at.isoformat(),
            "model": self.model,
            "version": self.version,
            "value": self.value,
            "reason": self.reason,
        }


class AlarmEngine:
    """Evaluates the project's alarms against the stored series and acts on changes."""

    def __init__(
        self,
        stores: Stores,
        alarms: Mapping[str, AlarmSettings],
        actions: Mapping[str, ActionSettings] | None = None,
        *,
        registry: Registry | None = None,
    ) -> None:
        from loopline.registry import Registry

        self.stores = stores
        self.alarms = dict(alarms)
        self.actions = dict(actions or {})
        self.registry = registry or Registry(stores)

    # -- reading ----------------------------------------------------------------------------

    def states(self) -> dict[str, AlarmState]:
        with self.stores.db.read() as conn:
            rows = conn.execute(sa.select(alarm_states)).all()
        return {r.alarm: _state(r) for r in rows}

    def history(self, alarm: str, limit: int = 50) -> list[dict[str, Any]]:
        query = (
            sa.select(alarm_history)
            .where(alarm_history.c.alarm == alarm)
            .order_by(alarm_history.c.id.desc())
            .limit(limit)
        )
        with self.stores.db.read() as conn:
            rows = conn.execute(query).all()
            runs = conn.execute(
                sa.select(action_runs)
                .where(action_runs.c.trigger.startswith(f"alarm:{alarm}:", autoescape=True))
                .order_by(action_runs.c.started_at)
            ).all()
        by_change: dict[str, list[dict[str, Any]]] = {}
        for run in runs:
            change = run.trigger.rsplit(":", 1)[-1]
            by_change.setdefault(change, []).append(
                {
                    "action": run.action,
                    "kind": run.kind,
                    "status": run.status,
                    "attempts": run.attempts,
                    "error": run.error,
                    "started_at": run.started_at.isoformat(),
                    "ended_at": None if run.ended_at is None else run.ended_at.isoformat(),
                }
            )
        return [
            {
                "id": r.id,
                "at": r.at.isoformat(),
                "from": r.from_state,
                "to": r.to_state,
                "reason": r.reason,
                "model": r.model,
                "version": r.version,
                "source": r.source,
                "datapoints": r.datapoints,
                "actions": by_change.get(str(r.id), []),
            }
            for r in rows
        ]

    def action_runs(self, *, trigger: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """The newest executions of actions (whose trigger starts with ``trigger``), newest
        first, with their results."""
        query = sa.select(action_runs).order_by(action_runs.c.started_at.desc()).limit(limit)
        if trigger is not None:
            query = query.where(action_runs.c.trigger.startswith(trigger, autoescape=True))
        with self.stores.db.read() as conn:
            rows = conn.execute(query).all()
        return [
            {
                "id": r.id,
                "action": r.action,
                "kind": r.kind,
                "trigger": r.trigger,
                "status": r.status,
                "attempts": r.attempts,
                "error": r.error,
                "detail": r.detail,
                "started_at": r.started_at.isoformat(),
                "ended_at": None if r.ended_at is None else r.ended_at.isoformat(),
            }
            for r in rows
        ]

    # -- evaluating -------------------------------------------------------------------------

    def evaluate(self, name: str, *, dry_run: bool = False) -> Evaluation:
        """The alarm's state now; unless ``dry_run``, a change is recorded and its
        actions queued (run them with :meth:`ActionRunner.dispatch`)."""
        from loopline.registry.errors import RegistryError

        alarm = self.alarms[name]
        current = self.states().get(name)
        previous = None if current is None else current.state
        try:
            mv = self.registry.resolve(alarm.model)
        except RegistryError as exc:
            evaluation = Evaluation(
                name, alarm.model, None, INSUFFICIENT, previous, f"{exc.message}"
            )
        else:
            points = datapoints(
                self.stores, alarm, mv.version, max(alarm.periods, alarm.recover_windows)
            )
            state, reason = decide(alarm, points, previous)
            evaluation = Evaluation(name, alarm.model, mv.version, state, previous, reason, points)
        if not dry_run:
            self._record(alarm, evaluation, current)
        return evaluation

    def evaluate_all(self, *, dry_run: bool = False) -> list[Evaluation]:
        out = []
        for name in sorted(self.alarms):
            try:
                out.append(self.evaluate(name, dry_run=dry_run))
            except Exception:
                log.exception("evaluating alarm %s failed", name)
        return out

    def _record(self, alarm: AlarmSettings, ev: Evaluation, current: AlarmState | None) -> bool:
        """Store the state; on a change, the history row and the action runs, at once.
        Returns whether this call recorded a change."""
        previous = None if current is None else current.state

        def fn(conn: sa.Connection) -> bool:
            now = dialects.current_time(conn)
            values = {
                "state": ev.state,
                "evaluated_at": now,
                "model": alarm.model,
                "version": ev.version,
                "value": ev.value,
                "reason": ev.reason,
                "last_window": ev.newest_window,
            }
            if previous is None:
                try:
                    with conn.begin_nested():
                        conn.execute(
                            alarm_states.insert().values(alarm=alarm.name, since=now, **values)
                        )
                except sa.exc.IntegrityError:
                    return False  # another evaluator recorded it first
            else:
                changed = ev.state != previous
                update = alarm_states.update().where(
                    alarm_states.c.alarm == alarm.name, alarm_states.c.state == previous
                )
                done = conn.execute(
                    update.values(**values, **({"since": now} if changed else {}))
                ).rowcount
                if not done:
                    return False  # moved by another evaluator meanwhile
                if not changed:
                    return False
            if ev.state == previous:
                return False
            history_id = conn.execute(
                alarm_history.insert().values(
                    alarm=alarm.name,
                    at=now,
                    from_state=previous,
                    to_state=ev.state,
                    reason=ev.reason,
                    datapoints=[p.to_dict() for p in ev.datapoints],
                    model=alarm.model,
                    version=ev.version,
                    source="rule",
                )
            ).inserted_primary_key
            assert history_id is not None
            _record_change(conn, alarm, previous, ev.state, ev.reason, ev.version, "rule")
            self._queue_actions(
                conn,
                alarm,
                ev.state,
                previous,
                ev.reason,
                ev.version,
                [p.to_dict() for p in ev.datapoints],
                int(history_id[0]),
                now,
            )
            return True

        return bool(self.stores.db.run_write(fn, conflicts=3))

    def _queue_actions(
        self,
        conn: sa.Connection,
        alarm: AlarmSettings,
        state: str,
        previous: str | None,
        reason: str,
        version: int | None,
        points: list[dict[str, Any]],
        change_id: int,
        now: datetime,
    ) -> list[str]:
        names = alarm.actions if state == ALARM else alarm.ok_actions if state == OK else ()
        if state == OK and previous in (None, INSUFFICIENT):
            names = ()  # a first "ok" is no recovery
        event = ActionEvent(
            kind="alarm.state_changed",
            subject=alarm.name,
            at=now,
            model=alarm.model,
            alarm=alarm.name,
            state=state,
            previous_state=previous,
            reason=reason,
            detail={"version": version, "when": alarm.when, "datapoints": points},
            id=f"alarm:{alarm.name}:{change_id}",
        )
        out = []
        for name in names:
            cfg = self.actions.get(name)
            kind = cfg.kind if cfg is not None else "unknown"
            out.append(enqueue(conn, name, kind, f"alarm:{alarm.name}:{change_id}", event))
        return out

    # -- Alertmanager -----------------------------------------------------------------------

    def receive_alertmanager(self, payload: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Apply an Alertmanager webhook payload (version 4); returns what each alert did."""
        from loopline.alarm.errors import AlarmError

        alerts = payload.get("alerts")
        if not isinstance(alerts, list):
            raise AlarmError("An Alertmanager payload has an 'alerts' list; this one has none")
        out = []
        for alert in alerts:
            if not isinstance(alert, Mapping):
                continue
            labels = alert.get("labels") or {}
            name = str(labels.get("loopline_alarm") or labels.get("alertname") or "")
            status = str(alert.get("status") or payload.get("status") or "")
            if name not in self.alarms:
                out.append({"alert": name, "applied": False, "reason": "no alarm of that name"})
                continue
            state = ALARM if status == "firing" else OK if status == "resolved" else None
            if state is None:
                out.append({"alert": name, "applied": False, "reason": f"status {status!r}"})
                continue
            annotations = alert.get("annotations") or {}
            reason = str(
                annotations.get("summary")
                or annotations.get("description")
                or f"Alertmanager: {status}"
            )
            changed = self._force(self.alarms[name], state, f"Alertmanager: {reason}", alert)
            out.append({"alert": name, "applied": True, "state": state, "changed": changed})
        return out

    def _force(
        self, alarm: AlarmSettings, state: str, reason: str, alert: Mapping[str, Any]
    ) -> bool:
        def fn(conn: sa.Connection) -> bool:
            now = dialects.current_time(conn)
            row = conn.execute(
                sa.select(alarm_states).where(alarm_states.c.alarm == alarm.name).with_for_update()
            ).first()
            previous = None if row is None else row.state
            if previous == state:
                return False
            version: int | None = None if row is None else row.version
            values = {
                "state": state,
                "since": now,
                "evaluated_at": now,
                "model": alarm.model,
                "version": version,
                "value": None,
                "reason": reason,
                "last_window": None if row is None else row.last_window,
            }
            if row is None:
                conn.execute(alarm_states.insert().values(alarm=alarm.name, **values))
            else:
                conn.execute(
                    alarm_states.update().where(alarm_states.c.alarm == alarm.name).values(**values)
                )
            history_id = conn.execute(
                alarm_history.insert().values(
                    alarm=alarm.name,
                    at=now,
                    from_state=previous,
                    to_state=state,
                    reason=reason,
                    datapoints=[_jsonable(dict(alert))],
                    model=alarm.model,
                    version=version,
                    source="alertmanager",
                )
            ).inserted_primary_key
            assert history_id is not None
            _record_change(conn, alarm, previous, state, reason, version, "alertmanager")
            self._queue_actions(
                conn, alarm, state, previous, reason, version, [], int(history_id[0]), now
            )
            return True

        return bool(self.stores.db.run_write(fn, conflicts=3))


def _record_change(
    conn: sa.Connection,
    alarm: AlarmSettings,
    previous: str | None,
    state: str,
    reason: str,
    version: int | None,
    source: str,
) -> None:
    """The change in the project's audit log (``alarm.state_changed``), in the change's
    own transaction: what ``[events]`` webhooks are told."""
    from loopline.store.db.events import record_event

    record_event(
        conn,
        "alarm.state_changed",
        alarm.name,
        {
            "from": previous,
            "to": state,
            "reason": reason,
            "model": alarm.model,
            "version": version,
            "when": alarm.when,
            "source": source,
        },
    )


def _state(r: Any) -> AlarmState:
    return AlarmState(
        r.alarm,
        r.state,
        r.since,
        r.evaluated_at,
        r.model,
        r.version,
        r.value,
        r.reason,
        r.last_window,
    )
