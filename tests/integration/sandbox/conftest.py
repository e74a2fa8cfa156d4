"""Starts the real runner service as a subprocess on a free port, once per session."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import requests

from sandbox.client import SandboxClient

ROOT = Path(__file__).resolve().parents[3]
START_TIMEOUT_SECONDS = 20.0
SECRET_VALUE = "s3cr3t-runner-only-value"
"""Put in the runner's environment; no job may ever see it."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Runner:
    url: str
    process: subprocess.Popen
    client: SandboxClient

    def health(self) -> requests.Response:
        return requests.get(self.url + "/", timeout=5)

    def post(self, body: dict) -> requests.Response:
        return requests.post(self.url + "/api/v2/jobs", json=body, timeout=30)


def start_runner(**env: str) -> Runner:
    port = free_port()
    environment = {
        **os.environ,
        "PORT": str(port),
        "CUSTOM_CODE_RUNNER_HOST": "127.0.0.1",
        "RUNNER_TEST_SECRET": SECRET_VALUE,
        "PYTHONPATH": str(ROOT),
        "CONNECTORS_S3_BUCKET": "",  # no connector store unless a test asks for one
        **env,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox"],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"runner exited: {process.stderr.read().decode()}")
        try:
            if requests.get(url + "/", timeout=1).status_code == 200:
                return Runner(url=url, process=process, client=SandboxClient(url, timeout_seconds=30))
        except requests.ConnectionError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("runner did not become healthy")


def stop_runner(runner: Runner) -> list[int]:
    """Stop with SIGTERM; returns the pids of the runner's process family still alive after 5 s."""
    family = [runner.process.pid]
    try:
        family += [child.pid for child in psutil.Process(runner.process.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        pass
    runner.process.send_signal(signal.SIGTERM)
    try:
        runner.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        runner.process.kill()
        runner.process.wait()
    runner.client.close()
    deadline = time.monotonic() + 5
    while True:
        alive = [pid for pid in family if _alive(pid)]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


CONNECTORS_BUCKET = "runner-connectors"
"""The connector bucket of `connector_runner` (tests upload into it through the engine)."""
S3_SECRET_VALUE = "s3-secret-runner-only-value"
"""The connector runner's AWS_SECRET_ACCESS_KEY; no job may ever see it."""


@pytest.fixture(scope="session")
def connector_runner(stack) -> Iterator[Runner]:
    """A runner that reads connector references from the test stack's S3 server."""
    started = start_runner(
        CUSTOM_CODE_RUNNER_JOB_SPACES="2",
        CUSTOM_CODE_MEMORY_LIMIT=str(256 * 1024 * 1024),
        CUSTOM_CODE_TIMEOUT_SECONDS="10",
        CONNECTORS_S3_BUCKET=CONNECTORS_BUCKET,
        AWS_ENDPOINT_URL_S3=stack.s3.uri,
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY=S3_SECRET_VALUE,
        AWS_REGION="us-east-1",
    )
    yield started
    stop_runner(started)


@pytest.fixture(scope="session")
def runner() -> Iterator[Runner]:
    """The main runner: 4 job spaces, 256 MB and 10 s per job at most, 1 MB output limit."""
    started = start_runner(
        CUSTOM_CODE_RUNNER_JOB_SPACES="4",
        CUSTOM_CODE_MEMORY_LIMIT=str(256 * 1024 * 1024),
        CUSTOM_CODE_TIMEOUT_SECONDS="10",
        CUSTOM_CODE_MAX_OUTPUT_BYTES=str(1024 * 1024),
        CUSTOM_CODE_MAX_LOG_BYTES="65536",
    )
    yield started
    stop_runner(started)
