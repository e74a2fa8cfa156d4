"""The server side of job execution: job spaces, the zygote process and its control channel.

HTTP handler threads call JobRunner.run(); each takes a job space, sends its job to the zygote
and waits on its own queue for frames the reader thread dispatches by job id: ctx.http requests
(performed in the waiting thread, so the zygote never blocks) and finally the result.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from engine.outbound import OutboundPolicy
from sandbox import protocol, proxy
from sandbox.errors import RunnerBusy, RunnerUnavailable
from sandbox.models import HttpContext
from sandbox.settings import RunnerSettings

log = logging.getLogger(__name__)

ZYGOTE_START_TIMEOUT_SECONDS = 30.0
RESULT_GRACE_SECONDS = 5.0
"""Beyond a job's own timeout, how long a handler waits for the zygote's verdict before giving up."""
MAX_IDLE_PROCESSES = 8
"""Job processes the zygote keeps forked and confined ahead of demand (at most one per job space)."""
ZYGOTE_ENVIRONMENT_KEYS = ("PATH", "LANG", "LC_ALL", "TZ", "PYTHONPATH")
"""The only variables the zygote (and thus any job) starts with: no secret is ever inherited."""


@dataclass(frozen=True)
class JobRequest:
    """A validated job, as the HTTP layer hands it over."""

    code: str
    input_json: bytes
    connection: dict[str, Any]
    http: HttpContext | None
    memory_limit_mb: int
    timeout_seconds: float
    entrypoint: str = "run"


@dataclass(frozen=True)
class JobAnswer:
    """The JSON body of a job's answer, with what metrics need to know about it."""

    body: bytes
    status: str
    error_type: str | None
    duration_ms: float


class Zygote:
    """Handle on the zygote subprocess and its control socket (thread-safe)."""

    def __init__(self, settings: RunnerSettings):
        self.settings = settings
        self._send_lock = threading.Lock()
        self._waiters: dict[str, queue.SimpleQueue] = {}
        self._waiters_lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._control: socket.socket | None = None
        self._stopping = False
        self.alive = False

    def start(self) -> None:
        """Start the zygote and wait until it is warm."""
        ours, theirs = socket.socketpair()
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = {key: os.environ[key] for key in ZYGOTE_ENVIRONMENT_KEYS if key in os.environ}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sandbox.zygote",
                "--fd",
                str(theirs.fileno()),
                "--isolate-network",
                "1" if self.settings.isolate_network else "0",
                "--idle",
                str(min(MAX_IDLE_PROCESSES, self.settings.job_spaces)),
            ],
            pass_fds=[theirs.fileno()],
            env=env,
            close_fds=True,
            start_new_session=True,
        )
        theirs.close()
        ours.settimeout(ZYGOTE_START_TIMEOUT_SECONDS)
        kind, body = protocol.recv(ours)
        ready, _ = protocol.split(body)
        ours.settimeout(None)
        log.info("zygote %s ready (job uid %s)", ready.get("pid"), ready.get("uid"))
        self._control = ours
        self.alive = True
        threading.Thread(target=self._read_loop, args=(ours,), name="zygote-reader", daemon=True).start()

    def stop(self) -> None:
        """Stop the zygote; it kills every job still running."""
        self._stopping = True
        if self._control is not None:
            try:
                self._control.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._process is not None:
            try:
                self._process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def submit(self, job_id: str, header: dict[str, Any], input_json: bytes) -> queue.SimpleQueue:
        """Send a job; its frames will arrive on the returned queue."""
        waiter: queue.SimpleQueue = queue.SimpleQueue()
        with self._waiters_lock:
            self._waiters[job_id] = waiter
        self._send(protocol.JOB, protocol.join(header, input_json))
        return waiter

    def forget(self, job_id: str) -> None:
        with self._waiters_lock:
            self._waiters.pop(job_id, None)

    def answer_http(self, job_id: str, answer: dict[str, Any]) -> None:
        """Send a ctx.http answer back to the job."""
        self._send(protocol.HTTP, protocol.join({"id": job_id}, json.dumps(answer).encode()))

    def _send(self, kind: bytes, body: bytes) -> None:
        if not self.alive or self._control is None:
            raise RunnerUnavailable("the job process pool is restarting")
        with self._send_lock:
            try:
                protocol.send(self._control, kind, body)
            except OSError as error:
                raise RunnerUnavailable(f"the job process pool is down: {error}")

    def _read_loop(self, control: socket.socket) -> None:
        try:
            while True:
                kind, body = protocol.recv(control)
                header, payload = protocol.split(body)
                job_id = header.get("id")
                with self._waiters_lock:
                    # a message without a string id belongs to no job: drop it, as an unknown id is
                    waiter = self._waiters.get(job_id) if isinstance(job_id, str) else None
                if waiter is not None:
                    waiter.put((kind, header, payload))
        except (OSError, ValueError) as error:
            if not self._stopping:
                log.error("zygote channel lost: %s", error)
        self.alive = False
        with self._waiters_lock:
            waiters, self._waiters = list(self._waiters.values()), {}
        for waiter in waiters:
            waiter.put((None, {}, b""))
        if not self._stopping:
            self._restart()

    def _restart(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
        try:
            self.start()
        except Exception:  # noqa: BLE001 - health goes 503; the orchestrator restarts us
            log.exception("zygote restart failed")


class JobRunner:
    """Runs jobs within this runner's job spaces."""

    def __init__(self, settings: RunnerSettings):
        self.settings = settings
        self.zygote = Zygote(settings)
        self._spaces = threading.BoundedSemaphore(settings.job_spaces)
        self._busy = 0
        self._busy_lock = threading.Lock()
        self._ids = itertools.count(1)
        self.outbound = OutboundPolicy.from_settings(settings.production, settings.outbound_allowed_networks)
        """Where ctx.http may connect (engine/outbound.py): never link-local; in production never
        loopback or private networks unless OUTBOUND_ALLOWED_NETWORKS lets them through."""

    @property
    def remaining_job_spaces(self) -> int:
        return self.settings.job_spaces - self._busy

    def start(self) -> None:
        self.zygote.start()

    def stop(self) -> None:
        self.zygote.stop()

    def run(self, job: JobRequest) -> JobAnswer:
        """Run one job; returns the JSON answer body. Raises RunnerBusy or RunnerUnavailable."""
        if not self._spaces.acquire(timeout=self.settings.queue_wait_seconds):
            raise RunnerBusy(
                f"all {self.settings.job_spaces} job spaces stayed busy for "
                f"{self.settings.queue_wait_seconds} s",
                retry_after_seconds=1.0,
            )
        with self._busy_lock:
            self._busy += 1
        try:
            return self._run(job)
        finally:
            with self._busy_lock:
                self._busy -= 1
            self._spaces.release()

    def _run(self, job: JobRequest) -> JobAnswer:
        job_id = f"{os.getpid()}-{next(self._ids)}"
        header = {
            "id": job_id,
            "code": job.code,
            "entrypoint": job.entrypoint,
            "connection": job.connection,
            "http": job.http is not None,
            "memory_limit_mb": job.memory_limit_mb,
            "timeout_seconds": job.timeout_seconds,
            "max_output_bytes": self.settings.max_output_bytes,
            "max_log_bytes": self.settings.max_log_bytes,
        }
        deadline = time.monotonic() + job.timeout_seconds
        waiter = self.zygote.submit(job_id, header, job.input_json)
        try:
            while True:
                try:
                    kind, reply, payload = waiter.get(
                        timeout=deadline + RESULT_GRACE_SECONDS - time.monotonic()
                    )
                except queue.Empty:
                    raise RunnerUnavailable("the job process pool did not answer in time")
                if kind is None:
                    raise RunnerUnavailable("the job process pool died while running the job")
                if kind == protocol.HTTP:
                    answer = proxy.perform(
                        job.http, json.loads(payload), deadline - time.monotonic(), self.outbound
                    )
                    self.zygote.answer_http(job_id, answer)
                    continue
                return _answer(reply, payload)
        finally:
            self.zygote.forget(job_id)


def _answer(reply: dict[str, Any], payload: bytes) -> JobAnswer:
    """The JSON answer of a job, splicing the result bytes in without parsing them again."""
    document: dict[str, Any] = {
        "status": "failed",
        "error": None,
        "logs": "",
        "duration_ms": reply.get("duration_ms", 0.0),
        "peak_memory_mb": reply.get("peak_memory_mb", 0.0),
    }
    result = b"null"
    if reply.get("error"):
        document["error"] = reply["error"]
        document["logs"] = reply.get("logs", "")  # what a killed job printed before its end
    else:
        meta, result_bytes = protocol.split(payload)
        document["status"] = meta["status"]
        document["error"] = meta.get("error")
        document["logs"] = meta.get("logs", "")
        document["peak_memory_mb"] = meta.get("peak_memory_mb", 0.0)
        if meta["status"] == "completed":
            result = result_bytes or b"null"
    rest = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
    error = document["error"]
    return JobAnswer(
        body=b'{"result":' + result + b"," + rest[1:],
        status=document["status"],
        error_type=error["type"] if error else None,
        duration_ms=float(document["duration_ms"]),
    )
