"""The errors of fitting and hyperparameter search.

TrainError  Fitting or hyperparameter search could not be done (loopline.train)
    SearchSpaceError  A search space entry that cannot be sampled: bad bounds, empty ch...
    SearchNotFoundError  No hyperparameter search (Optuna study) of that name. ``known`...
    SearchFailedError  A search ended without a completed trial (every trial failed, wa...
"""

from __future__ import annotations

from loopline.errors import LooplineError


class TrainError(LooplineError):
    """Fitting or hyperparameter search could not be done (loopline.train).

    TrainError
    ├── SearchSpaceError      a search space is malformed (names the param, value, expected)
    ├── SearchNotFoundError   no study of that name in the metadata database
    └── SearchFailedError     a search ended without one completed trial
    """


class SearchSpaceError(TrainError):
    """A search space entry that cannot be sampled: bad bounds, empty choices, clashes."""

    def __init__(self, param: str | None, message: str, *, hint: str | None = None) -> None:
        self.param = param
        where = "Search space" if param is None else f"Search space param {param!r}"
        super().__init__(f"{where}: {message}", hint=hint)


class SearchNotFoundError(TrainError):
    """No hyperparameter search (Optuna study) of that name. ``known`` lists those that exist."""

    def __init__(self, study: str, known: list[str]) -> None:
        self.study = study
        self.known = list(known)
        if known:
            shown = ", ".join(known[:10]) + (", ..." if len(known) > 10 else "")
            message = f"No search (study) named {study!r}; known studies: {shown}"
        else:
            message = f"No search (study) named {study!r}: no search has run in this project"
        super().__init__(message, hint="Start it with loopline.train.search(..., study=NAME)")


class SearchFailedError(TrainError):
    """A search ended without a completed trial (every trial failed, was pruned, or none ran).

    ``first_error`` is the error of the first failed trial of this call, when there was one.
    """

    def __init__(
        self, study: str, n_failed: int, n_pruned: int, first_error: str | None = None
    ) -> None:
        self.study = study
        self.n_failed = n_failed
        self.n_pruned = n_pruned
        self.first_error = first_error
        detail = f"; first error: {first_error}" if first_error else ""
        super().__init__(
            f"Search {study!r} has no completed trial ({n_failed} failed, {n_pruned} pruned)"
            f"{detail}",
            hint="Fix the objective (run one trial by hand), widen the space, or raise "
            "n_trials / timeout_s",
        )


class TrainArgumentError(TrainError):
    """A fitting or search option is wrong: ``argument`` names it, ``value`` is what was
    given."""

    def __init__(
        self, message: str, *, argument: str, value: object = None, hint: str | None = None
    ) -> None:
        self.argument = argument
        self.value = value
        super().__init__(message, hint=hint)


class SearchStorageError(TrainError):
    """The search's Optuna storage cannot be opened in ``url`` (password hidden)."""

    def __init__(self, message: str, *, url: str, hint: str | None = None) -> None:
        self.url = url
        super().__init__(message, hint=hint)


class TrialValueError(TrainError):
    """A trial's objective gave or reported a value that is not usable."""

    def __init__(
        self, message: str, *, trial: int, value: object = None, hint: str | None = None
    ) -> None:
        self.trial = trial
        self.value = value
        super().__init__(message, hint=hint)
