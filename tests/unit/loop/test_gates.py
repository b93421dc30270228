"""Gates declared in loopline.toml, evaluated on holdout rows: check and promotion (in
process; ``loopline check`` itself is tested in tests/e2e/test_check_cli.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loopline.config import settings_for
from loopline.errors import ConfigError
from loopline.examples.credit_risk.data import generate_applications
from loopline.loop.gates import check_candidate, gate_configs, resolve_candidate
from loopline.project.create import init_project
from loopline.registry.errors import PromotionRefusedError
from loopline.store.stores import Stores

GATES = """
[gates.loans]
criteria = ["roc_auc >= 0.65", "roc_auc >= champion.roc_auc - 0.005", "data.valid"]
holdout = "loans"
split = "test"
target = "default"
"""


@pytest.fixture
def project(tmp_path: Path) -> Iterator[tuple[Path, Stores]]:
    report = init_project(tmp_path / "p")
    (report.project_dir / "loopline.toml").write_text(
        (report.project_dir / "loopline.toml").read_text() + GATES
    )
    settings = settings_for(report.project_dir, environ={})
    with Stores.open(settings) as stores:
        yield report.project_dir, stores


def _register(stores: Stores, good: bool) -> int:
    from sklearn.dummy import DummyClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from loopline.data import Datasets, default_preprocessor
    from loopline.registry import Registry

    ds = Datasets(stores)
    if not ds.list():
        ds.add("loans", generate_applications(n_rows=1_500, seed=3))
        ds.split("loans", stratify="default", seed=1)
    train = ds.load_split(ds.splits("loans")[-1].id).train
    x, y = train.drop(columns=["default"]), train["default"]
    final = LogisticRegression(max_iter=500) if good else DummyClassifier(strategy="prior")
    model = make_pipeline(default_preprocessor(ds.schema("loans"), target="default"), final)
    model.fit(x, y)
    return Registry(stores).register("loans", model, sample=x.head(50)).version


def test_configs_are_read_and_checked(project: tuple[Path, Stores]) -> None:
    _, stores = project
    config = gate_configs(stores.settings)["loans"]
    assert config.criteria[0] == "roc_auc >= 0.65"
    assert config.champion == "champion"
    bad = stores.settings.project_dir / "loopline.toml"
    bad.write_text(bad.read_text() + "\n[gates.other]\ncriterion = ['x']\n")
    with pytest.raises(ConfigError, match="unknown key 'criterion'"):
        gate_configs(settings_for(stores.settings.project_dir, environ={}))


def test_good_first_model_passes_and_a_worse_challenger_fails(
    project: tuple[Path, Stores],
) -> None:
    from loopline.registry import Registry

    _, stores = project
    reg = Registry(stores)
    config = gate_configs(stores.settings)["loans"]
    good = reg.get("loans", _register(stores, good=True))
    first = check_candidate(stores, config, good, registry=reg)
    assert first.passed, first.verdict.to_dict()
    assert first.champion is None
    by_default = [r for r in first.verdict.results if r.by_default]
    assert len(by_default) == 1  # the champion criterion passes because there is none
    assert first.data_ref is not None
    assert first.data_ref.startswith("loans@1#split")

    reg.set_alias("loans", "champion", good.version)
    dummy = reg.get("loans", _register(stores, good=False))
    second = check_candidate(stores, config, dummy, registry=reg)
    assert not second.passed
    failed = {r.criterion for r in second.verdict.results if not r.passed}
    assert failed == {"roc_auc >= 0.65", "roc_auc >= champion.roc_auc - 0.005"}
    assert second.champion is not None
    assert second.champion.version == good.version
    assert second.candidate_eval is not None
    assert second.champion_eval is not None
    assert second.candidate_eval.data_id == second.champion_eval.data_id

    reg.set_alias("loans", "challenger", dummy.version)
    assert resolve_candidate(reg, config).version == dummy.version


def test_promotion_refused_in_python(project: tuple[Path, Stores]) -> None:
    from loopline.registry import Registry

    _, stores = project
    good = _register(stores, good=True)
    dummy = _register(stores, good=False)
    reg = Registry(stores)
    reg.set_alias("loans", "production", good)
    config = gate_configs(stores.settings)["loans"]

    def check(candidate, champion):  # type: ignore[no-untyped-def]
        return check_candidate(stores, config, candidate, champion=champion, registry=reg).verdict

    with pytest.raises(PromotionRefusedError):
        reg.promote("loans", dummy, "production", check=check)
    assert reg.resolve("loans@production").version == good


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('criteria = ["roc_auc >= "]', "criteria[0]"),
        ('criteria = ["roc_auc >> 0.7"]', "criteria[0]"),
        ('criteria = ["roc_auc >= 0.6"]\nthreshold = "abc"', "threshold"),
        ('criteria = ["roc_auc >= 0.6"]\nthreshold = 1.5', "threshold"),
        ('criteria = ["roc_auc >= 0.6"]\nif_no_champion = "Fail"', "'pass', 'fail'"),
        ('criteria = ["roc_auc >= 0.6"]\nsplit = "tset"', "did you mean 'test'"),
        ('criteria = ["roc_auc >= 0.6"]\nholdout = "loans@x"', "NAME@VERSION"),
        ('criteria = ["roc_auc >= 0.6"]\ncandidat = "latest"', "did you mean 'candidate'"),
    ],
)
def test_a_broken_gate_table_is_a_configuration_error(
    tmp_path: Path, line: str, message: str
) -> None:
    report = init_project(tmp_path / "p")
    toml = report.project_dir / "loopline.toml"
    toml.write_text(toml.read_text() + f"\n[gates.loans]\n{line}\n")
    with pytest.raises(ConfigError) as err:
        gate_configs(settings_for(report.project_dir, environ={}))
    assert message in str(err.value)


def test_gate_without_split_takes_all_rows(project: tuple[Path, Stores]) -> None:
    from loopline.loop.gates import GateConfig

    _, stores = project
    version = _register(stores, good=True)
    from loopline.registry import Registry

    reg = Registry(stores)
    config = GateConfig("loans", ("roc_auc >= 0.5",), holdout="loans", target="default")
    result = check_candidate(stores, config, reg.get("loans", version), registry=reg)
    assert result.data_ref == "loans@1" or (result.data_ref or "").startswith("loans")
    assert "#split" not in (result.data_ref or "")
    assert result.candidate_eval is not None
    assert result.candidate_eval.n_rows == 1_500
