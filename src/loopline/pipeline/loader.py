"""Finding a pipeline: in a Python file (``path/to/file.py`` or ``path/to/file.py:name``),
or among the examples shipped with loopline (``example:credit_risk``)."""

from __future__ import annotations

import importlib.util
import shlex
import sys
from pathlib import Path

from loopline.config import did_you_mean
from loopline.execute.base import USER_MODULE_PREFIX, register_user_code
from loopline.pipeline.errors import PipelineLoadError
from loopline.pipeline.graph import Pipeline

#: ``example:NAME`` names the pipeline of the shipped example package ``NAME``.
EXAMPLE_PREFIX = "example:"
EXAMPLES_PACKAGE = "loopline.examples"


def shipped_examples() -> dict[str, Path]:
    """Name -> pipeline file of each example shipped with loopline."""
    from importlib import resources

    root = resources.files(EXAMPLES_PACKAGE)
    found: dict[str, Path] = {}
    for entry in root.iterdir():
        pipeline = entry / "pipeline.py"
        if entry.is_dir() and pipeline.is_file():
            found[entry.name] = Path(str(pipeline))
    return dict(sorted(found.items()))


def split_target(target: str) -> tuple[Path, str | None]:
    """``file.py:name`` -> (file.py, name); ``file.py`` -> (file.py, None);
    ``example:NAME`` -> (the shipped example's pipeline file, None)."""
    if target.startswith(EXAMPLE_PREFIX):
        name = target[len(EXAMPLE_PREFIX) :]
        examples = shipped_examples()
        if name not in examples:
            first = next(iter(examples), "NAME")
            raise PipelineLoadError(
                f"No shipped example {name!r}{did_you_mean(name, examples)}; the examples "
                f"are {', '.join(examples) or 'none'}",
                hint=f"Run one with: loopline run {EXAMPLE_PREFIX}{first}",
            )
        return examples[name], None
    path, sep, name = target.rpartition(":")
    if sep and path.endswith(".py") and name:
        return Path(path), name
    return Path(target), None


def load_pipeline(target: str) -> tuple[Pipeline, Path]:
    """Import the file and return the pipeline it defines (and the file's path).

    With ``:name``, the attribute of that name or the pipeline whose ``name`` it is;
    without, the file must define exactly one ``Pipeline``.
    """
    path, name = split_target(target)
    path = path.expanduser().resolve()
    if not path.is_file():
        examples = ", ".join(f"{EXAMPLE_PREFIX}{n}" for n in shipped_examples())
        raise PipelineLoadError(
            f"No pipeline file at {path}",
            hint="Pass the path of a .py file that defines a Pipeline"
            + (f", or a shipped example: {examples}" if examples else ""),
        )
    module_name = f"{USER_MODULE_PREFIX}{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise PipelineLoadError(f"{path} is not an importable Python file")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.parent)
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)  # so the pipeline can import its sibling modules
    sys.modules[module_name] = module
    register_user_code(path.parent)  # an executor elsewhere gets this code by value
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise PipelineLoadError(
            f"Importing {path} failed: {type(exc).__name__}: {exc}",
            hint=f"Run it with python {path} to see the full traceback",
        ) from exc
    found = {attr: value for attr, value in vars(module).items() if isinstance(value, Pipeline)}
    if name is not None:
        if name in found:
            return found[name], path
        by_name = [p for p in found.values() if p.name == name]
        if len(by_name) == 1:
            return by_name[0], path
        names = sorted({*found, *(p.name for p in found.values())})
        raise PipelineLoadError(
            f"{path} defines no pipeline {name!r}{did_you_mean(name, names)}; it defines: "
            f"{', '.join(sorted(found)) or 'none'}"
        )
    if len(found) == 1:
        return next(iter(found.values())), path
    if not found:
        raise PipelineLoadError(
            f"{path} defines no Pipeline",
            hint="Define one, e.g. pipeline = Pipeline('name', [step_a, step_b])",
        )
    raise PipelineLoadError(
        f"{path} defines several pipelines ({', '.join(sorted(found))})",
        hint=f"Choose one with: loopline run {shlex.quote(str(path))}:NAME",
    )
