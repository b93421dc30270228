"""A model loaded from its verified package, ready to predict on DataFrames."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loopline.registry.errors import ModelInputError, RegistryArgumentError
from loopline.registry.onnx_runtime import OnnxModel

if TYPE_CHECKING:
    from loopline.registry.package import Manifest
    from loopline.registry.records import ModelVersion
    from loopline.registry.signature import Signature


class LoadedModel:
    """A registered model version in memory: native model, manifest, optional ONNX.

    ``predict``/``predict_proba`` take a DataFrame holding the signature's columns (in any
    order, extra columns ignored) and reorder them to the signature's order first. The
    native object is :attr:`model`; :meth:`onnx_session` gives the ONNX path when the
    package has one.
    """

    def __init__(
        self,
        model_version: ModelVersion,
        manifest: Manifest,
        model: Any,
        onnx_bytes: bytes | None = None,
    ) -> None:
        self.model_version = model_version
        self.manifest = manifest
        self.model = model
        self._onnx_bytes = onnx_bytes
        self._onnx: OnnxModel | None = None
        self._columns = manifest.signature.columns
        # A model fitted on an array (no column names) gets an array, in signature order:
        # scikit-learn warns when it gets names it was not fitted with.
        self._positional = (
            getattr(model, "feature_names_in_", None) is None
            and getattr(model, "n_features_in_", None) is not None
        )

    # -- identity --------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> int:
        return self.manifest.version

    @property
    def ref(self) -> str:
        return self.manifest.ref

    @property
    def flavor(self) -> str:
        return self.manifest.flavor

    @property
    def signature(self) -> Signature:
        return self.manifest.signature

    @property
    def is_classifier(self) -> bool:
        return self.signature.output.kind == "classifier"

    @property
    def classes_(self) -> Any:
        """The class labels, in ``predict_proba``'s column order (None for regressors)."""
        classes = getattr(self.model, "classes_", None)
        if classes is not None:
            return classes
        if self.signature.output.classes is None:
            return None
        import numpy as np

        return np.asarray(self.signature.output.classes)

    def __repr__(self) -> str:
        return f"LoadedModel({self.ref!r}, flavor={self.flavor!r})"

    # -- prediction ------------------------------------------------------------------------

    def prepare(self, X: Any) -> Any:
        """``X`` as a DataFrame with exactly the signature's columns, in its order."""
        import pandas as pd

        if not isinstance(X, pd.DataFrame):
            if isinstance(X, dict | list):
                X = pd.DataFrame(X)
            else:
                raise ModelInputError(
                    f"Model {self.ref} expects a pandas DataFrame with columns "
                    f"{', '.join(self._columns)}, not {type(X).__module__}.{type(X).__name__}"
                )
        missing = [c for c in self._columns if c not in X.columns]
        if missing:
            raise ModelInputError(
                f"Model {self.ref} needs columns {', '.join(missing)}, which the input lacks",
                missing=missing,
                hint=f"Its signature's columns are: {', '.join(self._columns)}",
            )
        if list(X.columns) == self._columns:
            return X
        return X[self._columns]

    def _inputs(self, X: Any) -> Any:
        frame = self.prepare(X)
        return frame.to_numpy() if self._positional else frame

    def predict(self, X: Any) -> Any:
        return self.model.predict(self._inputs(X))

    def predict_proba(self, X: Any) -> Any:
        if not hasattr(self.model, "predict_proba") or not self.is_classifier:
            raise RegistryArgumentError(
                f"Model {self.ref} is not a classifier; it has no predict_proba",
                hint="Use predict()",
                argument="method",
                value="predict_proba",
            )
        return self.model.predict_proba(self._inputs(X))

    # -- the ONNX path ---------------------------------------------------------------------

    @property
    def has_onnx(self) -> bool:
        return self._onnx_bytes is not None

    def onnx_session(self, *, intra_op_num_threads: int | None = None) -> OnnxModel | None:
        """The package's ONNX model on onnxruntime, or None when the package has none.

        Created on first call and kept. Raises FlavorUnavailableError when the package has
        an ONNX file but onnxruntime is not installed.
        """
        if self._onnx_bytes is None:
            return None
        if self._onnx is None:
            from loopline.registry.flavors import require

            require("onnxruntime", "onnx", self.ref)
            self._onnx = OnnxModel(
                self._onnx_bytes,
                self.manifest.onnx or {},
                classes=self.signature.output.classes,
                intra_op_num_threads=intra_op_num_threads,
            )
        return self._onnx

    def fast(self) -> LoadedModel | _OnnxPredictor:
        """The quickest predictor with this model's interface: ONNX if usable, else self."""
        from loopline.registry.errors import FlavorUnavailableError

        try:
            session = self.onnx_session()
        except FlavorUnavailableError:
            return self
        return self if session is None else _OnnxPredictor(self, session)


class _OnnxPredictor:
    """``predict``/``predict_proba`` of a LoadedModel through its ONNX session."""

    def __init__(self, loaded: LoadedModel, session: OnnxModel) -> None:
        self.loaded = loaded
        self.session = session
        self.signature = loaded.signature
        self.classes_ = loaded.classes_

    def predict(self, X: Any) -> Any:
        return self.session.predict(self.loaded.prepare(X))

    def predict_proba(self, X: Any) -> Any:
        return self.session.predict_proba(self.loaded.prepare(X))
