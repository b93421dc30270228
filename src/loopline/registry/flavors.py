"""Flavors: how each kind of model is written to files and read back, without pickle.

=====================  =============================================  ======================
flavor                 files                                          loaded as
=====================  =============================================  ======================
``sklearn``            ``model.skops``                                the estimator
``xgboost``            ``model.ubj`` (XGBoost's native UBJSON)        the sklearn wrapper
``lightgbm``           ``model.txt`` (LightGBM's native text model)   :class:`LightGBMModel`
``sklearn+xgboost``    ``preprocess.skops`` + ``model.ubj``           :class:`NativePipeline`
``sklearn+lightgbm``   ``preprocess.skops`` + ``model.txt``           :class:`NativePipeline`
=====================  =============================================  ======================

skops files are loaded with an explicit list of trusted types: skops' own defaults plus
the exact names in :mod:`loopline.registry.trust`; anything else raises
:class:`~loopline.registry.errors.UnsafeModelError` naming the types (at registration too, so a
package that could never load is never written). A file that is not a skops file at all
(a pickle renamed ``model.skops``, a truncated zip) raises
:class:`~loopline.registry.errors.MalformedPackageError`, an integrity error. The wrapper classes
recorded for XGBoost and LightGBM are looked up on the library module and checked to be its
own model classes, so a manifest cannot name an arbitrary callable.

Each flavor's library is imported when a model of that flavor is saved or loaded; a
missing one raises :class:`~loopline.registry.errors.FlavorUnavailableError` naming the package.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from loopline.registry.errors import (
    FlavorUnavailableError,
    MalformedPackageError,
    ModelPackageError,
    UnsafeModelError,
)
from loopline.registry.signature import json_scalar

#: import name -> pip package, for FlavorUnavailableError.
PIP_NAMES = {
    "sklearn": "scikit-learn",
    "skops": "skops",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "onnxruntime": "onnxruntime",
    "skl2onnx": "skl2onnx",
    "onnx": "onnx",
}


@dataclass
class PackedModel:
    """A model written as files, with what the flavor needs to read them back."""

    files: dict[str, bytes]
    info: dict[str, Any] = field(default_factory=dict)
    libraries: tuple[str, ...] = ()


class ModelFlavor(Protocol):
    """Save a model to files, and load it back from them."""

    name: str
    #: Modules loading needs, checked before any file is read.
    requires: tuple[str, ...]

    def save(self, model: Any) -> PackedModel: ...

    def load(self, files: Mapping[str, bytes], info: Mapping[str, Any], ref: str) -> Any: ...


def require(module: str, flavor: str, ref: str | None = None) -> ModuleType:
    """Import ``module`` or raise FlavorUnavailableError naming its pip package."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise FlavorUnavailableError(flavor, PIP_NAMES.get(module, module), ref=ref) from exc


def require_flavor(flavor: ModelFlavor, ref: str | None = None) -> None:
    """Raise FlavorUnavailableError unless every library ``flavor`` loads with is importable."""
    for module in flavor.requires:
        require(module, flavor.name, ref)


#: pip name -> import name, where they differ.
_IMPORT_NAMES = {"scikit-learn": "sklearn"}


def library_versions(names: tuple[str, ...]) -> dict[str, str]:
    """Installed versions of the distributions ``names`` (pip names), skipping absent ones.

    An imported module's ``__version__`` is used when it has one: reading package metadata
    scans ``sys.path`` and costs far more.
    """
    out: dict[str, str] = {}
    for name in names:
        module = sys.modules.get(_IMPORT_NAMES.get(name, name))
        version = getattr(module, "__version__", None)
        if isinstance(version, str):
            out[name] = version
            continue
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def qualified_name(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _top_module(obj: Any) -> str:
    return type(obj).__module__.split(".", 1)[0]


# -- scikit-learn (skops) --------------------------------------------------------------------


def skops_dumps(obj: Any, flavor: str) -> bytes:
    """``obj`` as a skops file; refuses objects that would not load under the trust rule."""
    from loopline.registry.trust import refused

    sio = require("skops.io", flavor)
    data: bytes = sio.dumps(obj)
    bad = refused(sio.get_untrusted_types(data=data))
    if bad:
        raise UnsafeModelError(bad)
    return data


def skops_loads(data: bytes, flavor: str, *, ref: str, file: str) -> Any:
    """Load a skops file, trusting only skops' defaults and the exact allow-list."""
    from loopline.registry.trust import refused

    sio = require("skops.io", flavor, ref)
    require("sklearn", flavor, ref)
    try:
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as exc:
        # Not a zip, no schema, a schema that is not JSON or not skops' shape: refuse the
        # file before anything is built from it.
        raise MalformedPackageError(ref, file, f"{type(exc).__name__}: {exc}") from exc
    bad = refused(untrusted)
    if bad:
        raise UnsafeModelError(bad, ref=ref, file=file)
    try:
        return sio.loads(data, trusted=untrusted)
    except (ImportError, AttributeError) as exc:
        # A trusted type this installation lacks: the file was written by other versions.
        raise ModelPackageError(
            f"Model {ref}: {file!r} names a type this installation does not have ({exc})",
            hint="Install the library versions the package records (loopline models show "
            f"{ref.split('/')[0]}) or register the model again with these versions",
        ) from exc
    except Exception as exc:
        raise MalformedPackageError(ref, file, f"{type(exc).__name__}: {exc}") from exc


class SklearnFlavor:
    name: str = "sklearn"
    requires: tuple[str, ...] = ("sklearn", "skops")
    file = "model.skops"

    def save(self, model: Any) -> PackedModel:
        _check_sklearn_fitted(model)
        return PackedModel(
            files={self.file: skops_dumps(model, self.name)},
            info={"class": qualified_name(model)},
            libraries=("scikit-learn", "numpy", "scipy", "skops"),
        )

    def load(self, files: Mapping[str, bytes], info: Mapping[str, Any], ref: str) -> Any:
        return skops_loads(files[self.file], self.name, ref=ref, file=self.file)


def _check_sklearn_fitted(model: Any) -> None:
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(model)
    except NotFittedError as exc:
        raise ModelPackageError(
            f"{qualified_name(model)} is not fitted; only fitted models can be registered",
            hint="Call fit() first",
        ) from exc
    except TypeError as exc:
        raise ModelPackageError(
            f"{qualified_name(model)} is not a scikit-learn estimator ({exc})"
        ) from exc


# -- XGBoost (native UBJSON) -----------------------------------------------------------------


class XGBoostFlavor:
    name: str = "xgboost"
    requires: tuple[str, ...] = ("xgboost",)
    file = "model.ubj"

    def save(self, model: Any) -> PackedModel:
        xgb = require("xgboost", self.name)
        if not isinstance(model, xgb.XGBModel):
            raise ModelPackageError(
                f"{qualified_name(model)} is not an XGBoost scikit-learn model; "
                "register an XGBClassifier or XGBRegressor"
            )
        try:
            model.get_booster()
        except Exception as exc:
            raise ModelPackageError(
                f"{qualified_name(model)} is not fitted; only fitted models can be registered",
                hint="Call fit() first",
            ) from exc
        with tempfile.TemporaryDirectory(prefix="loopline-xgb-") as tmp:
            path = Path(tmp) / self.file
            # save_model (not Booster.save_raw) also records the wrapper's own attributes.
            model.save_model(str(path))
            data = path.read_bytes()
        info: dict[str, Any] = {"class": type(model).__name__, "format": "ubj"}
        classes = getattr(model, "classes_", None)
        if classes is not None:
            info["classes"] = [json_scalar(c) for c in classes]
        return PackedModel({self.file: data}, info, ("xgboost", "numpy", "scipy"))

    def load(self, files: Mapping[str, bytes], info: Mapping[str, Any], ref: str) -> Any:
        xgb = require("xgboost", self.name, ref)
        cls = _library_class(xgb, str(info.get("class", "")), xgb.XGBModel, ref)
        model = cls()
        try:
            model.load_model(bytearray(files[self.file]))
        except xgb.core.XGBoostError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "XGBoostError"
            raise MalformedPackageError(ref, self.file, first[:300]) from exc
        return model


# -- LightGBM (native text) ------------------------------------------------------------------


class LightGBMModel:
    """A LightGBM booster with the scikit-learn prediction interface of the model it came from.

    LightGBM has no supported way to rebuild its scikit-learn wrapper from a saved booster;
    this class gives the same ``predict``/``predict_proba``/``classes_`` from the booster
    (the same arithmetic as ``LGBMClassifier``: argmax over the class probabilities).
    """

    def __init__(self, booster: Any, kind: str, classes: list[Any] | None) -> None:
        import numpy as np

        self.booster_ = booster
        self.kind = kind
        self.classes_ = None if classes is None else np.asarray(classes)
        self.n_features_in_ = booster.num_feature()
        self.feature_names_in_ = np.asarray(booster.feature_name(), dtype=object)

    def predict_proba(self, X: Any) -> Any:
        import numpy as np

        if self.classes_ is None:
            raise AttributeError("predict_proba is only available for classifiers")
        raw = np.asarray(self.booster_.predict(X))
        if raw.ndim == 1:
            return np.vstack((1.0 - raw, raw)).T
        return raw

    def predict(self, X: Any) -> Any:
        import numpy as np

        if self.classes_ is None:
            return np.asarray(self.booster_.predict(X))
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class LightGBMFlavor:
    name: str = "lightgbm"
    requires: tuple[str, ...] = ("lightgbm",)
    file = "model.txt"

    def save(self, model: Any) -> PackedModel:
        lgb = require("lightgbm", self.name)
        if isinstance(model, LightGBMModel):
            # A model loaded from a package (or a pipeline step output) saves back as it was.
            classes = model.classes_
            info_loaded: dict[str, Any] = {
                "class": "LGBMClassifier" if model.kind == "classifier" else "LGBMRegressor",
                "kind": model.kind,
                "classes": None if classes is None else [json_scalar(c) for c in classes],
            }
            text = model.booster_.model_to_string()
            return PackedModel(
                {self.file: text.encode("utf-8")}, info_loaded, ("lightgbm", "numpy")
            )
        if not isinstance(model, lgb.LGBMModel):
            raise ModelPackageError(
                f"{qualified_name(model)} is not a LightGBM scikit-learn model; "
                "register an LGBMClassifier or LGBMRegressor"
            )
        try:
            text = model.booster_.model_to_string()
        except Exception as exc:
            raise ModelPackageError(
                f"{qualified_name(model)} is not fitted; only fitted models can be registered",
                hint="Call fit() first",
            ) from exc
        is_classifier = isinstance(model, lgb.LGBMClassifier)
        classes = getattr(model, "classes_", None) if is_classifier else None
        info: dict[str, Any] = {
            "class": type(model).__name__,
            "kind": "classifier" if classes is not None else "regressor",
            "classes": None if classes is None else [json_scalar(c) for c in classes],
        }
        return PackedModel({self.file: text.encode("utf-8")}, info, ("lightgbm", "numpy"))

    def load(self, files: Mapping[str, bytes], info: Mapping[str, Any], ref: str) -> Any:
        lgb = require("lightgbm", self.name, ref)
        require("numpy", self.name, ref)
        text = check_lightgbm_text(files[self.file], ref=ref, file=self.file)
        try:
            booster = lgb.Booster(model_str=text)
        except Exception as exc:  # LightGBM's own parse errors (those it raises)
            raise MalformedPackageError(ref, self.file, f"{type(exc).__name__}: {exc}") from exc
        classes = info.get("classes")
        return LightGBMModel(booster, str(info.get("kind", "regressor")), classes)


#: Tree fields that hold numbers, and how many: "leaves", "internal" (leaves - 1), or any.
_LGB_TREE_FIELDS = {
    "num_leaves": "one",
    "num_cat": "one",
    "split_feature": "internal",
    "split_gain": "internal",
    "threshold": "internal",
    "decision_type": "internal",
    "left_child": "internal",
    "right_child": "internal",
    "leaf_value": "leaves",
    "leaf_weight": "leaves",
    "leaf_count": "leaves",
    "internal_value": "internal",
    "internal_weight": "internal",
    "internal_count": "internal",
    "cat_boundaries": "any",
    "cat_threshold": "any",
    "is_linear": "one",
    "shrinkage": "one",
}


#: A number as LightGBM writes one (Python's float() also takes "1_000", LightGBM does not).
_LGB_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:inf|nan)", re.I)
#: Tree fields LightGBM writes only sometimes (categorical splits).
_LGB_OPTIONAL = frozenset({"cat_boundaries", "cat_threshold"})
#: The extra fields of linear trees (``linear_tree=True``).
_LGB_LINEAR = frozenset({"leaf_const", "num_features", "leaf_features", "leaf_coeff"})


def check_lightgbm_text(data: bytes, *, ref: str, file: str) -> str:
    """The LightGBM model text in ``data``, checked for the structure LightGBM relies on.

    LightGBM aborts the whole process (``std::terminate``) on a malformed model string
    instead of raising, so a damaged file must be refused here: the header, the byte
    size of every tree block (``tree_sizes``), each tree's numeric fields and their
    lengths, and the end marker.
    """

    def bad(reason: str) -> MalformedPackageError:
        return MalformedPackageError(ref, file, f"not a LightGBM model text: {reason}")

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad(f"not UTF-8 at byte {exc.start}") from None
    if "\x00" in text:
        raise bad("it holds NUL bytes")
    if not text.startswith("tree\n"):
        raise bad("no 'tree' header")
    head, sep, body = text.partition("\n\n")
    if not sep:
        raise bad("no tree section")
    header = dict(line.partition("=")[::2] for line in head.splitlines()[1:])
    try:
        sizes = [int(v) for v in header.get("tree_sizes", "").split()]
        max_feature = int(header.get("max_feature_idx", ""))
        int(header.get("num_class", ""))
        int(header.get("num_tree_per_iteration", ""))
    except ValueError:
        raise bad("tree_sizes, max_feature_idx or num_class is not an integer") from None
    if len(header.get("feature_names", "").split()) != max_feature + 1:
        raise bad("feature_names does not list max_feature_idx + 1 names")
    offset = 0
    raw = body.encode("utf-8")
    for index, size in enumerate(sizes):
        block = raw[offset : offset + size].decode("utf-8", "replace")
        offset += size
        if len(block.encode("utf-8")) != size or not block.startswith(f"Tree={index}\n"):
            raise bad(f"tree {index} is not where tree_sizes says")
        fields = dict(line.partition("=")[::2] for line in block.splitlines()[1:] if line)
        try:
            leaves = int(fields.get("num_leaves", ""))
        except ValueError:
            raise bad(f"tree {index} has no valid num_leaves") from None
        if leaves < 1:
            raise bad(f"tree {index} has {leaves} leaves")
        try:
            _check_lgb_tree(fields, index, leaves, max_feature, bad)
        except (ValueError, OverflowError):
            raise bad(f"tree {index} holds a value that is not a valid number") from None
    tail = raw[offset:].decode("utf-8", "replace").lstrip("\n")
    if not tail.startswith("end of trees"):
        raise bad("no 'end of trees' after the trees tree_sizes lists")
    _check_lgb_tail(tail, bad)
    return text


def _check_lgb_tail(tail: str, bad: Any) -> None:
    """What follows the trees: importances, the parameter block, the pandas categories."""
    import json

    if "parameters:" in tail:
        start = tail.index("parameters:") + len("parameters:")
        end = tail.find("end of parameters", start)
        if end < 0:
            raise bad("the parameters section has no end")
        for line in tail[start:end].split("\n"):
            if line and not (line.startswith("[") and line.endswith("]") and ": " in line):
                raise bad(f"parameter line {line[:40]!r} is malformed")
    last = tail.rstrip("\n").rsplit("\n", 1)[-1]
    if not last.startswith("pandas_categorical:"):
        raise bad("it does not end with its pandas_categorical line")
    try:
        categories = json.loads(last[len("pandas_categorical:") :])
    except ValueError:
        raise bad("its pandas_categorical line is not JSON") from None
    if categories is not None and not (
        isinstance(categories, list) and all(isinstance(c, list) for c in categories)
    ):
        raise bad("its pandas_categorical line is not a list of category lists")


def _check_lgb_tree(
    fields: Mapping[str, str],
    index: int,
    leaves: int,
    max_feature: int,
    bad: Any,
) -> None:
    """The numeric fields of one LightGBM tree: numbers, of the right count and range,
    and children that form a tree (every node but the root, and every leaf, is the child
    of exactly one node)."""
    missing = [k for k in _LGB_TREE_FIELDS if k not in _LGB_OPTIONAL and k not in fields]
    unknown = [k for k in fields if k not in _LGB_TREE_FIELDS and k not in _LGB_LINEAR]
    if missing or unknown:
        what = f"lacks {missing[0]}" if missing else f"has an unknown field {unknown[0]!r}"
        raise bad(f"tree {index} {what}")
    if leaves > 1:
        children = [
            int(float(t))
            for key in ("left_child", "right_child")
            for t in fields.get(key, "").split()
        ]
        nodes = sorted(c for c in children if c >= 0)
        leaf_refs = sorted(~c for c in children if c < 0)
        if nodes != list(range(1, leaves - 1)) or leaf_refs != list(range(leaves)):
            raise bad(f"tree {index}: its children do not form a tree")
    for key, count in _LGB_TREE_FIELDS.items():
        if key not in fields:
            continue
        tokens = fields[key].split()
        if not tokens and key != "leaf_value":
            continue  # LightGBM leaves some fields empty (a one-leaf tree's weights)
        for token in tokens:
            if not _LGB_NUMBER.fullmatch(token):
                raise bad(f"tree {index} field {key} holds {token!r}, not a number")
        want = {"one": 1, "leaves": leaves, "internal": leaves - 1}.get(count)
        if want is not None and len(tokens) != want:
            raise bad(f"tree {index} field {key} has {len(tokens)} values, not {want}")
        if key in ("left_child", "right_child"):
            # A child is an internal node (0 .. leaves-2) or a leaf, coded ~leaf.
            if any(not -leaves <= int(float(t)) <= leaves - 2 for t in tokens):
                raise bad(f"tree {index} {key} points outside the tree")
        elif key == "decision_type":
            # Bit 0: categorical; bit 1: default left; bits 2-3: missing type (0..2).
            if any(
                not (float(t).is_integer() and 0 <= int(float(t)) < 16)
                or (int(float(t)) >> 2) & 3 == 3
                for t in tokens
            ):
                raise bad(f"tree {index} has a decision_type LightGBM does not know")
            categorical = [int(float(t)) & 1 for t in tokens]
            thresholds = fields.get("threshold", "").split()
            n_cat = int(float(fields.get("num_cat", "0") or 0))
            for is_cat, threshold in zip(categorical, thresholds, strict=False):
                if is_cat and not (
                    float(threshold).is_integer() and 0 <= int(float(threshold)) < n_cat
                ):
                    raise bad(f"tree {index} has a categorical split outside its categories")
        elif key == "split_feature":
            if any(not 0 <= int(float(t)) <= max_feature for t in tokens):
                raise bad(f"tree {index} splits on a feature the model does not have")
        elif key == "num_cat" and int(float(tokens[0])) != 0:
            bounds = fields.get("cat_boundaries", "").split()
            cats = fields.get("cat_threshold", "").split()
            if len(bounds) != int(float(tokens[0])) + 1 or (
                bounds and int(float(bounds[-1])) != len(cats)
            ):
                raise bad(f"tree {index} has inconsistent categorical splits")


# -- scikit-learn Pipeline with a native final estimator -------------------------------------


class PipelineFlavor:
    """A ``Pipeline`` whose steps before the last go to skops and whose last is native."""

    preprocess_file = "preprocess.skops"

    def __init__(self, final: XGBoostFlavor | LightGBMFlavor) -> None:
        self.final = final
        self.name: str = f"sklearn+{final.name}"
        self.requires: tuple[str, ...] = ("sklearn", "skops", *final.requires)

    def save(self, model: Any) -> PackedModel:
        from sklearn.pipeline import Pipeline

        if isinstance(model, NativePipeline):
            steps = [
                *(model.preprocess.steps if model.preprocess is not None else []),
                (model.final_step, model.final),
            ]
        else:
            steps = list(model.steps)
        final_name, final_model = steps[-1]
        packed = self.final.save(final_model)
        files = dict(packed.files)
        if steps[:-1]:
            pre = Pipeline(steps[:-1])
            _check_sklearn_fitted(pre)
            files[self.preprocess_file] = skops_dumps(pre, self.name)
        info = {
            "class": qualified_name(model),
            "final_step": final_name,
            "final": packed.info,
            "preprocess": bool(steps[:-1]),
        }
        return PackedModel(files, info, ("scikit-learn", "skops", "scipy", *packed.libraries))

    def load(self, files: Mapping[str, bytes], info: Mapping[str, Any], ref: str) -> Any:
        final = self.final.load(files, info.get("final") or {}, ref)
        pre = None
        if info.get("preprocess"):
            name = self.preprocess_file
            pre = skops_loads(files[name], self.name, ref=ref, file=name)
        return NativePipeline(pre, str(info.get("final_step", "model")), final)


class NativePipeline:
    """A fitted scikit-learn preprocessing ``Pipeline`` followed by a native model.

    Predicts like the ``Pipeline`` it was packaged from: ``final.predict(pre.transform(X))``.
    ``steps`` lists the preprocessing steps then ``(final_step, final)``.
    """

    def __init__(self, preprocess: Any, final_step: str, final: Any) -> None:
        self.preprocess = preprocess
        self.final_step = final_step
        self.final = final
        pre_steps = list(preprocess.steps) if preprocess is not None else []
        self.steps: list[tuple[str, Any]] = [*pre_steps, (final_step, final)]

    @property
    def named_steps(self) -> dict[str, Any]:
        return dict(self.steps)

    @property
    def feature_names_in_(self) -> Any:
        return getattr(self.steps[0][1], "feature_names_in_", None)

    @property
    def n_features_in_(self) -> Any:
        return getattr(self.steps[0][1], "n_features_in_", None)

    @property
    def classes_(self) -> Any:
        return getattr(self.final, "classes_", None)

    def transform(self, X: Any) -> Any:
        return X if self.preprocess is None else self.preprocess.transform(X)

    def predict(self, X: Any) -> Any:
        return self.final.predict(self.transform(X))

    def predict_proba(self, X: Any) -> Any:
        return self.final.predict_proba(self.transform(X))


_XGB = XGBoostFlavor()
_LGB = LightGBMFlavor()
FLAVORS: dict[str, ModelFlavor] = {
    "sklearn": SklearnFlavor(),
    "xgboost": _XGB,
    "lightgbm": _LGB,
    "sklearn+xgboost": PipelineFlavor(_XGB),
    "sklearn+lightgbm": PipelineFlavor(_LGB),
}


def flavor_named(name: str) -> ModelFlavor:
    try:
        return FLAVORS[name]
    except KeyError:
        raise ModelPackageError(
            f"Unknown model flavor {name!r}; this loopline knows {', '.join(sorted(FLAVORS))}",
            hint="Upgrade loopline to load packages written by a newer version",
        ) from None


def detect_flavor(model: Any) -> ModelFlavor:
    """The flavor for ``model``, decided by its class's module (no library is imported)."""
    if isinstance(model, NativePipeline):
        return FLAVORS["sklearn+" + detect_flavor(model.final).name]
    if isinstance(model, LightGBMModel):
        return FLAVORS["lightgbm"]
    top = _top_module(model)
    if top == "sklearn" and type(model).__name__ == "Pipeline" and getattr(model, "steps", None):
        last_top = _top_module(model.steps[-1][1])
        if last_top in ("xgboost", "lightgbm"):
            return FLAVORS[f"sklearn+{last_top}"]
        return FLAVORS["sklearn"]
    if top == "xgboost":
        return FLAVORS["xgboost"]
    if top == "lightgbm":
        return FLAVORS["lightgbm"]
    if top == "sklearn" and hasattr(model, "get_params"):
        return FLAVORS["sklearn"]  # transformers too (scalers, encoders, column transformers)
    if hasattr(model, "predict") and hasattr(model, "get_params"):
        # scikit-learn estimators, and compatible ones whose types skops must then trust.
        return FLAVORS["sklearn"]
    raise ModelPackageError(
        f"Cannot package a {qualified_name(model)}: supported are scikit-learn estimators "
        "and pipelines, XGBoost and LightGBM scikit-learn models, and scikit-learn pipelines "
        "ending in one of them"
    )


def _library_class(module: ModuleType, name: str, base: type, ref: str) -> Any:
    cls = getattr(module, name, None) if name.isidentifier() else None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ModelPackageError(
            f"Model {ref} names the class {name!r}, which is not a {module.__name__} model class"
        )
    return cls
