"""The registry's records as plain frozen dataclasses: versions, alias moves, traffic splits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from loopline.registry.signature import Signature
from loopline.store.db.types import to_utc


def iso(value: datetime | None) -> str | None:
    return None if value is None else to_utc(value).isoformat()


@dataclass(frozen=True)
class DatasetRef:
    """One dataset a model was trained or evaluated on."""

    name: str
    version: str | int | None
    digest: str | None
    role: str = "train"
    #: The recorded split of that dataset version the model was trained on, if any.
    split: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "digest": self.digest,
            "role": self.role,
        }
        if self.split is not None:
            out["split"] = self.split
        return out

    @classmethod
    def coerce(cls, item: Any) -> DatasetRef:
        """From a mapping or any object with ``name``, ``version``, ``digest`` (and ``role``)."""
        if isinstance(item, DatasetRef):
            return item
        get = item.get if isinstance(item, Mapping) else (lambda k, d=None: getattr(item, k, d))
        name = get("name")
        if not name:
            raise TypeError(
                f"A dataset reference needs a name (and version, digest, role), got {item!r}"
            )
        version = get("version")
        if version is not None and not isinstance(version, int | str):
            version = str(version)
        digest = get("digest")
        split = get("split") if get("split") is not None else get("split_id")
        return cls(
            name=str(name),
            version=version,
            digest=None if digest is None else str(digest),
            role=str(get("role") or "train"),
            split=int(split) if isinstance(split, int) and not isinstance(split, bool) else None,
        )


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a model, with its lineage."""

    name: str
    version: int
    flavor: str
    manifest_digest: str
    signature: Signature
    created_at: datetime
    created_by: str
    status: str = "ready"
    run_id: str | None = None
    datasets: tuple[DatasetRef, ...] = ()
    code_commit: str | None = None
    metrics: Mapping[str, float | None] = field(default_factory=dict)
    report_digest: str | None = None
    description: str | None = None
    #: Aliases this version holds now (filled by the registry's queries).
    aliases: tuple[str, ...] = ()

    @property
    def ref(self) -> str:
        return f"{self.name}/{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "ref": self.ref,
            "flavor": self.flavor,
            "status": self.status,
            "aliases": list(self.aliases),
            "run_id": self.run_id,
            "datasets": [d.to_dict() for d in self.datasets],
            "code_commit": self.code_commit,
            "metrics": dict(self.metrics),
            "report_digest": self.report_digest,
            "manifest_digest": self.manifest_digest,
            "signature": self.signature.to_dict(),
            "description": self.description,
            "created_at": iso(self.created_at),
            "created_by": self.created_by,
        }


@dataclass(frozen=True)
class AliasMove:
    """One row of an alias's history: it moved from ``from_version`` to ``to_version``."""

    id: int
    name: str
    alias: str
    action: str
    from_version: int | None
    to_version: int
    actor: str
    at: datetime
    reason: str | None = None
    forced: bool = False
    detail: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "alias": self.alias,
            "action": self.action,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "actor": self.actor,
            "at": iso(self.at),
            "reason": self.reason,
            "forced": self.forced,
            "detail": None if self.detail is None else dict(self.detail),
        }


TRAFFIC_MODES = ("canary", "shadow")


@dataclass(frozen=True)
class TrafficSplit:
    """How a server of ``name@alias`` shares requests with a candidate.

    ``canary``: ``percent`` of requests are answered by the candidate. ``shadow``: every
    request is answered by the primary and ``percent`` of them are also sent to the
    candidate, whose answers are only logged. ``sticky_key`` names a request field whose
    hash picks the side, so one caller always gets the same model.
    """

    name: str
    alias: str
    candidate: str
    percent: float
    mode: str
    sticky_key: str | None
    updated_at: datetime
    updated_by: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "alias": self.alias,
            "candidate": self.candidate,
            "percent": self.percent,
            "mode": self.mode,
            "sticky_key": self.sticky_key,
            "updated_at": iso(self.updated_at),
            "updated_by": self.updated_by,
        }


@dataclass(frozen=True)
class ModelSummary:
    """One line of ``loopline models ls``."""

    name: str
    latest_version: int | None
    aliases: Mapping[str, int]
    description: str | None
    created_at: datetime
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "latest_version": self.latest_version,
            "aliases": dict(self.aliases),
            "description": self.description,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }
