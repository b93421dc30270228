"""The error tree: each layer's family in <layer>/errors.py, all drawn in loopline.errors,
and every error able to cross a process boundary with its payload."""

from __future__ import annotations

import importlib
import pickle
import pkgutil

import loopline
from loopline.errors import LooplineError


def _all_error_classes() -> list[type[LooplineError]]:
    found: dict[str, type[LooplineError]] = {}
    for info in pkgutil.walk_packages(loopline.__path__, "loopline."):
        if info.name.endswith(".errors") or info.name == "loopline.errors":
            module = importlib.import_module(info.name)
            for value in vars(module).values():
                if (
                    isinstance(value, type)
                    and issubclass(value, LooplineError)
                    and value.__module__ == module.__name__
                ):
                    found[value.__name__] = value
    return list(found.values())


def test_every_error_is_drawn_in_the_root_docstring_under_its_module() -> None:
    doc = loopline.errors.__doc__ or ""
    classes = _all_error_classes()
    assert len(classes) > 60
    for cls in classes:
        drawn = [ln.split() for ln in doc.splitlines() if ln.split()[:1] == [cls.__name__]]
        assert drawn, f"{cls.__name__} is missing from the tree in loopline/errors.py"
        layer = cls.__module__.removeprefix("loopline.")
        if layer != "errors":
            assert drawn[0][1] == layer, f"{cls.__name__} is drawn under the wrong layer"


def test_layers_do_not_define_errors_outside_their_errors_module() -> None:
    for info in pkgutil.walk_packages(loopline.__path__, "loopline."):
        if info.name.endswith(".errors") or ".migrations" in info.name:
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if isinstance(value, type) and issubclass(value, LooplineError):
                assert value.__module__.endswith("errors"), f"{info.name}.{name}"


def test_errors_pickle_with_their_payload() -> None:
    from loopline.data.errors import DatasetNotFoundError
    from loopline.evaluate.errors import EvaluationArgumentError
    from loopline.registry.errors import ConflictError, PackageIntegrityError
    from loopline.store.errors import BlobIntegrityError

    samples: list[LooplineError] = [
        DatasetNotFoundError("churn", ["chrun", "loans"]),
        BlobIntegrityError("cas/a/b", "e" * 64, "f" * 64, "/tmp/store"),
        PackageIntegrityError("m/1", "model.skops", "a" * 64, "b" * 64),
        ConflictError("Alias 'prod' of model 'm'", 2, 3),
        EvaluationArgumentError("bad", argument="threshold", value=1.5),
    ]
    for error in samples:
        back = pickle.loads(pickle.dumps(error))
        assert type(back) is type(error)
        assert str(back) == str(error)
        assert back.__dict__ == error.__dict__
