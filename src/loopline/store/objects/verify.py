"""Checking a whole content store: every blob re-hashed, references resolved, repairs.

:func:`verify_store` is what ``loopline store verify`` runs. It reads every blob of a
:class:`~loopline.store.objects.cas.ContentStore` through (a streamed read: memory stays
bounded), and sorts what it finds:

- ``corrupt``: the content does not hash to the blob's name (flipped, truncated,
  extended or replaced);
- ``unreadable``: the store failed to return the blob (an I/O error): not known corrupt;
- ``missing``: metadata references the digest but no blob holds it;
- ``orphan``: a blob no reference names (only when references were given). This layer
  does not know every place a digest can be recorded (other layers own their tables),
  so an orphan is a blob to look at, not one known to be garbage: nothing here deletes
  orphans.

With ``repair=True`` each corrupt blob is checked once more and removed, so that the next
put of the same content writes it afresh (a put would also replace it by itself, see
:meth:`ContentStore.put`), and the stale temporary files of a local store are removed.

References are given by the caller as :class:`BlobRef` (a digest and who holds it), since
the tables that record digests belong to the layers above the store.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from loopline.store.errors import ObjectNotFoundError, ObjectStoreError
from loopline.store.objects.base import CHUNK_SIZE
from loopline.store.objects.cas import ContentStore
from loopline.store.tempfiles import TempFile

_DIGEST_RE = re.compile(r"[0-9a-f]{64}")

#: What :func:`verify_store` reports, worst first.
PROBLEMS = ("corrupt", "unreadable", "missing", "orphan")


@dataclass(frozen=True)
class BlobRef:
    """One place that records a digest: ``owner`` says which, for people
    (``"dataset churn v3 (data)"``, ``"model churn/2 file model.skops"``)."""

    digest: str
    owner: str


@dataclass
class BlobFinding:
    """A blob that is not intact, or not where references expect it."""

    digest: str
    key: str
    problem: str
    detail: str
    referenced_by: tuple[str, ...] = ()
    size: int | None = None
    repaired: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "key": self.key,
            "problem": self.problem,
            "detail": self.detail,
            "referenced_by": list(self.referenced_by),
            "size": self.size,
            "repaired": self.repaired,
        }


@dataclass
class VerifyReport:
    """The outcome of :func:`verify_store`."""

    store: str
    blobs: int = 0
    bytes: int = 0
    intact: int = 0
    #: Distinct digests the references named (None: no references were given).
    referenced: int | None = None
    findings: list[BlobFinding] = field(default_factory=list)
    #: Stale temporary files of a local store (removed when ``temp_removed``).
    temp_files: list[TempFile] = field(default_factory=list)
    temp_removed: bool = False

    def of(self, problem: str) -> list[BlobFinding]:
        return [f for f in self.findings if f.problem == problem]

    @property
    def damaged(self) -> bool:
        """Whether data was lost or altered: a blob corrupt, unreadable or missing."""
        return any(f.problem in ("corrupt", "unreadable", "missing") for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "blobs": self.blobs,
            "bytes": self.bytes,
            "intact": self.intact,
            "referenced": self.referenced,
            "counts": {p: len(self.of(p)) for p in PROBLEMS},
            "damaged": self.damaged,
            "findings": [f.to_dict() for f in self.findings],
            "temp_files": [
                {"path": str(t.path), "size": t.size, "why": t.why} for t in self.temp_files
            ],
            "temp_removed": self.temp_removed,
        }


@runtime_checkable
class _HasTempFiles(Protocol):
    """A store that keeps temporary files of its own (the local store)."""

    def stale_temp_files(self, older_than_s: float = ...) -> list[TempFile]: ...

    def cleanup_temp(self, older_than_s: float = ...) -> int: ...


#: ``progress(done, total, nbytes)`` after each blob read.
Progress = Callable[[int, int, int], None]


def verify_store(
    cas: ContentStore,
    references: Iterable[BlobRef] | None = None,
    *,
    repair: bool = False,
    progress: Progress | None = None,
) -> VerifyReport:
    """Re-hash every blob of ``cas``; resolve ``references``; repair if asked.

    See the module docstring for what is reported and what ``repair`` does.
    """
    report = VerifyReport(store=cas.store.url)
    owners: dict[str, list[str]] | None = None
    if references is not None:
        owners = {}
        for ref in references:
            if _DIGEST_RE.fullmatch(ref.digest):
                owners.setdefault(ref.digest, []).append(ref.owner)
        report.referenced = len(owners)

    digests = list(cas.digests())
    present = set(digests)
    for done, digest in enumerate(digests, 1):
        held_by = tuple(sorted(set(owners.get(digest, ())))) if owners is not None else ()
        state, finding = _check_blob(cas, digest, held_by, report, repair=repair)
        if state == "gone":
            present.discard(digest)  # removed since the listing
        elif finding is not None:
            report.findings.append(finding)
        elif owners is not None and digest not in owners:
            report.findings.append(
                BlobFinding(digest, cas.key_for(digest), "orphan", "no reference names it")
            )
        if progress is not None:
            progress(done, len(digests), report.bytes)

    if owners is not None:
        for lost in sorted(set(owners) - present):
            report.findings.append(
                BlobFinding(
                    lost,
                    cas.key_for(lost),
                    "missing",
                    "referenced, but no blob holds it",
                    tuple(sorted(set(owners[lost]))),
                )
            )
    report.findings.sort(key=lambda f: (PROBLEMS.index(f.problem), f.digest))

    store = cas.store
    if isinstance(store, _HasTempFiles):
        report.temp_files = store.stale_temp_files()
        if repair and report.temp_files:
            store.cleanup_temp()
            report.temp_removed = True
    return report


def _check_blob(
    cas: ContentStore,
    digest: str,
    held_by: tuple[str, ...],
    report: VerifyReport,
    *,
    repair: bool,
) -> tuple[str, BlobFinding | None]:
    """Hash one blob into ``report``: ("intact", None), ("gone", None) when it vanished
    since the listing, or ("bad", the finding)."""
    key = cas.key_for(digest)
    try:
        actual, size = _hash(cas, key)
    except ObjectNotFoundError:
        return "gone", None
    except ObjectStoreError as exc:
        return "bad", BlobFinding(digest, key, "unreadable", str(exc), held_by)
    report.blobs += 1
    report.bytes += size
    if actual == digest:
        report.intact += 1
        return "intact", None
    finding = BlobFinding(
        digest, key, "corrupt", f"content hashes to sha256 {actual}", held_by, size
    )
    if repair:
        finding.repaired = _remove_if_still_corrupt(cas, key, digest)
    return "bad", finding


def _hash(cas: ContentStore, key: str) -> tuple[str, int]:
    hasher = hashlib.sha256()
    size = 0
    with cas.store.open(key) as f:
        try:
            while chunk := f.read(CHUNK_SIZE):
                hasher.update(chunk)
                size += len(chunk)
        except OSError as exc:  # a read error of an open stream
            raise ObjectStoreError(f"Cannot read {key!r} in store {cas.store.url}: {exc}") from exc
    return hasher.hexdigest(), size


def _remove_if_still_corrupt(cas: ContentStore, key: str, digest: str) -> bool:
    """Remove the corrupt copy, unless a put rewrote it intact since it was read; whether
    the corrupt copy is gone."""
    try:
        actual, _ = _hash(cas, key)
    except ObjectNotFoundError:
        return True  # already gone: the next put writes it
    except ObjectStoreError:
        return False
    if actual == digest:
        return False
    cas.discard(digest)
    return True
