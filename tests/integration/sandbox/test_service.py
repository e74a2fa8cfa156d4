"""The service contract: limits precision, job spaces and 429, metrics, ctx.http, confinement."""

from __future__ import annotations

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psutil
import pytest
import requests

from sandbox.client import HttpContext, JobLimits, SandboxClient
from sandbox.errors import InvalidJob, RunnerBusy, RunnerUnavailable
from tests.integration.sandbox.conftest import SECRET_VALUE, free_port, start_runner, stop_runner

MB = 1024 * 1024
ALLOCATE = "def run(size, ctx):\n    block = bytearray(size)\n    return len(block)\n"


# -- limits --------------------------------------------------------------------------------------
@pytest.mark.parametrize("limit_mb", [64, 128])
def test_memory_limit_holds_within_ten_percent(runner, limit_mb):
    below = runner.client.run_job(ALLOCATE, int(limit_mb * MB * 0.9), limits=JobLimits(memory_mb=limit_mb))
    assert below.status == "completed", below
    assert limit_mb * 0.85 <= below.peak_memory_mb <= limit_mb * 1.1, below.peak_memory_mb
    above = runner.client.run_job(ALLOCATE, int(limit_mb * MB * 1.1), limits=JobLimits(memory_mb=limit_mb))
    assert above.status == "failed" and above.error.type == "memory_limit", above


def test_time_limit_holds_within_ten_percent(runner):
    started = time.monotonic()
    result = runner.client.run_job(
        "def run(i, c):\n    while True:\n        pass\n", None, limits=JobLimits(timeout_seconds=1.0)
    )
    elapsed = time.monotonic() - started
    assert result.status == "failed" and result.error.type == "time_limit"
    assert 1.0 <= elapsed <= 1.1, elapsed
    assert 1000 <= result.duration_ms <= 1100, result.duration_ms


def test_a_job_killed_for_its_time_keeps_what_it_printed(runner):
    # Given a job that logs its progress and then never ends
    code = (
        "def run(i, c):\n"
        "    print('loaded', i['n'], 'items')\n"
        "    c.log.info('starting the loop')\n"
        "    while True:\n"
        "        pass\n"
    )
    # When the runner kills it at its time limit
    result = runner.client.run_job(code, {"n": 3}, limits=JobLimits(timeout_seconds=0.3))
    # Then the error says why, and its logs up to the kill are there to debug it
    assert result.error.type == "time_limit"
    assert "loaded 3 items" in result.logs and "starting the loop" in result.logs


def test_sleeping_job_is_killed_on_wall_clock(runner):
    result = runner.client.run_job(
        "import time\ndef run(i, c):\n    time.sleep(30)\n", None, limits=JobLimits(timeout_seconds=0.5)
    )
    assert result.error.type == "time_limit" and 500 <= result.duration_ms <= 600


def test_limits_above_the_runner_maximum_are_refused(runner):
    response = runner.post({"code": "x = 1", "limits": {"memory_mb": 100_000}})
    assert response.status_code == 400 and response.json()["error"]["field"] == "limits.memory_mb"
    with pytest.raises(InvalidJob) as caught:
        runner.client.run_job("x = 1", None, limits=JobLimits(timeout_seconds=1000))
    assert caught.value.field == "limits.timeout_seconds"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"input": 1}, "code"),
        ({"code": 5}, "code"),
        ({"code": "x=1", "entrypoint": "_secret"}, "entrypoint"),
        ({"code": "x=1", "http": {"base_url": "ftp://x"}}, "http.base_url"),
        ({"code": "x=1", "connection": [1]}, "connection"),
        ({"code": "x=1", "surprise": 1}, "surprise"),
        ([1, 2], "body"),
    ],
)
def test_bad_requests_name_the_field(runner, body, field):
    response = requests.post(runner.url + "/api/v2/jobs", json=body, timeout=5)
    assert response.status_code == 400
    assert response.json()["error"] == {
        "type": "invalid_request",
        "field": field,
        "message": response.json()["error"]["message"],
    }


def test_malformed_json_is_a_400(runner):
    response = requests.post(runner.url + "/api/v2/jobs", data=b"{nope", timeout=5)
    assert response.status_code == 400 and response.json()["error"]["field"] == "body"


# -- job spaces, 429 and metrics -------------------------------------------------------------------
def gauges(url: str) -> dict[str, float]:
    text = requests.get(url + "/api/v2/prometheus", timeout=5).text
    return {
        line.split()[0]: float(line.split()[1])
        for line in text.splitlines()
        if line.startswith("custom_code_runner_") and "job_spaces" in line
    }


def test_full_runner_answers_429_and_reports_its_spaces():
    small = start_runner(
        CUSTOM_CODE_RUNNER_JOB_SPACES="1",
        CUSTOM_CODE_RUNNER_QUEUE_WAIT_SECONDS="0.2",
        CUSTOM_CODE_TIMEOUT_SECONDS="5",
    )
    try:
        assert gauges(small.url) == {
            "custom_code_runner_total_job_spaces": 1.0,
            "custom_code_runner_remaining_job_spaces": 1.0,
        }
        busy = threading.Thread(
            target=small.client.run_job, args=("import time\ndef run(i, c):\n    time.sleep(1.5)\n", None)
        )
        busy.start()
        deadline = time.monotonic() + 2
        while small.health().json()["remaining"] != 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert gauges(small.url)["custom_code_runner_remaining_job_spaces"] == 0.0
        started = time.monotonic()
        with pytest.raises(RunnerBusy):
            small.client.run_job("result = 1", None)
        assert 0.2 <= time.monotonic() - started < 1.0  # waited the queue wait, then gave up
        busy.join()
        assert gauges(small.url)["custom_code_runner_remaining_job_spaces"] == 1.0
        assert small.client.run_job("result = 1", None).result == 1
        # A job in flight when SIGTERM arrives is drained: it gets its answer, then all stops.
        drained: list = []
        busy = threading.Thread(
            target=lambda: drained.append(
                small.client.run_job("import time\ndef run(i, c):\n    time.sleep(0.6)\n    return 7\n", None)
            )
        )
        busy.start()
        time.sleep(0.2)
    finally:
        survivors = stop_runner(small)
    busy.join(5)
    assert [(r.status, r.result) for r in drained] == [("completed", 7)]
    assert survivors == []  # SIGTERM stopped the server, the zygote and every job process


def test_waiting_request_gets_the_freed_space(runner):
    results = []
    threads = [
        threading.Thread(
            target=lambda: results.append(
                runner.client.run_job("import time\ndef run(i, c):\n    time.sleep(0.3)\n    return i\n", 1)
            )
        )
        for _ in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.status for r in results] == ["completed"] * 6  # 4 spaces, 2 waited < queue wait


def test_prometheus_counts_jobs(runner):
    runner.client.run_job("result = 1", None)
    text = requests.get(runner.url + "/api/v2/prometheus", timeout=5).text
    assert 'custom_code_runner_jobs_total{error_type="",status="completed"}' in text
    assert "custom_code_runner_total_job_spaces 4.0" in text


def test_client_raises_unavailable_when_nobody_listens():
    with pytest.raises(RunnerUnavailable):
        SandboxClient(f"http://127.0.0.1:{free_port()}", timeout_seconds=2).run_job("result = 1", None)


# -- ctx.http ----------------------------------------------------------------------------------------
class _App(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802
        body = json.dumps(
            {
                "path": self.path,
                "auth": self.headers.get("Authorization"),
                "custom": self.headers.get("X-Custom"),
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def app_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _App)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_ctx_http_reaches_the_app_with_auth_the_code_never_sees(runner, app_url):
    code = (
        "def run(input, ctx):\n    r = ctx.http.get('/contacts', params={'q': 'a'}, headers={'X-Custom': '1'})\n"
        "    return {'status': r.status_code, 'body': r.json(), 'region': ctx.connection['region']}\n"
    )
    result = runner.client.run_job(
        code,
        None,
        connection={"region": "eu"},
        http=HttpContext(base_url=app_url + "/v1", headers={"Authorization": "Bearer T0KEN"}),
    )
    assert result.status == "completed", result
    assert result.result == {
        "status": 200,
        "region": "eu",
        "body": {"path": "/v1/contacts?q=a", "auth": "Bearer T0KEN", "custom": "1"},
    }


def test_ctx_http_refuses_other_hosts(runner, app_url):
    code = "def run(input, ctx):\n    return ctx.http.get('http://169.254.169.254/latest/meta-data').text\n"
    result = runner.client.run_job(code, None, http=HttpContext(base_url=app_url))
    assert result.status == "failed" and result.error.type == "forbidden"
    assert "169.254.169.254" in result.error.message


def test_in_production_ctx_http_may_not_reach_the_machine_or_private_networks(app_url):
    # Given a production runner, and a connection whose app is on the runner's own machine
    production = start_runner(NODE_ENV="production")
    code = "def run(input, ctx):\n    return ctx.http.get('/contacts').status_code\n"
    try:
        # When a job calls it
        refused = production.client.run_job(code, None, http=HttpContext(base_url=app_url))
    finally:
        stop_runner(production)
    # Then the runner refuses to connect there, naming the setting that would allow it
    assert refused.status == "failed" and "OUTBOUND_ALLOWED_NETWORKS" in refused.error.message
    allowed = start_runner(NODE_ENV="production", OUTBOUND_ALLOWED_NETWORKS="127.0.0.0/8")
    try:
        assert allowed.client.run_job(code, None, http=HttpContext(base_url=app_url)).result == 200
    finally:
        stop_runner(allowed)


# -- confinement of the job processes ----------------------------------------------------------------
def job_processes(runner) -> list[psutil.Process]:
    family = psutil.Process(runner.process.pid).children(recursive=True)
    zygote = next(p for p in family if "sandbox.zygote" in " ".join(p.cmdline()))
    return zygote.children()


def test_idle_job_processes_are_confined(runner):
    processes = job_processes(runner)
    assert processes, "the zygote keeps idle job processes"
    for process in processes:
        environ = open(f"/proc/{process.pid}/environ", "rb").read()
        assert SECRET_VALUE.encode() not in environ
        status = open(f"/proc/{process.pid}/status").read()
        if os.geteuid() == 0:
            assert process.uids().real == 65534 or process.username() == "nobody"
        assert "Seccomp:\t2" in status
        assert process.pid == os.getpgid(process.pid)  # own session/process group
        assert len(process.open_files()) == 0


def test_no_job_process_outlives_its_job(runner):
    runner.client.run_job(
        "def run(i, c):\n    while True:\n        pass\n", None, limits=JobLimits(timeout_seconds=0.3)
    )
    time.sleep(0.2)
    assert len(job_processes(runner)) <= 4  # only the idle pool
