"""SIGTERM and SIGINT while runs are open: unwind the ``with`` block instead of dying.

A process killed by SIGTERM's default action ends at once: no ``finally``, no ``atexit``,
buffered metrics lost and the run left "running". While at least one run started in the
main thread is open, and only if the handler there is still the default, a handler is
installed that raises :class:`Terminated` (a ``SystemExit``, exit status 128 + 15); the
``with`` block unwinds, flushes and records the run as ``killed``. SIGINT gets the same
treatment (as ``KeyboardInterrupt``) only where Python's own handler is installed. The
previous handlers come back when the last such run ends.

Logging calls are critical sections: a signal arriving inside one is held back to its
end, so a flush is never cut half-way, and a metric call that is interrupted takes its
point back before raising (see :meth:`Run.log_metric`): every call that returned is
durable, and none that raised is. A signal that lands in the few instructions between
the end of a critical section and the return to the caller is held back too, and
re-delivered a moment later (by then the main thread is back in the caller's code, or
inside the next logging call, which then raises before taking its point).
"""

from __future__ import annotations

import _thread
import os
import signal
import threading
from types import FrameType
from typing import Any

_MAIN_IDENT = threading.main_thread().ident
#: Code in these modules is never interrupted half-way through a logging call.
_HOLD_IN_MODULES = frozenset({"loopline.tracking.run", __name__})
REDELIVER_AFTER_S = 0.02


class Terminated(SystemExit):
    """Raised in the main thread when SIGTERM arrives while a run is open.

    A ``SystemExit``: left uncaught, the process ends quietly with status 128 + signal.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum

    def __str__(self) -> str:
        return f"terminated by {signal.Signals(self.signum).name}"


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.depth = 0  # critical sections entered by the main thread
        self.pending: int | None = None  # a signal held back until depth drops to 0
        self.received: int | None = None  # last signal delivered (for atexit's verdict)
        self.users = 0  # open runs that asked for the handlers
        self.replaced: dict[int, Any] = {}  # signal -> handler we replaced
        self.redelivery_armed = False


_state = _State()


def in_main_thread() -> bool:
    return threading.get_ident() == _MAIN_IDENT


def enter() -> bool:
    """Start a critical section; returns whether it counts (only the main thread's do)."""
    if threading.get_ident() == _MAIN_IDENT:
        _state.depth += 1
        return True
    return False


def leave(entered: bool) -> None:
    """End a critical section; deliver a held-back signal if it was the outermost one."""
    if entered:
        _state.depth -= 1
        if _state.depth == 0 and _state.pending is not None:
            deliver()


def leave_quietly(entered: bool) -> int | None:
    """End a critical section without delivering; returns the held-back signal, if any."""
    if entered:
        _state.depth -= 1
        if _state.depth == 0:
            return _state.pending
    return None


def deliver() -> None:
    """Raise for the held-back signal (the caller is outside any critical section)."""
    signum = _state.pending
    if signum is None:
        return
    _state.pending = None
    _state.received = signum
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Terminated(signum)


def received_signal() -> int | None:
    """The last SIGTERM/SIGINT our handler turned into an exception, if any."""
    return _state.received


def _handler(signum: int, frame: FrameType | None) -> None:
    if _state.users == 0:
        # Every run ended but the handler could not be put back (it was ended from
        # another thread): behave as the handler we replaced would have.
        _restore_now()
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        os.kill(os.getpid(), signum)
        return
    _state.pending = signum
    if _state.depth > 0:
        return  # leave() raises it at the end of the critical section
    if frame is not None and frame.f_globals.get("__name__") in _HOLD_IN_MODULES:
        _arm_redelivery()
        return
    deliver()


def _arm_redelivery() -> None:
    if _state.redelivery_armed:
        return
    _state.redelivery_armed = True
    timer = threading.Timer(REDELIVER_AFTER_S, _redeliver)
    timer.daemon = True
    timer.start()


def _redeliver() -> None:
    _state.redelivery_armed = False
    signum = _state.pending
    if signum is not None and _state.depth == 0:
        # Runs our handler again in the main thread, as if the signal arrived once more.
        _thread.interrupt_main(signal.Signals(signum))


def acquire() -> bool:
    """A run opens: install the handlers if this is the main thread and they are the
    defaults. Returns whether this run counts as a user (pass it to :func:`release`)."""
    if not in_main_thread():
        return False
    with _state.lock:
        if _state.users == 0:
            _install()
        _state.users += 1
    return True


def release(acquired: bool) -> None:
    """A run ended: put the previous handlers back when no run needs ours any more."""
    if not acquired:
        return
    with _state.lock:
        _state.users -= 1
        if _state.users == 0 and in_main_thread():
            _restore_now()


def _install() -> None:
    defaults = {signal.SIGTERM: signal.SIG_DFL, signal.SIGINT: signal.default_int_handler}
    for signum, default in defaults.items():
        try:
            current = signal.getsignal(signum)
            if current is default:
                signal.signal(signum, _handler)
                _state.replaced[signum] = current
        except (ValueError, OSError):  # not the main interpreter, or not allowed
            continue


def _restore_now() -> None:
    for signum, previous in list(_state.replaced.items()):
        try:
            if signal.getsignal(signum) is _handler:
                signal.signal(signum, previous)
            del _state.replaced[signum]
        except (ValueError, OSError):
            continue
