"""Settings: where a project's data lives, read once at the edge and passed down.

Precedence, highest first: ``LOOPLINE_*`` environment variables, ``loopline.toml`` (found
by walking up from the working directory, like git finds ``.git``), built-in defaults.
Nothing here runs at import time; callers ask for settings with :func:`load_settings`.

A project's ``loopline.toml``::

    store = ".loopline"                                # folder of the embedded defaults
    # metadata_url = "postgresql+psycopg://user:pw@db/loopline"
    # artifacts_url = "s3://bucket/prefix"

    [s3]
    # endpoint_url = "http://127.0.0.1:9000"          # MinIO, moto, any S3-compatible server
    # region = "eu-west-1"
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from loopline.errors import ConfigError, ProjectError

CONFIG_FILE = "loopline.toml"
ENV_PREFIX = "LOOPLINE_"

_TOP_LEVEL_KEYS = {"store", "metadata_url", "artifacts_url", "db_busy_timeout"}
_S3_KEYS = {"endpoint_url", "region", "access_key_id", "secret_access_key", "session_token"}
_SECTIONS = {"s3": _S3_KEYS}


@dataclass(frozen=True)
class S3Settings:
    """How to reach an S3-compatible object store. ``None`` means: boto's default chain."""

    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Settings:
    """Resolved settings of one project. Paths are absolute; URLs are complete."""

    project_dir: Path
    store_dir: Path
    metadata_url: str
    artifacts_url: str
    s3: S3Settings = S3Settings()
    db_busy_timeout: float = 30.0
    config_file: Path | None = None
    #: Which source decided each setting ("default", "loopline.toml", "LOOPLINE_...").
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def uses_defaults(self) -> bool:
        """True when both stores are the embedded ones (SQLite + local folder)."""
        return self.metadata_url.startswith("sqlite") and "://" not in self.artifacts_url

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)


def find_project_dir(start: Path | None = None) -> Path | None:
    """The nearest folder at or above ``start`` holding a ``loopline.toml``, or None."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    return None


def load_settings(
    start: Path | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    require_project: bool = True,
) -> Settings:
    """Resolve the settings of the project around ``start`` (default: the working directory).

    With ``require_project=False`` a folder without ``loopline.toml`` gets the defaults
    rooted at ``start``; otherwise it is an error that says how to create a project.
    """
    env = os.environ if environ is None else environ
    explicit = env.get(ENV_PREFIX + "PROJECT_DIR")
    begin = Path(explicit).expanduser() if explicit else (start or Path.cwd())
    project_dir = find_project_dir(begin)
    if project_dir is None:
        if require_project:
            raise ProjectError(
                f"No {CONFIG_FILE} in {begin.resolve()} or any folder above it",
                hint="Create a project with: loopline init",
            )
        project_dir = begin.resolve()
        file_values: dict[str, Any] = {}
        config_file = None
    else:
        config_file = project_dir / CONFIG_FILE
        file_values = _read_toml(config_file)
    return _resolve(project_dir, config_file, file_values, env)


def settings_for(project_dir: Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings of the project in exactly ``project_dir`` (no walking up)."""
    env = os.environ if environ is None else environ
    project_dir = project_dir.resolve()
    config_file: Path | None = project_dir / CONFIG_FILE
    if config_file is not None and config_file.is_file():
        values = _read_toml(config_file)
    else:
        config_file, values = None, {}
    return _resolve(project_dir, config_file, values, env)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"not valid TOML ({exc})", source=str(path), hint="Fix the syntax; see docs/config.md"
        ) from exc
    except OSError as exc:
        raise ConfigError(f"cannot be read ({exc.strerror})", source=str(path)) from exc
    for key, value in data.items():
        if key in _SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(
                    f"[{key}] must be a table, not {type(value).__name__}", source=str(path)
                )
            unknown = set(value) - _SECTIONS[key]
            if unknown:
                raise ConfigError(
                    f"unknown key {sorted(unknown)[0]!r} in [{key}]; "
                    f"expected one of {', '.join(sorted(_SECTIONS[key]))}",
                    source=str(path),
                )
        elif isinstance(value, dict):
            # Sections owned by later layers are validated by those layers.
            continue
        elif key not in _TOP_LEVEL_KEYS:
            raise ConfigError(
                f"unknown setting {key!r}; expected one of {', '.join(sorted(_TOP_LEVEL_KEYS))}",
                source=str(path),
            )
    return data


def _resolve(
    project_dir: Path,
    config_file: Path | None,
    file_values: Mapping[str, Any],
    env: Mapping[str, str],
) -> Settings:
    sources: dict[str, str] = {}
    file_label = str(config_file) if config_file else "loopline.toml"

    def pick(name: str, default: Any) -> Any:
        env_name = ENV_PREFIX + name.upper()
        if env.get(env_name):
            sources[name] = env_name
            return env[env_name]
        if name in file_values:
            value = file_values[name]
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                raise ConfigError(
                    f"{name} must be a string or number, not {value!r}", source=file_label
                )
            sources[name] = file_label
            return value
        sources[name] = "default"
        return default

    store = str(pick("store", ".loopline"))
    store_dir = (project_dir / Path(store).expanduser()).resolve()
    metadata_url = str(pick("metadata_url", f"sqlite:///{store_dir / 'loopline.db'}"))
    artifacts_url = str(pick("artifacts_url", str(store_dir / "artifacts")))
    timeout_raw = pick("db_busy_timeout", 30.0)
    try:
        busy_timeout = float(timeout_raw)
    except (TypeError, ValueError):
        raise ConfigError(
            f"db_busy_timeout must be a number of seconds, not {timeout_raw!r}",
            source=sources["db_busy_timeout"],
        ) from None
    if busy_timeout <= 0:
        raise ConfigError(
            f"db_busy_timeout must be > 0 seconds, not {busy_timeout}",
            source=sources["db_busy_timeout"],
        )

    s3_file = file_values.get("s3", {})

    def pick_s3(name: str, *aws_names: str) -> str | None:
        env_name = f"{ENV_PREFIX}S3_{name.upper()}"
        if env.get(env_name):
            sources[f"s3.{name}"] = env_name
            return env[env_name]
        for aws in aws_names:
            if env.get(aws):
                sources[f"s3.{name}"] = aws
                return env[aws]
        if name in s3_file:
            sources[f"s3.{name}"] = file_label
            return str(s3_file[name])
        return None

    s3 = S3Settings(
        endpoint_url=pick_s3("endpoint_url", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
        region=pick_s3("region", "AWS_REGION", "AWS_DEFAULT_REGION"),
        access_key_id=pick_s3("access_key_id", "AWS_ACCESS_KEY_ID"),
        secret_access_key=pick_s3("secret_access_key", "AWS_SECRET_ACCESS_KEY"),
        session_token=pick_s3("session_token", "AWS_SESSION_TOKEN"),
    )
    return Settings(
        project_dir=project_dir,
        store_dir=store_dir,
        metadata_url=_normalise_metadata_url(metadata_url, project_dir, sources["metadata_url"]),
        artifacts_url=_normalise_artifacts_url(artifacts_url, project_dir),
        s3=s3,
        db_busy_timeout=busy_timeout,
        config_file=config_file,
        sources=sources,
    )


def _normalise_metadata_url(url: str, project_dir: Path, source: str) -> str:
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme.startswith("sqlite"):
        path = url.split("://", 1)[1]
        # sqlite:///relative.db and sqlite:////abs.db; relative paths are the project's.
        if path.startswith("/") and not path.startswith("//"):
            rel = path[1:]
            if rel and rel != ":memory:" and not Path(rel).is_absolute():
                return f"{scheme}:///{(project_dir / rel).resolve()}"
        return url
    if scheme.startswith("postgresql"):
        if scheme == "postgresql" or scheme == "postgres":
            # psycopg 3 is the driver loopline installs; make the plain scheme work.
            return "postgresql+psycopg://" + url.split("://", 1)[1]
        return url
    raise ConfigError(
        f"metadata_url {redact_url(url)!r} is not a database URL loopline supports; "
        "expected sqlite:///path/to/file.db or postgresql+psycopg://user:password@host/db",
        source=source,
    )


def _normalise_artifacts_url(url: str, project_dir: Path) -> str:
    if url.startswith("file://"):
        url = url[len("file://") :]
    if "://" in url:
        return url.rstrip("/")
    return str((project_dir / Path(url).expanduser()).resolve())


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***``, for display."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[-1]}"))


def default_toml(metadata_url: str | None = None, artifacts_url: str | None = None) -> str:
    """The text of a new project's ``loopline.toml``."""
    lines = [
        "# loopline project settings. LOOPLINE_* environment variables override these.",
        "# See docs/config.md for every setting.",
        "",
        'store = ".loopline"          # folder of the embedded stores (SQLite + local files)',
    ]
    if metadata_url:
        lines.append(f'metadata_url = "{metadata_url}"')
    else:
        lines.append('# metadata_url = "postgresql+psycopg://user:password@host:5432/loopline"')
    if artifacts_url:
        lines.append(f'artifacts_url = "{artifacts_url}"')
    else:
        lines.append('# artifacts_url = "s3://bucket/prefix"')
    lines += [
        "",
        "[s3]",
        '# endpoint_url = "http://127.0.0.1:9000"   # any S3-compatible server',
        '# region = "us-east-1"',
        "# Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or the keys",
        "# access_key_id / secret_access_key here, which env variables override).",
        "",
    ]
    return "\n".join(lines)


def read_section(settings: Settings, name: str) -> dict[str, Any]:
    """The ``[name]`` table of the project's ``loopline.toml`` (empty when absent).

    Layers own their sections (``[serve]``, ``[gates]`` ...) and validate them themselves;
    ``_read_toml`` already refused any top-level value that is neither a known setting
    nor a table.
    """
    if settings.config_file is None or not settings.config_file.is_file():
        return {}
    value = _read_toml(settings.config_file).get(name, {})
    return value if isinstance(value, dict) else {}
