"""How a batch job runs its model on a chunk: ONNX Runtime on the package's export when the
registry kept one, the native model otherwise; one model call per chunk either way.

:func:`load_for_batch` loads a version for scoring. When its package has an ONNX export
(kept at registration because it agreed with the native model within the registry's
tolerance, see :mod:`loopline.registry.onnx_export`) and onnxruntime is installed, only
that file is read and verified against the manifest: the native model is not
deserialized, so scikit-learn is never imported. Otherwise the whole package is loaded
(:meth:`~loopline.registry.Registry.load`). Either way a file that does not match its
digest is refused (PackageIntegrityError).

:func:`chunk_model` gives the scorer of a loaded version; ``outputs(columns, n)`` returns
``prediction`` and, for classifiers, ``proba.<class>`` (float64). For classifiers whose
``predict`` is the most probable class (forests, trees, boosted trees, logistic
regression: :func:`predicts_argmax`), the class is read off the probabilities; other
classifiers take the label the same call returns (ONNX) or a ``predict`` call (native).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from loopline.registry.onnx_runtime import column_feeds

if TYPE_CHECKING:
    from loopline.registry import LoadedModel
    from loopline.store.stores import Stores

log = logging.getLogger("loopline.trigger.scoring")

Array = Any
PREDICTION = "prediction"
PROBA_PREFIX = "proba."

#: Classifiers whose predict() is the class of highest predict_proba() (a softmax or a
#: vote share read off one pass), by class name; the last step of a pipeline counts.
ARGMAX_CLASSIFIERS = frozenset(
    {
        "LogisticRegression",
        "RandomForestClassifier",
        "ExtraTreesClassifier",
        "DecisionTreeClassifier",
        "GradientBoostingClassifier",
        "HistGradientBoostingClassifier",
        "LGBMClassifier",
        "XGBClassifier",
    }
)


def predicts_argmax(model: Any) -> bool:
    """Whether ``model`` (or a pipeline's last step) predicts the most probable class."""
    steps = getattr(model, "steps", None)
    final = steps[-1][1] if isinstance(steps, list) and steps else model
    return type(final).__name__ in ARGMAX_CLASSIFIERS


class ChunkModel(Protocol):
    #: ``"onnx"`` or ``"native"``.
    path: str

    def outputs(self, columns: Mapping[str, Array], n_rows: int) -> dict[str, Array]: ...


def onnx_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def load_for_batch(stores: Stores, ref: str, *, native: bool = False) -> LoadedModel:
    """The version ``ref`` ready for :func:`chunk_model`: its ONNX export alone when it
    has one (and ``native`` is False), else the whole package."""
    from loopline.registry import LoadedModel, Registry
    from loopline.registry.errors import PackageIntegrityError
    from loopline.registry.onnx_runtime import ONNX_FILE
    from loopline.registry.package import MANIFEST_FILE, read_files, read_manifest

    registry = Registry(stores)
    mv = registry.resolve(ref)
    if native or not onnx_available():
        return registry.load(mv)
    manifest = read_manifest(stores.cas, mv.manifest_digest, mv.ref)
    if not manifest.has_onnx or ONNX_FILE not in manifest.files:
        return registry.load(mv)
    if manifest.flavor != mv.flavor:
        raise PackageIntegrityError(
            mv.ref, MANIFEST_FILE, f"flavor {mv.flavor}", f"flavor {manifest.flavor}"
        )
    onnx = read_files(stores.cas, manifest, [ONNX_FILE])[ONNX_FILE]
    loaded = LoadedModel(mv, manifest, None, onnx)
    try:
        loaded.onnx_session(intra_op_num_threads=1)
    except Exception as exc:  # an export this onnxruntime cannot run: the native model
        log.warning("model %s: scoring natively, the ONNX export does not load (%s)", mv.ref, exc)
        return registry.load(mv)
    return loaded


def chunk_model(loaded: LoadedModel, *, native: bool = False) -> ChunkModel:
    """The ONNX scorer when ``loaded`` has an export (and ``native`` is False), else the
    native one. A version loaded without its native model must have the export."""
    if loaded.model is None or (loaded.has_onnx and not native and onnx_available()):
        session = loaded.onnx_session(intra_op_num_threads=1)
        if session is not None:
            return OnnxChunkModel(loaded, session)
    return NativeChunkModel(loaded)


class NativeChunkModel:
    """The native model on one DataFrame per chunk."""

    path = "native"

    def __init__(self, loaded: LoadedModel) -> None:
        import numpy as np

        self.loaded = loaded
        self.signature = loaded.signature
        self.classifier = loaded.is_classifier and hasattr(loaded.model, "predict_proba")
        classes = loaded.classes_ if self.classifier else None
        self.classes = None if classes is None else np.asarray(classes)
        #: The class is the most probable one for the estimators known to predict that
        #: way, checked against predict() on the first chunk (None: not checked yet).
        self._argmax: bool | None = None if predicts_argmax(loaded.model) else False

    def outputs(self, columns: Mapping[str, Array], n_rows: int) -> dict[str, Array]:
        import numpy as np

        from loopline.registry.validation import to_frame

        frame = to_frame(self.signature, dict(columns))
        out: dict[str, Array] = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if self.classes is None:
                out[PREDICTION] = np.asarray(self.loaded.predict(frame))
                return out
            proba = np.asarray(self.loaded.predict_proba(frame), dtype=np.float64)
            if self._argmax is False:
                out[PREDICTION] = np.asarray(self.loaded.predict(frame))
            else:
                picked = self.classes[np.argmax(proba, axis=1)]
                if self._argmax is None:
                    predicted = np.asarray(self.loaded.predict(frame))
                    self._argmax = bool(np.array_equal(predicted, picked))
                    picked = predicted
                out[PREDICTION] = picked
        for i, label in enumerate(self.classes.tolist()):
            out[f"{PROBA_PREFIX}{label}"] = proba[:, i]
        return out


class OnnxChunkModel:
    """The package's ONNX export on onnxruntime, fed straight from the column arrays (no
    DataFrame). onnxruntime releases the GIL, so chunks scored in threads run at once."""

    path = "onnx"

    def __init__(self, loaded: LoadedModel, session: Any) -> None:
        import numpy as np

        self.loaded = loaded
        self.session = session.session  # fed by column name
        self.inputs: list[tuple[str, str]] = [(i["name"], i["type"]) for i in session.inputs]
        names = list(session.output_names)
        self.label_output = names[0]
        self.proba_output = names[1] if len(names) > 1 else None
        classes = loaded.classes_ if loaded.is_classifier else None
        self.classes = None if classes is None else np.asarray(classes)
        final = (loaded.manifest.model_class or "").rpartition(".")[2]
        # A pipeline's last step is not in the manifest: take the graph's own label.
        self.argmax = self.classes is not None and final in ARGMAX_CLASSIFIERS

    def feeds(self, columns: Mapping[str, Array]) -> dict[str, Array]:
        return column_feeds(self.inputs, columns)

    def outputs(self, columns: Mapping[str, Array], n_rows: int) -> dict[str, Array]:
        import numpy as np

        feeds = self.feeds(columns)
        out: dict[str, Array] = {}
        if self.classes is None or self.proba_output is None:
            result = self.session.run([self.label_output], feeds)
            values = np.asarray(result[0]).reshape(n_rows, -1)
            out[PREDICTION] = values[:, 0] if values.shape[1] == 1 else values
            return out
        if self.argmax:
            (proba,) = self.session.run([self.proba_output], feeds)
            proba = np.asarray(proba, dtype=np.float64)
            out[PREDICTION] = self.classes[np.argmax(proba, axis=1)]
        else:
            labels, proba = self.session.run([self.label_output, self.proba_output], feeds)
            proba = np.asarray(proba, dtype=np.float64)
            out[PREDICTION] = self.classes[_positions(self.classes, np.asarray(labels))]
        for i, label in enumerate(self.classes.tolist()):
            out[f"{PROBA_PREFIX}{label}"] = proba[:, i]
        return out


def _positions(classes: Array, labels: Array) -> Array:
    """Where each of ``labels`` is in ``classes`` (the graph's labels as the native
    model's class values and type)."""
    import numpy as np

    order = np.argsort(classes)
    keys = classes[order]
    if labels.dtype != keys.dtype:
        labels = labels.astype(keys.dtype)
    found = np.searchsorted(keys, labels)
    return order[np.clip(found, 0, len(keys) - 1)]
