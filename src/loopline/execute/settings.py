"""The ``[executor]`` section of ``loopline.toml``: where pipeline steps, search trials and
batch chunks run.

    [executor]
    kind = "ray"                      # or "local" (the default): threads of this process
    address = "ray://head:10001"      # a cluster; leave out to start Ray on this machine
    workers = 8                       # units in flight (default: local up to 4, Ray its CPUs)
    num_cpus = 2                      # CPUs of a Ray instance started here

``LOOPLINE_EXECUTOR_KIND`` (and ``_ADDRESS``, ``_WORKERS``, ``_NUM_CPUS``) override the
file; ``loopline run --executor ray`` overrides both.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from loopline.config import load_section
from loopline.execute.errors import ExecutorError

if TYPE_CHECKING:
    from loopline.config import Settings
    from loopline.execute.base import Executor

SECTION = "executor"
KINDS = ("local", "ray")


@dataclass(frozen=True)
class ExecutorSettings:
    kind: Literal["local", "ray"] = "local"
    address: str | None = None
    workers: int | None = field(default=None, metadata={"min": 1})
    num_cpus: int | None = field(default=None, metadata={"min": 1})

    def __post_init__(self) -> None:
        if self.kind == "local" and (self.address or self.num_cpus):
            raise ValueError('address and num_cpus describe a Ray cluster; they need kind = "ray"')


def executor_settings(settings: Settings | None, **overrides: Any) -> ExecutorSettings:
    """``[executor]`` with env overrides, then ``overrides`` that are not None."""
    config = load_section(settings, SECTION, ExecutorSettings)
    given = {k: v for k, v in overrides.items() if v is not None}
    if given.get("kind") == "local" and "address" not in given:
        given.update(address=None, num_cpus=None)
    try:
        return replace(config, **given)
    except ValueError as exc:
        raise ExecutorError(str(exc)) from None


def open_executor(
    settings: Settings | None,
    *,
    kind: str | None = None,
    workers: int | None = None,
    address: str | None = None,
    thread_name: str = "loopline",
) -> Executor:
    """The executor ``[executor]`` (or the arguments) ask for, ready for work.

    A Ray cluster spanning other machines cannot reach a SQLite file or a local artifact
    folder: that is refused here, naming the settings to change, rather than failing in
    every unit."""
    if kind is not None and kind not in KINDS:
        raise ExecutorError(f"unknown executor {kind!r}; expected one of {', '.join(KINDS)}")
    config = executor_settings(settings, kind=kind, workers=workers, address=address)
    if config.kind == "local":
        from loopline.execute.local import LocalExecutor

        return LocalExecutor(config.workers, thread_name=thread_name)
    from loopline.execute.ray import RayExecutor

    executor = RayExecutor(config.address, num_cpus=config.num_cpus, parallelism=config.workers)
    if settings is not None and not executor.single_machine:
        local = []
        if settings.metadata_url.startswith("sqlite"):
            local.append(f"metadata_url ({settings.metadata_url})")
        if "://" not in settings.artifacts_url:
            local.append(f"artifacts_url ({settings.artifacts_url})")
        if local:
            executor.shutdown()
            raise ExecutorError(
                f"the Ray cluster at {config.address} spans other machines, which cannot "
                f"reach this machine's {' and '.join(local)}",
                hint="Point metadata_url at PostgreSQL and artifacts_url at S3 (docs/deploy.md)",
            )
    return executor
