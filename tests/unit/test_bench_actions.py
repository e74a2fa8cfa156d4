"""The actions benchmark's interleaved throughput: ABBA slices, each side charged its own time."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil
import pytest

from bench import bench_actions


def test_the_two_sides_alternate_in_abba_slices_and_each_gets_its_share(monkeypatch: pytest.MonkeyPatch):
    # Given a fake load that records which side ran and claims 100 runs/s for A and 50 for B
    slices: list[tuple[str, float]] = []

    def fake_throughput(call, seconds: float) -> float:
        slices.append((call, seconds))
        time.sleep(seconds)
        return {"A": 100.0, "B": 50.0}[call]

    monkeypatch.setattr(bench_actions, "_throughput", fake_throughput)
    # When 0.4 s of each is measured in 4 slices
    ours, theirs = bench_actions._interleaved_throughput("A", "B", 0.4, 4, {})
    # Then the order is A B B A A B B A, each slice a quarter of each side's time
    assert [call for call, _ in slices] == list("ABBAABBA")
    assert all(seconds == pytest.approx(0.1) for _, seconds in slices)
    # And each side's rate is its own, over its own time only
    assert ours.seconds == pytest.approx(0.4, abs=0.05) and theirs.seconds == pytest.approx(0.4, abs=0.05)
    assert ours.rate == pytest.approx(100.0) and theirs.rate == pytest.approx(50.0)
    # And the client (this process) is charged with the CPU it spent, per run
    assert set(ours.cpu_ms_per_run()) == {"client"} and ours.cpu_ms_per_run()["client"] >= 0


def test_a_process_is_charged_with_its_children_and_this_process_without_its_own():
    # Given a child process whose own child burns 0.3 s of CPU, then both stay alive
    burner = (
        "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\ntime.sleep(30)"
    )
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import subprocess, sys, time\nsubprocess.Popen([sys.executable, '-c', {burner!r}])\ntime.sleep(30)",
        ]
    )
    try:
        deadline = time.monotonic() + 10
        while bench_actions._cpu_seconds([parent.pid]) < 0.3 and time.monotonic() < deadline:
            time.sleep(0.05)
        # Then the child is charged with its grandchild's CPU
        assert bench_actions._cpu_seconds([parent.pid]) >= 0.3
        # And this process (the benchmark's client) only with its own, not its children's
        own = sum(os.times()[:2])
        assert bench_actions._cpu_seconds([os.getpid()]) == pytest.approx(own, abs=0.05)
    finally:
        for child in psutil.Process(parent.pid).children(recursive=True):
            child.kill()
        parent.kill()
        parent.wait()
