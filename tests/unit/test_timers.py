"""engine/timers.py: delayed calls on one thread per process."""

from __future__ import annotations

import threading
import time

from engine.timers import call_later


def test_calls_run_after_their_delay_in_due_order():
    ran: list[tuple[str, float]] = []
    done = threading.Event()
    started = time.monotonic()
    call_later(0.15, lambda: (ran.append(("late", time.monotonic() - started)), done.set()))
    call_later(0.05, lambda: ran.append(("early", time.monotonic() - started)))
    assert done.wait(2)
    assert [name for name, _ in ran] == ["early", "late"]
    assert ran[0][1] >= 0.05 and ran[1][1] >= 0.15


def test_a_cancelled_call_never_runs_and_a_failing_one_does_not_stop_the_next():
    ran: list[str] = []
    done = threading.Event()
    call_later(0.02, lambda: ran.append("cancelled")).cancel()
    call_later(0.03, lambda: 1 / 0)
    call_later(0.06, lambda: (ran.append("next"), done.set()))
    assert done.wait(2)
    assert ran == ["next"]
