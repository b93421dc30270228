"""Model references: ``name``, ``name/3`` (a version) and ``name@alias``; name rules."""

from __future__ import annotations

import re
from dataclasses import dataclass

from loopline.registry.errors import InvalidRefError

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_ALIAS_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class ModelRef:
    """A parsed reference: a model name with at most one of a version or an alias."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}/{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name


def parse_ref(ref: str) -> ModelRef:
    """Parse ``name``, ``name/VERSION`` or ``name@ALIAS``."""
    if not isinstance(ref, str) or not ref.strip():
        raise InvalidRefError(
            f"Invalid model reference {ref!r}",
            hint="Use NAME (the latest version), NAME/VERSION or NAME@ALIAS",
            text=ref,
        )
    ref = ref.strip()
    if "@" in ref:
        name, _, alias = ref.partition("@")
        return ModelRef(check_name(name), alias=check_alias(alias))
    if "/" in ref:
        name, _, version = ref.partition("/")
        if not version.isdigit() or int(version) < 1:
            raise InvalidRefError(
                f"Invalid model reference {ref!r}: version {version!r} is not a positive integer",
                hint="Use NAME/VERSION, e.g. churn/3",
                text=ref,
            )
        return ModelRef(check_name(name), version=int(version))
    return ModelRef(check_name(ref))


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise InvalidRefError(
            f"Invalid model name {name!r}",
            hint="A model name is 1-128 letters, digits, '_', '.' or '-', starting with a "
            "letter or digit",
            text=name,
        )
    return name


def check_alias(alias: str) -> str:
    if not isinstance(alias, str) or not _ALIAS_RE.fullmatch(alias):
        raise InvalidRefError(
            f"Invalid alias {alias!r}",
            hint="An alias is 1-64 letters, digits, '_', '.' or '-', starting with a letter "
            "(e.g. production, champion, challenger)",
            text=alias,
        )
    return alias
