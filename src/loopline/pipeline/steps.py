"""A step: a plain typed function, plus how to retry and cache it.

``@step`` leaves the function callable as before, so user code stays importable and
testable without loopline. A step's parameters are its inputs: a parameter named like
another step (or mapped with ``inputs={"param": "step"}``) receives that step's output;
any other parameter is a pipeline parameter (``-p name=value`` or its default). A
parameter annotated :class:`StepContext` (or named ``ctx``) receives the context: the
step's tracked run and the project's stores.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, overload

from loopline.execute.base import Resources, check_resources
from loopline.execute.errors import ExecutorError
from loopline.pipeline.errors import PipelineDefinitionError

if TYPE_CHECKING:
    from loopline.execute import Executor
    from loopline.store.stores import Stores
    from loopline.tracking import Run

_NO_DEFAULT = inspect.Parameter.empty
CONTEXT_PARAM = "ctx"


@dataclass
class StepContext:
    """What a running step may use besides its inputs."""

    step: str
    run: Run
    stores: Stores
    attempt: int
    pipeline_run_id: str
    #: What the step told the person running the pipeline (see :meth:`note`).
    notes: list[str] = field(default_factory=list)
    #: The kind of executor running the step ("local", "ray").
    executor_kind: str = "local"
    _executor: Executor | None = field(default=None, repr=False)

    @property
    def executor(self) -> Executor | None:
        """Where the step may fan out work of its own (``search(..., executor=...)``,
        batch chunks): the pipeline's cluster executor when the step runs on one, joined
        from inside the worker; None on the local executor (run the work here)."""
        if self.executor_kind == "local":
            return None
        if self._executor is None:
            from loopline.execute import open_executor

            self._executor = open_executor(self.stores.settings, kind=self.executor_kind)
        return self._executor

    def log_input(self, name: str, version: int | str, digest: str, kind: str = "dataset") -> None:
        """Record that this step read a dataset version (lineage)."""
        self.run.log_input(name, version, digest, kind=kind)

    def note(self, text: str) -> None:
        """Tell the person running the pipeline something worth knowing (a registered
        version and how it will be served, a refused promotion): ``loopline run`` prints
        the notes of the steps that ran, and the step's tracked run keeps them (tag
        ``loopline.notes``)."""
        self.notes.append(" ".join(str(text).split()))


@dataclass(frozen=True)
class Param:
    name: str
    default: Any = _NO_DEFAULT
    annotation: Any = None

    @property
    def required(self) -> bool:
        return self.default is _NO_DEFAULT


@dataclass
class Step:
    """A function with its name, retry policy and what its parameters connect to."""

    fn: Callable[..., Any]
    name: str
    retries: int = 0
    backoff: float = 1.0
    cache: bool = True
    version: str = ""
    inputs: Mapping[str, str] = field(default_factory=dict)
    #: What one run of the step needs (CPUs, memory, GPUs); None: the executor's default.
    resources: Resources | None = None
    _signature: inspect.Signature | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.resources is not None:
            try:
                check_resources(self.resources)
            except ExecutorError as exc:
                raise PipelineDefinitionError(f"Step {self.name!r}: {exc.message}") from None
        if self.retries < 0:
            raise PipelineDefinitionError(f"Step {self.name!r}: retries must be >= 0")
        if self.backoff < 0:
            raise PipelineDefinitionError(f"Step {self.name!r}: backoff must be >= 0 seconds")
        params = self.signature.parameters
        for param in self.inputs:
            if param not in params:
                raise PipelineDefinitionError(
                    f"Step {self.name!r} maps input {param!r}, but {self.name}() has no "
                    f"parameter of that name; its parameters are {', '.join(params) or 'none'}"
                )
        for p in params.values():
            if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
                raise PipelineDefinitionError(
                    f"Step {self.name!r}: *args/**kwargs are not supported; "
                    "name each input as a parameter"
                )

    @property
    def signature(self) -> inspect.Signature:
        if self._signature is None:
            self._signature = inspect.signature(self.fn)
        return self._signature

    @functools.cached_property
    def code_hash(self) -> str:
        """sha256 of the step's source (dedented) and its declared version."""
        try:
            source = textwrap.dedent(inspect.getsource(self.fn))
        except (OSError, TypeError):
            # No source (a builtin, or defined in a REPL): fall back to the bytecode.
            code = getattr(self.fn, "__code__", None)
            source = repr(code.co_code) + repr(code.co_consts) if code else repr(self.fn)
        return hashlib.sha256(f"{self.version}\n{source}".encode()).hexdigest()

    def context_param(self) -> str | None:
        for p in self.signature.parameters.values():
            ann = p.annotation
            if ann is StepContext or ann == "StepContext" or p.name == CONTEXT_PARAM:
                return p.name
        return None

    def parameters(self) -> list[Param]:
        """Every parameter except the context one."""
        ctx = self.context_param()
        return [
            Param(p.name, p.default, p.annotation)
            for p in self.signature.parameters.values()
            if p.name != ctx
        ]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)


@overload
def step(fn: Callable[..., Any], /) -> Step: ...


@overload
def step(
    *,
    name: str | None = None,
    retries: int = 0,
    backoff: float = 1.0,
    cache: bool = True,
    version: str = "",
    inputs: Mapping[str, str] | None = None,
    cpus: float | None = None,
    memory_mb: int | None = None,
    gpus: float | None = None,
) -> Callable[[Callable[..., Any]], Step]: ...


def step(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    retries: int = 0,
    backoff: float = 1.0,
    cache: bool = True,
    version: str = "",
    inputs: Mapping[str, str] | None = None,
    cpus: float | None = None,
    memory_mb: int | None = None,
    gpus: float | None = None,
) -> Step | Callable[[Callable[..., Any]], Step]:
    """Make ``fn`` a pipeline step. ``@step`` or ``@step(retries=2, backoff=0.5)``.

    - ``retries``/``backoff``: run again after a failure, waiting backoff x 2^(attempt-1) s.
    - ``cache=False``: always run (for steps with side effects).
    - ``version``: change it to invalidate cached outputs when something the source hash
      cannot see changed (a helper function the step calls, a file it reads).
    - ``inputs``: ``{"parameter": "other_step"}`` when names differ.
    - ``cpus``/``memory_mb``/``gpus``: what one run needs; a cluster executor schedules the
      step on them, the local one refuses a step that cannot fit this machine.
    """
    resources = (
        None
        if cpus is None and memory_mb is None and gpus is None
        else Resources(cpus=1.0 if cpus is None else cpus, memory_mb=memory_mb, gpus=gpus or 0.0)
    )

    def wrap(f: Callable[..., Any]) -> Step:
        if isinstance(f, Step):
            f = f.fn
        s = Step(
            f,
            name or f.__name__,
            retries,
            backoff,
            cache,
            version,
            dict(inputs or {}),
            resources,
        )
        functools.update_wrapper(s, f)
        return s

    if fn is not None:
        return wrap(fn)
    return wrap
