"""Prometheus metrics of a server, correct with one worker process or several.

With several workers each process writes its samples to memory-mapped files in the folder
named by ``PROMETHEUS_MULTIPROC_DIR`` (set by the supervisor before the workers start),
and ``/metrics`` merges them; with one process the usual in-memory registry is used.
"""

from __future__ import annotations

import os

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ServeMetrics:
    """The server's metrics. Each app gets its own registry (tests build many apps)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.multiprocess_dir = os.environ.get(MULTIPROC_ENV) or None
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "loopline_requests",
            "Requests answered, by route, HTTP status and the model version that answered.",
            ["route", "status", "version"],
            registry=r,
        )
        self.latency = Histogram(
            "loopline_request_latency_seconds",
            "Time from a request's arrival to its response, by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_rows = Histogram(
            "loopline_batch_rows",
            "Rows per model call (a micro-batch of one or more requests).",
            ["role"],
            buckets=ROW_BUCKETS,
            registry=r,
        )
        self.batch_requests = Histogram(
            "loopline_batch_requests",
            "Requests per model call.",
            ["role"],
            buckets=ROW_BUCKETS,
            registry=r,
        )
        self.predict_seconds = Histogram(
            "loopline_model_call_seconds",
            "Time of one model call (the whole micro-batch).",
            ["role", "path"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.rows = Counter(
            "loopline_rows",
            "Rows predicted, by role and model version.",
            ["role", "version"],
            registry=r,
        )
        self.validation_failures = Counter(
            "loopline_validation_failures",
            "Requests refused because their rows did not match the signature.",
            ["route"],
            registry=r,
        )
        self.load_seconds = Gauge(
            "loopline_model_load_seconds",
            "Seconds the last load of each model version took (read, verify, compile, warm).",
            ["role", "version"],
            multiprocess_mode="max",
            registry=r,
        )
        self.loaded_version = Gauge(
            "loopline_model_version",
            "The model version each role answers with (0: none loaded).",
            ["role"],
            multiprocess_mode="liveall",
            registry=r,
        )
        self.queue_depth = Gauge(
            "loopline_queue_depth",
            "Requests waiting for a model call, over all workers.",
            ["role"],
            multiprocess_mode="livesum",
            registry=r,
        )
        self.swaps = Counter(
            "loopline_model_swaps", "Hot swaps to a new model version.", ["role"], registry=r
        )
        self.log_rows = Counter(
            "loopline_prediction_log_rows", "Rows appended to the prediction log.", registry=r
        )
        self.log_dropped = Counter(
            "loopline_prediction_log_dropped_rows",
            "Rows not logged because the log's buffer was full (the store is slow or down).",
            registry=r,
        )
        self.canary_fallbacks = Counter(
            "loopline_canary_fallbacks",
            "Requests the canary could not answer (invalid for it, or its model raised), "
            "answered by the primary instead; by canary version.",
            ["version"],
            registry=r,
        )
        self.shadow_errors = Counter(
            "loopline_shadow_errors",
            "Shadow requests that could not be predicted (invalid for the candidate, errors).",
            registry=r,
        )
        self.feedback = Counter(
            "loopline_feedback_items",
            "Feedback items received, by status.",
            ["status"],
            registry=r,
        )

    def exposition(self) -> bytes:
        """The text format of every metric (merged over workers when there are several)."""
        from prometheus_client import CollectorRegistry, generate_latest

        if self.multiprocess_dir:
            from prometheus_client import multiprocess

            merged = CollectorRegistry()
            multiprocess.MultiProcessCollector(  # type: ignore[no-untyped-call]
                merged, path=self.multiprocess_dir
            )
            data: bytes = generate_latest(merged)
            return data
        out: bytes = generate_latest(self.registry)
        return out


def mark_process_dead(pid: int) -> None:
    """Forget a dead worker's live gauges (called by the supervisor)."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
