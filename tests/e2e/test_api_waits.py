"""The API process, started as a user would, while many action runs wait for their answers."""

from __future__ import annotations

import threading
import time

import pytest
import redis
import requests

from engine.auth.tokens import mint_platform_admin_token, mint_workspace_token
from examples.connectors.build import build_demo_connector_zip

pytestmark = pytest.mark.slow

WAITING_RUNS = 40
"""More than a thread-per-request API process could hold (16 threads)."""
WAIT_SECONDS = 10


def _transform_action(url: str, env: dict[str, str]) -> str:
    """A workspace with a `transform` action (no connection needed); returns a customer token."""
    admin = {"Authorization": "Bearer " + mint_platform_admin_token(env["SECRET"])}
    workspace = requests.post(url + "/workspaces", json={"key": "waits"}, headers=admin, timeout=30).json()
    headers = {"Authorization": "Bearer " + mint_workspace_token("waits", workspace["secret"])}
    files = {"file": ("demo.zip", build_demo_connector_zip())}
    requests.post(url + "/connectors", headers=headers, files=files, timeout=30).raise_for_status()
    for path, body in (
        ("/integrations", {"key": "demo", "connectorKey": "demo"}),
        (
            "/actions",
            {
                "key": "echo",
                "integrationKey": "demo",
                "operation": {"type": "transform", "output": {"ok": True}},
            },
        ),
    ):
        requests.post(url + path, json=body, headers=headers, timeout=30).raise_for_status()
    return mint_workspace_token("waits", workspace["secret"], customer_id="c1")


def test_the_api_answers_while_more_runs_wait_than_it_would_have_threads(engine_env, start_engine):
    # Given: an API process and no instant worker, so every run waits its whole wait.
    api = start_engine(engine_env)
    api.wait_healthy()
    token = _transform_action(api.url, engine_env)
    broker = redis.Redis.from_url(engine_env["REDIS_URI"])
    answers: list[tuple[int, str]] = []

    def run() -> None:
        response = requests.post(
            f"{api.url}/actions/echo/run?waitSeconds={WAIT_SECONDS}",
            json={"input": {}},
            headers={"Authorization": f"Bearer {token}"},
            timeout=WAIT_SECONDS + 30,
        )
        answers.append((response.status_code, response.json().get("id", "")))

    # When: 40 runs are requested at once.
    threads = [threading.Thread(target=run) for _ in range(WAITING_RUNS)]
    for thread in threads:
        thread.start()
    # Then: all 40 are enqueued and waiting in the one process at the same time...
    deadline = time.monotonic() + WAIT_SECONDS - 2
    while broker.llen("instant") < WAITING_RUNS and time.monotonic() < deadline:
        time.sleep(0.05)
    assert broker.llen("instant") == WAITING_RUNS
    # ...and the process still answers other requests before any of them ends.
    assert requests.get(api.url + "/", timeout=5).status_code == 200
    assert answers == []
    for thread in threads:
        thread.join()
    # Each caller gets its run's id to poll (202), and every id can be polled.
    assert [status for status, _ in answers] == [202] * WAITING_RUNS
    assert len({run_id for _, run_id in answers}) == WAITING_RUNS
    polled = requests.get(
        f"{api.url}/action-runs/{answers[0][1]}", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert polled.status_code == 200 and polled.json()["state"] == "queued"


def test_the_api_serves_on_gevent_and_starts_without_errors(engine_env, start_engine):
    # Given the API started as a user starts it
    api = start_engine(engine_env)
    api.wait_healthy()
    # When it has answered a request
    assert requests.get(api.url + "/", timeout=5).status_code == 200
    time.sleep(1.0)  # what start-up left running (the setup client's threads) has had its tick
    # Then it serves on gevent, and its log holds no error (e.g. from a thread cut by the fork)
    logs = api.logs()
    assert "Using worker: ApiWorker" in logs
    assert "Traceback" not in logs and "ERROR" not in logs
