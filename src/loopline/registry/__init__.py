"""The model registry: models, versions, aliases with history, and safe model packages.

    from loopline.registry import Registry
    reg = Registry(stores)
    mv = reg.register("churn", pipeline, sample=X_train, run_id=run.id, metrics={"f1": 0.9})
    reg.promote("churn", mv.version, "production", check=gate)
    model = reg.load("churn@production")        # verified against the registry, no pickle
    model.predict_proba(X)

Importing this package is cheap: scikit-learn, XGBoost, LightGBM, ONNX and pandas are
imported only when a model is registered or loaded. See docs/registry.md.
"""

from __future__ import annotations

from loopline.registry.flavors import LightGBMModel, ModelFlavor
from loopline.registry.loaded import LoadedModel
from loopline.registry.onnx_runtime import OnnxModel
from loopline.registry.package import FileEntry, Manifest
from loopline.registry.records import (
    AliasMove,
    DatasetRef,
    ModelSummary,
    ModelVersion,
    TrafficSplit,
)
from loopline.registry.refs import ModelRef, parse_ref
from loopline.registry.registry import PromotionCheck, Registry, Verdict
from loopline.registry.signature import ColumnSpec, OutputSpec, Signature

__all__ = [
    "AliasMove",
    "ColumnSpec",
    "DatasetRef",
    "FileEntry",
    "LightGBMModel",
    "LoadedModel",
    "Manifest",
    "ModelFlavor",
    "ModelRef",
    "ModelSummary",
    "ModelVersion",
    "OnnxModel",
    "OutputSpec",
    "PromotionCheck",
    "Registry",
    "Signature",
    "TrafficSplit",
    "Verdict",
    "parse_ref",
]
