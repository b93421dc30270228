"""What reading a run gives back: plain, immutable records (no database handle inside)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class MetricPoint:
    """One logged value of a metric. ``timestamp`` is in seconds since the epoch."""

    step: int
    timestamp: float
    value: float


@dataclass(frozen=True)
class MetricSummary:
    """The latest point of a metric and how many points were logged under its key."""

    key: str
    value: float
    step: int
    timestamp: float
    points: int


@dataclass(frozen=True)
class RunInput:
    """Something a run read: a dataset version (by default), named by its content digest."""

    kind: str
    name: str
    version: str
    digest: str
    role: str = "input"


@dataclass(frozen=True)
class RunArtifact:
    """Something a run wrote: a blob in the content store, under a name in the run."""

    name: str
    digest: str
    size: int
    created_at: datetime


@dataclass(frozen=True)
class RunRecord:
    """A run as stored. ``metrics`` holds the latest value of each key (the highest step;
    among equal steps the latest timestamp); ``metric_summaries`` adds steps and counts."""

    id: str
    experiment: str
    name: str | None
    status: str
    parent_id: str | None
    start_time: datetime
    end_time: datetime | None
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    git_commit: str | None
    git_dirty: bool | None
    inputs: list[RunInput]
    artifacts: list[RunArtifact]
    error: str | None
    source: str | None = None
    user: str | None = None
    heartbeat_at: datetime | None = None
    metric_summaries: dict[str, MetricSummary] = field(default_factory=dict)

    @property
    def duration(self) -> float | None:
        """Seconds from start to end; None while the run has not ended."""
        if self.end_time is None:
            return None
        return (self.end_time - self.start_time).total_seconds()

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (times as ISO 8601, NaN and infinities as strings)."""
        return {
            "id": self.id,
            "experiment": self.experiment,
            "name": self.name,
            "status": self.status,
            "parent_id": self.parent_id,
            "start_time": self.start_time.isoformat(),
            "end_time": self.end_time.isoformat() if self.end_time else None,
            "duration_s": self.duration,
            "heartbeat_at": self.heartbeat_at.isoformat() if self.heartbeat_at else None,
            "user": self.user,
            "source": self.source,
            "git_commit": self.git_commit,
            "git_dirty": self.git_dirty,
            "error": self.error,
            "params": dict(self.params),
            "metrics": {k: json_number(v) for k, v in self.metrics.items()},
            "metric_steps": {
                k: {"step": s.step, "points": s.points, "timestamp": s.timestamp}
                for k, s in self.metric_summaries.items()
            },
            "tags": dict(self.tags),
            "inputs": [
                {
                    "kind": i.kind,
                    "name": i.name,
                    "version": i.version,
                    "digest": i.digest,
                    "role": i.role,
                }
                for i in self.inputs
            ],
            "artifacts": [
                {
                    "name": a.name,
                    "digest": a.digest,
                    "size": a.size,
                    "created_at": a.created_at.isoformat(),
                }
                for a in self.artifacts
            ],
        }


def json_number(value: float) -> float | str:
    """``value`` itself, or "NaN" / "Infinity" / "-Infinity", which JSON cannot hold."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value
