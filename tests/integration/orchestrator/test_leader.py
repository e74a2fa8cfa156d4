"""The orchestrator lease: one holder at a time, takeover after expiry, fencing grows."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from beat.duties import Duty
from beat.leader import LEASE_COLLECTION, LeaderLease
from beat.scheduler import Orchestrator


def leases(services, ttl_seconds=10.0):
    collection = services.db[LEASE_COLLECTION]
    return (
        LeaderLease(collection, "replica-a", ttl_seconds=ttl_seconds),
        LeaderLease(collection, "replica-b", ttl_seconds=ttl_seconds),
    )


def test_only_one_replica_holds_the_lease(services):
    a, b = leases(services)
    first = a.hold()
    assert first is not None and first.fencing == 1
    assert b.hold() is None
    # Renewing keeps the same fencing token.
    assert a.hold() == first
    assert a.is_current(first)


def test_a_standby_takes_over_once_the_lease_expires_and_fencing_grows(services):
    a, b = leases(services, ttl_seconds=0.5)
    held = a.hold()
    assert b.hold() is None
    time.sleep(0.7)  # a stops renewing (dead or hung)
    taken = b.hold()
    assert taken is not None and taken.fencing == held.fencing + 1
    assert not a.is_current(held)
    # The old holder cannot come back while b renews.
    assert a.hold() is None


def test_release_hands_over_at_once(services):
    a, b = leases(services)
    a.hold()
    a.release()
    assert b.hold() is not None


def test_only_the_active_orchestrator_runs_duties(services):
    runs: list[str] = []

    def make(owner):
        duty = Duty("record", 0.0, lambda _services, _now: runs.append(owner))
        return Orchestrator(services, owner=owner, duties=[duty])

    first, second = make("one"), make("two")
    now = datetime.now(UTC)
    for _ in range(5):
        first.tick(now)
        second.tick(now)
    assert runs == ["one"] * 5
    assert first.is_active and not second.is_active
    first.stop()
    second.tick(now)
    assert runs[-1] == "two"


def test_a_duty_runs_at_its_interval_and_a_failing_duty_does_not_stop_others(services):
    calls: list[str] = []

    def boom(_services, _now):
        calls.append("boom")
        raise RuntimeError("duty failed")

    clock = iter([0.0, 0.5, 1.2, 2.5]).__next__
    duties = [Duty("boom", 0.0, boom), Duty("every-second", 1.0, lambda s, n: calls.append("tick"))]
    orchestrator = Orchestrator(services, owner="solo", duties=duties)
    for _ in range(4):
        orchestrator.tick(datetime.now(UTC), monotonic=clock)
    assert calls.count("boom") == 4
    assert calls.count("tick") == 3  # at 0.0, 1.2 and 2.5, not at 0.5
