"""A pipeline: steps composed explicitly, checked once, ordered topologically.

Composition is a list: ``Pipeline("churn", [ingest, validate, split, train])``. Wiring is
by parameter name (see :mod:`loopline.pipeline.steps`), so reading a step's signature
tells what it depends on. Mistakes are caught when the pipeline is built, not halfway
through a run: unknown inputs, cycles, duplicate names, a parameter that two steps
declare with different defaults.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from loopline.config import closest, did_you_mean
from loopline.pipeline.errors import PipelineDefinitionError, PipelineParamError
from loopline.pipeline.steps import Param, Step, step


@dataclass(frozen=True)
class Edge:
    """``step``'s parameter ``param`` receives the output of ``source``."""

    source: str
    step: str
    param: str


class Pipeline:
    """Named steps and the edges between them."""

    def __init__(self, name: str, steps: Iterable[Step | Callable[..., Any]]) -> None:
        if not name or not name.replace("_", "").replace("-", "").replace(".", "").isalnum():
            raise PipelineDefinitionError(
                f"Pipeline name {name!r} is not valid; use letters, digits, '-', '_' or '.'"
            )
        self.name = name
        self.steps: dict[str, Step] = {}
        for s in steps:
            st = s if isinstance(s, Step) else step(s)
            if st.name in self.steps:
                raise PipelineDefinitionError(
                    f"Pipeline {name!r} has two steps named {st.name!r}; "
                    "rename one with @step(name=...)"
                )
            self.steps[st.name] = st
        if not self.steps:
            raise PipelineDefinitionError(f"Pipeline {name!r} has no steps")
        self.edges: list[Edge] = []
        self.params: dict[str, Param] = {}
        self._wire()
        self.order = self._topological_order()

    def _wire(self) -> None:
        for st in self.steps.values():
            for p in st.parameters():
                source = st.inputs.get(p.name)
                if source is not None:
                    if source not in self.steps:
                        raise PipelineDefinitionError(
                            f"Step {st.name!r} takes {p.name!r} from step {source!r}, which is "
                            f"not in pipeline {self.name!r} (steps: {', '.join(self.steps)})"
                        )
                    self.edges.append(Edge(source, st.name, p.name))
                elif p.name in self.steps and p.name != st.name:
                    self.edges.append(Edge(p.name, st.name, p.name))
                else:
                    self._add_param(st, p)

    def _add_param(self, st: Step, p: Param) -> None:
        known = self.params.get(p.name)
        if known is None:
            self.params[p.name] = p
            return
        if known.required and not p.required:
            self.params[p.name] = p
        elif not known.required and not p.required and _canon(known.default) != _canon(p.default):
            raise PipelineDefinitionError(
                f"Parameter {p.name!r} has default {p.default!r} in step {st.name!r} but "
                f"{known.default!r} in another step; give it one default, or different names"
            )

    def _topological_order(self) -> list[str]:
        deps = {n: set() for n in self.steps}  # type: dict[str, set[str]]
        for e in self.edges:
            deps[e.step].add(e.source)
        order: list[str] = []
        state: dict[str, int] = {}

        def visit(node: str, path: list[str]) -> None:
            if state.get(node) == 2:
                return
            if state.get(node) == 1:
                cycle = [*path[path.index(node) :], node]
                raise PipelineDefinitionError(
                    f"Pipeline {self.name!r} has a cycle: {' -> '.join(cycle)}"
                )
            state[node] = 1
            for d in sorted(deps[node]):
                visit(d, [*path, node])
            state[node] = 2
            order.append(node)

        for n in self.steps:  # declaration order breaks ties
            visit(n, [])
        return order

    def upstream(self, name: str) -> list[Edge]:
        return [e for e in self.edges if e.step == name]

    def downstream(self, name: str) -> set[str]:
        """Every step that depends on ``name``, directly or not."""
        out: set[str] = set()
        frontier = [name]
        while frontier:
            cur = frontier.pop()
            for e in self.edges:
                if e.source == cur and e.step not in out:
                    out.add(e.step)
                    frontier.append(e.step)
        return out

    def resolve_params(self, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Defaults overridden by ``given``, coerced to annotated types; errors name the step."""
        given = dict(given or {})
        unknown = sorted(set(given) - set(self.params))
        if unknown:
            raise PipelineParamError(
                f"Pipeline {self.name!r} has no parameter {unknown[0]!r}"
                f"{did_you_mean(unknown[0], self.params)}; "
                f"its parameters are {', '.join(sorted(self.params)) or 'none'}"
            )
        out: dict[str, Any] = {}
        for name, p in sorted(self.params.items()):
            if name in given:
                out[name] = coerce_param(self.name, p, given[name])
            elif p.required:
                users = [
                    s.name
                    for s in self.steps.values()
                    if any(q.name == name for q in s.parameters())
                ]
                step_name = closest(name, self.steps)
                if step_name is not None:
                    # Most likely a misspelt input: a parameter named like a step gets its
                    # output; any other name is a pipeline parameter.
                    raise PipelineParamError(
                        f"Pipeline {self.name!r}: step {', '.join(users)} takes {name!r}, which "
                        f"is no step's name (did you mean step {step_name!r}?) and so a "
                        "pipeline parameter without a default",
                        hint=f"Rename the parameter to {step_name!r} to receive that step's "
                        f"output, or pass a value with: -p {name}=VALUE",
                    )
                raise PipelineParamError(
                    f"Pipeline {self.name!r} needs parameter {name!r} (used by step "
                    f"{', '.join(users)}), which has no default",
                    hint=f"Pass it with: -p {name}=VALUE",
                )
            else:
                out[name] = p.default
            _canon(out[name], name=name)  # parameters must be JSON-representable
        return out

    def describe(self) -> list[dict[str, Any]]:
        return [
            {
                "step": n,
                "inputs": {e.param: e.source for e in self.upstream(n)},
                "params": [p.name for p in self.steps[n].parameters() if p.name in self.params],
                "retries": self.steps[n].retries,
                "cache": self.steps[n].cache,
            }
            for n in self.order
        ]

    def __repr__(self) -> str:
        return f"Pipeline({self.name!r}, steps={self.order})"


def coerce_param(pipeline: str, p: Param, value: Any) -> Any:
    """Turn a ``-p`` value (a string from the CLI, or a Python value) into the annotated type."""
    ann = p.annotation
    if isinstance(ann, str):
        ann = {"int": int, "float": float, "bool": bool, "str": str}.get(ann)
    if ann in (int, float, bool, str) and isinstance(value, str):
        try:
            if ann is bool:
                low = value.strip().lower()
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return ann(value)
        except ValueError:
            raise PipelineParamError(
                f"Parameter {p.name!r} of pipeline {pipeline!r} expects {ann.__name__}, "
                f"got {value!r}"
            ) from None
    if ann is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and (ann is None or ann is Any or ann is inspect.Parameter.empty):
        return _parse_loose(value)
    return value


def _parse_loose(value: str) -> Any:
    """Unannotated CLI values: JSON when it parses (numbers, lists, booleans), else text."""
    try:
        return json.loads(value)
    except ValueError:
        return value


def _canon(value: Any, name: str = "") -> str:
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        raise PipelineParamError(
            f"Parameter {name or '?'!r} has value {value!r}, which is not JSON-representable; "
            "parameters must be numbers, strings, booleans, lists or dicts of those"
        ) from None
