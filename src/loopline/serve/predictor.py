"""The inference path of a served model: ONNX Runtime when the package has a verified ONNX
export, the native model otherwise. Both take canonical column arrays (from
:mod:`loopline.registry.validation`) for a whole micro-batch.

The ONNX path feeds the arrays straight to onnxruntime: no DataFrame is built. It is used
only if, at load, it agrees with the native model on synthetic rows drawn from the
signature (within the tolerance the registry checked at export); otherwise the server
falls back to the native model and says why (``/admin/status``, the log).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from loopline.registry.onnx_runtime import column_feeds

if TYPE_CHECKING:
    from loopline.registry import LoadedModel

log = logging.getLogger("loopline.serve")

Array = Any
DEFAULT_TOLERANCE = 1e-5


@dataclass
class Outputs:
    """What one model call returns: predictions, and class probabilities for classifiers."""

    predictions: Array
    probabilities: Array | None = None


class Predictor(Protocol):
    #: "onnx" or "native".
    path: str

    def predict(self, columns: Mapping[str, Array], n_rows: int) -> Outputs: ...


class NativePredictor:
    """The native model on one DataFrame per batch."""

    path = "native"

    def __init__(self, loaded: LoadedModel) -> None:
        import numpy as np

        self.loaded = loaded
        self.model = loaded.model
        self.signature = loaded.signature
        self.classifier = loaded.is_classifier and hasattr(self.model, "predict_proba")
        classes = loaded.classes_
        self.classes = None if classes is None else np.asarray(classes)
        self.argmax = self.classifier and _predict_is_argmax(self.model)

    def predict(self, columns: Mapping[str, Array], n_rows: int) -> Outputs:
        import numpy as np

        from loopline.registry.validation import to_frame

        frame = to_frame(self.signature, columns)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if not self.classifier:
                return Outputs(np.asarray(self.model.predict(frame)))
            proba = np.asarray(self.model.predict_proba(frame))
            if self.argmax and self.classes is not None:
                labels = self.classes.take(proba.argmax(axis=1))
            else:
                labels = np.asarray(self.model.predict(frame))
        return Outputs(labels, proba)


class OnnxPredictor:
    """The package's ONNX export on onnxruntime, fed from column arrays."""

    path = "onnx"

    def __init__(self, loaded: LoadedModel, session: Any) -> None:
        self.loaded = loaded
        self.session = session.session
        self.inputs: list[tuple[str, str]] = [(i["name"], i["type"]) for i in session.inputs]
        self.classifier = loaded.is_classifier
        outputs = self.session.get_outputs()
        self.has_proba = len(outputs) > 1

    def feeds(self, columns: Mapping[str, Array]) -> dict[str, Array]:
        return column_feeds(self.inputs, columns)

    def predict(self, columns: Mapping[str, Array], n_rows: int) -> Outputs:
        import numpy as np

        result = self.session.run(None, self.feeds(columns))
        labels = np.asarray(result[0]).reshape(n_rows, -1)
        labels = labels[:, 0] if labels.shape[1] == 1 else labels
        if self.classifier and self.has_proba:
            return Outputs(labels, np.asarray(result[1]))
        return Outputs(labels)


@dataclass
class PathChoice:
    predictor: NativePredictor | OnnxPredictor
    reason: str


def build_predictor(loaded: LoadedModel, *, threads: int | None = None) -> PathChoice:
    """The fastest path that agrees with the native model, and why it was chosen."""
    native = NativePredictor(loaded)
    if not loaded.has_onnx:
        info = loaded.manifest.onnx or {}
        why = info.get("reason") or "the package has no ONNX export"
        return PathChoice(native, f"native: {why}")
    try:
        session = loaded.onnx_session(intra_op_num_threads=threads)
    except Exception as exc:  # onnxruntime missing or the file does not load
        return PathChoice(native, f"native: ONNX unavailable ({exc})")
    if session is None:
        return PathChoice(native, "native: the package has no ONNX export")
    onnx = OnnxPredictor(loaded, session)
    tolerance = float((loaded.manifest.onnx or {}).get("tolerance") or DEFAULT_TOLERANCE)
    verdict = parity(native, onnx, loaded, tolerance)
    if verdict is not None:
        log.warning("model %s: serving the native model: %s", loaded.ref, verdict)
        return PathChoice(native, f"native: {verdict}")
    return PathChoice(onnx, f"onnx: agrees with the native model within {tolerance:g}")


def parity(
    native: NativePredictor, onnx: OnnxPredictor, loaded: LoadedModel, tolerance: float
) -> str | None:
    """None when both paths agree on synthetic rows; otherwise what differs."""
    import numpy as np

    from loopline.registry.validation import sample_rows

    rows = sample_rows(loaded.signature, n=64, seed=1)
    try:
        expected = native.predict(rows, 64)
    except Exception as exc:
        # The native model cannot run on synthetic rows (a domain they miss): rely on the
        # parity check the registry made at export on real rows.
        log.info("model %s: no load-time parity check (%s)", loaded.ref, exc)
        try:
            onnx.predict(rows, 64)
        except Exception as onnx_exc:
            return f"the ONNX model fails on sample rows ({onnx_exc})"
        return None
    try:
        got = onnx.predict(rows, 64)
    except Exception as exc:
        return f"the ONNX model fails on sample rows ({exc})"
    if expected.probabilities is not None:
        if got.probabilities is None:
            return "the ONNX model gives no probabilities"
        a = np.asarray(expected.probabilities, dtype=np.float64)
        b = np.asarray(got.probabilities, dtype=np.float64)
        if a.shape != b.shape:
            return f"probability shapes differ ({a.shape} vs {b.shape})"
        diff = float(np.max(np.abs(a - b))) if a.size else 0.0
        if not diff <= tolerance:
            return f"probabilities differ by {diff:.3g} > {tolerance:g} on sample rows"
        return None
    a = np.asarray(expected.predictions)
    b = np.asarray(got.predictions)
    if a.shape != b.shape:
        return f"prediction shapes differ ({a.shape} vs {b.shape})"
    if a.dtype.kind in "fiu" and b.dtype.kind in "fiu":
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        scale = np.maximum(1.0, np.abs(a64))
        diff = float(np.max(np.abs(a64 - b64) / scale)) if a.size else 0.0
        if not diff <= tolerance:
            return f"predictions differ by {diff:.3g} > {tolerance:g} on sample rows"
        return None
    if not np.array_equal(a.astype(str), b.astype(str)):
        return "predictions differ on sample rows"
    return None


def _predict_is_argmax(model: Any) -> bool:
    """Whether ``predict`` is exactly ``classes_[argmax(predict_proba)]`` for this model.

    True for scikit-learn's forests and trees (their ``predict`` is defined that way), also
    at the end of a pipeline (both methods run the same transforms first), so one call gives
    both outputs; other models get both calls.
    """
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    try:
        from sklearn.ensemble._forest import ForestClassifier
        from sklearn.tree import BaseDecisionTree
    except ImportError:
        return False
    return isinstance(final, ForestClassifier) or (
        isinstance(final, BaseDecisionTree) and hasattr(final, "predict_proba")
    )
