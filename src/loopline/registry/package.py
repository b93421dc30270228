"""Model packages: a manifest plus files, every one stored in the content-addressed store.

The manifest is canonical JSON (sorted keys, no whitespace) naming the package's format,
the model (name, version, flavor, class), its signature, metrics, the versions of the
libraries and of Python that wrote it, every file with its sha256 and size, and the ONNX
export's outcome. The registry row records the manifest's sha256; the manifest records
each file's. Reading a package checks both links, so a flipped byte anywhere refuses to
load with :class:`~loopline.registry.errors.PackageIntegrityError` naming the file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from loopline.registry.errors import ModelPackageError, PackageIntegrityError
from loopline.registry.signature import Signature
from loopline.store.errors import BlobIntegrityError, ObjectNotFoundError
from loopline.store.objects.cas import ContentStore
from loopline.types import Digest

FORMAT = "loopline.model/1"
MANIFEST_FILE = "manifest.json"
_FILE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


@dataclass(frozen=True)
class FileEntry:
    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    """What a package holds; see the module docstring."""

    name: str
    version: int
    flavor: str
    model_class: str
    signature: Signature
    files: Mapping[str, FileEntry]
    flavor_info: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, float | None] = field(default_factory=dict)
    libraries: Mapping[str, str] = field(default_factory=dict)
    python: str = ""
    onnx: Mapping[str, Any] | None = None
    created_at: str = ""
    format: str = FORMAT

    @property
    def ref(self) -> str:
        return f"{self.name}/{self.version}"

    @property
    def has_onnx(self) -> bool:
        return bool(self.onnx and self.onnx.get("status") == "kept")

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "name": self.name,
            "version": self.version,
            "flavor": self.flavor,
            "model_class": self.model_class,
            "flavor_info": dict(self.flavor_info),
            "signature": self.signature.to_dict(),
            "metrics": dict(self.metrics),
            "libraries": dict(self.libraries),
            "python": self.python,
            "files": {
                path: {"sha256": e.sha256, "size": e.size} for path, e in sorted(self.files.items())
            },
            "onnx": None if self.onnx is None else dict(self.onnx),
            "created_at": self.created_at,
        }

    def to_bytes(self) -> bytes:
        return json.dumps(
            self.to_dict(), sort_keys=True, separators=(",", ":"), allow_nan=False
        ).encode("utf-8")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        fmt = data.get("format")
        if fmt != FORMAT:
            raise ModelPackageError(
                f"Unsupported model package format {fmt!r}; this loopline reads {FORMAT!r}",
                hint="Upgrade loopline to load packages written by a newer version",
            )
        files = {
            check_file_name(str(path)): FileEntry(str(e["sha256"]), int(e["size"]))
            for path, e in dict(data["files"]).items()
        }
        return cls(
            name=str(data["name"]),
            version=int(data["version"]),
            flavor=str(data["flavor"]),
            model_class=str(data.get("model_class", "")),
            signature=Signature.from_dict(data["signature"]),
            files=files,
            flavor_info=dict(data.get("flavor_info") or {}),
            metrics=dict(data.get("metrics") or {}),
            libraries=dict(data.get("libraries") or {}),
            python=str(data.get("python", "")),
            onnx=None if data.get("onnx") is None else dict(data["onnx"]),
            created_at=str(data.get("created_at", "")),
            format=str(fmt),
        )


def check_file_name(name: str) -> str:
    """Package files are plain names: no folders, nothing that could escape a directory."""
    if not _FILE_RE.fullmatch(name):
        raise ModelPackageError(f"Invalid file name {name!r} in a model package")
    return name


def store_files(cas: ContentStore, files: Mapping[str, bytes]) -> dict[str, FileEntry]:
    """Put each file in the CAS; return its manifest entries."""
    entries: dict[str, FileEntry] = {}
    for path, data in files.items():
        digest = cas.put(data)
        entries[check_file_name(path)] = FileEntry(digest, len(data))
    return entries


def put_manifest(cas: ContentStore, manifest: Manifest) -> Digest:
    return cas.put(manifest.to_bytes())


def read_manifest(cas: ContentStore, digest: str, ref: str) -> Manifest:
    """The manifest under ``digest``, verified; raises PackageIntegrityError on mismatch."""
    data = _verified_get(cas, digest, ref, MANIFEST_FILE)
    try:
        manifest = Manifest.from_dict(json.loads(data))
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelPackageError(f"The manifest of {ref} is malformed ({exc})") from exc
    if manifest.ref != ref:
        # A row pointing at another model's (intact) manifest is tampering too.
        raise PackageIntegrityError(ref, MANIFEST_FILE, f"a manifest of {ref}", manifest.ref)
    return manifest


def read_files(
    cas: ContentStore, manifest: Manifest, names: Iterable[str] | None = None
) -> dict[str, bytes]:
    """The package's files (or ``names`` of them), each verified against the manifest."""
    wanted = list(manifest.files) if names is None else list(names)
    out: dict[str, bytes] = {}
    for path in wanted:
        entry = manifest.files.get(path)
        if entry is None:
            raise PackageIntegrityError(manifest.ref, path, "a file in the manifest", "missing")
        data = _verified_get(cas, entry.sha256, manifest.ref, path)
        if len(data) != entry.size:
            raise PackageIntegrityError(
                manifest.ref, path, f"{entry.sha256} ({entry.size} bytes)", f"{len(data)} bytes"
            )
        out[path] = data
    return out


def _verified_get(cas: ContentStore, digest: str, ref: str, file: str) -> bytes:
    try:
        data = cas.get(digest)  # hashes the content and compares it with ``digest``
    except BlobIntegrityError as exc:
        raise PackageIntegrityError(ref, file, digest, exc.actual) from exc
    except ObjectNotFoundError as exc:
        raise PackageIntegrityError(ref, file, digest, "no such object in the store") from exc
    return data
