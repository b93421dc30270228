"""Search spaces declared in Python, and how they become Optuna ``suggest_*`` calls.

A space is a dict from param name to a range, a choice or a constant::

    space = {
        "n_estimators": IntRange(50, 300, step=50),
        "learning_rate": FloatRange(1e-3, 0.3, log=True),
        "model": Choice({"rf": {"max_depth": IntRange(2, 10)},   # a branch per option:
                         "xgb": {"max_depth": IntRange(2, 10)},  # its params are drawn
                         "linear": {}}),                         # only when it is picked
        "random_state": 0,                                       # a constant
    }

or a function ``space(trial) -> dict`` that calls Optuna's ``trial.suggest_*`` itself (for
spaces a dict cannot say). A declared space is checked when the search starts, so a bad
bound fails at once, with the param's name, instead of in every trial.

Optuna remembers a param's distribution by name across the study: a name that appears in
several branches must be declared with the same range in each (checked here).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeAlias

from loopline.train.errors import SearchSpaceError

#: What Optuna can store as a categorical option.
Scalar: TypeAlias = bool | int | float | str | None
#: A trial as far as a space needs it: Optuna's ``Trial`` has these methods.
Trial: TypeAlias = Any


@dataclass(frozen=True)
class IntRange:
    """Integers from ``low`` to ``high`` inclusive, every ``step``; ``log`` samples the
    logarithm uniformly (then ``step`` must be 1 and ``low`` >= 1)."""

    low: int
    high: int
    step: int = 1
    log: bool = False


@dataclass(frozen=True)
class FloatRange:
    """Floats from ``low`` to ``high`` inclusive; ``step`` discretises, ``log`` samples the
    logarithm uniformly (for learning rates, regularisation strengths...)."""

    low: float
    high: float
    step: float | None = None
    log: bool = False


class Choice:
    """One of ``options`` (None, bool, int, float or str values).

    Given a mapping ``{option: sub-space}`` instead, the sub-space of the option drawn is
    sampled too (a conditional space: the params of the ``"xgb"`` branch exist only in
    trials that picked ``"xgb"``).
    """

    __slots__ = ("branches", "options")

    def __init__(self, options: Sequence[Scalar] | Mapping[Scalar, Mapping[str, Any]]) -> None:
        if isinstance(options, Mapping):
            self.options: tuple[Scalar, ...] = tuple(options)
            self.branches: dict[Scalar, Mapping[str, Any]] | None = dict(options)
        elif isinstance(options, str | bytes) or not isinstance(options, Sequence):
            raise SearchSpaceError(
                None,
                f"Choice takes a list of options or a dict of option -> sub-space, "
                f"not {type(options).__name__}",
            )
        else:
            self.options = tuple(options)
            self.branches = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Choice):
            return NotImplemented
        return self.options == other.options and self.branches == other.branches

    def __hash__(self) -> int:
        return hash(self.options)

    def __repr__(self) -> str:
        if self.branches is None:
            return f"Choice({list(self.options)!r})"
        return f"Choice({self.branches!r})"


Spec: TypeAlias = IntRange | FloatRange | Choice
SpaceFunction: TypeAlias = Callable[[Trial], Mapping[str, Any]]


class SearchSpace:
    """A checked space: :meth:`sample` draws one trial's params through Optuna."""

    def __init__(self, space: Mapping[str, Any] | SpaceFunction) -> None:
        if callable(space) and not isinstance(space, Mapping):
            self.declared: Mapping[str, Any] | None = None
            self.function: SpaceFunction | None = space
            return
        if not isinstance(space, Mapping):
            raise SearchSpaceError(
                None,
                f"a search space is a dict of name -> range or a function of the trial, "
                f"not {type(space).__name__}",
            )
        if not space:
            raise SearchSpaceError(None, "it is empty", hint="Declare at least one param")
        self.declared = space
        self.function = None
        seen: dict[str, Any] = {}
        _check_space(space, seen, path="")

    def sample(self, trial: Trial) -> dict[str, Any]:
        """Draw every param of one trial (a branch's params only when it is picked)."""
        if self.function is not None:
            drawn = self.function(trial)
            if not isinstance(drawn, Mapping) or not all(isinstance(k, str) for k in drawn):
                raise SearchSpaceError(
                    getattr(self.function, "__name__", "space"),
                    f"the space function returned {type(drawn).__name__}; expected a dict "
                    "of param name -> value",
                )
            return dict(drawn)
        assert self.declared is not None
        out: dict[str, Any] = {}
        _sample(self.declared, trial, out)
        return out

    def complete(self, suggested: Mapping[str, Any]) -> dict[str, Any]:
        """The full params of a trial from what Optuna stored (its suggested values): adds
        the constants of the branches it took. A space function's params come back as
        Optuna stored them."""
        if self.declared is None:
            return dict(suggested)
        out: dict[str, Any] = {}
        _complete(self.declared, suggested, out)
        for key, value in suggested.items():
            out.setdefault(key, value)
        return out

    def describe(self) -> str:
        """A one-line text of the space (logged on the search run)."""
        if self.function is not None:
            return f"function {getattr(self.function, '__qualname__', repr(self.function))}"
        return repr(dict(self.declared or {}))


def as_space(space: SearchSpace | Mapping[str, Any] | SpaceFunction) -> SearchSpace:
    return space if isinstance(space, SearchSpace) else SearchSpace(space)


# -- checking ----------------------------------------------------------------------------


def _check_space(space: Mapping[str, Any], seen: dict[str, Any], path: str) -> None:
    for name, spec in space.items():
        if not isinstance(name, str) or not name.strip() or name != name.strip():
            raise SearchSpaceError(
                str(name), "a param name must be a non-empty string without surrounding spaces"
            )
        where = f"{path}{name}"
        if isinstance(spec, IntRange):
            _check_int(where, spec)
        elif isinstance(spec, FloatRange):
            _check_float(where, spec)
        elif isinstance(spec, Choice):
            _check_choice(where, spec)
        elif not _is_constant(spec):
            raise SearchSpaceError(
                where,
                f"{spec!r} ({type(spec).__name__}) is not a range, a choice or a constant",
                hint="Use IntRange(low, high), FloatRange(low, high), Choice([...]) or a "
                "fixed number/string",
            )
        if name in seen and seen[name] != spec:
            raise SearchSpaceError(
                where,
                f"declared twice with different specs ({seen[name]!r} and {spec!r}); Optuna "
                "keeps one distribution per name",
                hint="Give the params of different branches different names, or the same spec",
            )
        seen[name] = spec
        if isinstance(spec, Choice) and spec.branches is not None:
            for option, branch in spec.branches.items():
                if not isinstance(branch, Mapping):
                    raise SearchSpaceError(
                        where,
                        f"the branch of option {option!r} is {type(branch).__name__}; "
                        "expected a dict of name -> range (or {} for none)",
                    )
                _check_space(branch, seen, path=f"{where}={option}/")


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_int(name: str, spec: IntRange) -> None:
    if not (_is_int(spec.low) and _is_int(spec.high)):
        raise SearchSpaceError(
            name,
            f"IntRange bounds must be integers, not {spec.low!r} and {spec.high!r}",
            hint="Use FloatRange for real numbers",
        )
    if not _is_int(spec.step) or spec.step < 1:
        raise SearchSpaceError(name, f"IntRange step must be an integer >= 1, not {spec.step!r}")
    if spec.low > spec.high:
        raise SearchSpaceError(name, f"IntRange low {spec.low} is above high {spec.high}")
    if spec.log and spec.step != 1:
        raise SearchSpaceError(name, f"a log IntRange needs step=1, not {spec.step}")
    if spec.log and spec.low < 1:
        raise SearchSpaceError(name, f"a log IntRange needs low >= 1, not {spec.low}")
    if (spec.high - spec.low) % spec.step:
        fitted = spec.high - (spec.high - spec.low) % spec.step
        raise SearchSpaceError(
            name,
            f"IntRange({spec.low}, {spec.high}, step={spec.step}): high - low is not a "
            "multiple of step",
            hint=f"Use high={fitted}",
        )


def _check_float(name: str, spec: FloatRange) -> None:
    if not (_is_real(spec.low) and _is_real(spec.high)):
        raise SearchSpaceError(
            name, f"FloatRange bounds must be numbers, not {spec.low!r} and {spec.high!r}"
        )
    low, high = float(spec.low), float(spec.high)
    if not (math.isfinite(low) and math.isfinite(high)):
        raise SearchSpaceError(name, f"FloatRange bounds must be finite, not {low} and {high}")
    if low > high:
        raise SearchSpaceError(name, f"FloatRange low {low} is above high {high}")
    if spec.log and low <= 0:
        raise SearchSpaceError(name, f"a log FloatRange needs low > 0, not {low}")
    if spec.step is not None:
        if spec.log:
            raise SearchSpaceError(name, "FloatRange takes step or log=True, not both")
        if not _is_real(spec.step) or not float(spec.step) > 0:
            raise SearchSpaceError(name, f"FloatRange step must be > 0, not {spec.step!r}")
        # Optuna would silently lower ``high`` (with a warning); say so up front instead.
        span, step = Decimal(str(high)) - Decimal(str(low)), Decimal(str(spec.step))
        if span % step != 0:
            fitted = float(Decimal(str(low)) + (span // step) * step)
            raise SearchSpaceError(
                name,
                f"FloatRange({low}, {high}, step={spec.step}): high - low is not a multiple "
                "of step",
                hint=f"Use high={fitted}",
            )


def _check_choice(name: str, spec: Choice) -> None:
    if not spec.options:
        raise SearchSpaceError(name, "Choice needs at least one option")
    for option in spec.options:
        if not (option is None or isinstance(option, bool | int | float | str)):
            raise SearchSpaceError(
                name,
                f"option {option!r} ({type(option).__name__}) cannot be stored; options "
                "are None, bool, int, float or str",
                hint="Choose by name (a string) and build the object in the objective",
            )
        if isinstance(option, float) and math.isnan(option):
            raise SearchSpaceError(name, "option NaN cannot be chosen reliably")
    if len({(type(o), o) for o in spec.options}) != len(spec.options):
        raise SearchSpaceError(name, f"options {list(spec.options)!r} hold duplicates")


def _is_constant(value: object) -> bool:
    # A dict here is most likely a sub-space written without Choice: refuse it.
    return not isinstance(value, Mapping)


# -- sampling ----------------------------------------------------------------------------


def _sample(space: Mapping[str, Any], trial: Trial, out: dict[str, Any]) -> None:
    for name, spec in space.items():
        if isinstance(spec, IntRange):
            out[name] = trial.suggest_int(
                name, int(spec.low), int(spec.high), step=int(spec.step), log=spec.log
            )
        elif isinstance(spec, FloatRange):
            out[name] = trial.suggest_float(
                name,
                float(spec.low),
                float(spec.high),
                step=None if spec.step is None else float(spec.step),
                log=spec.log,
            )
        elif isinstance(spec, Choice):
            picked = trial.suggest_categorical(name, list(spec.options))
            out[name] = picked
            if spec.branches is not None:
                _sample(spec.branches[picked], trial, out)
        else:
            out[name] = spec


def _complete(space: Mapping[str, Any], suggested: Mapping[str, Any], out: dict[str, Any]) -> None:
    for name, spec in space.items():
        if isinstance(spec, IntRange | FloatRange):
            if name in suggested:
                out[name] = suggested[name]
        elif isinstance(spec, Choice):
            if name not in suggested:
                continue
            picked = suggested[name]
            out[name] = picked
            if spec.branches is not None and picked in spec.branches:
                _complete(spec.branches[picked], suggested, out)
        else:
            out[name] = spec
