"""Register, resolve, aliases with history, promotion, rollback, traffic (SQLite, PostgreSQL)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from loopline.registry import ModelVersion, Registry
from loopline.registry.errors import (
    AliasNotFoundError,
    ModelNotFoundError,
    ModelVersionNotFoundError,
    PromotionRefusedError,
    RegistryError,
)
from loopline.store.db.events import list_events


@pytest.fixture(scope="module")
def tiny(request: pytest.FixtureRequest) -> tuple[Any, pd.DataFrame]:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    X = pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60)})
    y = (X["a"] > 0).astype(int)
    return LogisticRegression().fit(X, y), X


def register_n(reg: Registry, tiny: tuple[Any, pd.DataFrame], n: int, name: str = "churn") -> None:
    model, X = tiny
    for _ in range(n):
        reg.register(name, model, sample=X)


@dataclass
class Verdict:
    passed: bool
    reasons: list[str] = field(default_factory=list)


def test_register_numbers_versions_and_keeps_lineage(
    reg: Registry, tiny: tuple[Any, pd.DataFrame]
) -> None:
    model, X = tiny
    first = reg.register(
        "churn",
        model,
        sample=X,
        run_id="run-123",
        datasets=[
            {"name": "customers", "version": 4, "digest": "ab" * 32, "role": "train"},
            {"name": "holdout", "version": "2", "digest": "cd" * 32, "role": "test"},
        ],
        metrics={"f1": np.float64(0.81), "auc": 0.9, "broken": float("nan")},
        report_digest="ef" * 32,
        code_commit="0123abc",
        description="first try",
    )
    assert (first.name, first.version, first.flavor) == ("churn", 1, "sklearn")
    assert first.run_id == "run-123"
    assert [(d.name, d.version, d.role) for d in first.datasets] == [
        ("customers", 4, "train"),
        ("holdout", "2", "test"),
    ]
    assert first.metrics == {"f1": 0.81, "auc": 0.9, "broken": None}
    assert first.code_commit == "0123abc"
    assert first.report_digest == "ef" * 32
    assert first.signature.columns == ["a", "b"]
    assert first.created_at.tzinfo is not None
    assert "@" in first.created_by

    register_n(reg, tiny, 2)
    assert [v.version for v in reg.versions("churn")] == [1, 2, 3]
    assert reg.get("churn").version == 3
    assert reg.get("churn", 2).version == 2
    assert reg.resolve("churn").version == 3
    assert reg.resolve("churn/1") == reg.get("churn", 1)
    [summary] = reg.list_models()
    assert (summary.name, summary.latest_version, summary.aliases) == ("churn", 3, {})
    assert summary.description == "first try"
    with reg.stores.db.read() as conn:
        events = list_events(conn, kind="model.register")
    assert sorted(e.subject for e in events) == ["churn/1", "churn/2", "churn/3"]


def test_resolve_errors_name_the_next_command(
    reg: Registry, tiny: tuple[Any, pd.DataFrame]
) -> None:
    register_n(reg, tiny, 3)
    with pytest.raises(ModelNotFoundError) as nf:
        reg.resolve("churm@production")
    assert "churm" in str(nf.value)
    assert "churn" in str(nf.value)
    assert "loopline models ls" in str(nf.value)

    with pytest.raises(AliasNotFoundError) as an:
        reg.resolve("churn@production")
    assert str(an.value) == (
        "Model 'churn' has no alias 'production'; "
        "set one with: loopline models alias churn 3 production"
    )

    with pytest.raises(ModelVersionNotFoundError) as vn:
        reg.resolve("churn/9")
    assert "no version 9" in str(vn.value)
    assert "1..3" in str(vn.value)
    assert "loopline models show churn" in str(vn.value)

    for bad in ("", "churn/x", "churn/0", "bad name", "churn@1x"):
        with pytest.raises(RegistryError):
            reg.resolve(bad)


def test_aliases_history_and_version_at_a_time(
    reg: Registry, tiny: tuple[Any, pd.DataFrame]
) -> None:
    register_n(reg, tiny, 2)
    before = datetime.now(UTC)
    time.sleep(0.01)
    m1 = reg.set_alias("churn", "production", 1, reason="first", actor="alice")
    time.sleep(0.01)
    between = datetime.now(UTC)
    time.sleep(0.01)
    m2 = reg.set_alias("churn", "production", 2, actor="bob")
    reg.set_alias("churn", "staging", 2)

    assert (m1.from_version, m1.to_version, m1.action, m1.actor) == (None, 1, "set", "alice")
    assert (m2.from_version, m2.to_version) == (1, 2)
    assert reg.resolve("churn@production").version == 2
    assert reg.get("churn", 2).aliases == ("production", "staging")
    assert reg.aliases("churn") == {"production": 2, "staging": 2}

    assert reg.alias_at("churn", "production", before) is None
    assert reg.alias_at("churn", "production", between) == 1
    assert reg.alias_at("churn", "production", datetime.now(UTC)) == 2
    local_naive = (datetime.now(UTC) + timedelta(hours=1)).astimezone().replace(tzinfo=None)
    assert reg.alias_at("churn", "production", local_naive) == 2

    history = reg.alias_history("churn", "production")
    assert [(m.from_version, m.to_version, m.reason) for m in history] == [
        (None, 1, "first"),
        (1, 2, None),
    ]
    assert len(reg.alias_history("churn")) == 3

    # Setting the alias it holds already is not a move: the earlier move is returned.
    again = reg.set_alias("churn", "production", 2)
    assert again.id == m2.id
    assert len(reg.alias_history("churn", "production")) == 2

    with reg.stores.db.read() as conn:
        events = list_events(conn, kind="model.set", subject="churn@production")
    assert [(e.detail["from_version"], e.detail["to_version"]) for e in events] == [
        (1, 2),
        (None, 1),
    ]
    assert events[-1].actor == "alice"

    with pytest.raises(ModelVersionNotFoundError):
        reg.set_alias("churn", "production", 7)
    with pytest.raises(RegistryError):
        reg.set_alias("churn", "no spaces", 1)


def test_promotion_refused_by_a_failing_check_unless_forced_with_a_reason(
    reg: Registry, tiny: tuple[Any, pd.DataFrame]
) -> None:
    register_n(reg, tiny, 2)
    reg.promote("churn", 1, "production")  # no check: a direct move
    seen: list[tuple[int, int | None]] = []

    def failing(candidate: ModelVersion, champion: ModelVersion | None) -> Verdict:
        seen.append((candidate.version, champion.version if champion else None))
        return Verdict(False, ["f1 0.70 < champion.f1 - 0.005"])

    with pytest.raises(PromotionRefusedError) as refused:
        reg.promote("churn", 2, "production", check=failing)
    assert seen == [(2, 1)]
    assert refused.value.verdict.reasons == ["f1 0.70 < champion.f1 - 0.005"]
    assert "f1 0.70" in str(refused.value)
    assert "--force --reason" in str(refused.value)
    assert reg.resolve("churn@production").version == 1

    with pytest.raises(RegistryError, match="needs a reason"):
        reg.promote("churn", 2, "production", check=failing, force=True, reason="  ")

    move = reg.promote(
        "churn", 2, "production", check=failing, force=True, reason="hotfix for outage 42"
    )
    assert (move.from_version, move.to_version, move.action) == (1, 2, "promote")
    assert move.forced is True
    assert reg.resolve("churn@production").version == 2
    last = reg.alias_history("churn", "production")[-1]
    assert last.forced is True
    assert last.reason == "hotfix for outage 42"
    assert last.detail == {
        "verdict": {"passed": False, "reasons": ["f1 0.70 < champion.f1 - 0.005"]},
        "champion": 1,
    }


def test_a_passing_check_promotes_and_gets_no_champion_the_first_time(
    reg: Registry, tiny: tuple[Any, pd.DataFrame]
) -> None:
    register_n(reg, tiny, 1)
    champions: list[ModelVersion | None] = []

    class Report:
        passed = True

        def to_dict(self) -> dict[str, Any]:
            return {"passed": True, "score": float("nan"), "tags": ("a",)}

    def check(candidate: ModelVersion, champion: ModelVersion | None) -> Report:
        champions.append(champion)
        return Report()

    move = reg.promote("churn", 1, "champion", check=check)
    assert champions == [None]
    assert move.forced is False
    assert move.detail == {
        "verdict": {"passed": True, "score": None, "tags": ["a"]},
        "champion": None,
    }


def test_rollback_walks_back_through_the_holders(
    reg: Registry, tiny: tuple[Any, pd.DataFrame]
) -> None:
    register_n(reg, tiny, 3)
    with pytest.raises(AliasNotFoundError):
        reg.rollback("churn", "production")
    for version in (1, 2, 3):
        reg.promote("churn", version, "production")

    back = reg.rollback("churn", "production", reason="latency regression")
    assert (back.from_version, back.to_version, back.action) == (3, 2, "rollback")
    assert back.reason == "latency regression"
    assert reg.resolve("churn@production").version == 2
    assert reg.rollback("churn", "production").to_version == 1
    with pytest.raises(RegistryError, match="no earlier version"):
        reg.rollback("churn", "production")
    assert reg.resolve("churn@production").version == 1

    # A manual move after rollbacks is undone by the next rollback.
    reg.set_alias("churn", "production", 3)
    assert reg.rollback("churn", "production").to_version == 1
    actions = [m.action for m in reg.alias_history("churn", "production")]
    assert actions == ["promote", "promote", "promote", "rollback", "rollback", "set", "rollback"]


class _SkewedClock(datetime):
    """``datetime`` whose ``now`` runs ten minutes behind: a client with a wrong clock."""

    @classmethod
    def now(cls, tz: Any = None) -> Any:
        return datetime.now(tz) - timedelta(minutes=10)


def test_alias_history_follows_the_database_not_a_skewed_client_clock(
    reg: Registry, tiny: tuple[Any, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    import loopline.registry.aliases as aliases_module
    import loopline.store.db.dialects as dialects_module

    register_n(reg, tiny, 3)
    reg.set_alias("churn", "production", 1)
    with monkeypatch.context() as m:
        # The second move comes from a client whose clock is ten minutes behind.
        m.setattr(aliases_module, "datetime", _SkewedClock, raising=False)
        m.setattr(dialects_module, "datetime", _SkewedClock)
        reg.set_alias("churn", "production", 2)
    reg.set_alias("churn", "production", 3)

    moves = reg.alias_history("churn", "production")
    assert [(m.from_version, m.to_version) for m in moves] == [(None, 1), (1, 2), (2, 3)]
    assert reg.rollback("churn", "production").to_version == 2
    if reg.stores.db.url.startswith("postgresql"):
        # Stamped by the server's clock: the skewed client left no trace in the times.
        skewed = moves[1].at
        assert abs((skewed - datetime.now(UTC)).total_seconds()) < 300
        assert moves[0].at <= moves[1].at <= moves[2].at


def test_traffic_split_is_read_and_changed_in_place(
    reg: Registry, tiny: tuple[Any, pd.DataFrame]
) -> None:
    register_n(reg, tiny, 2)
    register_n(reg, tiny, 1, name="other")
    reg.set_alias("churn", "production", 1)
    reg.set_alias("churn", "challenger", 2)
    assert reg.traffic("churn") is None

    split = reg.set_traffic("churn", "churn@challenger", 10, sticky_key="customer_id")
    assert (split.alias, split.candidate, split.percent, split.mode) == (
        "production",
        "churn@challenger",
        10.0,
        "canary",
    )
    assert reg.traffic("churn") == split
    wider = reg.set_traffic("churn", "churn/2", 50, mode="shadow", reason="more data")
    got = reg.traffic("churn", "production")
    assert got is not None
    assert (got.candidate, got.percent, got.mode, got.sticky_key) == (
        "churn/2",
        50.0,
        "shadow",
        None,
    )
    assert got.updated_at == wider.updated_at
    assert reg.traffic_splits("churn") == [got]

    for bad in (
        lambda: reg.set_traffic("churn", "churn/2", 101),
        lambda: reg.set_traffic("churn", "churn/2", float("nan")),
        lambda: reg.set_traffic("churn", "churn/2", 5, mode="blue-green"),
        lambda: reg.set_traffic("churn", "other/1", 5),
    ):
        with pytest.raises(RegistryError):
            bad()
    with pytest.raises(ModelVersionNotFoundError):
        reg.set_traffic("churn", "churn/8", 5)

    assert reg.clear_traffic("churn", reason="canary done") is True
    assert reg.traffic("churn") is None
    assert reg.clear_traffic("churn") is False
    with reg.stores.db.read() as conn:
        kinds = [e.detail.get("percent") for e in list_events(conn, kind="model.traffic")]
    assert kinds == [0.0, 50.0, 10.0]


def test_alias_moves_are_compare_and_set_when_asked(
    reg: Registry, tiny: tuple[Any, pd.DataFrame]
) -> None:
    from loopline.registry.errors import ConflictError

    register_n(reg, tiny, 3)
    reg.set_alias("churn", "production", 1, expect=None)  # "nobody holds it yet"
    with pytest.raises(ConflictError, match="expected none, found version 1"):
        reg.set_alias("churn", "production", 2, expect=None)
    reg.set_alias("churn", "production", 2, expect=1)
    with pytest.raises(ConflictError) as err:
        reg.set_alias("churn", "production", 3, expect=1)  # someone moved it to 2 meanwhile
    assert (err.value.expected, err.value.actual) == (1, 2)
    assert reg.resolve("churn@production").version == 2
    with pytest.raises(ConflictError):
        reg.rollback("churn", "production", expect=3)
    assert reg.rollback("churn", "production", expect=2).to_version == 1
    with pytest.raises(ConflictError):
        reg.promote("churn", 3, "production", expect=2)
    assert reg.promote("churn", 3, "production", expect=1).to_version == 3


def test_a_promotion_whose_champion_moved_during_its_check_changes_nothing(
    reg: Registry, tiny: tuple[Any, pd.DataFrame]
) -> None:
    from loopline.registry.errors import ConflictError

    register_n(reg, tiny, 3)
    reg.set_alias("churn", "production", 1)
    seen: list[int | None] = []

    def slow_check(candidate: ModelVersion, champion: ModelVersion | None) -> Verdict:
        seen.append(None if champion is None else champion.version)
        # A person promotes version 2 by hand while this check evaluates.
        reg.set_alias("churn", "production", 2, reason="by hand")
        return Verdict(True)

    with pytest.raises(ConflictError):
        reg.promote("churn", 3, "production", check=slow_check)
    assert seen == [1]
    assert reg.resolve("churn@production").version == 2  # the person's move stands
    assert [m.to_version for m in reg.alias_history("churn", "production")] == [1, 2]


def test_traffic_splits_are_compare_and_set_when_asked(
    reg: Registry, tiny: tuple[Any, pd.DataFrame]
) -> None:
    from loopline.registry.errors import ConflictError

    register_n(reg, tiny, 2)
    reg.set_alias("churn", "production", 1)
    first = reg.set_traffic("churn", "churn/2", 10, expect=None)
    with pytest.raises(ConflictError, match="expected none"):
        reg.set_traffic("churn", "churn/2", 50, expect=None)
    wider = reg.set_traffic("churn", "churn/2", 50, expect=first)
    with pytest.raises(ConflictError, match="10% canary"):
        reg.clear_traffic("churn", expect=first)
    split = reg.traffic("churn")
    assert split is not None
    assert split.percent == 50
    assert reg.clear_traffic("churn", expect=wider) is True
    assert reg.traffic("churn") is None
