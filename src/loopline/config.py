"""Settings: where a project's data lives, read once at the edge and passed down.

Precedence, highest first: ``LOOPLINE_*`` environment variables, ``loopline.toml`` (found
by walking up from the working directory, like git finds ``.git``), built-in defaults.
Nothing here runs at import time; callers ask for settings with :func:`load_settings`.

The file is read once: :class:`Settings` carries its tables, and each layer turns its own
section into a frozen dataclass with :func:`load_section` (``[serve]``) or
:func:`load_named_sections` (``[gates.MODEL]``): every value type-checked against the
dataclass's annotations, ``LOOPLINE_<SECTION>_<KEY>`` overrides for plain sections, and
an unknown key an error naming it, the valid keys and the closest one. A top-level table
that no layer owns (``[gatez.x]``) is an error with a "did you mean".

A project's ``loopline.toml``::

    store = ".loopline"                                # folder of the embedded defaults
    # metadata_url = "postgresql+psycopg://user:pw@db/loopline"
    # artifacts_url = "s3://bucket/prefix"

    [s3]
    # endpoint_url = "http://127.0.0.1:9000"          # MinIO, moto, any S3-compatible server
    # region = "eu-west-1"
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from loopline.errors import ConfigError, ProjectError

T = TypeVar("T")

CONFIG_FILE = "loopline.toml"
ENV_PREFIX = "LOOPLINE_"

_TOP_LEVEL_KEYS = {"store", "metadata_url", "artifacts_url", "db_busy_timeout"}
_S3_KEYS = {"endpoint_url", "region", "access_key_id", "secret_access_key", "session_token"}
_SECTIONS = {"s3": _S3_KEYS}
#: The tables of loopline.toml and the layer that reads each. A table of another name is
#: refused, so a misspelt section never silently does nothing.
SECTIONS: dict[str, str] = {
    "s3": "the S3 object store (config)",
    "serve": "the model server (loopline.serve.settings)",
    "gates": "model gates, one table per model (loopline.loop.gates)",
    "monitor": "monitoring, one table per model (loopline.monitor.settings)",
    "alarms": "alarms over the monitor's series, one table per alarm (loopline.alarm.settings)",
    "actions": "what alarms and rollouts run: webhooks, retraining ... (loopline.alarm.settings)",
    "events": "the webhooks the project's events are delivered to (loopline.alarm.settings)",
    "loop": "the controller's retraining and rollout, one table per model (loopline.loop)",
    "controller": "the loop controller daemon: tick, lease, HTTP port (loopline.loop.settings)",
    "executor": "where steps, trials and batch chunks run: local or ray (loopline.execute)",
}


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
    #: The tables of loopline.toml (``{"serve": {...}, "gates": {"m": {...}}}``), as read.
    tables: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    #: The environment the settings were resolved from (for section overrides).
    environ: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

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


def settings_for(
    project_dir: Path, environ: Mapping[str, str] | None = None, *, read_file: bool = True
) -> Settings:
    """Settings of the project in exactly ``project_dir`` (no walking up).

    ``read_file=False`` gives the defaults of that folder without reading its file.
    """
    env = os.environ if environ is None else environ
    project_dir = project_dir.resolve()
    config_file: Path | None = project_dir / CONFIG_FILE
    if read_file and config_file is not None and config_file.is_file():
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
        if isinstance(value, dict) and key not in SECTIONS:
            raise ConfigError(
                f"unknown section [{key}]{did_you_mean(key, SECTIONS)}; loopline reads "
                f"{', '.join(f'[{name}]' for name in sorted(SECTIONS))}",
                source=str(path),
                hint="Rename or remove it; docs/config.md lists every section",
            )
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
                f"unknown setting {key!r}{did_you_mean(key, _TOP_LEVEL_KEYS)}; expected one "
                f"of {', '.join(sorted(_TOP_LEVEL_KEYS))}",
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
        tables={k: v for k, v in file_values.items() if isinstance(v, dict)},
        environ=dict(env),
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
    """The ``[name]`` table of the project's ``loopline.toml`` (empty when absent), from
    the tables the settings were read with (the file is not read again)."""
    value = settings.tables.get(name, {})
    return dict(value) if isinstance(value, dict) else {}


def did_you_mean(word: str, options: Any) -> str:
    """`` (did you mean 'x'?)`` for the option closest to ``word``, or an empty string.

    An option that ``word`` abbreviates (``prod`` for ``production``) comes first, then
    the closest spelling."""
    close = closest(word, options)
    return f" (did you mean {close!r}?)" if close else ""


def closest(word: str, options: Any) -> str | None:
    """The option ``word`` most likely meant (see :func:`did_you_mean`), or None."""
    import difflib

    text = str(word)
    names = [str(o) for o in options]
    if len(text) >= 2:
        longer = sorted((n for n in names if n.startswith(text) and n != text), key=len)
        if longer:
            return longer[0]
    found = difflib.get_close_matches(text, names, n=1, cutoff=0.6)
    return found[0] if found else None


# -- typed sections ------------------------------------------------------------------------

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _label(settings: Settings | None, section: str) -> str:
    if settings is not None and settings.config_file is not None:
        return f"{settings.config_file} [{section}]"
    return f"[{section}]"


def load_section(
    settings: Settings | None,
    section: str,
    cls: type[T],
    *,
    environ: Mapping[str, str] | None = None,
    env_prefix: str | None = None,
) -> T:
    """The ``[section]`` table as a ``cls`` (a frozen dataclass), with env overrides.

    ``LOOPLINE_<SECTION>_<FIELD>`` (or ``env_prefix + FIELD``) overrides the file. Values
    are checked against the field annotations (bool, int, float, str, optional values,
    ``Literal[...]`` choices, tuples of str); ``field(metadata={"min": 0, "max": 1})``
    bounds numbers. ``cls.__post_init__`` may raise ValueError for what types cannot say:
    it becomes a ConfigError naming the section.
    """
    env = environ if environ is not None else (settings.environ if settings else os.environ)
    table = read_section(settings, section) if settings is not None else {}
    prefix = env_prefix or f"{ENV_PREFIX}{section.upper()}_"
    sources = {key: _label(settings, section) for key in table}
    values = dict(table)
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        env_name = prefix + f.name.upper()
        if env.get(env_name):
            values[f.name] = env[env_name]
            sources[f.name] = env_name
    return build_section(cls, values, section, sources, default_source=_label(settings, section))


def load_named_sections(
    settings: Settings, section: str, cls: type[T], *, name_field: str = "name"
) -> dict[str, T]:
    """Every ``[section.NAME]`` table as ``{NAME: cls(name=NAME, ...)}``.

    ``cls`` has a field ``name_field`` that receives the table's name.
    """
    out: dict[str, T] = {}
    label = str(settings.config_file) if settings.config_file else "loopline.toml"
    for name, table in read_section(settings, section).items():
        where = f"{section}.{name}"
        if not isinstance(table, dict):
            raise ConfigError(
                f"[{where}] must be a table of settings, not {type(table).__name__}",
                source=label,
                hint=f"Write it as a [{section}.NAME] table",
            )
        sources = dict.fromkeys(table, f"{label} [{where}]")
        if name_field in table:
            raise ConfigError(
                f"[{where}] has a key {name_field!r}; the table's own name ({name!r}) is its "
                f"{name_field}",
                source=f"{label} [{where}]",
            )
        out[name] = build_section(
            cls,
            {name_field: name, **table},
            where,
            sources,
            default_source=f"{label} [{where}]",
            hidden=(name_field,),
        )
    return out


def build_section(
    cls: type[T],
    values: Mapping[str, Any],
    section: str,
    sources: Mapping[str, str],
    *,
    default_source: str,
    hidden: tuple[str, ...] = (),
) -> T:
    """``cls(**values)`` with every value checked and coerced; a ConfigError otherwise."""
    import typing

    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(known))
    if unknown:
        key = unknown[0]
        raise ConfigError(
            f"unknown key {key!r} in [{section}]"
            f"{did_you_mean(key, [k for k in known if k not in hidden])}; expected one of "
            f"{', '.join(sorted(k for k in known if k not in hidden))}",
            source=sources.get(key, default_source),
        )
    parsed: dict[str, Any] = {}
    for key, value in values.items():
        f = known[key]
        source = sources.get(key, default_source)
        parsed[key] = _coerce(key, value, hints[key], section, source)
        bounds = f.metadata
        number = parsed[key]
        if isinstance(number, int | float) and not isinstance(number, bool):
            low, high = bounds.get("min"), bounds.get("max")
            if low is not None and number < low:
                raise ConfigError(
                    f"[{section}] {key} must be >= {low:g}, not {number:g}", source=source
                )
            if high is not None and number > high:
                raise ConfigError(
                    f"[{section}] {key} must be <= {high:g}, not {number:g}", source=source
                )
    try:
        return cls(**parsed)
    except ValueError as exc:
        raise ConfigError(f"[{section}] {exc}", source=default_source) from None
    except TypeError as exc:  # a required field without a value
        raise ConfigError(f"[{section}] {exc}", source=default_source) from None


def _coerce(key: str, value: Any, kind: Any, section: str, source: str) -> Any:
    import types
    import typing

    where = f"[{section}] {key}"
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        empty = value is None or (isinstance(value, str) and value.strip().lower() in ("", "none"))
        if empty and type(None) in args:
            return None
        errors: list[ConfigError] = []
        for option in options:
            try:
                return _coerce(key, value, option, section, source)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0]
    if origin is typing.Literal:
        if value in args:
            return value
        text = str(value).strip() if isinstance(value, str) else value
        if text in args:
            return text
        raise ConfigError(
            f"{where} must be one of {', '.join(repr(a) for a in args)}, not {value!r}"
            f"{did_you_mean(str(value), args) if isinstance(value, str) else ''}",
            source=source,
        )
    if origin is tuple or kind is tuple:
        item = args[0] if args else str
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where} must be a list, not {value!r}", source=source)
        return tuple(_coerce(key, v, item, section, source) for v in value)
    if origin is dict or kind is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a table, not {value!r}", source=source)
        return dict(value)
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ConfigError(f"{where} must be true or false, not {value!r}", source=source)
    if kind is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ConfigError(f"{where} must be an integer, not {value!r}", source=source)
        try:
            return (
                int(str(value).strip().replace("_", "")) if isinstance(value, str) else int(value)
            )
        except (TypeError, ValueError):
            raise ConfigError(f"{where} must be an integer, not {value!r}", source=source) from None
    if kind is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where} must be a number, not {value!r}", source=source)
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where} must be a number, not {value!r}", source=source) from None
        if number != number or number in (float("inf"), float("-inf")):
            raise ConfigError(f"{where} must be a finite number, not {value!r}", source=source)
        return number
    if kind is str:
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{where} must be a non-empty string, not {value!r}", source=source)
        return value.strip()
    if kind is Any:
        return value
    raise ConfigError(f"{where}: unsupported setting type {kind!r}", source=source)
