"""Stop requests: a signal sets a flag that the next batch, epoch or trial obeys; it is never lost."""

from __future__ import annotations

import gc
import os
import signal

import pytest

from errorset import interrupts
from errorset.progress import bar, counter


class _SignalsWhenCollected:
    """Sends SIGTERM to this process from inside ``__del__``, where an exception raised is only printed."""

    def __del__(self) -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # os.kill runs the handler before it returns


def test_a_signal_during_a_finalizer_is_kept_and_obeyed_at_the_next_check() -> None:
    with interrupts.handling_signals():
        obj = _SignalsWhenCollected()
        del obj
        gc.collect()
        # a handler that raised would have lost the stop inside __del__; the flag keeps it
        assert interrupts.stop_requested() == signal.SIGTERM
        with pytest.raises(interrupts.Interrupted) as info:
            interrupts.check()
        assert isinstance(info.value, KeyboardInterrupt)  # runs end KILLED, as on Ctrl-C
        assert info.value.signum == signal.SIGTERM
    assert interrupts.stop_requested() is None  # cleared, and the previous handler is back
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL or callable(signal.getsignal(signal.SIGTERM))


def test_a_second_signal_stops_at_once() -> None:
    with interrupts.handling_signals():
        os.kill(os.getpid(), signal.SIGINT)
        assert interrupts.stop_requested() == signal.SIGINT
        with pytest.raises(interrupts.Interrupted):
            os.kill(os.getpid(), signal.SIGINT)


def test_progress_bars_stop_at_the_next_step() -> None:
    seen = []
    with interrupts.handling_signals(), pytest.raises(interrupts.Interrupted):
        for i in bar(range(10), desc="test", enabled=False):
            seen.append(i)
            if i == 3:
                os.kill(os.getpid(), signal.SIGTERM)
    assert seen == [0, 1, 2, 3]
    with interrupts.handling_signals():
        steps = counter(total=5, desc="test", enabled=False)
        steps.update(1)
        interrupts.request_stop()
        with pytest.raises(interrupts.Interrupted):
            steps.update(1)
        steps.close()
