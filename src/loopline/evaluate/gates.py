"""Gates: declarative criteria a model must meet, and the verdict with a reason for each.

The gate language (parsed by hand here; nothing is ever ``eval``-ed)::

    criterion  := comparison | "data.valid"
    comparison := expr ( ">=" | ">" | "<=" | "<" | "==" | "!=" ) expr
    expr       := term ( ("+" | "-") term )*
    term       := unary ( ("*" | "/") unary )*
    unary      := ("-" | "+") unary | primary
    primary    := NUMBER | NAME | "(" expr ")"
    NAME       := identifier ( "." identifier )*      e.g. f1, champion.roc_auc

``name`` is a metric of the candidate, ``champion.name`` the same metric of the current
champion evaluated on the same holdout data, and ``data.valid`` says the evaluation data
passed validation. Examples: ``f1 >= 0.80``, ``log_loss < 0.5``,
``roc_auc >= champion.roc_auc - 0.005``, ``rmse <= champion.rmse * 1.05``.

Policies:

- no champion (the first model): a criterion that mentions ``champion.`` passes by
  default, and its reason says so (``if_no_champion="fail"`` makes it fail instead);
- a metric that is missing, or ``None`` (undefined on the data), fails the criterion
  with a reason naming it and the metrics available;
- comparisons are exact on floats; division by zero fails the criterion;
- an empty gate set passes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast

from loopline.evaluate.errors import (
    EvaluationArgumentError,
    EvaluationInputError,
    GateFailedError,
    GateSyntaxError,
)

if TYPE_CHECKING:
    from loopline.evaluate.evaluation import Evaluation

COMPARATORS = (">=", ">", "<=", "<", "==", "!=")
NEGATION = {">=": "<", ">": "<=", "<=": ">", "<": ">=", "==": "!=", "!=": "=="}
DATA_VALID = "data.valid"
CHAMPION = "champion"

_TOKEN = re.compile(
    r"\s*(?:"
    r"(?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)"
    r"|(?P<op>>=|<=|==|!=|>|<|\+|-|\*|/|\(|\))"
    r")"
)
_PRIMARY = "a number, a metric name or '('"
_COMPARATOR = "a comparison operator (>=, >, <=, <, ==, !=) or an arithmetic one (+, -, *, /)"


# -- syntax tree ----------------------------------------------------------------------


_Kind = Literal["number", "name", "op", "end"]


@dataclass(frozen=True)
class _Token:
    kind: _Kind
    text: str
    start: int
    end: int


@dataclass(frozen=True)
class _Node:
    """An expression: a number, a name, ``-x`` or ``x op y``; ``start:end`` in the text."""

    kind: Literal["number", "name", "neg", "binary"]
    start: int
    end: int
    value: float = 0.0
    name: str = ""
    op: str = ""
    children: tuple[_Node, ...] = ()

    def names(self) -> Iterator[str]:
        if self.kind == "name":
            yield self.name
        for child in self.children:
            yield from child.names()


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            tokens.append(_Token("end", "", pos, pos))
            return tokens
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            char = text[pos]
            if char == "=":
                raise GateSyntaxError(text, pos, "'==' (one '=' is not a comparison)", "'='")
            raise GateSyntaxError(
                text, pos, "a number, a metric name, an operator or a parenthesis", repr(char)
            )
        kind = match.lastgroup
        assert kind in ("number", "name", "op")
        start = match.start(kind)
        tokens.append(_Token(cast(_Kind, kind), match.group(kind), start, match.end()))
        pos = match.end()


def _found(token: _Token) -> str:
    return "the end of the criterion" if token.kind == "end" else repr(token.text)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0

    @property
    def token(self) -> _Token:
        return self.tokens[self.i]

    def error(self, expected: str) -> GateSyntaxError:
        return GateSyntaxError(self.text, self.token.start, expected, _found(self.token))

    def at_end(self) -> bool:
        return self.token.kind == "end"

    def take(self) -> _Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def expr(self) -> _Node:
        node = self.term()
        while self.token.kind == "op" and self.token.text in "+-":
            op = self.take().text
            right = self.term()
            node = _Node("binary", node.start, right.end, op=op, children=(node, right))
        return node

    def term(self) -> _Node:
        node = self.unary()
        while self.token.kind == "op" and self.token.text in "*/":
            op = self.take().text
            right = self.unary()
            node = _Node("binary", node.start, right.end, op=op, children=(node, right))
        return node

    def unary(self) -> _Node:
        if self.token.kind == "op" and self.token.text in ("-", "+"):
            sign = self.take()
            operand = self.unary()
            if sign.text == "+":
                return _Node(
                    operand.kind,
                    sign.start,
                    operand.end,
                    operand.value,
                    operand.name,
                    operand.op,
                    operand.children,
                )
            return _Node("neg", sign.start, operand.end, children=(operand,))
        return self.primary()

    def primary(self) -> _Node:
        token = self.token
        if token.kind == "number":
            self.take()
            return _Node("number", token.start, token.end, value=float(token.text))
        if token.kind == "name":
            if token.text == DATA_VALID:
                raise GateSyntaxError(
                    self.text,
                    token.start,
                    "a metric or a number ('data.valid' is a criterion on its own)",
                    repr(token.text),
                )
            if token.text == CHAMPION:
                raise GateSyntaxError(
                    self.text,
                    token.end,
                    "'.' and a metric name after 'champion' (as in champion.f1)",
                    _found(self.tokens[self.i + 1]),
                )
            self.take()
            return _Node("name", token.start, token.end, name=token.text)
        if token.kind == "op" and token.text == "(":
            self.take()
            node = self.expr()
            if not (self.token.kind == "op" and self.token.text == ")"):
                raise self.error("')' to close the '(' at position " + str(token.start))
            close = self.take()
            return _Node(
                node.kind, token.start, close.end, node.value, node.name, node.op, node.children
            )
        raise self.error(_PRIMARY)


# -- gates ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CriterionResult:
    """The outcome of one criterion: the values compared and a sentence saying why.

    ``by_default`` is true when the criterion passed (or failed) without a comparison:
    there was no champion to compare with.
    """

    criterion: str
    passed: bool
    left_value: float | None
    right_value: float | None
    reason: str
    by_default: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "criterion": self.criterion,
            "passed": self.passed,
            "left_value": self.left_value,
            "right_value": self.right_value,
            "reason": self.reason,
            "by_default": self.by_default,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CriterionResult:
        return cls(
            str(data["criterion"]),
            bool(data["passed"]),
            data.get("left_value"),
            data.get("right_value"),
            str(data["reason"]),
            bool(data.get("by_default", False)),
        )


@dataclass(frozen=True)
class Gate:
    """One parsed criterion: ``left comparator right``, or the data check ``data.valid``."""

    text: str
    comparator: str | None = None
    left: _Node | None = field(default=None, repr=False)
    right: _Node | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, text: str) -> Gate:
        """Parse one criterion; raises :class:`GateSyntaxError` naming position and
        what was expected."""
        if not isinstance(text, str):
            raise EvaluationArgumentError(
                f"a gate criterion must be a string, got {text!r}", argument="criterion", value=text
            )
        gate = cls._parse(text)
        # Positions in errors refer to the text as given; the gate keeps it stripped.
        return gate if text == text.strip() else cls._parse(text.strip())

    @classmethod
    def _parse(cls, text: str) -> Gate:
        parser = _Parser(text)
        first = parser.token
        if first.kind == "name" and first.text == DATA_VALID:
            parser.take()
            if not parser.at_end():
                raise parser.error("the end of the criterion after 'data.valid'")
            return cls(text, None)
        if first.kind == "end":
            raise GateSyntaxError(text, first.start, "a criterion such as 'f1 >= 0.8'", None)
        left = parser.expr()
        if not (parser.token.kind == "op" and parser.token.text in COMPARATORS):
            raise parser.error(_COMPARATOR)
        comparator = parser.take().text
        right = parser.expr()
        if not parser.at_end():
            expected = "the end of the criterion"
            if parser.token.kind == "op" and parser.token.text in COMPARATORS:
                expected += " (one comparison per criterion: write two criteria)"
            raise parser.error(expected)
        return cls(text, comparator, left, right)

    @property
    def is_data_check(self) -> bool:
        return self.comparator is None

    @property
    def metric_names(self) -> list[str]:
        """Every name the criterion reads (``champion.`` ones included)."""
        nodes = [n for n in (self.left, self.right) if n is not None]
        return list(dict.fromkeys(name for node in nodes for name in node.names()))

    @property
    def uses_champion(self) -> bool:
        return any(n.startswith(CHAMPION + ".") for n in self.metric_names)

    def check(
        self,
        metrics: Mapping[str, float | int | None] | Evaluation,
        champion: Mapping[str, float | int | None] | Evaluation | None = None,
        data_ok: Any = None,
        *,
        if_no_champion: Literal["pass", "fail"] = "pass",
    ) -> CriterionResult:
        """Evaluate this criterion against the candidate's (and champion's) metrics."""
        if if_no_champion not in ("pass", "fail"):
            raise EvaluationArgumentError(
                f"if_no_champion must be 'pass' or 'fail', got {if_no_champion!r}",
                argument="if_no_champion",
                value=if_no_champion,
            )
        if self.is_data_check:
            return _check_data(self.text, data_ok)
        assert self.left is not None
        assert self.right is not None
        assert self.comparator is not None
        values, notes = _metric_table(metrics)
        champion_values, champion_notes = _metric_table(champion)

        for name in self.metric_names:
            if not name.startswith(CHAMPION + "."):
                problem = _lookup_problem(name, values, notes, "")
                if problem:
                    return self._fail(f"{problem}: failed")
        if self.uses_champion:
            if champion is None:
                verb = (
                    "passes by default (first model)"
                    if if_no_champion == "pass"
                    else "fails (if_no_champion='fail')"
                )
                return CriterionResult(
                    self.text,
                    if_no_champion == "pass",
                    None,
                    None,
                    f"no champion: the criterion {self.text!r} {verb}",
                    by_default=True,
                )
            mismatch = _data_mismatch(metrics, champion)
            if mismatch:
                return self._fail(f"{mismatch}: failed")
            for name in self.metric_names:
                if name.startswith(CHAMPION + "."):
                    key = name[len(CHAMPION) + 1 :]
                    problem = _lookup_problem(key, champion_values, champion_notes, "champion ")
                    if problem:
                        return self._fail(f"{problem}: failed")

        def resolve(name: str) -> float:
            if name.startswith(CHAMPION + "."):
                return _number(champion_values, name[len(CHAMPION) + 1 :])
            return _number(values, name)

        try:
            left = _compute(self.left, resolve)
            right = _compute(self.right, resolve)
        except ZeroDivisionError:
            return self._fail(f"{self.text}: division by zero: failed")
        passed = _compare(left, self.comparator, right)
        left_text, right_text = (
            _side(self.text, self.left, left, right),
            _side(self.text, self.right, right, left),
        )
        shown = self.comparator if passed else NEGATION[self.comparator]
        verdict = "passed" if passed else "failed"
        return CriterionResult(
            self.text, passed, left, right, f"{left_text} {shown} {right_text}: {verdict}"
        )

    def _fail(self, reason: str) -> CriterionResult:
        return CriterionResult(self.text, False, None, None, reason)

    def translate(self, name: Callable[[str], str]) -> str:
        """The criterion written in another expression language with the same operators
        (PromQL, SQL): ``name(metric)`` renders each name, numbers and operators stay,
        and every sub-expression is parenthesized, so precedence cannot change."""
        if self.is_data_check:
            raise EvaluationArgumentError(
                "'data.valid' has no translation", argument="criterion", value=self.text
            )
        assert self.left is not None
        assert self.right is not None
        return f"{_render(self.left, name)} {self.comparator} {_render(self.right, name)}"

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class GateSet:
    """An ordered list of criteria, parsed once and checked together."""

    gates: tuple[Gate, ...] = ()

    @classmethod
    def from_strings(cls, texts: Sequence[str]) -> GateSet:
        if isinstance(texts, str):
            texts = [texts]
        return cls(tuple(Gate.parse(t) for t in texts))

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> GateSet:
        """The TOML form: ``{"f1": ">= 0.8", "rmse": ["< 10", "<= champion.rmse * 1.05"],
        "data.valid": true}``: each value completes the criterion its key starts."""
        texts: list[str] = []
        for key, value in mapping.items():
            if key == DATA_VALID and value is True:
                texts.append(DATA_VALID)
                continue
            if key == DATA_VALID and value is False:
                continue
            conditions = [value] if isinstance(value, str) else value
            if not isinstance(conditions, list | tuple) or not all(
                isinstance(c, str) for c in conditions
            ):
                raise EvaluationArgumentError(
                    f"gate {key!r} = {value!r}: expected a condition string like '>= 0.8' "
                    "(or a list of them)",
                    argument=key,
                    value=value,
                )
            texts += [f"{key} {condition}" for condition in conditions]
        return cls.from_strings(texts)

    @classmethod
    def parse(cls, spec: GateSpec) -> GateSet:
        """A gate set from any accepted form: a GateSet, criteria strings or Gates, or
        the mapping form."""
        if isinstance(spec, GateSet):
            return spec
        if isinstance(spec, Mapping):
            return cls.from_mapping(spec)
        if isinstance(spec, str):
            return cls.from_strings([spec])
        return cls(tuple(g if isinstance(g, Gate) else Gate.parse(g) for g in spec))

    def __iter__(self) -> Iterator[Gate]:
        return iter(self.gates)

    def __len__(self) -> int:
        return len(self.gates)

    @property
    def texts(self) -> list[str]:
        return [g.text for g in self.gates]

    @property
    def uses_champion(self) -> bool:
        return any(g.uses_champion for g in self.gates)

    def evaluate(
        self,
        metrics: Mapping[str, float | int | None] | Evaluation,
        champion: Mapping[str, float | int | None] | Evaluation | None = None,
        data_ok: Any = None,
        *,
        if_no_champion: Literal["pass", "fail"] = "pass",
    ) -> Verdict:
        return Verdict(
            [
                gate.check(metrics, champion, data_ok, if_no_champion=if_no_champion)
                for gate in self.gates
            ]
        )


GateSpec = GateSet | Sequence[Gate | str] | Mapping[str, Any] | str


@dataclass
class Verdict:
    """Every criterion's result; ``passed`` when all passed (an empty gate set passes)."""

    results: list[CriterionResult]

    #: Column headers of :meth:`rows`.
    COLUMNS = ("criterion", "result", "value", "compared with", "reason")

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failures(self) -> list[CriterionResult]:
        return [r for r in self.results if not r.passed]

    @property
    def reasons(self) -> list[str]:
        """One readable sentence per failed criterion."""
        return [r.reason for r in self.failures]

    def summary(self) -> str:
        n = len(self.results)
        passed = n - len(self.failures)
        head = f"{passed} of {n} gate criteria passed"
        if self.failures:
            head += "; failed: " + "; ".join(r.criterion for r in self.failures)
        return head

    def rows(self) -> list[tuple[str, str, str, str, str]]:
        """One plain-text row per criterion (``result`` is ``"ok"`` or ``"fail"``), for
        tables; headers in ``Verdict.COLUMNS``."""
        return [
            (
                r.criterion,
                "ok" if r.passed else "fail",
                "" if r.left_value is None else _fmt(r.left_value),
                "" if r.right_value is None else _fmt(r.right_value),
                r.reason,
            )
            for r in self.results
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "summary": self.summary(),
            "results": [r.to_dict() for r in self.results],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Verdict:
        return cls([CriterionResult.from_dict(r) for r in data["results"]])

    def raise_for_failure(self) -> None:
        """Raise :class:`GateFailedError` (carrying this verdict) unless every criterion
        passed."""
        if not self.passed:
            raise GateFailedError(self, [r.reason for r in self.failures])


def evaluate_gates(
    gates: GateSpec,
    metrics: Mapping[str, float | int | None] | Evaluation,
    champion: Mapping[str, float | int | None] | Evaluation | None = None,
    data_ok: Any = None,
    *,
    if_no_champion: Literal["pass", "fail"] = "pass",
) -> Verdict:
    """Check ``gates`` against the candidate's ``metrics`` (a mapping or an Evaluation),
    the ``champion``'s (``None``: there is none yet) and ``data_ok`` (a bool, or a
    validation report with ``.ok``; ``None``: not validated)."""
    return GateSet.parse(gates).evaluate(metrics, champion, data_ok, if_no_champion=if_no_champion)


# -- evaluation helpers ---------------------------------------------------------------


def _metric_table(
    source: Mapping[str, float | int | None] | Evaluation | None,
) -> tuple[Mapping[str, float | int | None], Mapping[str, str]]:
    if source is None:
        return {}, {}
    if isinstance(source, Mapping):
        return source, {}
    metrics = getattr(source, "metrics", None)
    if not isinstance(metrics, Mapping):
        raise EvaluationInputError(
            f"gates need metrics as a mapping or an Evaluation, got a {type(source).__name__}",
            argument="metrics",
        )
    return metrics, getattr(source, "notes", {}) or {}


def _lookup_problem(
    name: str, values: Mapping[str, float | int | None], notes: Mapping[str, str], whose: str
) -> str | None:
    if name not in values:
        available = ", ".join(sorted(values)) or "none"
        return f"{whose}metric {name!r} is missing; available: {available}"
    value = values[name]
    if value is None:
        why = f" ({notes[name]})" if name in notes else ""
        return f"{whose}metric {name!r} is not available{why}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{whose}metric {name!r} is not a number: {value!r}"
    return None


def _number(values: Mapping[str, float | int | None], name: str) -> float:
    value = values[name]
    assert value is not None  # checked by _lookup_problem
    return float(value)


def _data_mismatch(metrics: Any, champion: Any) -> str | None:
    ours, theirs = getattr(metrics, "data_id", None), getattr(champion, "data_id", None)
    if ours and theirs and ours != theirs:
        return (
            f"the champion was evaluated on data {theirs!r} and the candidate on {ours!r}; "
            "evaluate both on the same holdout to compare them"
        )
    return None


def _check_data(text: str, data_ok: Any) -> CriterionResult:
    if data_ok is None:
        return CriterionResult(
            text,
            False,
            None,
            None,
            f"{text}: no data validation result was given (pass data_ok=): failed",
        )
    ok = data_ok if isinstance(data_ok, bool) else getattr(data_ok, "ok", None)
    if not isinstance(ok, bool):
        raise EvaluationArgumentError(
            f"data_ok must be a bool or a validation report with a boolean .ok, got "
            f"{type(data_ok).__name__}",
            argument="data_ok",
        )
    detail = ""
    for attribute in ("errors", "issues", "failures"):
        found = getattr(data_ok, attribute, None)
        if not ok and isinstance(found, Sequence) and not isinstance(found, str) and found:
            detail = f" ({len(found)} {attribute})"
            break
    state = "passed" if ok else "failed"
    return CriterionResult(
        text,
        ok,
        None,
        None,
        f"{text}: the evaluation data {state} validation{detail}: {state}",
    )


def _compute(node: _Node, resolve: Any) -> float:
    if node.kind == "number":
        return node.value
    if node.kind == "name":
        value: float = resolve(node.name)
        return value
    if node.kind == "neg":
        return -_compute(node.children[0], resolve)
    a, b = (_compute(child, resolve) for child in node.children)
    if node.op == "+":
        return a + b
    if node.op == "-":
        return a - b
    if node.op == "*":
        return a * b
    if b == 0:
        raise ZeroDivisionError
    return a / b


def _render(node: _Node, name: Callable[[str], str]) -> str:
    if node.kind == "number":
        return repr(node.value) if not node.value.is_integer() else str(int(node.value))
    if node.kind == "name":
        return name(node.name)
    if node.kind == "neg":
        return f"-({_render(node.children[0], name)})"
    a, b = (_render(child, name) for child in node.children)
    return f"({a} {node.op} {b})"


def _compare(a: float, op: str, b: float) -> bool:
    return {
        ">=": a >= b,
        ">": a > b,
        "<=": a <= b,
        "<": a < b,
        "==": a == b,
        "!=": a != b,
    }[op]


def _side(text: str, node: _Node, value: float, other: float) -> str:
    """How one side reads in a reason: ``0.80``, ``f1 = 0.8123``, ``a - b = 0.91``."""
    written = text[node.start : node.end]
    if node.kind == "number":
        return written
    return f"{written} = {_fmt(value, other)}"


def _fmt(value: float, other: float | None = None) -> str:
    """4 significant digits, more when needed to tell ``value`` from ``other``."""
    for digits in (4, 6, 10, 17):
        shown = _digits(value, digits)
        if other is None or other == value or shown != _digits(other, digits):
            return shown
    return repr(value)


def _digits(value: float, digits: int) -> str:
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    if abs(value) >= 1e4:
        return f"{value:.{max(2, digits - 4)}f}"
    return f"{value:.{digits}g}"
