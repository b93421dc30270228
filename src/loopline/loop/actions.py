"""The loop's actions: what an alarm (or Alertmanager) can ask the controller to do.

``retrain``   start a rollout of the model: retrain, gate, canary, bake, promote
``rollout``   start a rollout of an existing version (``version``, or the holder of
              ``alias``, e.g. ``challenger``) against the champion: gate, canary, ...
``rollback``  move the serving alias back to the version that held it before; a rollout
              of the model in progress is ended first (its split removed)
``promote``   move ``alias`` (default: the loop's serving alias) to ``version`` (or to
              the holder of ``from_alias``), through the model's gates

Starting is idempotent per action run: the run's id is the rollout's trigger key, so an
action that is retried (its controller died after starting it) finds the rollout it
started instead of starting a second one.
"""

from __future__ import annotations

import abc
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from loopline.alarm.actions import ActionEvent, ActionResult

if TYPE_CHECKING:
    from loopline.alarm.actions import Action
    from loopline.alarm.engine import ActionFactory
    from loopline.alarm.settings import ActionSettings
    from loopline.loop.controller import Controller


class _LoopAction(abc.ABC):
    def __init__(self, controller: Controller, settings: ActionSettings) -> None:
        self.controller = controller
        self.settings = settings
        self.name: str = settings.name
        self.kind: str = settings.kind

    @property
    def model(self) -> str:
        assert self.settings.model is not None
        return self.settings.model

    def run(self, event: ActionEvent) -> ActionResult:
        started = time.perf_counter()
        try:
            detail = self.act(event)
            return ActionResult(self.name, True, 1, time.perf_counter() - started, detail=detail)
        except Exception as exc:
            message = getattr(exc, "message", None) or str(exc)
            return ActionResult(self.name, False, 1, time.perf_counter() - started, error=message)

    @abc.abstractmethod
    def act(self, event: ActionEvent) -> dict[str, Any]:
        """Do it; what it did (``skipped_because`` when it had no reason to act)."""


class _Start(_LoopAction):
    """``retrain`` and ``rollout``: ask for a rollout."""

    def act(self, event: ActionEvent) -> dict[str, Any]:
        from loopline.loop.errors import RolloutActiveError
        from loopline.loop.rollout import Rollouts, cooldown_left

        rollouts = Rollouts(self.controller.stores)
        cfg = self.controller.driver.settings_for(self.model)
        if rollouts.paused(self.model):
            return {"skipped_because": f"the loop of {self.model} is paused"}
        left = cooldown_left(self.controller.stores, self.model, cfg.cooldown_s, datetime.now(UTC))
        if left > 0:
            return {"skipped_because": f"cooling down for another {left:.0f} s"}
        challenger = None
        if self.kind == "rollout":
            challenger = self._version()
        cause = {
            "event": event.kind,
            "alarm": event.alarm,
            "reason": event.reason,
            "detail": dict(event.detail),
            "action": self.name,
        }
        try:
            rollout = rollouts.start(
                self.model,
                cfg,
                trigger=f"alarm:{event.alarm}" if event.alarm else f"action:{self.name}",
                cause=cause,
                trigger_key=event.id and f"{self.name}:{event.id}",
                challenger=challenger,
                actor=f"action:{self.name}",
            )
        except RolloutActiveError as exc:
            return {"skipped_because": exc.message, "rollout": exc.rollout_id}
        return {"rollout": rollout.id, "state": rollout.state}

    def _version(self) -> int:
        reg = self.controller.registry
        if self.settings.version is not None:
            return reg.get(self.model, self.settings.version).version
        alias = self.settings.alias or "challenger"
        return reg.resolve(f"{self.model}@{alias}").version


class _Rollback(_LoopAction):
    def act(self, event: ActionEvent) -> dict[str, Any]:
        from loopline.loop.rollout import ACTOR

        cfg = self.controller.driver.settings_for(self.model)
        alias = self.settings.alias or cfg.alias
        reason = self.settings.reason or f"rolled back by the action {self.name}: {event.reason}"
        reg = self.controller.registry
        held = reg.aliases(self.model).get(alias)
        move = reg.rollback(self.model, alias, reason=reason, actor=ACTOR, expect=held)
        return {"alias": alias, "from": held, "to": move.to_version}


class _Promote(_LoopAction):
    def act(self, event: ActionEvent) -> dict[str, Any]:
        from loopline.loop.gates import check_candidate, gate_configs
        from loopline.loop.rollout import ACTOR

        cfg = self.controller.driver.settings_for(self.model)
        alias = self.settings.alias or cfg.alias
        reg = self.controller.registry
        version = (
            self.settings.version
            if self.settings.version is not None
            else reg.resolve(f"{self.model}@challenger").version
        )
        gates = gate_configs(self.controller.settings).get(self.model)
        stores = self.controller.stores

        def check(candidate: Any, champion: Any) -> Any:
            assert gates is not None
            return check_candidate(
                stores, gates, candidate, champion=champion, registry=reg
            ).verdict

        move = reg.promote(
            self.model,
            version,
            alias,
            check=check if gates is not None else None,
            reason=self.settings.reason or f"promoted by the action {self.name}: {event.reason}",
            actor=ACTOR,
        )
        return {"alias": alias, "version": move.to_version}


def loop_action_factories(controller: Controller) -> dict[str, ActionFactory]:
    """The factories ``build_actions`` uses for the loop's kinds, bound to ``controller``."""

    def make(cls: type[_LoopAction]) -> ActionFactory:
        def factory(settings: ActionSettings) -> Action:
            return cls(controller, settings)

        return factory

    return {
        "retrain": make(_Start),
        "rollout": make(_Start),
        "rollback": make(_Rollback),
        "promote": make(_Promote),
    }
