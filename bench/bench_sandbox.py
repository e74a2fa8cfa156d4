"""Benchmark of the custom code runner: a warm run-python job computing fibo(10).

Starts the runner on a free port, then measures through the HTTP API (SandboxClient):
p50/p99 latency of sequential jobs, and jobs per second with as many concurrent clients as the
default job spaces; beside the in-process floor (the same code compiled with RestrictedPython and
run in this process, and as plain Python).

    .venv/bin/python bench/bench_sandbox.py [--quick]

`run(quick)` returns rows {benchmark, figure, unit, baseline, baseline_name, ratio} for `make bench`.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sandbox.client import SandboxClient  # noqa: E402
from sandbox.compiler import compile_source, make_globals  # noqa: E402
from sandbox.executor import LogBuffer, make_print_collector  # noqa: E402

FIBO = "def fibo(n):\n    return n if n < 2 else fibo(n - 1) + fibo(n - 2)\ndef run(input, ctx):\n    return fibo(input)\n"
WARM_UP_JOBS = 50
LATENCY_JOBS = 1000
THROUGHPUT_SECONDS = 5.0
QUICK_FACTOR = 5


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_runner() -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {**os.environ, "PORT": str(port), "CUSTOM_CODE_RUNNER_HOST": "127.0.0.1", "PYTHONPATH": str(ROOT)}
    env.pop("CUSTOM_CODE_RUNNER_JOB_SPACES", None)  # the default job spaces
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(400):
        try:
            if requests.get(url + "/", timeout=1).ok:
                return process, url
        except requests.ConnectionError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("runner did not start")


def _percentile(sorted_values: list[float], fraction: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * fraction))]


def in_process_floor_ms(repeat: int) -> tuple[float, float]:
    """(restricted, plain) milliseconds per fibo(10) job run in this process (compile included
    for restricted, as a cold runner would; the plain figure is the function call only)."""
    started = time.perf_counter()
    for _ in range(repeat):
        code = compile_source(FIBO)
        namespace = make_globals(make_print_collector(LogBuffer(1024)))
        exec(code, namespace)  # noqa: S102 - the benchmark's own code
        namespace["run"](10, None)
    restricted = (time.perf_counter() - started) * 1000 / repeat

    def fibo(n: int) -> int:
        return n if n < 2 else fibo(n - 1) + fibo(n - 2)

    started = time.perf_counter()
    for _ in range(repeat):
        fibo(10)
    plain = (time.perf_counter() - started) * 1000 / repeat
    return restricted, plain


def run(quick: bool) -> list[dict]:
    """Run the benchmark; returns its result rows."""
    latency_jobs = LATENCY_JOBS // (QUICK_FACTOR if quick else 1)
    throughput_seconds = THROUGHPUT_SECONDS / (QUICK_FACTOR if quick else 1)
    process, url = _start_runner()
    try:
        spaces = requests.get(url + "/", timeout=5).json()["job_spaces"]
        client = SandboxClient(url, timeout_seconds=30)
        for _ in range(WARM_UP_JOBS):
            assert client.run_job(FIBO, 10).result == 55
        latencies = []
        for _ in range(latency_jobs):
            started = time.perf_counter()
            client.run_job(FIBO, 10)
            latencies.append((time.perf_counter() - started) * 1000)
        latencies.sort()

        done = [0] * spaces
        stop_at = time.monotonic() + throughput_seconds

        def worker(index: int) -> None:
            own = SandboxClient(url, timeout_seconds=30)
            while time.monotonic() < stop_at:
                if own.run_job(FIBO, 10).status == "completed":
                    done[index] += 1

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(spaces)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        jobs_per_second = sum(done) / (time.monotonic() - started)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
    restricted_ms, plain_ms = in_process_floor_ms(200 if quick else 1000)
    p50, p99 = _percentile(latencies, 0.5), _percentile(latencies, 0.99)
    return [
        {
            "benchmark": "sandbox fibo(10) p50 via HTTP",
            "figure": round(p50, 3),
            "unit": "ms",
            "baseline": round(restricted_ms, 4),
            "baseline_name": "in-process RestrictedPython (compile+run)",
            "ratio": round(p50 / restricted_ms, 1),
        },
        {
            "benchmark": "sandbox fibo(10) p99 via HTTP",
            "figure": round(p99, 3),
            "unit": "ms",
            "baseline": round(restricted_ms, 4),
            "baseline_name": "in-process RestrictedPython (compile+run)",
            "ratio": round(p99 / restricted_ms, 1),
        },
        {
            "benchmark": "sandbox fibo(10) p50 vs plain Python",
            "figure": round(p50, 3),
            "unit": "ms",
            "baseline": round(plain_ms, 4),
            "baseline_name": "in-process plain Python call",
            "ratio": round(p50 / plain_ms, 1),
        },
        {
            "benchmark": f"sandbox fibo(10) throughput, {spaces} job spaces, {spaces} clients",
            "figure": round(jobs_per_second, 1),
            "unit": "jobs/s",
            "baseline": round(1000 / restricted_ms, 1),
            "baseline_name": "in-process RestrictedPython, one thread",
            "ratio": round(jobs_per_second / (1000 / restricted_ms), 3),
        },
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer jobs, shorter throughput run")
    args = parser.parse_args()
    rows = run(args.quick)
    width = max(len(row["benchmark"]) for row in rows)
    for row in rows:
        print(
            f"{row['benchmark']:<{width}}  {row['figure']:>9} {row['unit']:<6}  "
            f"baseline {row['baseline']} {row['unit']} ({row['baseline_name']})  ratio x{row['ratio']}"
        )


if __name__ == "__main__":
    main()
