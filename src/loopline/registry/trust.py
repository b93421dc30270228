"""Which types a skops file may hold: skops' own defaults plus an exact allow-list.

skops refuses, by default, every type it does not know to be safe to rebuild; loading a
file then needs ``trusted=[...]``. Trusting by module prefix (``numpy.``, ``sklearn.``)
is not safe: skops calls some of the types it rebuilds (reduce, partial and type nodes),
and those packages hold callables that run code, ``numpy.testing``'s ``runstring`` (an
``exec``), ``numpy.f2py`` (a compiler driver) and ``sklearn.utils._testing``'s script
runners among them. So the trust here is a set of exact ``module.name`` strings: the
helper types that fitted scikit-learn, numpy and scipy estimators actually hold (found by
fitting every estimator ``sklearn.utils.all_estimators()`` lists and asking skops which
types it leaves untrusted), each of them a data holder or a pure function.

The same check runs when a model is registered and when it is loaded, so a package that
could never load is never written, and a package edited after registration is refused
before skops builds anything from it.
"""

from __future__ import annotations

from collections.abc import Iterable

#: Types beyond skops' defaults that a skops file may hold. Exact names only: adding a
#: name here means reviewing that calling it (with any arguments) cannot run code.
TRUSTED_TYPES: frozenset[str] = frozenset(
    {
        # numpy: dtypes and the reductions used as pooling functions.
        "numpy.dtype",
        "numpy.mean",
        "numpy.median",
        "numpy.max",
        "numpy.min",
        "numpy.sum",
        # scipy: sparse matrices and arrays, splines, the array-API shim sklearn stores.
        "scipy.sparse._csr.csr_matrix",
        "scipy.sparse._csc.csc_matrix",
        "scipy.sparse._coo.coo_matrix",
        "scipy.sparse._csr.csr_array",
        "scipy.sparse._csc.csc_array",
        "scipy.sparse._coo.coo_array",
        "scipy.interpolate._bsplines.BSpline",
        "scipy._lib.array_api_compat.numpy._aliases.asarray",
        # functools.partial rebuilds a partial of a callable that must itself be trusted
        # (skops reports the wrapped callable too); constructing one calls nothing.
        "functools.partial",
        # scikit-learn: fitted trees, tree predictors and the binary trees of neighbours.
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.neighbors._ball_tree.BallTree",
        "sklearn.cluster._bisect_k_means._BisectingTree",
        # scikit-learn: calibration wrappers.
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
        "sklearn.calibration._TemperatureScaling",
        # scikit-learn: losses of the linear and boosting models.
        "sklearn._loss.loss.AbsoluteError",
        "sklearn._loss.loss.ExponentialLoss",
        "sklearn._loss.loss.HalfBinomialLoss",
        "sklearn._loss.loss.HalfGammaLoss",
        "sklearn._loss.loss.HalfMultinomialLoss",
        "sklearn._loss.loss.HalfPoissonLoss",
        "sklearn._loss.loss.HalfSquaredError",
        "sklearn._loss.loss.HalfTweedieLoss",
        "sklearn._loss.loss.HalfTweedieLossIdentity",
        "sklearn._loss.loss.HuberLoss",
        "sklearn._loss.loss.PinballLoss",
        "sklearn._loss.link.IdentityLink",
        "sklearn._loss.link.LogLink",
        "sklearn._loss.link.LogitLink",
        "sklearn._loss.link.MultinomialLogit",
        "sklearn._loss.link.Interval",
        # scikit-learn: Gaussian-process kernels and the binary classifier of GPC.
        "sklearn.gaussian_process._gpc._BinaryGaussianProcessClassifierLaplace",
        "sklearn.gaussian_process.kernels.ConstantKernel",
        "sklearn.gaussian_process.kernels.DotProduct",
        "sklearn.gaussian_process.kernels.ExpSineSquared",
        "sklearn.gaussian_process.kernels.Exponentiation",
        "sklearn.gaussian_process.kernels.Hyperparameter",
        "sklearn.gaussian_process.kernels.Matern",
        "sklearn.gaussian_process.kernels.PairwiseKernel",
        "sklearn.gaussian_process.kernels.Product",
        "sklearn.gaussian_process.kernels.RBF",
        "sklearn.gaussian_process.kernels.RationalQuadratic",
        "sklearn.gaussian_process.kernels.Sum",
        "sklearn.gaussian_process.kernels.WhiteKernel",
        # scikit-learn: distance metrics held by neighbour models.
        *(
            f"sklearn.metrics._dist_metrics.{metric}{bits}"
            for metric in (
                "EuclideanDistance",
                "SEuclideanDistance",
                "ManhattanDistance",
                "ChebyshevDistance",
                "MinkowskiDistance",
                "MahalanobisDistance",
                "HammingDistance",
                "CanberraDistance",
                "BrayCurtisDistance",
                "JaccardDistance",
                "HaversineDistance",
            )
            for bits in ("64", "32")
        ),
        # scikit-learn: the optimizers of the neural networks.
        "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
        "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
        # scikit-learn: pure functions stored as parameters (score functions, validators).
        "sklearn.feature_selection._univariate_selection.f_classif",
        "sklearn.feature_selection._univariate_selection.f_regression",
        "sklearn.feature_selection._univariate_selection.chi2",
        "sklearn.feature_selection._univariate_selection.r_regression",
        "sklearn.feature_selection._mutual_info.mutual_info_classif",
        "sklearn.feature_selection._mutual_info.mutual_info_regression",
        "sklearn.cluster._kmeans._kmeans_single_lloyd",
        "sklearn.cluster._kmeans._kmeans_single_elkan",
        "sklearn.utils.validation.check_array",
    }
)

#: Prefixes that no trusted name may ever start with: a test checks the list against them,
#: so a careless addition fails before it ships.
FORBIDDEN_PREFIXES: tuple[str, ...] = (
    "builtins.",
    "os.",
    "posix.",
    "nt.",
    "subprocess.",
    "importlib.",
    "sys.",
    "shutil.",
    "pickle.",
    "marshal.",
    "runpy.",
    "code.",
    "ctypes.",
    "socket.",
    "operator.",
    "numpy.testing.",
    "numpy.f2py.",
    "numpy.distutils.",
    "numpy.lib.utils.",
    "numpy.ctypeslib.",
    "sklearn.utils._testing.",
    "sklearn.datasets.",
    "sklearn.externals.",
    "scipy._lib._testutils.",
)


def refused(types: Iterable[str]) -> list[str]:
    """The names among ``types`` (what skops leaves untrusted) that are not allowed."""
    return sorted({t for t in types if t not in TRUSTED_TYPES})
