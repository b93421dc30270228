from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest

from loopline.config import default_toml, find_project_dir, load_settings, redact_url
from loopline.errors import ConfigError, ProjectError


def make_project(path: Path, text: str = "") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "loopline.toml").write_text(text)
    return path


def test_defaults_live_in_the_project_store_folder(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    s = load_settings(project, environ={})
    assert s.project_dir == project.resolve()
    assert s.metadata_url == f"sqlite:///{project.resolve() / '.loopline' / 'loopline.db'}"
    assert s.artifacts_url == str(project.resolve() / ".loopline" / "artifacts")
    assert s.sources["metadata_url"] == "default"
    assert s.uses_defaults


def test_project_is_found_by_walking_up(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    deep = project / "a" / "b"
    deep.mkdir(parents=True)
    assert find_project_dir(deep) == project.resolve()
    assert load_settings(deep, environ={}).project_dir == project.resolve()


def test_no_project_is_an_error_that_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(ProjectError) as info:
        load_settings(tmp_path, environ={})
    assert str(tmp_path) in str(info.value)
    assert "loopline init" in str(info.value)


def test_without_requiring_a_project_defaults_are_rooted_at_start(tmp_path: Path) -> None:
    s = load_settings(tmp_path, environ={}, require_project=False)
    assert s.config_file is None
    assert s.store_dir == tmp_path.resolve() / ".loopline"


def test_env_beats_toml_beats_defaults(tmp_path: Path) -> None:
    project = make_project(
        tmp_path / "p",
        'store = "state"\nmetadata_url = "sqlite:///from-toml.db"\n'
        'artifacts_url = "s3://toml-bucket/x"\n',
    )
    s = load_settings(project, environ={"LOOPLINE_ARTIFACTS_URL": "s3://env-bucket/y/"})
    assert s.store_dir == project.resolve() / "state"
    assert s.metadata_url == f"sqlite:///{project.resolve() / 'from-toml.db'}"
    assert s.sources["metadata_url"].endswith("loopline.toml")
    assert s.artifacts_url == "s3://env-bucket/y"
    assert s.sources["artifacts_url"] == "LOOPLINE_ARTIFACTS_URL"
    assert not s.uses_defaults


def test_s3_settings_from_toml_env_and_aws_variables(tmp_path: Path) -> None:
    project = make_project(
        tmp_path / "p", '[s3]\nendpoint_url = "http://toml:9000"\nregion = "eu-west-1"\n'
    )
    s = load_settings(project, environ={"AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK"})
    assert s.s3.endpoint_url == "http://toml:9000"
    assert s.s3.region == "eu-west-1"
    assert (s.s3.access_key_id, s.s3.secret_access_key) == ("AK", "SK")
    assert "SK" not in repr(s.s3)
    s2 = load_settings(project, environ={"LOOPLINE_S3_ENDPOINT_URL": "http://env:1"})
    assert s2.s3.endpoint_url == "http://env:1"


def test_postgres_scheme_gets_the_installed_driver(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", 'metadata_url = "postgresql://u:pw@h/db"\n')
    s = load_settings(project, environ={})
    assert s.metadata_url == "postgresql+psycopg://u:pw@h/db"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("metdata_url = 'x'\n", "unknown setting 'metdata_url'"),
        ("store = [1]\n", "store must be a string"),
        ("[s3]\nendpoint = 'x'\n", "unknown key 'endpoint' in [s3]"),
        ("s3 = 'x'\n", "[s3] must be a table"),
        ("store = \n", "not valid TOML"),
        ("metadata_url = 'mysql://x/y'\n", "not a database URL loopline supports"),
        ("db_busy_timeout = 'soon'\n", "db_busy_timeout must be a number"),
        ("db_busy_timeout = -1\n", "db_busy_timeout must be > 0"),
    ],
)
def test_bad_config_names_the_file_and_the_problem(
    tmp_path: Path, text: str, expected: str
) -> None:
    project = make_project(tmp_path / "p", text)
    with pytest.raises(ConfigError) as info:
        load_settings(project, environ={})
    assert expected in str(info.value)


def test_later_layers_sections_are_left_to_them(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", "[serve]\nport = 8000\n")
    assert load_settings(project, environ={}).config_file is not None


def test_project_dir_variable_overrides_the_working_directory(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    elsewhere = tmp_path / "q"
    elsewhere.mkdir()
    s = load_settings(elsewhere, environ={"LOOPLINE_PROJECT_DIR": str(project)})
    assert s.project_dir == project.resolve()


def test_redact_url_hides_only_the_password() -> None:
    assert redact_url("postgresql+psycopg://u:secret@h:5/db") == "postgresql+psycopg://u:***@h:5/db"
    assert redact_url("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"


def test_default_toml_is_valid_and_round_trips(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", default_toml("sqlite:///m.db", "s3://b/p"))
    s = load_settings(project, environ={})
    assert s.metadata_url.endswith("/p/m.db")
    assert s.artifacts_url == "s3://b/p"


def test_sections_are_read_for_their_layers(tmp_path: Path) -> None:
    from loopline.config import read_section

    project = make_project(tmp_path / "p", "[serve]\nport = 9000\n[gates.m]\ncriteria = []\n")
    s = load_settings(project, environ={})
    assert read_section(s, "serve") == {"port": 9000}
    assert read_section(s, "gates") == {"m": {"criteria": []}}
    assert read_section(s, "monitor") == {}
    # The file was read once: the settings carry its tables.
    (project / "loopline.toml").write_text("[serve]\nport = 1\n")
    assert read_section(s, "serve") == {"port": 9000}
    (project / "loopline.toml").write_text("serve = 1\n")
    with pytest.raises(ConfigError, match="unknown setting 'serve'"):
        load_settings(project, environ={})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[gatez.m]\ncriteria = []\n", "unknown section [gatez] (did you mean 'gates'?)"),
        ("[sever]\nport = 1\n", "unknown section [sever] (did you mean 'serve'?)"),
        ("[nothing_like_it]\nx = 1\n", "unknown section [nothing_like_it]; loopline reads"),
        ("metdata_url = 'x'\n", "(did you mean 'metadata_url'?)"),
    ],
)
def test_unknown_sections_and_settings_say_what_was_meant(
    tmp_path: Path, text: str, message: str
) -> None:
    project = make_project(tmp_path / "p", text)
    with pytest.raises(ConfigError) as err:
        load_settings(project, environ={})
    assert message in str(err.value)


@dataclass(frozen=True)
class _Section:
    ratio: float = field(default=0.5, metadata={"min": 0, "max": 1})
    count: int = 3
    on: bool = False
    mode: Literal["fast", "slow"] = "fast"
    label: str | None = None
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Named:
    name: str
    every: float = 60.0

    def __post_init__(self) -> None:
        if self.every > 3600:
            raise ValueError(f"every must be at most an hour, not {self.every:g} s")


def test_typed_sections_check_every_value(tmp_path: Path) -> None:
    from loopline.config import load_named_sections, load_section

    project = make_project(
        tmp_path / "p",
        "[serve]\nport = 1\n[gates.a]\ncriteria = []\n",
    )
    s = load_settings(project, environ={})
    s = s.with_overrides(
        tables={
            "sec": {"ratio": 0.25, "mode": "slow", "names": ["a", "b"]},
            "named": {"x": {"every": 5}, "y": {}},
        }
    )
    got = load_section(
        s, "sec", _Section, environ={"LOOPLINE_SEC_COUNT": "7", "LOOPLINE_SEC_ON": "yes"}
    )
    assert got == _Section(ratio=0.25, count=7, on=True, mode="slow", names=("a", "b"))
    named = load_named_sections(s, "named", _Named)
    assert named == {"x": _Named("x", 5.0), "y": _Named("y")}

    def bad(table: dict[str, Any], env: dict[str, str] | None = None) -> str:
        with pytest.raises(ConfigError) as err:
            load_section(
                s.with_overrides(tables={"sec": table}), "sec", _Section, environ=env or {}
            )
        return str(err.value)

    assert "ratio must be <= 1" in bad({"ratio": 1.5})
    assert "count must be an integer" in bad({"count": "many"})
    assert "count must be an integer" in bad({"count": 2.5})
    assert "on must be true or false" in bad({}, {"LOOPLINE_SEC_ON": "maybe"})
    assert "mode must be one of 'fast', 'slow'" in bad({"mode": "Fast"})
    assert "(did you mean 'ratio'?)" in bad({"raito": 0.1})
    assert "ratio must be a finite number" in bad({"ratio": float("nan")})
    with pytest.raises(ConfigError, match="every must be at most an hour"):
        load_named_sections(
            s.with_overrides(tables={"named": {"z": {"every": 7200}}}), "named", _Named
        )
