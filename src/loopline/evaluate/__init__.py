"""Model evaluation and gates.

Metrics (classification and regression), per-slice metrics, confusion matrix,
calibration, decision thresholds, a JSON and a self-contained HTML report per
evaluation, and gates: declarative criteria (``f1 >= 0.8``,
``roc_auc >= champion.roc_auc - 0.005``, ``data.valid``) with a verdict and a reason for
each. No tables of its own: evaluations are stored as run artifacts and metrics.

    from loopline.evaluate import evaluate, evaluate_gates

    evaluation = evaluate(model, X_test, y_test, slices=["plan", ("tenure", 4)])
    verdict = evaluate_gates(["f1 >= 0.8", "roc_auc >= champion.roc_auc - 0.005"],
                             evaluation, champion=champion_evaluation)

Importing this package is cheap: numpy, pandas and scikit-learn are imported by the
functions that use them.
"""

from loopline.evaluate.evaluation import (
    Evaluation,
    RunLike,
    evaluate,
    evaluate_predictions,
)
from loopline.evaluate.gates import (
    CriterionResult,
    Gate,
    GateSet,
    Verdict,
    evaluate_gates,
)
from loopline.evaluate.results import (
    Calibration,
    CalibrationBin,
    ConfusionMatrix,
    Curve,
    Residuals,
    SliceResult,
    ThresholdChoice,
)
from loopline.evaluate.threshold import select_threshold

__all__ = [
    "Calibration",
    "CalibrationBin",
    "ConfusionMatrix",
    "CriterionResult",
    "Curve",
    "Evaluation",
    "Gate",
    "GateSet",
    "Residuals",
    "RunLike",
    "SliceResult",
    "ThresholdChoice",
    "Verdict",
    "evaluate",
    "evaluate_gates",
    "evaluate_predictions",
    "select_threshold",
]
