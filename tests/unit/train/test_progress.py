"""The search progress view: a Rich bar on a terminal (nested in a live display that owns
it), plain lines elsewhere; and ``import loopline.train`` stays light."""

from __future__ import annotations

import io
import subprocess
import sys
from typing import Any

from rich.console import Console

from loopline.store.stores import Stores
from loopline.tracking import Run
from loopline.train import FloatRange, Report, SearchProgress, search, search_progress


def _event(**changes: Any) -> SearchProgress:
    base: dict[str, Any] = {
        "study": "s",
        "n_trials": 10,
        "n_complete": 3,
        "n_pruned": 1,
        "n_failed": 2,
        "n_running": 0,
        "best_value": 0.912345,
        "best_trial": 2,
        "trial": 5,
        "state": "complete",
        "value": 0.5,
    }
    base.update(changes)
    return SearchProgress(**base)


def test_plain_lines_when_not_a_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    with search_progress(10, title="tune", console=console) as show:
        show(
            _event(
                trial=None,
                state=None,
                value=None,
                n_complete=0,
                n_pruned=0,
                n_failed=0,
                best_value=None,
            )
        )
        show(_event())
        show(_event(trial=6, state="pruned", value=None))
    lines = out.getvalue().splitlines()
    assert lines == [
        "tune s: starting; 0/10 done, 0 pruned, 0 failed, best -",
        "tune trial 5 complete 0.5 | 4/10 done, 1 pruned, 2 failed, best 0.9123",
        "tune trial 6 pruned | 4/10 done, 1 pruned, 2 failed, best 0.9123",
    ]
    assert "\x1b[" not in out.getvalue()


def test_a_bar_on_a_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120, color_system=None)
    with search_progress(10, console=console) as show:
        show(_event())
    text = out.getvalue()
    assert "4/10" in text
    assert "pruned 1" in text
    assert "failed 2" in text
    assert "best 0.9123" in text


def test_the_bar_nests_in_a_live_display_on_the_same_console() -> None:
    from rich.live import Live

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120, color_system=None)
    # No console given: the bar finds the live display through the redirected stdout.
    with Live("step table", console=console, redirect_stdout=True), search_progress(10) as show:
        show(_event(n_complete=7))
    text = out.getvalue()
    assert "step table" in text
    assert "8/10" in text


def test_progress_during_a_search(sqlite_stores: Stores) -> None:
    def objective(params: dict[str, Any], report: Report, run: Run) -> float:
        return float(params["x"])

    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    with search_progress(console=console) as show:
        search(
            sqlite_stores, objective, {"x": FloatRange(0, 1)}, study="p", n_trials=3, progress=show
        )
    lines = out.getvalue().splitlines()
    assert len(lines) == 4
    assert lines[-1].startswith("search trial 2 complete")
    assert "3/3 done" in lines[-1]


def test_importing_train_loads_neither_optuna_nor_sklearn() -> None:
    code = (
        "import sys, loopline.train\n"
        "heavy = [m for m in ('optuna', 'sklearn', 'xgboost', 'lightgbm') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
