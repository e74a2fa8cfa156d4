"""Real servers for the whole suite: Redis, a MongoDB-protocol server and S3, started once.

Each test gets its own database name, Redis logical database and bucket names, so tests are
isolated without restarting servers.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from engine.config import Config, load_config
from engine.dev.servers import (
    ServerProcess,
    free_port,
    mongo_database_uri,
    start_mongo,
    start_redis,
    start_s3,
)
from engine.services import Services
from engine.store.mongo import ensure_indexes

REPO_ROOT = Path(__file__).resolve().parent.parent
PROCESS_START_TIMEOUT_SECONDS = 60.0
_test_ids = itertools.count(1)


@dataclass
class Stack:
    """The session's embedded servers."""

    redis: ServerProcess
    mongo: ServerProcess
    s3: ServerProcess


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("server-logs")
    redis = start_redis(free_port(), log_path=logs / "redis.log")
    mongo = start_mongo(free_port(), log_path=logs / "mongo.log")
    s3 = start_s3(free_port(), log_path=logs / "s3.log")
    yield Stack(redis, mongo, s3)
    for server in (s3, mongo, redis):
        server.stop()


def make_env(stack: Stack, test_id: int, **overrides: str) -> dict[str, str]:
    """The environment of an engine process for one test: its own database, Redis db and buckets."""
    env = {
        "NODE_ENV": "test",
        "MONGO_URI": mongo_database_uri(stack.mongo, f"test_{test_id}"),
        "REDIS_URI": f"redis://127.0.0.1:{stack.redis.port}/{test_id % 4000 + 1}",
        "SECRET": f"test-secret-{test_id}-0123456789abcdefghijklmnop",
        "ENCRYPTION_SECRET": f"test-encryption-{test_id}-0123456789abcdefghijklmnop",
        "AWS_ENDPOINT_URL_S3": stack.s3.uri,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": "us-east-1",
        "TMP_S3_BUCKET": f"t{test_id}-tmp",
        "CONNECTORS_S3_BUCKET": f"t{test_id}-connectors",
        "STATIC_S3_BUCKET": f"t{test_id}-static",
        "IS_API": "1",
    }
    env.update(overrides)
    return env


@pytest.fixture
def test_id() -> int:
    return next(_test_ids) + os.getpid() % 1000 * 10


@pytest.fixture
def engine_env(stack: Stack, test_id: int) -> dict[str, str]:
    return make_env(stack, test_id)


@pytest.fixture
def config(engine_env: dict[str, str]) -> Config:
    return load_config(engine_env)


@pytest.fixture
def services(config: Config) -> Iterator[Services]:
    """Connected services over a fresh database, Redis db and buckets; wiped afterwards."""
    services = Services.from_config(config)
    ensure_indexes(services.db)
    services.blobs.ensure_buckets()
    services.redis.flushdb()
    yield services
    services.mongo.drop_database(config.database_name)
    services.redis.flushdb()
    services.close()


@dataclass
class EngineProcess:
    """An engine process started as a user would (a subprocess of the `engine` command)."""

    process: subprocess.Popen
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def health(self) -> requests.Response:
        return requests.get(self.url + "/", timeout=5)

    def wait_healthy(self, timeout_seconds: float = PROCESS_START_TIMEOUT_SECONDS) -> float:
        """Seconds until GET / answered 200; fails the test otherwise."""
        return wait_for_status(self, 200, timeout_seconds)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_for_status(proc: EngineProcess, status: int, timeout_seconds: float) -> float:
    started = time.monotonic()
    last: object = None
    while time.monotonic() - started < timeout_seconds:
        if proc.process.poll() is not None:
            raise AssertionError(f"process exited with {proc.process.returncode}:\n{proc.logs()[-3000:]}")
        try:
            response = proc.health()
            last = response.status_code
            if response.status_code == status:
                return time.monotonic() - started
        except requests.RequestException as error:
            last = error
        time.sleep(0.1)
    raise AssertionError(f"GET / never answered {status} (last: {last}):\n{proc.logs()[-3000:]}")


def wait_for_body(
    proc: EngineProcess, predicate, timeout_seconds: float, *, status: int | None = None
) -> dict:
    """The first health body that satisfies predicate (and has `status`, if given); fails otherwise."""
    started = time.monotonic()
    body: dict = {}
    while time.monotonic() - started < timeout_seconds:
        try:
            response = proc.health()
            body = response.json()
            if predicate(body) and (status is None or response.status_code == status):
                return body
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise AssertionError(f"health never matched (last: {body}):\n{proc.logs()[-2000:]}")


@pytest.fixture
def start_engine(tmp_path: Path) -> Iterator:
    """Start `engine <args>` with an environment; stopped at the end of the test."""
    started: list[EngineProcess] = []

    def start(env: dict[str, str], *args: str, port: int | None = None) -> EngineProcess:
        port = port or free_port()
        log_path = tmp_path / f"engine-{len(started)}-{port}.log"
        full_env = {**os.environ, **env, "PORT": str(port), "PYTHONUNBUFFERED": "1"}
        full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        process = subprocess.Popen(
            [sys.executable, "-m", "engine", *(args or ("run",))],
            env=full_env,
            cwd=REPO_ROOT,
            stdout=open(log_path, "wb"),
            stderr=subprocess.STDOUT,  # noqa: SIM115
        )
        proc = EngineProcess(process, port, log_path)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()
