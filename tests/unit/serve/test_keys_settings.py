"""API keys (SQLite and PostgreSQL), the [serve] settings, and the bind safety rule."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from loopline.config import default_toml, settings_for
from loopline.errors import ConfigError
from loopline.serve.errors import ApiKeyError, UnsafeBindError
from loopline.serve.keys import KeyStore, hash_key, role_allows
from loopline.serve.server import check_bind
from loopline.serve.settings import ServeSettings, is_loopback, load_serve_settings
from loopline.store.db import migrate
from loopline.store.db.engine import Database


@pytest.fixture
def db(metadata_url: str) -> Iterator[Database]:
    with Database(metadata_url, create=True) as database:
        migrate.upgrade(database)
        yield database


def test_keys_create_verify_revoke_and_are_stored_hashed(db: Database) -> None:
    store = KeyStore(db)
    new = store.create("predict", name="ci")
    assert new.secret.startswith(f"ll_{new.key.key_id}_")
    assert store.verify(new.secret) == new.key
    assert store.verify(new.secret[:-1] + ("A" if new.secret[-1] != "A" else "B")) is None
    assert store.verify("not a key") is None
    with db.read() as conn:
        row = conn.execute(sa.text("SELECT * FROM ll_api_keys")).one()
    assert new.secret not in " ".join(str(v) for v in row)
    assert row.key_sha256 == hash_key(new.secret)
    assert [k.key_id for k in store.list()] == [new.key.key_id]
    revoked = store.revoke(new.key.key_id)
    assert not revoked.active
    assert store.verify(new.secret) is None
    assert store.list() == []
    assert len(store.list(include_revoked=True)) == 1
    with pytest.raises(ApiKeyError):
        store.revoke("000000000000")
    with pytest.raises(ApiKeyError):
        store.create("root")


def test_roles_are_ordered() -> None:
    assert role_allows("admin", "predict")
    assert role_allows("predict", "read")
    assert not role_allows("read", "predict")
    assert not role_allows("predict", "admin")


def test_serve_settings_from_toml_env_and_overrides(tmp_path: Path) -> None:
    (tmp_path / "loopline.toml").write_text(
        default_toml() + "\n[serve]\nport = 9000\nworkers = 2\nauth = true\nmax_wait_ms = 1.5\n"
    )
    settings = settings_for(tmp_path, environ={})
    s = load_serve_settings(settings, environ={"LOOPLINE_SERVE_PORT": "9100"})
    assert (s.port, s.workers, s.auth, s.max_wait_ms) == (9100, 2, True, 1.5)
    assert load_serve_settings(settings, environ={}, port=9200).port == 9200
    with pytest.raises(ConfigError, match="workers"):
        load_serve_settings(settings, environ={"LOOPLINE_SERVE_WORKERS": "0"})
    with pytest.raises(ConfigError, match="true or false"):
        load_serve_settings(settings, environ={"LOOPLINE_SERVE_AUTH": "maybe"})
    (tmp_path / "loopline.toml").write_text(default_toml() + "\n[serve]\nprot = 1\n")
    with pytest.raises(ConfigError, match="unknown key 'prot'"):
        load_serve_settings(settings_for(tmp_path, environ={}), environ={})


def test_binding_beyond_loopback_needs_auth_or_insecure() -> None:
    assert is_loopback("127.0.0.1")
    assert is_loopback("::1")
    assert is_loopback("localhost")
    assert not is_loopback("0.0.0.0")
    check_bind(ServeSettings(host="127.0.0.1"), insecure=False)
    with pytest.raises(UnsafeBindError, match="auth"):
        check_bind(ServeSettings(host="0.0.0.0"), insecure=False)
    check_bind(ServeSettings(host="0.0.0.0", auth=True), insecure=False)
    check_bind(ServeSettings(host="0.0.0.0"), insecure=True)


def test_importing_serve_is_cheap() -> None:
    import subprocess
    import sys

    code = (
        "import sys, loopline.serve; "
        "heavy = [m for m in ('starlette', 'uvicorn', 'numpy', 'pandas', 'sklearn', 'optuna', "
        "'loopline.train', 'sqlalchemy') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
