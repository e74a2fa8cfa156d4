"""Shared helpers of the benchmarks: real servers started the way the tests start them, engine
processes started the way an operator starts them, statistics, and the machine's description.

A benchmark module uses them like this:

    with Stack() as stack:
        env = stack.engine_env("actions", IS_API="0", IS_INSTANT_TASKS_WORKER="1")
        worker = start_engine(env)            # `python -m engine run`
        worker.wait_healthy()
        ...                                   # everything is stopped at the end of the block

Every server and process started here is also stopped when the benchmark process is terminated
(SIGTERM from `python -m bench` when a module runs over its time budget), so nothing is left
behind on the shared machine.
"""

from __future__ import annotations

import atexit
import itertools
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests

from engine.dev.servers import (
    ServerProcess,
    free_port,
    mongo_database_uri,
    start_mongo,
    start_redis,
    start_s3,
)

ROOT = Path(__file__).resolve().parents[1]
PROCESS_START_TIMEOUT_SECONDS = 60.0
"""How long an engine process may take to answer 200 on its health endpoint."""
PROCESS_STOP_TIMEOUT_SECONDS = 15.0
"""SIGTERM, then SIGKILL after this long."""
REDIS_DATABASES_USED = 4000
"""Logical Redis databases handed out to benchmark environments (the server has 4096)."""

__all__ = [
    "ROOT",
    "EngineProcess",
    "Stack",
    "free_port",
    "iqr",
    "machine",
    "median",
    "percentile",
    "ratio",
    "row",
    "spread",
    "start_engine",
    "start_sandbox",
    "stopwatch",
]

_cleanups: list = []
_env_ids = itertools.count(1)


def _stop_everything() -> None:
    while _cleanups:
        stop = _cleanups.pop()
        try:
            stop()
        except Exception:  # noqa: BLE001, S110 - best effort at exit: the next one must still run
            pass


def _on_sigterm(signum, _frame) -> None:
    # SystemExit unwinds `with Stack()` blocks and runs atexit, which stops what we started.
    raise SystemExit(128 + signum)


atexit.register(_stop_everything)
if sys.platform != "win32":
    try:
        signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread: the caller owns signal handling
        pass


# --- statistics -------------------------------------------------------------------------------


def percentile(values: Iterable[float], fraction: float) -> float:
    """The nearest-rank percentile (fraction 0..1) of values; raises ValueError when empty."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentile of no values")
    rank = max(1, min(len(ordered), int(-(-fraction * len(ordered) // 1))))  # ceil, at least 1
    return ordered[rank - 1]


def median(values: Iterable[float]) -> float:
    """The median of values; raises ValueError when empty."""
    values = list(values)
    if not values:
        raise ValueError("median of no values")
    return statistics.median(values)


def spread(values: Iterable[float]) -> tuple[float, float]:
    """(min, max) of values."""
    values = list(values)
    return min(values), max(values)


def iqr(values: Iterable[float]) -> tuple[float, float]:
    """(25th, 75th) percentile of values (equal to the value itself for a single one)."""
    values = list(values)
    if len(values) < 2:
        return values[0], values[0]
    quartiles = statistics.quantiles(values, n=4, method="inclusive")
    return quartiles[0], quartiles[2]


def ratio(figure: float, baseline: float, digits: int = 2) -> float | None:
    """figure / baseline rounded, or None when the baseline is zero."""
    return round(figure / baseline, digits) if baseline else None


def row(
    benchmark: str,
    figure: float,
    unit: str,
    baseline: float | None,
    baseline_name: str,
    notes: str = "",
    *,
    digits: int = 3,
) -> dict:
    """One result row in the shape `python -m bench` aggregates."""
    return {
        "benchmark": benchmark,
        "figure": round(figure, digits),
        "unit": unit,
        "baseline": None if baseline is None else round(baseline, digits),
        "baseline_name": baseline_name,
        "ratio": None if baseline is None else ratio(figure, baseline),
        "notes": notes,
    }


@contextmanager
def stopwatch() -> Iterator[list[float]]:
    """`with stopwatch() as elapsed:` ... then `elapsed[0]` is the block's wall time in seconds."""
    elapsed = [0.0]
    started = time.perf_counter()
    try:
        yield elapsed
    finally:
        elapsed[0] = time.perf_counter() - started


# --- the machine ------------------------------------------------------------------------------


def machine() -> dict:
    """CPU model, cores, memory, Python and OS of this machine, and its load when measured."""
    cpu_model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
                break
    except OSError:
        pass
    try:
        load = [round(value, 2) for value in os.getloadavg()]
    except OSError:
        load = None
    return {
        "cpu_model": cpu_model,
        "cores": os.cpu_count(),
        "memory_gb": memory_gb,
        "python": platform.python_version(),
        "os": platform.platform(terse=True),
        "load_average_1_5_15": load,
    }


def describe_machine(info: dict | None = None) -> str:
    """One line: 'AMD EPYC, 2 cores, 23.5 GB, Python 3.11.9, Linux-6.1 (load 0.5 0.4 0.3)'."""
    info = info or machine()
    text = (
        f"{info['cpu_model']}, {info['cores']} cores, {info['memory_gb']} GB, "
        f"Python {info['python']}, {info['os']}"
    )
    if info.get("load_average_1_5_15"):
        text += " (load at start " + " ".join(str(v) for v in info["load_average_1_5_15"]) + ")"
    return text


# --- servers and processes --------------------------------------------------------------------


@dataclass
class Stack:
    """Real Redis, a MongoDB-protocol server (secantusdb) and S3 (moto), on free ports, as in
    the tests' `stack` fixture. Use as a context manager; each `engine_env` is isolated."""

    log_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="bench-")))
    redis: ServerProcess | None = None
    mongo: ServerProcess | None = None
    s3: ServerProcess | None = None

    def start(self) -> Stack:
        """Start the three servers (blocking until they accept connections)."""
        self.redis = start_redis(free_port(), log_path=self.log_dir / "redis.log")
        _cleanups.append(self.redis.stop)
        self.mongo = start_mongo(free_port(), log_path=self.log_dir / "mongo.log")
        _cleanups.append(self.mongo.stop)
        self.s3 = start_s3(free_port(), log_path=self.log_dir / "s3.log")
        _cleanups.append(self.s3.stop)
        return self

    def stop(self) -> None:
        """Stop the servers (idempotent)."""
        for server in (self.s3, self.mongo, self.redis):
            if server is not None:
                server.stop()

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()

    def engine_env(self, name: str = "bench", **overrides: str) -> dict[str, str]:
        """The environment of an engine process: its own database, Redis db and buckets
        (the same shape as the tests' `make_env`). IS_API=1 unless overridden."""
        assert self.redis and self.mongo and self.s3, "Stack.start() first"
        number = next(_env_ids)
        prefix = f"b{os.getpid()}-{number}"
        env = {
            "NODE_ENV": "test",
            "MONGO_URI": mongo_database_uri(self.mongo, f"bench_{name.replace('-', '_')}_{number}"),
            "REDIS_URI": f"redis://127.0.0.1:{self.redis.port}/{number % REDIS_DATABASES_USED + 1}",
            "SECRET": f"bench-secret-{number}-0123456789abcdefghijklmnop",
            "ENCRYPTION_SECRET": f"bench-encryption-{number}-0123456789abcdefghij",
            "AWS_ENDPOINT_URL_S3": self.s3.uri,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_REGION": "us-east-1",
            "TMP_S3_BUCKET": f"{prefix}-tmp",
            "CONNECTORS_S3_BUCKET": f"{prefix}-connectors",
            "STATIC_S3_BUCKET": f"{prefix}-static",
            "IS_API": "1",
        }
        env.update(overrides)
        return env


@dataclass
class EngineProcess:
    """An engine process (`python -m engine <args>`) started for a benchmark."""

    process: subprocess.Popen
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_healthy(self, timeout_seconds: float = PROCESS_START_TIMEOUT_SECONDS) -> float:
        """Seconds until GET / answered 200; raises RuntimeError (with the log's tail) otherwise."""
        started = time.monotonic()
        last: object = None
        while time.monotonic() - started < timeout_seconds:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"engine process exited with {self.process.returncode}:\n{self.logs()[-2000:]}"
                )
            try:
                response = requests.get(self.url + "/", timeout=2)
                last = response.status_code
                if response.status_code == 200:
                    return time.monotonic() - started
            except requests.RequestException as error:
                last = error
            time.sleep(0.1)
        raise RuntimeError(f"GET / never answered 200 (last: {last}):\n{self.logs()[-2000:]}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after PROCESS_STOP_TIMEOUT_SECONDS (idempotent)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(PROCESS_STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


def start_engine(
    env: dict[str, str], *args: str, port: int | None = None, log_dir: Path | None = None
) -> EngineProcess:
    """Start `python -m engine <args>` (default `run`) with env on port (default: a free one).

    The process is stopped at the latest when the benchmark process exits; call `.stop()` sooner.
    """
    port = port or free_port()
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="bench-engine-"))
    log_path = log_dir / f"engine-{'-'.join(args or ('run',))}-{port}.log"
    full_env = {**os.environ, **env, "PORT": str(port), "PYTHONUNBUFFERED": "1"}
    full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), full_env.get("PYTHONPATH")]))
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "engine", *(args or ("run",))],
            env=full_env,
            cwd=ROOT,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    engine = EngineProcess(process, port, log_path)
    _cleanups.append(engine.stop)
    return engine


def start_sandbox(port: int | None = None, **env: str) -> EngineProcess:
    """Start the custom code runner (`python -m engine sandbox`) and wait until it is healthy."""
    runner = start_engine({"CUSTOM_CODE_RUNNER_HOST": "127.0.0.1", **env}, "sandbox", port=port)
    runner.wait_healthy()
    return runner
