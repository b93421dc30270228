"""What a server serves: model versions in memory, the slots that follow references, and the
traffic plan between a primary and its candidates.

- :class:`ServedModel` is one loaded version: validator, inference path, micro-batcher;
  its :meth:`~ServedModel.run_batch` (in a worker thread) predicts a batch, logs it and
  counts it.
- :class:`ModelSlot` follows a reference (``churn@production``): :meth:`~ModelSlot.refresh`
  resolves it and, when it points elsewhere, loads the new version in the background and
  swaps it in with one assignment. Requests already queued on the old version are
  answered by it (and say so); new ones go to the new version. Nothing waits for a load.
- :class:`Traffic` is the primary slot plus an optional canary (answers ``percent`` of
  requests) and shadow (gets a copy of ``percent`` of requests; its answers are only
  logged), from the command line or the registry's ``ll_model_traffic`` row, which wins
  when present so a controller can change the split while the server runs.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loopline.errors import LooplineError
from loopline.serve.batching import Arrivals, Job, MicroBatcher
from loopline.serve.errors import ServeArgumentError
from loopline.serve.matrix import matrix_columns, stacked_columns
from loopline.serve.predictor import Outputs, build_predictor
from loopline.serve.responses import model_header_pairs

if TYPE_CHECKING:
    from loopline.monitor.predictions import PredictionLogWriter
    from loopline.registry import LoadedModel, ModelVersion, Registry
    from loopline.registry.validation import InputValidator
    from loopline.serve.metrics import ServeMetrics

log = logging.getLogger("loopline.serve")

ROLES = ("primary", "canary", "shadow")


@dataclass
class JobResult:
    """One request's share of a model call."""

    outputs: Outputs
    version: int


@dataclass
class ServeOptions:
    """How each served model is built (from the serve settings)."""

    max_batch_size: int = 1024
    max_wait_ms: float = 2.0
    check_ranges: bool = False
    onnx_threads: int | None = None


class ServedModel:
    """One model version in memory, ready to predict micro-batches."""

    def __init__(
        self,
        loaded: LoadedModel,
        role: str,
        *,
        executor: Executor,
        options: ServeOptions,
        arrivals: Arrivals,
        metrics: ServeMetrics | None = None,
        log_writer: PredictionLogWriter | None = None,
    ) -> None:
        from loopline.registry.validation import InputValidator

        self.loaded = loaded
        self.role = role
        self.name = loaded.name
        self.version = loaded.version
        self.ref = loaded.ref
        self.signature = loaded.signature
        self.metrics = metrics
        self.log_writer = log_writer
        self.validator: InputValidator = InputValidator(
            self.signature, check_ranges=options.check_ranges
        )
        self.names = tuple(self.signature.columns)
        choice = build_predictor(loaded, threads=options.onnx_threads)
        self.predictor = choice.predictor
        self.path_reason = choice.reason
        self.classifier = loaded.is_classifier
        classes = loaded.classes_
        self.classes: list[Any] | None = None if classes is None else _plain(list(classes))
        self.proba_names = None if self.classes is None else [f"proba.{c}" for c in self.classes]
        self.load_seconds = 0.0
        self.batcher = MicroBatcher(
            self.run_batch,
            executor,
            max_rows=options.max_batch_size,
            max_wait_s=options.max_wait_ms / 1000.0,
            arrivals=arrivals,
            on_depth=self._depth,
            name=f"{self.ref}-{role}",
        )
        self._version_label = str(self.version)
        #: The model headers of its answers, ready for ASGI.
        self.header_pairs = model_header_pairs(self)

    def warm(self) -> None:
        """One call on synthetic rows, so the first request does not pay for lazy setup."""
        from loopline.registry.validation import sample_rows

        try:
            self.predictor.predict(sample_rows(self.signature, n=2), 2)
        except Exception as exc:
            log.info("model %s: warm-up call failed (%s)", self.ref, exc)

    def _depth(self, depth: int) -> None:
        if self.metrics is not None:
            self.metrics.queue_depth.labels(role=self.role).set(depth)

    def run_batch(self, jobs: Sequence[Job]) -> list[JobResult]:
        """Predict the jobs' rows in one call (in the inference thread, or in the event loop
        for a small batch of a fast model: see :mod:`loopline.serve.batching`)."""
        from loopline.registry.validation import concat_columns

        t = time.perf_counter()
        matrices = [j.matrix for j in jobs if j.matrix is not None]
        if len(matrices) == len(jobs):
            columns = stacked_columns(matrices, self.names)
        elif len(jobs) == 1:
            columns = jobs[0].columns
        else:
            parts = [
                j.columns if j.matrix is None else matrix_columns(j.matrix, self.names)
                for j in jobs
            ]
            columns = concat_columns(parts, self.names)
        n = sum(j.n_rows for j in jobs)
        out = self.predictor.predict(columns, n)
        done = time.perf_counter()
        results: list[JobResult] = []
        start = 0
        for job in jobs:
            stop = start + job.n_rows
            proba = None if out.probabilities is None else out.probabilities[start:stop]
            results.append(JobResult(Outputs(out.predictions[start:stop], proba), self.version))
            start = stop
        if self.log_writer is not None:
            self._log(jobs, columns, out, done)
        m = self.metrics
        if m is not None:
            m.batch_rows.labels(role=self.role).observe(n)
            m.batch_requests.labels(role=self.role).observe(len(jobs))
            m.predict_seconds.labels(role=self.role, path=self.predictor.path).observe(done - t)
            m.rows.labels(role=self.role, version=self._version_label).inc(n)
        return results

    def _log(self, jobs: Sequence[Job], columns: dict[str, Any], out: Outputs, done: float) -> None:
        from loopline.monitor.predictions import PredictionBatch

        assert self.log_writer is not None
        outputs: dict[str, Any] = {"prediction": out.predictions}
        if out.probabilities is not None and self.proba_names is not None:
            for i, name in enumerate(self.proba_names):
                outputs[name] = out.probabilities[:, i]
        batch = PredictionBatch.from_requests(
            model=self.name,
            version=self.version,
            role=self.role,
            request_ids=[j.request_id for j in jobs],
            row_counts=[j.n_rows for j in jobs],
            arrived=[j.arrived for j in jobs],
            latency_ms=[(done - j.t0) * 1000.0 for j in jobs],
            inputs=columns,
            outputs=outputs,
        )
        logged = self.log_writer.append(batch)
        if self.metrics is not None:
            counter = self.metrics.log_rows if logged else self.metrics.log_dropped
            counter.inc(batch.n_rows)

    def describe(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "name": self.name,
            "version": self.version,
            "role": self.role,
            "flavor": self.loaded.flavor,
            "inference": self.predictor.path,
            "inference_reason": self.path_reason,
            "load_seconds": round(self.load_seconds, 3),
            "batches": self.batcher.batches,
            "requests": self.batcher.jobs,
            "queue_depth": self.batcher.depth,
        }


def _plain(values: list[Any]) -> list[Any]:
    out = []
    for v in values:
        item = getattr(v, "item", None)
        out.append(item() if callable(item) and not isinstance(v, str) else v)
    return out


#: Builds a ServedModel for a version in a background thread.
Loader = Callable[["ModelVersion", str], ServedModel]


class ModelSlot:
    """A reference (``name@alias``, ``name/3``, ``name``) and the version serving it."""

    def __init__(
        self,
        ref: str,
        role: str,
        *,
        registry: Registry,
        loader: Loader,
        load_executor: Executor,
        metrics: ServeMetrics | None = None,
    ) -> None:
        self.ref = ref
        self.role = role
        self.registry = registry
        self.loader = loader
        self.load_executor = load_executor
        self.metrics = metrics
        self.current: ServedModel | None = None
        self.loading: int | None = None
        #: Why the last resolve or load failed (None once one succeeds).
        self.last_error: str | None = None
        self.last_exception: BaseException | None = None
        self.swaps = 0
        self._lock = asyncio.Lock()
        self._retired: list[asyncio.Task[None]] = []

    async def refresh(self) -> bool:
        """Resolve the reference; load and swap in a new version. True if it swapped."""
        async with self._lock:
            loop = asyncio.get_running_loop()
            try:
                mv = await loop.run_in_executor(self.load_executor, self.registry.resolve, self.ref)
            except LooplineError as exc:
                self.failed(str(exc), exc)
                log.warning("cannot resolve %s: %s", self.ref, exc)
                return False
            if self.current is not None and self.current.version == mv.version:
                self.failed(None, None)
                return False
            self.loading = mv.version
            t0 = time.perf_counter()
            try:
                served = await loop.run_in_executor(self.load_executor, self.loader, mv, self.role)
            except Exception as exc:
                self.failed(f"loading {mv.ref} failed: {exc}", exc)
                log.error("cannot load %s for %s: %s", mv.ref, self.ref, exc)
                return False
            finally:
                self.loading = None
            served.load_seconds = time.perf_counter() - t0
            served.batcher.start()
            old, self.current = self.current, served
            self.failed(None, None)
            if self.metrics is not None:
                self.metrics.load_seconds.labels(role=self.role, version=str(mv.version)).set(
                    served.load_seconds
                )
                self.metrics.loaded_version.labels(role=self.role).set(served.version)
            if old is not None:
                self.swaps += 1
                if self.metrics is not None:
                    self.metrics.swaps.labels(role=self.role).inc()
                log.warning(
                    "%s: swapped version %s -> %s (%s)",
                    self.ref,
                    old.version,
                    served.version,
                    served.predictor.path,
                )
                self._retire(old)
            return True

    def failed(self, message: str | None, exc: BaseException | None) -> None:
        """Record why the last resolve or load failed (None, None: it succeeded)."""
        self.last_error = message
        self.last_exception = exc

    def _retire(self, old: ServedModel) -> None:
        task = asyncio.get_running_loop().create_task(old.batcher.close())
        self._retired.append(task)
        task.add_done_callback(self._retired.remove)

    async def close(self) -> None:
        if self.current is not None:
            await self.current.batcher.close()
        for task in list(self._retired):
            await task

    def describe(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "role": self.role,
            "serving": None if self.current is None else self.current.describe(),
            "loading": self.loading,
            "swaps": self.swaps,
            "last_error": self.last_error,
        }


@dataclass(frozen=True)
class Split:
    """A candidate and its share: ``canary`` answers, ``shadow`` only gets copies."""

    ref: str
    percent: float
    mode: str
    sticky_key: str | None = None
    source: str = "command line"

    def to_dict(self) -> dict[str, Any]:
        return {
            "candidate": self.ref,
            "percent": self.percent,
            "mode": self.mode,
            "sticky_key": self.sticky_key,
            "source": self.source,
        }


def parse_split(text: str, mode: str, sticky_key: str | None = None) -> Split:
    """``MODEL@ALIAS:PERCENT`` (the percent is optional for shadows: 100)."""
    ref, sep, pct = text.rpartition(":")
    if not sep:
        ref, pct = text, ""
    if not pct:
        if mode == "canary":
            raise ServeArgumentError(
                f"--canary needs a share: MODEL@ALIAS:PERCENT, e.g. {text}:10",
                argument=mode,
                value=text,
            )
        percent = 100.0
    else:
        try:
            percent = float(pct.rstrip("%"))
        except ValueError:
            raise ServeArgumentError(
                f"Invalid traffic share {pct!r} in {text!r}; expected a number from 0 to 100",
                argument=mode,
                value=text,
            ) from None
    if not 0.0 <= percent <= 100.0:
        raise ServeArgumentError(
            f"Invalid traffic share {percent:g} in {text!r}; expected 0 to 100",
            argument=mode,
            value=text,
        )
    return Split(ref.strip(), percent, mode, sticky_key)


class Traffic:
    """The primary slot and the candidate slots, and how a request picks one."""

    def __init__(
        self,
        primary: ModelSlot,
        make_slot: Callable[[str, str], ModelSlot],
        *,
        canary: Split | None = None,
        shadow: Split | None = None,
    ) -> None:
        self.primary = primary
        self.make_slot = make_slot
        self.cli = {"canary": canary, "shadow": shadow}
        self.splits: dict[str, Split | None] = dict(self.cli)
        self.slots: dict[str, ModelSlot | None] = {"canary": None, "shadow": None}
        self.registry_split: Split | None = None
        self._rng = random.Random()

    @property
    def canary(self) -> tuple[ModelSlot, Split] | None:
        slot, split = self.slots["canary"], self.splits["canary"]
        return None if slot is None or split is None else (slot, split)

    @property
    def sticky_keys(self) -> set[str]:
        return {s.sticky_key for s in self.splits.values() if s is not None and s.sticky_key}

    def choose(self, sticky: str | None) -> ModelSlot:
        """The slot that answers a request (the canary for its share, else the primary)."""
        slot = self.slots["canary"]
        split = self.splits["canary"]
        if slot is None or split is None or slot.current is None or split.percent <= 0:
            return self.primary
        if self._picks(split, sticky):
            return slot
        return self.primary

    def shadow(self, sticky: str | None) -> ModelSlot | None:
        slot = self.slots["shadow"]
        split = self.splits["shadow"]
        if slot is None or split is None or slot.current is None or split.percent <= 0:
            return None
        return slot if self._picks(split, sticky) else None

    def _picks(self, split: Split, sticky: str | None) -> bool:
        if split.percent >= 100:
            return True
        if sticky is not None and split.sticky_key is not None:
            bucket = zlib.crc32(f"{split.ref}|{sticky}".encode()) % 10_000
            return bucket < split.percent * 100
        return self._rng.random() * 100 < split.percent

    async def apply(self, registry_split: Split | None) -> None:
        """Set the split (the registry's row for its mode wins over the command line)."""
        self.registry_split = registry_split
        wanted = dict(self.cli)
        if registry_split is not None:
            wanted[registry_split.mode] = registry_split
        for mode in ("canary", "shadow"):
            split = wanted[mode]
            slot = self.slots[mode]
            if split is None:
                self.splits[mode] = None
                self.slots[mode] = None
                if slot is not None:
                    await slot.close()
                continue
            if slot is None or slot.ref != split.ref:
                fresh = self.make_slot(split.ref, mode)
                await fresh.refresh()
                self.slots[mode] = fresh
                self.splits[mode] = split
                if slot is not None:
                    await slot.close()
            else:
                self.splits[mode] = split
                await slot.refresh()

    def describe(self) -> dict[str, Any]:
        return {
            "primary": self.primary.describe(),
            "canary": _side(self.slots["canary"], self.splits["canary"]),
            "shadow": _side(self.slots["shadow"], self.splits["shadow"]),
        }

    async def close(self) -> None:
        await self.primary.close()
        for slot in self.slots.values():
            if slot is not None:
                await slot.close()


def _side(slot: ModelSlot | None, split: Split | None) -> dict[str, Any] | None:
    if split is None:
        return None
    return {**split.to_dict(), **({} if slot is None else slot.describe())}


def submit_job(served: ServedModel, job: Job) -> asyncio.Future[Any]:
    """Queue a job on a served model's batcher (raises BatcherClosed after a swap)."""
    return served.batcher.submit_nowait(job)
