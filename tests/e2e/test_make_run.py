"""`make run` (engine dev): five health endpoints within 60 s, Ctrl-C stops all, data survives."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
import requests
from pymongo import MongoClient

from engine.dev.stack import DEV_MONGO_PORT, DEV_PORTS, DEV_REDIS_PORT, DEV_S3_PORT, load_dev_secrets
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow
ALL_PORTS = [*DEV_PORTS.values(), DEV_REDIS_PORT, DEV_MONGO_PORT, DEV_S3_PORT]


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start_dev(data_dir: Path, log: Path) -> subprocess.Popen:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("SECRET", "ENCRYPTION_SECRET", "PROMETHEUS_MULTIPROC_DIR")
    }
    return subprocess.Popen(
        [sys.executable, "-m", "engine", "dev", "--data-dir", str(data_dir)],
        cwd=REPO_ROOT,
        env=env,
        stdout=open(log, "ab"),
        stderr=subprocess.STDOUT,
    )  # noqa: SIM115


def wait_all_healthy(process: subprocess.Popen, log: Path, timeout_seconds: float = 60.0) -> float:
    started = time.monotonic()
    pending = dict(DEV_PORTS)
    while pending and time.monotonic() - started < timeout_seconds:
        assert process.poll() is None, log.read_text()[-3000:]
        for name, port in list(pending.items()):
            try:
                if requests.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200:
                    del pending[name]
            except requests.RequestException:
                pass
        time.sleep(0.2)
    assert not pending, f"not healthy after {timeout_seconds} s: {sorted(pending)}\n{log.read_text()[-4000:]}"
    return time.monotonic() - started


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGINT)
    process.wait(60)


def test_make_run_starts_everything_and_keeps_data_across_restarts(tmp_path):
    busy = [port for port in ALL_PORTS if port_open(port)]
    assert not busy, f"ports {busy} are in use (is `make run` already running?)"
    data_dir, log = tmp_path / "data", tmp_path / "dev.log"
    process = start_dev(data_dir, log)
    try:
        seconds = wait_all_healthy(process, log)
        print(f"all five health endpoints answered 200 after {seconds:.1f} s")
        output = log.read_text()
        assert "platform-admin token" in output and "http://localhost:5000/" in output
        secrets_first = load_dev_secrets(data_dir)
        assert secrets_first["SECRET"] and secrets_first["ENCRYPTION_SECRET"]
        # Write a document and an object, as the engine would.
        MongoClient(f"mongodb://127.0.0.1:{DEV_MONGO_PORT}/").probe.items.insert_one({"_id": "kept"})
        s3 = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{DEV_S3_PORT}",
            region_name="us-east-1",
            aws_access_key_id="dev",
            aws_secret_access_key="dev",
        )
        s3.put_object(Bucket="integration-engine-connectors", Key="probe/kept.zip", Body=b"archive")
    finally:
        stop(process)
    # Ctrl-C stopped every process and server.
    time.sleep(0.5)
    assert [port for port in ALL_PORTS if port_open(port)] == []

    process = start_dev(data_dir, log)
    try:
        wait_all_healthy(process, log)
        assert load_dev_secrets(data_dir) == secrets_first
        assert MongoClient(f"mongodb://127.0.0.1:{DEV_MONGO_PORT}/").probe.items.find_one({"_id": "kept"})
        body = s3.get_object(Bucket="integration-engine-connectors", Key="probe/kept.zip")["Body"].read()
        assert body == b"archive"
    finally:
        stop(process)
