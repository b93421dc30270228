"""Hyperparameter search: Optuna studies in the project database, each trial a tracked run.

    def objective(params, report, run):
        model = make_model(params)
        for step, n in enumerate(range(50, 301, 50)):
            model.set_params(n_estimators=n).fit(X_train, y_train)
            if report(model.score(X_valid, y_valid), step):   # True: this trial is pruned
                break
        return model.score(X_valid, y_valid)

    result = search(stores, objective, space, study="churn-rf", n_trials=40)

- The sampler is TPE, seeded (``seed``), so a search on one worker is reproducible.
- ``report(value, step)`` records an intermediate score; the pruner (median or successive
  halving) answers whether the trial is worse than the others at that step.
- Every trial is a child run of the search run: its params, the intermediate values as
  the steps of metric ``<metric>.intermediate``, the final value as ``<metric>``, and its
  outcome as tag ``search.trial_state`` (``complete``, ``pruned``, ``failed``).
- The study is stored in the metadata database (:mod:`loopline.train.storage`). Calling
  ``search`` again with the same ``study`` continues it: trials already complete or
  pruned count towards ``n_trials`` and are not redone, the trial numbers continue, and
  the trial of a process that died mid-trial is marked FAIL once its heartbeat is older
  than ``grace_period``. Several processes may run ``search`` on one study at once; each
  stops when the study holds ``n_trials`` complete + pruned trials (workers finishing
  their last trials together may add a few more).
"""

from __future__ import annotations

import math
import numbers
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol

from loopline.tracking.run import outcome_of
from loopline.train.errors import (
    SearchFailedError,
    SearchNotFoundError,
    TrainArgumentError,
    TrialValueError,
)
from loopline.train.space import SearchSpace, SpaceFunction, as_space
from loopline.train.storage import close_storage, import_optuna, open_storage

if TYPE_CHECKING:
    import optuna
    from optuna.storages import RDBStorage
    from optuna.trial import FrozenTrial

    from loopline.execute import Executor
    from loopline.store.stores import Stores
    from loopline.tracking import Run, Tracker

#: ``report(value, step)`` records an intermediate score; True means: stop, pruned.
Report = Callable[[float, int], bool]
#: The trial's user attribute holding the id of its loopline run.
RUN_ID_ATTR = "loopline.run_id"
STATE_TAG = "search.trial_state"
_MAX_STUDY_NAME = 512  # Optuna's column


class Objective(Protocol):
    """``objective(params, report, run) -> float``: fit with ``params``, call ``report``
    with intermediate scores (stop early when it returns True), return the final score.
    ``run`` is the trial's own run, for anything else worth logging."""

    def __call__(self, params: dict[str, Any], report: Report, run: Run) -> float: ...


@dataclass(frozen=True)
class SearchProgress:
    """Where a search stands, given to ``progress`` at the start and after each trial.

    Counts cover the whole study (every worker); ``trial``/``state``/``value`` describe
    the trial that just ended in this process (None in the first call).
    """

    study: str
    n_trials: int
    n_complete: int
    n_pruned: int
    n_failed: int
    n_running: int
    best_value: float | None
    best_trial: int | None
    trial: int | None = None
    state: str | None = None
    value: float | None = None
    elapsed_s: float = 0.0

    @property
    def n_done(self) -> int:
        """Trials that count towards ``n_trials``: complete and pruned."""
        return self.n_complete + self.n_pruned


@dataclass(frozen=True)
class SearchResult:
    """The outcome of a search, for the whole study (every call, every worker).

    ``best_trial_run_id`` is the run of the best trial; ``run_id`` the search run of this
    call (None from :func:`load_search`); ``n_trials_run`` the trials this call ran.
    """

    study_name: str
    best_params: dict[str, Any]
    best_value: float
    best_trial_number: int
    best_trial_run_id: str | None
    n_complete: int
    n_pruned: int
    n_failed: int
    n_running: int = 0
    run_id: str | None = None
    n_trials_run: int = 0
    direction: str = "maximize"
    trial_states: dict[int, str] = field(default_factory=dict, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "study": self.study_name,
            "direction": self.direction,
            "best_params": dict(self.best_params),
            "best_value": self.best_value,
            "best_trial_number": self.best_trial_number,
            "best_trial_run_id": self.best_trial_run_id,
            "n_complete": self.n_complete,
            "n_pruned": self.n_pruned,
            "n_failed": self.n_failed,
            "n_running": self.n_running,
            "run_id": self.run_id,
            "n_trials_run": self.n_trials_run,
        }


def search(
    stores: Stores,
    objective: Objective | Callable[[dict[str, Any], Report, Run], float],
    space: SearchSpace | Mapping[str, Any] | SpaceFunction,
    *,
    study: str,
    n_trials: int,
    direction: Literal["maximize", "minimize"] = "maximize",
    sampler: Literal["tpe", "random"] | optuna.samplers.BaseSampler = "tpe",
    pruner: Literal["median", "halving"] | optuna.pruners.BasePruner | None = "median",
    seed: int | None = 0,
    timeout_s: float | None = None,
    run: Run | None = None,
    tracker: Tracker | None = None,
    experiment: str | None = None,
    metric: str = "objective",
    n_jobs: int = 1,
    progress: Callable[[SearchProgress], None] | None = None,
    catch: tuple[type[Exception], ...] = (Exception,),
    max_failures: int | None = None,
    heartbeat_interval: int = 10,
    grace_period: int | None = None,
    executor: Executor | None = None,
) -> SearchResult:
    """Search ``space`` for the params that maximise (or minimise) ``objective``.

    Runs trials until the study ``study`` holds ``n_trials`` complete + pruned trials
    (counting those of earlier calls and of other workers), ``timeout_s`` passes, or
    ``max_failures`` trials of this call failed (default: ``n_trials``). A trial whose
    objective raises one of ``catch`` is recorded as failed and the search goes on.

    ``run`` is the search run the trials become children of; without it a run named
    ``search <study>`` is started (and finished) in ``experiment`` (default: the study
    name). ``seed`` seeds the sampler; a study continued later reseeds it from ``seed``
    and its number of stored trials, so it does not replay its first suggestions.
    ``n_jobs`` runs trials in threads of this process (not reproducible with a seed).

    ``executor`` fans the trials out: on an executor running units elsewhere (Ray), each
    of its ``parallelism`` workers opens the study in the metadata database and runs
    trials until the study holds ``n_trials``, sampling with its own seed (``seed + i``)
    from every trial stored so far and pruning against them; ``objective`` is pickled
    to them, so it must not hold open connections. This process follows the study,
    reports progress and logs the best-so-far curve. A killed driver leaves the study
    as it was: calling ``search`` again continues it.

    Raises SearchFailedError when the study ends without a completed trial.
    """
    _check_arguments(study, n_trials, direction, timeout_s, n_jobs, max_failures)
    fan_out = executor is not None and not executor.shares_memory
    _check_heartbeat(heartbeat_interval, grace_period)
    checked_space = as_space(space)
    optuna_mod = import_optuna()
    from loopline.tracking import Tracker

    tracker = tracker or Tracker(stores)
    storage = open_storage(
        stores.settings.metadata_url,
        busy_timeout=stores.settings.db_busy_timeout,
        heartbeat_interval=heartbeat_interval,
        grace_period=grace_period,
    )
    own_run = run is None
    parent: Run | None = run
    try:
        n_existing = _existing_trials(storage, study, direction)
        the_study = optuna_mod.create_study(
            storage=storage,
            study_name=study,
            direction=direction,
            sampler=_make_sampler(sampler, seed, n_existing),
            pruner=_make_pruner(pruner),
            load_if_exists=True,
        )
        settings = {
            "study": study,
            "n_trials": n_trials,
            "direction": direction,
            "sampler": sampler if isinstance(sampler, str) else type(sampler).__name__,
            "pruner": str(pruner)
            if pruner is None or isinstance(pruner, str)
            else type(pruner).__name__,
            "seed": seed,
        }
        if parent is None:
            parent = tracker.start_run(
                experiment or study[:255],
                f"search {study}"[:255],
                params=settings,
                tags={"search.study": study, "search.space": checked_space.describe()},
            )
        else:
            parent.set_tags({f"search.{k}": v for k, v in settings.items()})
        searcher = _Searcher(
            study=the_study,
            space=checked_space,
            objective=objective,
            parent_id=parent.id,
            experiment=parent.experiment,
            tracker=tracker,
            metric=metric,
            n_trials=n_trials,
            max_failures=n_trials if max_failures is None else max_failures,
            progress=progress,
            on_best=lambda value, number: parent.log_metric(f"best_{metric}", value, step=number),
        )
        grace = grace_period or 2 * heartbeat_interval
        reclaimed = _reclaim_dead_trials(the_study, storage, grace)
        if reclaimed:
            parent.set_tag("search.reclaimed_trials", ",".join(map(str, reclaimed)))
        if fan_out:
            assert executor is not None
            parent.set_tag("search.executor", executor.name)
            job = _WorkerJob(
                settings=stores.settings,
                study=study,
                direction=direction,
                sampler=sampler,
                pruner=pruner,
                seed=seed,
                objective=objective,
                space=checked_space,
                parent_id=parent.id,
                experiment=parent.experiment,
                metric=metric,
                n_trials=n_trials,
                max_failures=searcher.max_failures,
                failed_before=_counts(the_study).failed,
                timeout_s=timeout_s,
                catch=catch,
                heartbeat_interval=heartbeat_interval,
                grace_period=grace_period,
            )
            _fan_out(executor, job, searcher)
        else:
            searcher.run(timeout_s=timeout_s, n_jobs=n_jobs, catch=catch)
        _reclaim_dead_trials(the_study, storage, grace)
        result = _result(
            the_study, checked_space, run_id=parent.id, n_trials_run=searcher.trials_run
        )
        if result is None:
            counts = _counts(the_study)
            raise SearchFailedError(
                study, counts.failed, counts.pruned, first_error=searcher.first_error
            )
        parent.set_tags(
            {
                "search.best_trial": result.best_trial_number,
                "search.best_run_id": result.best_trial_run_id or "",
                **{f"search.best.{k}": v for k, v in result.best_params.items()},
            }
        )
        # After every trial's best-so-far point (stepped by trial number), so the last
        # point of the curve is the final best.
        parent.log_metrics(
            {
                f"best_{metric}": result.best_value,
                "n_complete": float(result.n_complete),
                "n_pruned": float(result.n_pruned),
                "n_failed": float(result.n_failed),
            },
            step=len(result.trial_states),
        )
    except BaseException as exc:
        if own_run and parent is not None:
            status, error = outcome_of(exc)
            parent.finish(status, error)
        raise
    finally:
        close_storage(storage)
    if own_run:
        parent.finish()
    return result


def load_search(stores: Stores, study: str) -> SearchResult:
    """The result so far of the search ``study`` (best trial, counts), without running.

    Raises SearchNotFoundError when no such study exists, SearchFailedError when it has
    no completed trial yet.
    """
    optuna_mod = import_optuna()
    storage = open_storage(
        stores.settings.metadata_url, busy_timeout=stores.settings.db_busy_timeout
    )
    try:
        try:
            loaded = optuna_mod.load_study(study_name=study, storage=storage)
        except KeyError:
            known = sorted(s.study_name for s in storage.get_all_studies())
            raise SearchNotFoundError(study, known) from None
        result = _result(loaded, None, run_id=None, n_trials_run=0)
        if result is None:
            counts = _counts(loaded)
            raise SearchFailedError(study, counts.failed, counts.pruned)
        return result
    finally:
        close_storage(storage)


# -- trials fanned out over an executor ------------------------------------------------


@dataclass(frozen=True)
class _WorkerJob:
    """What one worker of a fanned-out search needs, by value."""

    settings: Any
    study: str
    direction: str
    sampler: Any
    pruner: Any
    seed: int | None
    objective: Callable[[dict[str, Any], Report, Run], float]
    space: SearchSpace
    parent_id: str
    experiment: str
    metric: str
    n_trials: int
    max_failures: int
    failed_before: int
    timeout_s: float | None
    catch: tuple[type[Exception], ...]
    heartbeat_interval: int
    grace_period: int | None
    worker: int = 0


@dataclass(frozen=True)
class _WorkerReport:
    worker: int
    pid: int
    trials_run: int
    first_error: str | None


def _search_worker(job: _WorkerJob) -> _WorkerReport:
    """One worker of a fanned-out search: runs trials of the shared study until it holds
    ``n_trials`` (or the failure budget or time runs out)."""
    import os

    from loopline.store.stores import Stores
    from loopline.tracking import Tracker

    optuna_mod = import_optuna()
    with Stores.open(job.settings) as stores:
        storage = open_storage(
            job.settings.metadata_url,
            busy_timeout=job.settings.db_busy_timeout,
            heartbeat_interval=job.heartbeat_interval,
            grace_period=job.grace_period,
        )
        try:
            seed = None if job.seed is None else job.seed + job.worker
            n_existing = _existing_trials(storage, job.study, job.direction)
            the_study = optuna_mod.load_study(
                study_name=job.study,
                storage=storage,
                sampler=_make_sampler(job.sampler, seed, n_existing),
                pruner=_make_pruner(job.pruner),
            )
            searcher = _Searcher(
                study=the_study,
                space=job.space,
                objective=job.objective,
                parent_id=job.parent_id,
                experiment=job.experiment,
                tracker=Tracker(stores),
                metric=job.metric,
                n_trials=job.n_trials,
                max_failures=job.max_failures,
                progress=None,
                failed_before=job.failed_before,
            )
            searcher.run(timeout_s=job.timeout_s, n_jobs=1, catch=job.catch)
            return _WorkerReport(job.worker, os.getpid(), searcher.trials_run, searcher.first_error)
        finally:
            close_storage(storage)


def _fan_out(executor: Executor, job: _WorkerJob, searcher: _Searcher) -> None:
    """Run ``executor.parallelism`` workers of ``job`` and follow the study until they end.

    A worker that raised (not a trial: trials fail inside it) makes the search fail with
    its error once the others ended; trials it left running are reclaimed by heartbeat."""
    from optuna.trial import TrialState

    searcher.following = True
    searcher.seen = {
        t.number
        for t in searcher.study.get_trials(
            deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        )
    }
    searcher._report_progress(_counts(searcher.study), None)
    workers = max(1, min(executor.parallelism, job.n_trials))
    futures = [executor.submit(_search_worker, replace(job, worker=i)) for i in range(workers)]
    pending = set(futures)
    lost: BaseException | None = None
    try:
        while pending:
            _, pending = executor.wait(pending, timeout=0.5)
            searcher.follow()
    except BaseException:
        for fut in futures:
            fut.cancel()
        executor.shutdown(cancel=True)
        raise
    for fut in futures:
        exc = fut.exception()
        if exc is not None:
            lost = lost or exc
        elif searcher.first_error is None:
            searcher.first_error = fut.result().first_error
    searcher.follow()
    if lost is not None and _counts(searcher.study).complete == 0:
        raise lost


# -- one call's trials -------------------------------------------------------------------


class _Searcher:
    """Runs the trials of one ``search`` call: the objective wrapper and the callback."""

    def __init__(
        self,
        *,
        study: optuna.Study,
        space: SearchSpace,
        objective: Callable[[dict[str, Any], Report, Run], float],
        parent_id: str,
        experiment: str,
        tracker: Tracker,
        metric: str,
        n_trials: int,
        max_failures: int,
        progress: Callable[[SearchProgress], None] | None,
        on_best: Callable[[float, int], None] | None = None,
        failed_before: int | None = None,
    ) -> None:
        self.study = study
        self.space = space
        self.objective = objective
        self.parent_id = parent_id
        self.experiment = experiment
        self.on_best = on_best
        #: Failed trials in the study before this search: with it, failures are counted
        #: study-wide (workers of one fanned-out search share the budget).
        self.failed_before = failed_before
        self.seen: set[int] = set()
        self.following = False
        self.tracker = tracker
        self.metric = metric
        self.intermediate_key = f"{metric}.intermediate"
        self.n_trials = n_trials
        self.max_failures = max_failures
        self.progress = progress
        self.lock = threading.Lock()
        self.trials_run = 0
        self.failures = 0
        self.first_error: str | None = None
        self.errors: dict[int, str] = {}
        self.started = time.monotonic()

    def run(
        self, *, timeout_s: float | None, n_jobs: int, catch: tuple[type[Exception], ...]
    ) -> None:
        deadline = None if timeout_s is None else self.started + timeout_s
        counts = _counts(self.study)
        self._report_progress(counts, None)
        while True:
            remaining = self.n_trials - counts.done
            if remaining <= 0 or self.failures >= self.max_failures:
                return
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return
            self.study.optimize(
                self._trial,
                n_trials=remaining,
                timeout=left,
                n_jobs=n_jobs,
                catch=catch,
                callbacks=[self._after_trial],
            )
            counts = _counts(self.study)

    def _trial(self, trial: optuna.Trial) -> float:
        from optuna import TrialPruned
        from optuna.trial import TrialState

        params = self.space.sample(trial)
        child = self.tracker.start_run(
            self.experiment,
            f"trial-{trial.number}",
            parent=self.parent_id,
            params=params,
            tags={"search.study": self.study.study_name, "search.trial": trial.number},
            capture_git=False,
        )
        trial.set_user_attr(RUN_ID_ATTR, child.id)
        reporter = _Reporter(trial, child, self.intermediate_key)
        value = math.nan
        try:
            with child:
                try:
                    returned = self.objective(params, reporter, child)
                    if not reporter.pruned:
                        value = _objective_value(returned, trial.number)
                except TrialPruned:
                    reporter.pruned = True
                except BaseException as exc:
                    child.set_tag(STATE_TAG, "failed")
                    with self.lock:
                        self.errors[trial.number] = outcome_of(exc)[1] or type(exc).__name__
                    raise
                if reporter.pruned:
                    child.set_tag(STATE_TAG, "pruned")
                else:
                    child.log_metric(self.metric, value)
                    child.set_tag(STATE_TAG, "complete")
        except BaseException as exc:
            if not isinstance(exc, Exception | KeyboardInterrupt):
                # SystemExit (SIGTERM while a run is open) passes through Optuna, which
                # would leave the trial RUNNING until its heartbeat goes stale.
                self.study.tell(trial, state=TrialState.FAIL)
            raise  # Optuna records the trial as failed, and goes on if it is in ``catch``
        if reporter.pruned:
            raise TrialPruned(f"pruned at step {reporter.last_step}")
        return value

    def _after_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        counts = _counts(study)
        with self.lock:
            self.trials_run += 1
            state = _STATE_NAMES.get(trial.state.name, trial.state.name.lower())
            if state == "failed":
                self.failures += 1
                if self.first_error is None:
                    self.first_error = self.errors.get(trial.number)
            if self.failed_before is not None:
                self.failures = counts.failed - self.failed_before
            if counts.best_value is not None and self.on_best is not None:
                self.on_best(counts.best_value, trial.number)
            self._report_progress(counts, trial)
            if self.following:
                return  # the workers stop themselves
            if counts.done >= self.n_trials or self.failures >= self.max_failures:
                study.stop()

    def follow(self) -> None:
        """Take note of the trials that finished since the last call (elsewhere): the
        best-so-far curve and progress, as if they had run here."""
        from optuna.trial import TrialState

        finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        new = [
            t
            for t in self.study.get_trials(deepcopy=False, states=finished)
            if t.number not in self.seen
        ]
        for trial in sorted(new, key=lambda t: t.number):
            self.seen.add(trial.number)
            self._after_trial(self.study, trial)

    def _report_progress(self, counts: _Counts, trial: FrozenTrial | None) -> None:
        if self.progress is None:
            return
        self.progress(
            SearchProgress(
                study=self.study.study_name,
                n_trials=self.n_trials,
                n_complete=counts.complete,
                n_pruned=counts.pruned,
                n_failed=counts.failed,
                n_running=counts.running,
                best_value=counts.best_value,
                best_trial=counts.best_trial,
                trial=None if trial is None else trial.number,
                state=None
                if trial is None
                else _STATE_NAMES.get(trial.state.name, trial.state.name.lower()),
                value=None if trial is None else trial.value,
                elapsed_s=time.monotonic() - self.started,
            )
        )


class _Reporter:
    """The ``report`` callable handed to the objective: one per trial."""

    def __init__(self, trial: optuna.Trial, run: Run, key: str) -> None:
        self.trial = trial
        self.run = run
        self.key = key
        self.pruned = False
        self.steps: set[int] = set()
        self.last_step: int | None = None

    def __call__(self, value: float, step: int) -> bool:
        if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
            raise TrialValueError(
                f"report(value, step): step must be an int >= 0, not {step!r}",
                trial=self.trial.number,
                value=step,
            )
        step = int(step)
        if step in self.steps:
            raise TrialValueError(
                f"Trial {self.trial.number} reported step {step} twice",
                hint="Report each step once, with increasing steps (epochs, folds, rounds)",
                trial=self.trial.number,
                value=step,
            )
        number = _objective_value(value, self.trial.number, what="an intermediate value")
        self.steps.add(step)
        self.last_step = step
        self.trial.report(number, step)
        self.run.log_metric(self.key, number, step=step)
        if self.pruned or self.trial.should_prune():
            self.pruned = True
        return self.pruned


# -- study helpers -----------------------------------------------------------------------

_STATE_NAMES = {
    "COMPLETE": "complete",
    "PRUNED": "pruned",
    "FAIL": "failed",
    "RUNNING": "running",
    "WAITING": "waiting",
}


@dataclass(frozen=True)
class _Counts:
    complete: int
    pruned: int
    failed: int
    running: int
    best_value: float | None
    best_trial: int | None

    @property
    def done(self) -> int:
        return self.complete + self.pruned


def _counts(study: optuna.Study) -> _Counts:
    trials = study.get_trials(deepcopy=False)
    by_state: dict[str, int] = {}
    best: FrozenTrial | None = None
    maximize = study.direction.name == "MAXIMIZE"
    for t in trials:
        by_state[t.state.name] = by_state.get(t.state.name, 0) + 1
        if t.state.name != "COMPLETE" or t.value is None:
            continue
        if best is None or best.value is None or _better(t.value, best.value, maximize):
            best = t
    return _Counts(
        complete=by_state.get("COMPLETE", 0),
        pruned=by_state.get("PRUNED", 0),
        failed=by_state.get("FAIL", 0),
        running=by_state.get("RUNNING", 0),
        best_value=None if best is None else best.value,
        best_trial=None if best is None else best.number,
    )


def _better(value: float, than: float, maximize: bool) -> bool:
    return value > than if maximize else value < than


def _result(
    study: optuna.Study, space: SearchSpace | None, *, run_id: str | None, n_trials_run: int
) -> SearchResult | None:
    counts = _counts(study)
    if counts.best_trial is None:
        return None
    trials = study.get_trials(deepcopy=False)
    best = next(t for t in trials if t.number == counts.best_trial)
    assert best.value is not None
    params = space.complete(best.params) if space is not None else dict(best.params)
    run_attr = best.user_attrs.get(RUN_ID_ATTR)
    return SearchResult(
        study_name=study.study_name,
        best_params=params,
        best_value=float(best.value),
        best_trial_number=best.number,
        best_trial_run_id=str(run_attr) if run_attr else None,
        n_complete=counts.complete,
        n_pruned=counts.pruned,
        n_failed=counts.failed,
        n_running=counts.running,
        run_id=run_id,
        n_trials_run=n_trials_run,
        direction=study.direction.name.lower(),
        trial_states={
            t.number: _STATE_NAMES.get(t.state.name, t.state.name.lower()) for t in trials
        },
    )


def _existing_trials(storage: RDBStorage, study: str, direction: str) -> int:
    """How many trials the study already holds (0 when it is new); a study created with
    the other direction is refused rather than silently optimised the wrong way."""
    try:
        study_id = storage.get_study_id_from_name(study)
    except KeyError:
        return 0
    stored = [d.name.lower() for d in storage.get_study_directions(study_id)]
    if stored != [direction]:
        raise TrainArgumentError(
            f"Search {study!r} exists and is directed {'/'.join(stored)}, not {direction}",
            hint="Continue it with the same direction, or start a new study name",
            argument="direction",
            value=direction,
        )
    return len(storage.get_all_trials(study_id, deepcopy=False))


def _make_sampler(
    sampler: str | optuna.samplers.BaseSampler, seed: int | None, n_existing: int
) -> optuna.samplers.BaseSampler:
    import optuna

    if isinstance(sampler, optuna.samplers.BaseSampler):
        return sampler
    if seed is not None and n_existing:
        # A continued study must not replay the suggestions its first trials got.
        seed = (seed * 1_000_003 + n_existing) % 2**32
    if sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise TrainArgumentError(
        f"Unknown sampler {sampler!r}; expected 'tpe', 'random' or an optuna sampler",
        argument="sampler",
        value=sampler,
    )


def _make_pruner(
    pruner: str | optuna.pruners.BasePruner | None,
) -> optuna.pruners.BasePruner:
    import optuna

    if pruner is None:
        return optuna.pruners.NopPruner()
    if isinstance(pruner, optuna.pruners.BasePruner):
        return pruner
    if pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    if pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    raise TrainArgumentError(
        f"Unknown pruner {pruner!r}; expected 'median', 'halving', None or an optuna pruner",
        argument="pruner",
        value=pruner,
    )


def _reclaim_dead_trials(study: optuna.Study, storage: RDBStorage, grace_s: int) -> list[int]:
    """Mark FAIL the RUNNING trials whose process is gone; returns their numbers.

    Optuna fails a trial whose heartbeat is older than the grace period, but only when a
    worker starts its next trial, and never a trial that died before its first heartbeat
    was written (between its creation and the heartbeat thread's first beat). Both are
    handled here: the latter by its start time, which is older than the grace period.
    Start times are written by each worker's clock: keep the grace period well above
    the clock skew between machines.
    """
    from datetime import datetime, timedelta

    import sqlalchemy as sa
    from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError
    from optuna.storages import fail_stale_trials
    from optuna.trial import TrialState

    before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        fail_stale_trials(study)
    # Optuna's own tables, read as its schema declares them (state holds the enum's name).
    silent = sa.text(
        "SELECT t.trial_id FROM trials t LEFT JOIN trial_heartbeats h "
        "ON h.trial_id = t.trial_id WHERE t.study_id = :study AND t.state = 'RUNNING' "
        "AND h.trial_id IS NULL AND t.datetime_start < :cutoff"
    ).bindparams(sa.bindparam("cutoff", type_=sa.DateTime()))  # SQLAlchemy renders the time
    cutoff = datetime.now() - timedelta(seconds=grace_s)  # naive local, as Optuna writes
    study_id = storage.get_study_id_from_name(study.study_name)
    with storage.engine.connect() as conn:
        ids = list(conn.execute(silent, {"study": study_id, "cutoff": cutoff}).scalars())
    for trial_id in ids:
        try:
            storage.set_trial_state_values(int(trial_id), state=TrialState.FAIL)
        except UpdateFinishedTrialError:
            pass  # its worker finished it after all, or another worker reclaimed it
    after = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    return sorted(before - after)


def _objective_value(value: object, number: int, *, what: str = "its value") -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TrialValueError(
            f"Trial {number}: the objective gave {value!r} ({type(value).__name__}) as {what}; "
            "expected a number",
            trial=number,
            value=value,
        )
    number_value = float(value)
    if math.isnan(number_value):
        raise TrialValueError(
            f"Trial {number}: the objective gave NaN as {what}", trial=number, value=value
        )
    return number_value


def _check_arguments(
    study: str,
    n_trials: int,
    direction: str,
    timeout_s: float | None,
    n_jobs: int,
    max_failures: int | None,
) -> None:
    if not isinstance(study, str) or not study.strip() or len(study) > _MAX_STUDY_NAME:
        raise TrainArgumentError(
            f"Invalid study name {study!r}: expected a non-empty string of at most "
            f"{_MAX_STUDY_NAME} characters",
            argument="study",
            value=study,
        )
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise TrainArgumentError(
            f"n_trials must be an int >= 1, not {n_trials!r}", argument="n_trials", value=n_trials
        )
    if direction not in ("maximize", "minimize"):
        raise TrainArgumentError(
            f"direction must be 'maximize' or 'minimize', not {direction!r}",
            argument="direction",
            value=direction,
        )
    if timeout_s is not None and not timeout_s > 0:
        raise TrainArgumentError(
            f"timeout_s must be > 0 seconds, not {timeout_s!r}",
            argument="timeout_s",
            value=timeout_s,
        )
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1:
        raise TrainArgumentError(
            f"n_jobs must be an int >= 1, not {n_jobs!r}", argument="n_jobs", value=n_jobs
        )
    if max_failures is not None and (not isinstance(max_failures, int) or max_failures < 1):
        raise TrainArgumentError(
            f"max_failures must be an int >= 1, not {max_failures!r}",
            argument="max_failures",
            value=max_failures,
        )


def _check_heartbeat(heartbeat_interval: int, grace_period: int | None) -> None:
    for name, value in (("heartbeat_interval", heartbeat_interval), ("grace_period", grace_period)):
        if value is None and name == "grace_period":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise TrainArgumentError(
                f"{name} must be a whole number of seconds >= 1, not {value!r}",
                argument=name,
                value=value,
            )
    if grace_period is not None and grace_period <= heartbeat_interval:
        raise TrainArgumentError(
            f"grace_period ({grace_period} s) must exceed heartbeat_interval "
            f"({heartbeat_interval} s), or live trials would be failed",
            argument="grace_period",
            value=grace_period,
        )
