"""The loop controller: monitors on their schedules, alarms, actions, rollouts.

Each tick (``[controller] tick_s``) the controller

1. takes or renews the lease (a controller without it waits: it is the standby);
2. runs each monitored model's due windows (``[monitor.MODEL] every``): windows aligned
   on multiples of ``every``, run once the window ended ``delay`` ago, the missed ones of
   a restart caught up to ``catch_up`` windows;
3. evaluates the alarms on the stored series, recording changes and queueing actions;
4. starts the queued actions in a thread pool (webhooks, retraining ...), so a slow one
   holds up nothing else;
5. starts a pass of the event delivery (``[events]`` webhooks: see
   :mod:`loopline.alarm.delivery`) in a thread of its own, unless one is still running;
6. advances each active rollout by one step, each in a worker thread of its own, so a
   retraining that takes minutes does not stop the monitors, the alarms or the other
   rollouts.

Everything it does is recorded before it is done (see :mod:`loopline.loop.rollout`),
so a controller killed at any point resumes where it was when it (or another one)
starts again.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from loopline.loop.lease import Lease
from loopline.loop.tables import loop_models
from loopline.store.db import dialects

if TYPE_CHECKING:
    from loopline.config import Settings
    from loopline.loop.settings import ControllerSettings, LoopSettings
    from loopline.monitor.settings import MonitorSettings
    from loopline.store.stores import Stores

log = logging.getLogger("loopline.loop")


@dataclass
class ControllerStats:
    started_at: float = field(default_factory=time.time)
    ticks: int = 0
    last_tick_at: float | None = None
    monitor_runs: int = 0
    monitor_failures: int = 0
    alarm_changes: int = 0
    steps: int = 0
    #: Event deliveries made, and attempts that failed (to be retried, or given up).
    deliveries: int = 0
    delivery_failures: int = 0
    errors: int = 0
    leader: bool = False
    last_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "started_at": datetime.fromtimestamp(self.started_at, UTC).isoformat(),
            "ticks": self.ticks,
            "last_tick_at": None
            if self.last_tick_at is None
            else datetime.fromtimestamp(self.last_tick_at, UTC).isoformat(),
            "monitor_runs": self.monitor_runs,
            "monitor_failures": self.monitor_failures,
            "alarm_changes": self.alarm_changes,
            "steps": self.steps,
            "deliveries": self.deliveries,
            "delivery_failures": self.delivery_failures,
            "errors": self.errors,
            "leader": self.leader,
            "last_error": self.last_error,
        }


class Controller:
    """The loop of one project, driven from one process (see the module's docstring)."""

    def __init__(
        self,
        stores: Stores,
        settings: Settings | None = None,
        *,
        holder: str | None = None,
        controller: ControllerSettings | None = None,
    ) -> None:
        from loopline.alarm.delivery import EventDelivery
        from loopline.alarm.engine import ActionRunner, AlarmEngine, build_actions
        from loopline.alarm.settings import action_configs, alarm_configs
        from loopline.loop.actions import loop_action_factories
        from loopline.loop.rollout import Context, RolloutDriver
        from loopline.loop.settings import controller_settings, loop_configs
        from loopline.monitor.settings import monitor_configs
        from loopline.registry import Registry

        self.stores = stores
        self.settings = settings or stores.settings
        self.config = controller or controller_settings(self.settings)
        self.registry = Registry(stores)
        self.lease = Lease(stores, ttl_s=self.config.lease_s, holder=holder)
        self.loops: dict[str, LoopSettings] = loop_configs(self.settings)
        self.monitors: dict[str, MonitorSettings] = {
            name: cfg for name, cfg in monitor_configs(self.settings).items() if cfg.every
        }
        self.alarms = alarm_configs(self.settings)
        self.actions = action_configs(self.settings)
        self._check()
        self.engine = AlarmEngine(stores, self.alarms, self.actions, registry=self.registry)
        self.runner = ActionRunner(
            stores,
            build_actions(self.actions, factories=loop_action_factories(self)),
            workers=self.config.action_workers,
        )
        self.driver = RolloutDriver(
            Context(
                stores,
                self.settings,
                self.registry,
                self.lease,
                notify={m: cfg.actions for m, cfg in self.loops.items()},
                action_kinds={n: a.kind for n, a in self.actions.items()},
            ),
            self.loops,
        )
        self.delivery = EventDelivery.from_settings(stores, self.settings)
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="loopline-rollout")
        self._events_pool = ThreadPoolExecutor(1, thread_name_prefix="loopline-events")
        self._delivering: Future[None] | None = None
        self._busy: dict[str, Future[str]] = {}
        self._lock = threading.Lock()
        self.stats = ControllerStats()

    @property
    def holder(self) -> str:
        return self.lease.holder

    def _check(self) -> None:
        """A loop that could never act is a configuration error, found at start."""
        from loopline.loop.errors import LoopConfigError
        from loopline.loop.gates import gate_configs

        source = str(self.settings.config_file or "loopline.toml")
        gates = gate_configs(self.settings)
        for model, cfg in self.loops.items():
            if model not in gates:
                raise LoopConfigError(
                    f"[loop.{model}] needs a [gates.{model}] table: the gates decide whether a "
                    "challenger may go live",
                    source=source,
                )
            if model not in self.monitors:
                raise LoopConfigError(
                    f'[loop.{model}] needs [monitor.{model}] every = "...": a rollout bakes on '
                    "the monitor's windows",
                    source=source,
                )
            for name in cfg.actions:
                if name not in self.actions:
                    from loopline.config import did_you_mean

                    raise LoopConfigError(
                        f"[loop.{model}] notifies the action {name!r}, which no [actions.NAME] "
                        f"table declares{did_you_mean(name, self.actions)}",
                        source=source,
                    )

    # -- the tick -------------------------------------------------------------------------

    def tick(self, now: datetime | None = None) -> dict[str, Any]:
        """One pass (see the module's docstring); returns what it did."""
        from loopline.loop.errors import LeaseLostError

        done: dict[str, Any] = {"leader": False, "monitored": [], "changes": [], "steps": []}
        self.stats.ticks += 1
        self.stats.last_tick_at = time.time()
        try:
            leader = self.lease.acquire()
        except Exception as exc:
            self._error("cannot reach the lease", exc)
            return done
        self.stats.leader = done["leader"] = leader
        if not leader:
            return done
        moment = now or datetime.now(UTC)
        try:
            done["monitored"] = self.run_due_monitors(moment)
            done["changes"] = self.evaluate_alarms()
            self.runner.dispatch()
            done["delivering"] = self.deliver_events()
            done["steps"] = self.advance_rollouts()
        except LeaseLostError as exc:
            log.warning("lost the lease: %s", exc)
            self.stats.leader = False
        except Exception as exc:
            self._error("the tick failed", exc)
        return done

    def _error(self, what: str, exc: BaseException) -> None:
        self.stats.errors += 1
        self.stats.last_error = f"{what}: {type(exc).__name__}: {exc}"
        log.exception(what)

    def run(self, stop: threading.Event, *, drain_s: float = 30.0) -> None:
        """Tick until ``stop`` is set; then let running steps end (up to ``drain_s``) and
        give up the lease so another controller may take over at once."""
        try:
            while not stop.is_set():
                self.tick()
                stop.wait(self.config.tick_s)
        finally:
            self.shutdown(drain_s=drain_s)

    def shutdown(self, *, drain_s: float = 30.0) -> None:
        deadline = time.monotonic() + drain_s
        running: list[Future[Any]] = [*self._busy.values()]
        if self._delivering is not None:
            running.append(self._delivering)
        for fut in running:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                fut.result(timeout=left)
            except Exception:
                pass
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._events_pool.shutdown(wait=False, cancel_futures=True)
        self.runner.shutdown(wait=False)
        try:
            self.lease.release()
        except Exception as exc:
            log.warning("cannot release the lease: %s", exc)

    # -- monitors -------------------------------------------------------------------------

    def due_windows(self, model: str, now: datetime) -> list[tuple[datetime, datetime]]:
        """The windows (start, end) of ``model`` that are due at ``now`` and not run yet."""
        from loopline.monitor.windows import parse_duration

        cfg = self.monitors[model]
        assert cfg.every is not None
        every = parse_duration(cfg.every, argument="every").total_seconds()
        length = parse_duration(cfg.window).total_seconds()
        delay = 0.0 if cfg.delay in ("0", "0s") else parse_duration(cfg.delay).total_seconds()
        newest = (now.timestamp() - delay) // every * every
        with self.stores.db.read() as conn:
            last = conn.execute(
                sa.select(loop_models.c.last_window_end).where(loop_models.c.model == model)
            ).scalar()
        ends: list[float] = []
        if last is None:
            ends = [newest]
        else:
            at = last.timestamp() + every
            while at <= newest + 1e-6:
                ends.append(at)
                at += every
            ends = ends[-max(1, self.config.catch_up) :] if ends else []
        return [
            (
                datetime.fromtimestamp(end - length, UTC),
                datetime.fromtimestamp(end, UTC),
            )
            for end in ends
        ]

    def relabel_window(self, model: str, now: datetime) -> tuple[datetime, datetime] | None:
        """The window of ``model`` to run again for its late labels now, if any: the newest
        one that ended ``label_delay`` ago (and was run already)."""
        from loopline.monitor.windows import parse_duration

        cfg = self.monitors[model]
        if cfg.label_delay in ("0", "0s"):
            return None
        assert cfg.every is not None
        every = parse_duration(cfg.every, argument="every").total_seconds()
        length = parse_duration(cfg.window).total_seconds()
        lag = parse_duration(cfg.label_delay, argument="label_delay").total_seconds()
        end = (now.timestamp() - lag) // every * every
        with self.stores.db.read() as conn:
            row = conn.execute(
                sa.select(loop_models.c.last_window_end, loop_models.c.last_label_window_end).where(
                    loop_models.c.model == model
                )
            ).first()
        if row is None or row.last_window_end is None or end > row.last_window_end.timestamp():
            return None
        if row.last_label_window_end is not None and end <= row.last_label_window_end.timestamp():
            return None
        return datetime.fromtimestamp(end - length, UTC), datetime.fromtimestamp(end, UTC)

    def run_due_monitors(self, now: datetime) -> list[dict[str, Any]]:
        out = []
        for model in sorted(self.monitors):
            for start, end in self.due_windows(model, now):
                out.extend(self._monitor(model, start, end))
                self._mark_window(model, end)
                self._renew()
            again = self.relabel_window(model, now)
            if again is not None:
                out.extend(self._monitor(model, *again, relabel=True))
                self._mark_window(model, again[1], column="last_label_window_end")
                self._renew()
        return out

    def _renew(self) -> None:
        """Renew the lease between windows: catching up on several windows of a busy log
        can take longer than the lease, which the rollouts running meanwhile rely on."""
        from loopline.loop.errors import LeaseLostError

        if not self.lease.acquire():
            raise LeaseLostError("This controller lost the lease while monitoring", holder=None)

    def _monitor(
        self, model: str, start: datetime, end: datetime, *, relabel: bool = False
    ) -> list[dict[str, Any]]:
        from loopline.monitor.runner import run_monitor
        from loopline.monitor.windows import Window

        try:
            report = run_monitor(
                self.stores,
                self._monitor_target(model),
                Window(start, end),
                settings=self.monitors[model],
                registry=self.registry,
                workers=1,
            )
        except Exception as exc:
            self.stats.monitor_failures += 1
            self._error(f"monitoring {model} (window ending {end.isoformat()})", exc)
            return []
        self.stats.monitor_runs += 1
        return [
            {
                "model": model,
                "window_end": end.isoformat(),
                "rows": report.rows,
                "status": report.status,
                "relabel": relabel,
            }
        ]

    def _monitor_target(self, model: str) -> str:
        alias = self.loops[model].alias if model in self.loops else "champion"
        try:
            if alias in self.registry.aliases(model):
                return f"{model}@{alias}"
        except Exception:
            return model
        return model

    def _mark_window(self, model: str, end: datetime, column: str = "last_window_end") -> None:
        from loopline.loop.rollout import ACTOR, _model_row

        def fn(conn: sa.Connection) -> None:
            self.lease.check(conn)
            now = dialects.current_time(conn)
            _model_row(conn, model, now, ACTOR, lock=True)
            conn.execute(
                loop_models.update().where(loop_models.c.model == model).values({column: end})
            )

        self.stores.db.run_write(fn, conflicts=3)

    # -- alarms and rollouts ---------------------------------------------------------------

    def evaluate_alarms(self) -> list[dict[str, Any]]:
        changes = []
        for ev in self.engine.evaluate_all():
            if ev.changed and ev.previous is not None:
                self.stats.alarm_changes += 1
                changes.append(ev.to_dict())
        return changes

    def advance_rollouts(self) -> list[str]:
        """Submit one step of each active rollout not already stepping."""
        from loopline.loop.rollout import Rollouts

        started = []
        with self._lock:
            for rid, fut in list(self._busy.items()):
                if fut.done():
                    del self._busy[rid]
            for rollout in Rollouts(self.stores).active():
                if rollout.id in self._busy:
                    continue
                self._busy[rollout.id] = self._pool.submit(self._step, rollout.id)
                started.append(rollout.id)
        return started

    def deliver_events(self) -> bool:
        """Start a pass of the event delivery unless one is running (a receiver that
        times out must not hold up the tick); whether one is running now."""
        if not self.delivery.enabled:
            return False
        with self._lock:
            if self._delivering is not None and not self._delivering.done():
                return True
            self._delivering = self._events_pool.submit(self._deliver)
        return True

    def _deliver(self) -> None:
        try:
            result = self.delivery.run_once()
        except Exception as exc:
            self._error("delivering events", exc)
            return
        self.stats.deliveries += result.delivered
        self.stats.delivery_failures += result.retrying + result.failed

    def _step(self, rollout_id: str) -> str:
        self.stats.steps += 1
        return self.driver.advance(rollout_id)

    def idle(self) -> bool:
        """No rollout step and no action is running (tests and the demo wait for this)."""
        with self._lock:
            busy = any(not f.done() for f in self._busy.values())
            delivering = self._delivering is not None and not self._delivering.done()
        return not busy and not delivering and not self.runner._inflight

    def status(self) -> dict[str, Any]:
        """What ``loopline loop status`` shows: the lease, rollouts, monitors, alarms."""
        from loopline.loop.lease import current_lease
        from loopline.loop.rollout import Rollouts
        from loopline.monitor.series import runs

        lease = current_lease(self.stores)
        rollouts = Rollouts(self.stores)
        return {
            "lease": None if lease is None else lease.to_dict(),
            "me": self.holder,
            "stats": self.stats.to_dict(),
            "models": rollouts.models(),
            "rollouts": [r.to_dict() for r in rollouts.active()],
            "monitor_runs": runs(self.stores, limit=10),
            "alarms": {n: s.to_dict() for n, s in self.engine.states().items()},
        }


def wait_until(predicate: Any, timeout_s: float, *, every_s: float = 0.05) -> bool:
    """Poll ``predicate()`` until it is true or ``timeout_s`` passed; its last value."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(every_s)


__all__ = ["Controller", "ControllerStats", "wait_until"]
