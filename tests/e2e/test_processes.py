"""Every process mode started as a user would: health, dependency loss, recovery, bad config."""

from __future__ import annotations

import subprocess
import sys

import pytest
import requests

from engine.dev.servers import free_port, start_redis
from tests.conftest import REPO_ROOT, make_env, wait_for_body, wait_for_status

MODES = {
    "api": {"IS_API": "1"},
    "instant": {"IS_API": "0", "IS_INSTANT_TASKS_WORKER": "1"},
    "queued": {"IS_API": "0", "IS_QUEUED_TASKS_WORKER": "1"},
    "orchestrator": {"IS_API": "0", "IS_ORCHESTRATOR": "1"},
}

pytestmark = pytest.mark.slow


def test_bad_mongo_uri_exits_non_zero_naming_the_variable(engine_env):
    result = subprocess.run(
        [sys.executable, "-m", "engine", "run"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**engine_env, "MONGO_URI": "nonsense", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert lines == ["configuration error: MONGO_URI: expected a mongodb:// or mongodb+srv:// URI"]


def test_each_mode_answers_health_then_503_while_redis_is_down_then_recovers(
    stack, test_id, start_engine, tmp_path
):
    # Given: a Redis of this test's own, so it can be stopped without disturbing other tests.
    redis = start_redis(free_port(), log_path=tmp_path / "redis.log")
    try:
        env = make_env(stack, test_id, REDIS_URI=f"redis://127.0.0.1:{redis.port}/0")
        procs = {name: start_engine({**env, **mode}) for name, mode in MODES.items()}
        for name, proc in procs.items():
            proc.wait_healthy()
            body = proc.health().json()
            assert body["status"] == "ok", name
        # When: Redis goes away.
        redis.stop()
        # Then: every process that needs Redis reports 503, and names it.
        for name in MODES:
            body = wait_for_body(procs[name], lambda b: b.get("redis") == "down", 20, status=503)
            assert body["status"] == "unavailable", (name, body)
        # When Redis is back, they recover without a restart.
        redis.restart()
        for name in MODES:
            wait_for_status(procs[name], 200, 30)
    finally:
        redis.stop()


def test_api_serves_prometheus_metrics(engine_env, start_engine):
    api = start_engine(engine_env)
    api.wait_healthy()
    requests.get(api.url + "/", timeout=5)
    text = requests.get(api.url + "/prometheus", timeout=5).text
    assert "engine_http_request_duration_seconds" in text or "flask_http_request" in text


def test_queued_worker_reports_busy_gauge(engine_env, start_engine):
    worker = start_engine({**engine_env, **MODES["queued"]})
    worker.wait_healthy()
    text = requests.get(worker.url + "/prometheus/queued-tasks", timeout=5).text
    assert "queued_tasks_worker_busy 0" in text


def test_custom_code_runner_answers_health_without_any_store(start_engine):
    # The runner needs neither MongoDB nor Redis: only its own variables.
    runner = start_engine({"PATH": "/usr/bin:/bin"}, "sandbox")
    runner.wait_healthy()
    assert runner.health().json()["mode"] == "custom-code-runner"


def test_request_metrics_add_up_across_gunicorn_workers(engine_env, start_engine):
    # Given the API under gunicorn with two worker processes (multiprocess metrics).
    api = start_engine({**engine_env, "WEB_CONCURRENCY": "2"})
    api.wait_healthy()
    for _ in range(40):
        response = requests.get(api.url + "/openapi.json", timeout=5)
        assert response.status_code == 200
    # When scraped (whichever worker answers), the count is the total over both workers.
    counts = set()
    for _ in range(6):
        text = requests.get(api.url + "/prometheus", timeout=5).text
        lines = [
            line
            for line in text.splitlines()
            if line.startswith("engine_http_request_duration_seconds_count{")
            and 'url_rule="/openapi.json"' in line
        ]
        counts.add(sum(float(line.rsplit(" ", 1)[1]) for line in lines))
    assert counts == {40.0}
