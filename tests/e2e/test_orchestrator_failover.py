"""Two orchestrator replicas: exactly one is active; killing it hands over within 30 s."""

from __future__ import annotations

import time

import pytest

from tests.conftest import wait_for_body

pytestmark = pytest.mark.slow
HANDOVER_LIMIT_SECONDS = 30.0


def test_killing_the_active_orchestrator_hands_over_within_30_seconds(engine_env, start_engine):
    env = {**engine_env, "IS_API": "0", "IS_ORCHESTRATOR": "1"}
    replicas = [start_engine(env), start_engine(env)]
    for replica in replicas:
        replica.wait_healthy()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        states = [r.health().json()["active"] for r in replicas]
        if sorted(states) == [False, True]:
            break
        time.sleep(0.2)
    assert sorted(states) == [False, True], states
    active, standby = (replicas[0], replicas[1]) if states[0] else (replicas[1], replicas[0])

    # When the active replica dies without releasing its lease (SIGKILL)...
    active.process.kill()
    killed_at = time.monotonic()
    wait_for_body(standby, lambda body: body.get("active") is True, HANDOVER_LIMIT_SECONDS + 5)
    handover = time.monotonic() - killed_at
    print(f"handover took {handover:.1f} s")
    assert handover < HANDOVER_LIMIT_SECONDS
