"""The errors of registered models: versions, aliases, packages, promotion.

RegistryError  A problem with registered models, their versions, aliases or packages
    ModelNotFoundError  No registered model has that name
    ModelVersionNotFoundError  The model exists but has no such version
    AliasNotFoundError  The model exists but no version holds that alias
    ModelPackageError  The object cannot be packaged: an unsupported type, not fitted,...
    ModelInputError  Input rows do not fit the model's signature (missing columns, not...
    PackageIntegrityError  A file of a model package (or its manifest) does not match t...
    MalformedPackageError  A file of a model package is not in the format its flavor re...
    FlavorUnavailableError  The package needs a library that is not installed
    UnsafeModelError  A skops file holds types outside skops' defaults and loopline's e...
    ConflictError  A compare-and-set move found another holder than the one expected: a...
    PromotionRefusedError  A promotion check returned a failing verdict and the promoti...
"""

from __future__ import annotations

from loopline.errors import ConfigError, IntegrityError, LooplineError


class RegistryError(LooplineError):
    """A problem with registered models, their versions, aliases or packages.

    RegistryError
    ├── ModelNotFoundError          no model of that name
    ├── ModelVersionNotFoundError   the model has no such version
    ├── AliasNotFoundError          the model has no such alias
    ├── ModelPackageError           the object cannot be packaged (unsupported, not fitted)
    ├── ModelInputError             input rows lack the signature's columns
    ├── PackageIntegrityError       a package file does not match its recorded sha256
    │                               (also an IntegrityError: the CLI exits 4)
    ├── MalformedPackageError       a package file is not in its format (a pickle renamed
    │                               model.skops, a truncated zip); also an IntegrityError
    ├── FlavorUnavailableError      the library a package needs is not installed
    ├── UnsafeModelError            a skops file holds types outside the trusted set
    ├── ConflictError               compare-and-set lost: another process moved it first
    └── PromotionRefusedError       the promotion check failed and was not forced
    """


class ModelNotFoundError(RegistryError):
    """No registered model has that name."""

    def __init__(self, name: str, known: list[str] | None = None) -> None:
        self.name = name
        self.known = list(known or [])
        if self.known:
            shown = ", ".join(self.known[:10]) + (", ..." if len(self.known) > 10 else "")
            hint = f"Known models: {shown}; list them with: loopline models ls"
        else:
            hint = "No model is registered yet; register one with Registry.register()"
        super().__init__(f"No model named {name!r}", hint=hint)


class ModelVersionNotFoundError(RegistryError):
    """The model exists but has no such version."""

    def __init__(self, name: str, version: int | None, latest: int | None = None) -> None:
        self.name = name
        self.version = version
        self.latest = latest
        has = f"its versions are 1..{latest}" if latest else "it has no versions"
        which = "ready version" if version is None else f"version {version}"
        super().__init__(
            f"Model {name!r} has no {which} ({has})",
            hint=f"See its versions with: loopline models show {name}",
        )


class AliasNotFoundError(RegistryError):
    """The model exists but no version holds that alias."""

    def __init__(
        self,
        name: str,
        alias: str,
        version_hint: int | None = None,
        known: list[str] | None = None,
    ) -> None:
        from loopline.config import closest

        self.name = name
        self.alias = alias
        self.known = sorted(known or [])
        self.suggestion = closest(alias, self.known)
        version = version_hint if version_hint is not None else "VERSION"
        hint = f"set one with: loopline models alias {name} {version} {alias}"
        if self.suggestion is not None:
            hint = f"did you mean {name}@{self.suggestion}?"
        elif self.known:
            hint = f"its aliases are {', '.join(self.known)}; {hint}"
        super().__init__(f"Model {name!r} has no alias {alias!r}", hint=hint)

    def __str__(self) -> str:
        return f"{self.message}; {self.hint}"


class ModelPackageError(RegistryError):
    """The object cannot be packaged: an unsupported type, not fitted, no usable sample."""


class ModelInputError(RegistryError):
    """Input rows do not fit the model's signature (missing columns, not a table)."""

    def __init__(self, message: str, *, missing: list[str] | None = None, hint: str | None = None):
        self.missing = list(missing or [])
        super().__init__(message, hint=hint)


class PackageIntegrityError(RegistryError, IntegrityError):
    """A file of a model package (or its manifest) does not match the recorded sha256."""

    def __init__(self, ref: str, file: str, expected: str, actual: str) -> None:
        self.ref = ref
        self.file = file
        self.key = file
        self.expected = expected
        self.actual = actual
        self.store = ""
        LooplineError.__init__(
            self,
            f"Model package {ref} refused: file {file!r} does not match the registry "
            f"(expected sha256 {expected}, found {actual})",
            hint="The package was modified or corrupted; restore the artifact store from a "
            "backup, or register the model again",
        )


class MalformedPackageError(RegistryError, IntegrityError):
    """A file of a model package is not in the format its flavor reads: nothing was built."""

    def __init__(self, ref: str, file: str, reason: str) -> None:
        self.ref = ref
        self.file = file
        self.key = file
        self.reason = reason
        self.expected = ""
        self.actual = ""
        self.store = ""
        LooplineError.__init__(
            self,
            f"Model package {ref} refused: file {file!r} is not a valid package file ({reason})",
            hint="The package was replaced or corrupted; restore the artifact store from a "
            "backup, or register the model again",
        )


class FlavorUnavailableError(RegistryError):
    """The package needs a library that is not installed."""

    def __init__(self, flavor: str, package: str, *, ref: str | None = None) -> None:
        self.flavor = flavor
        self.package = package
        self.ref = ref
        what = f"Model {ref}" if ref else "This model"
        super().__init__(
            f"{what} has flavor {flavor!r}, which needs the {package!r} package; "
            "it is not installed",
            hint=f"Install it with: pip install {package}",
        )


class UnsafeModelError(RegistryError):
    """A skops file holds types outside skops' defaults and loopline's exact allow-list."""

    def __init__(self, types: list[str], *, ref: str | None = None, file: str | None = None):
        self.types = sorted(types)
        self.ref = ref
        self.file = file
        where = f" {file!r} of {ref}" if ref and file else (f" of {ref}" if ref else "")
        super().__init__(
            f"Refusing the skops file{where}: it holds untrusted types {', '.join(self.types)}",
            hint="Only the scikit-learn, numpy and scipy types that estimators need are "
            "loaded (loopline.registry.trust lists them); use a supported estimator",
        )


class ConflictError(RegistryError):
    """A compare-and-set move found another holder than the one expected: another process
    (a person, another controller) moved the alias or the traffic split first."""

    def __init__(self, subject: str, expected: object, actual: object) -> None:
        self.subject = subject
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"{subject} changed meanwhile: expected {_shown(expected)}, found {_shown(actual)}; "
            "nothing was changed",
            hint="Read the current state again and decide anew",
        )


def _shown(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, int):
        return f"version {value}"
    return str(value)


class PromotionRefusedError(RegistryError):
    """A promotion check returned a failing verdict and the promotion was not forced."""

    def __init__(self, name: str, version: int, alias: str, verdict: object) -> None:
        self.name = name
        self.version = version
        self.alias = alias
        self.verdict = verdict
        reasons = getattr(verdict, "reasons", None)
        detail = f": {'; '.join(str(r) for r in reasons)}" if reasons else ""
        super().__init__(
            f"Promotion of {name}/{version} to {alias!r} refused by its check{detail}",
            hint=f"Fix the model, or override with: loopline models promote {name} {version} "
            f"--alias {alias} --force --reason TEXT",
        )


class InvalidRefError(RegistryError, ConfigError):
    """A model reference, name or alias that is not well formed (``text`` as given); bad
    usage, so also a ConfigError (the CLI exits 2)."""

    def __init__(self, message: str, *, text: object, hint: str | None = None) -> None:
        self.text = text
        super().__init__(message, hint=hint)


class RegistryArgumentError(RegistryError, ConfigError):
    """A registry operation's option is wrong: ``argument`` names it, ``value`` is what
    was given (a traffic share, a mode, a forced promotion without a reason ...); also a
    ConfigError (the CLI exits 2)."""

    def __init__(
        self, message: str, *, argument: str, value: object = None, hint: str | None = None
    ) -> None:
        self.argument = argument
        self.value = value
        super().__init__(message, hint=hint)
