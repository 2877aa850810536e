"""Stopping at a safe point when asked to: SIGTERM and Ctrl-C set a flag that long loops check.

A signal handler that raises can fire anywhere, including inside a torch
cleanup callback or a ``__del__``, where Python only prints "Exception ignored
in ..." and carries on, so the stop is lost. Here the first SIGTERM or SIGINT
only records the request; the work raises :class:`Interrupted` (a
``KeyboardInterrupt``, so MLflow runs end KILLED and checkpoints are kept) at
the next check, which every training and measurement batch, every epoch and
every sweep trial makes (:func:`check`, and :func:`errorset.progress.bar` for
loops with a progress bar). A second signal stops at once.

Nothing is installed at import time: the command line enters
:func:`handling_signals` around a command.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator, Sequence
from types import FrameType

#: the signals :func:`handling_signals` turns into a stop request by default
STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT)

_requested: list[int] = []  # the signals received since the handlers were installed


class Interrupted(KeyboardInterrupt):
    """Raised at a safe point after a stop was requested by a signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if _requested:  # asked twice: stop now, wherever we are
        raise Interrupted(signum)
    _requested.append(signum)
    # os.write, not print: a handler may run in the middle of another write to stderr
    os.write(
        2,
        f"errorset: {signal.Signals(signum).name} received; stopping at the next batch (again to stop now)\n".encode(),
    )


def request_stop(signum: int = signal.SIGTERM) -> None:
    """Record a stop request as a signal would (for code that learns of a stop otherwise)."""
    if not _requested:
        _requested.append(signum)


def stop_requested() -> int | None:
    """The first signal received since :func:`handling_signals` was entered, or None."""
    return _requested[0] if _requested else None


def check() -> None:
    """Raise :class:`Interrupted` when a stop was requested; call at every batch, epoch and trial."""
    if _requested:
        raise Interrupted(_requested[0])


@contextlib.contextmanager
def handling_signals(signals: Sequence[signal.Signals] = STOP_SIGNALS) -> Iterator[None]:
    """Turn ``signals`` into stop requests in the body; restore the previous handlers and clear the flag after.

    Outside the main thread (where Python cannot install handlers) the body runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in signals}
    _requested.clear()
    for s in signals:
        signal.signal(s, _on_signal)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        _requested.clear()
