"""The zygote: a warm, single-threaded process that forks one job process per job.

Started by the HTTP server at boot (`python -m sandbox.zygote`) with a minimal environment, it
pre-imports RestrictedPython and every allowed module, then serves frames on the control socket
it inherited. Forking happens only here, never in the multi-threaded HTTP server, so a job starts
from a clean copy of a single-threaded interpreter in about a millisecond.

The loop watches three kinds of file descriptors with one selector: the control socket, each job's
channel (results and ctx.http requests) and each job's pidfd (readable when it exits), and kills a
job's process group with SIGKILL when its wall-clock deadline passes.
"""

from __future__ import annotations

import argparse
import gc
import os
import pwd
import selectors
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from sandbox import executor, protocol
from sandbox.compiler import compile_source
from sandbox.errors import ErrorType

RECV_CHUNK_BYTES = 1 << 20
DEADLINE_SLACK_SECONDS = 0.002
"""Select wakes up this early at most; deadlines are checked on every loop turn."""
MEMORY_DEATH_RATIO = 0.9
"""A job that died without a result after using this share of its limit is reported memory_limit."""


@dataclass
class RunningJob:
    """One forked job as the zygote tracks it."""

    id: str
    pid: int
    channel: socket.socket
    pidfd: int
    started: float
    deadline: float
    header: dict[str, Any]
    reader: protocol.FrameReader = field(default_factory=protocol.FrameReader)
    result_body: bytes | None = None
    timed_out: bool = False


class Zygote:
    """Serves the control socket until it closes or SIGTERM arrives."""

    def __init__(self, control: socket.socket, confinement: executor.Confinement):
        self.control = control
        self.confinement = confinement
        self.selector = selectors.DefaultSelector()
        self.control_reader = protocol.FrameReader()
        self.jobs: dict[str, RunningJob] = {}
        self.running = True

    # -- control socket ------------------------------------------------------------------------
    def _on_control(self) -> None:
        data = self.control.recv(RECV_CHUNK_BYTES)
        if not data:
            self.running = False
            return
        for kind, body in self.control_reader.feed(data):
            header, payload = protocol.split(body)
            if kind == protocol.JOB:
                self._start(header, payload)
            elif kind == protocol.HTTP:
                job = self.jobs.get(header["id"])
                if job is not None:
                    try:
                        job.channel.setblocking(True)
                        protocol.send(job.channel, protocol.HTTP, payload)
                    except OSError:
                        pass  # the job died meanwhile; its pidfd reports it
                    finally:
                        job.channel.setblocking(False)

    def _reply(self, kind: bytes, header: dict[str, Any], payload: bytes = b"") -> None:
        self.control.setblocking(True)
        try:
            protocol.send(self.control, kind, protocol.join(header, payload))
        finally:
            self.control.setblocking(False)

    # -- jobs ----------------------------------------------------------------------------------
    def _start(self, header: dict[str, Any], input_json: bytes) -> None:
        ours, theirs = socket.socketpair()
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:  # the job process
            ours.close()
            executor.child_main(header, input_json, theirs, self.confinement)
        theirs.close()
        ours.setblocking(False)
        pidfd = os.pidfd_open(pid)
        job = RunningJob(id=header["id"], pid=pid, channel=ours, pidfd=pidfd, started=started,
                         deadline=started + header["timeout_seconds"], header=header)
        self.jobs[job.id] = job
        self.selector.register(ours, selectors.EVENT_READ, ("channel", job))
        self.selector.register(pidfd, selectors.EVENT_READ, ("exit", job))

    def _on_channel(self, job: RunningJob) -> None:
        while True:
            try:
                data = job.channel.recv(RECV_CHUNK_BYTES)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self.selector.unregister(job.channel)
                return
            try:
                frames = job.reader.feed(data)
            except protocol.PeerClosed:
                self._kill(job)
                return
            for kind, body in frames:
                if kind == protocol.RESULT and job.result_body is None:
                    job.result_body = body
                elif kind == protocol.HTTP and not job.timed_out:
                    self._reply(protocol.HTTP, {"id": job.id}, body)

    def _kill(self, job: RunningJob) -> None:
        try:
            os.killpg(job.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        except PermissionError:  # the job has not called setsid yet: kill it alone
            os.kill(job.pid, signal.SIGKILL)

    def _on_exit(self, job: RunningJob) -> None:
        _, status, usage = os.wait4(job.pid, 0)
        duration_ms = (time.monotonic() - job.started) * 1000
        try:
            self._on_channel(job)  # whatever the job wrote before exiting
        except (KeyError, ValueError):
            pass
        self.selector.unregister(job.pidfd)
        os.close(job.pidfd)
        try:
            self.selector.unregister(job.channel)
        except (KeyError, ValueError):
            pass
        job.channel.close()
        del self.jobs[job.id]
        try:
            os.killpg(job.pid, signal.SIGKILL)  # anything the job left behind in its group
        except (ProcessLookupError, PermissionError):
            pass
        self._report(job, status, usage.ru_maxrss * 1024, duration_ms)

    def _report(self, job: RunningJob, status: int, peak_rss_bytes: int, duration_ms: float) -> None:
        limit_mb = job.header["memory_limit_mb"]
        header: dict[str, Any] = {"id": job.id, "duration_ms": round(duration_ms, 3)}
        meta: dict[str, Any] = {}
        if job.result_body is not None and not job.timed_out:
            meta, _ = protocol.split(job.result_body.split(b"\n", 1)[0])
        baseline = meta.get("baseline_rss_bytes", 0)
        peak_mb = max(0.0, (peak_rss_bytes - baseline) / (1024 * 1024))
        header["peak_memory_mb"] = round(peak_mb, 2)
        signum = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        if job.timed_out or signum == signal.SIGXCPU:
            header["error"] = {"type": ErrorType.TIME_LIMIT, "line": None,
                               "message": f"the job exceeded its time limit of {job.header['timeout_seconds']} s"}
        elif job.result_body is not None:
            self._reply(protocol.RESULT, header, job.result_body)
            return
        elif (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 3) or peak_mb >= MEMORY_DEATH_RATIO * limit_mb:
            header["error"] = {"type": ErrorType.MEMORY_LIMIT, "line": None,
                               "message": f"the job exceeded its memory limit of {limit_mb} MB"}
        else:
            how = f"signal {signal.Signals(signum).name}" if signum else f"exit status {os.WEXITSTATUS(status)}"
            header["error"] = {"type": ErrorType.RUNTIME_ERROR, "line": None,
                               "message": f"the job process died unexpectedly ({how})"}
        self._reply(protocol.RESULT, header)

    # -- loop ----------------------------------------------------------------------------------
    def serve_forever(self) -> None:
        """Run until the control socket closes; then kill every job still running."""
        self.control.setblocking(False)
        self.selector.register(self.control, selectors.EVENT_READ, ("control", None))
        try:
            while self.running:
                now = time.monotonic()
                timeout = None
                for job in self.jobs.values():
                    if not job.timed_out and now >= job.deadline:
                        job.timed_out = True
                        self._kill(job)
                    elif not job.timed_out:
                        left = job.deadline - now
                        timeout = left if timeout is None else min(timeout, left)
                for key, _ in self.selector.select(timeout):
                    role, job = key.data
                    if role == "control":
                        self._on_control()
                    elif role == "channel" and job.id in self.jobs:
                        self._on_channel(job)
                    elif role == "exit" and job.id in self.jobs:
                        self._on_exit(job)
        finally:
            for job in list(self.jobs.values()):
                self._kill(job)


def confinement_for(isolate_network: bool) -> executor.Confinement:
    """Decide once how job processes confine themselves on this machine."""
    uid = gid = None
    if os.geteuid() == 0:
        try:
            nobody = pwd.getpwnam("nobody")
            uid, gid = nobody.pw_uid, nobody.pw_gid
        except KeyError:
            uid, gid = 65534, 65534
    devnull = os.open(os.devnull, os.O_RDWR)
    return executor.Confinement(uid=uid, gid=gid, isolate_network=isolate_network and os.geteuid() == 0,
                                devnull_fd=devnull)


def warm_up() -> None:
    """Load everything a job touches, so job processes start warm and import nothing."""
    header = {"code": "import json, math, re, datetime\ndef run(input, ctx):\n"
                      "    print('x')\n    return [json.dumps(input), math.sqrt(4), f'{input}']\n",
              "max_log_bytes": 1024, "max_output_bytes": 1024, "memory_limit_mb": 64}
    executor.execute(header, b"1", None)
    compile_source("x = 1")
    gc.collect()
    gc.freeze()  # job processes must not copy-on-write every object when the collector runs


def main(argv: list[str] | None = None) -> None:
    """Entry point of `python -m sandbox.zygote --fd N`."""
    parser = argparse.ArgumentParser(prog="sandbox.zygote")
    parser.add_argument("--fd", type=int, required=True, help="inherited control socket")
    parser.add_argument("--isolate-network", type=int, default=1)
    args = parser.parse_args(argv)
    control = socket.socket(fileno=args.fd)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the server stops us
    confinement = confinement_for(bool(args.isolate_network))
    warm_up()
    control.sendall(protocol.pack(protocol.RESULT, protocol.join({"ready": True, "pid": os.getpid(),
                                                                   "uid": confinement.uid})))
    Zygote(control, confinement).serve_forever()


if __name__ == "__main__":
    main()
