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
import hashlib
import json
import mmap
import os
import pwd
import selectors
import signal
import socket
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from sandbox import executor, protocol, seccomp
from sandbox.compiler import compile_source
from sandbox.errors import ErrorType

RECV_CHUNK_BYTES = 1 << 20
COMPILED_CACHE_ENTRIES = 1024
COMPILED_CACHE_BYTES = 64 * 1024 * 1024
LOG_MIRROR_BYTES = 64 * 1024
"""Logs of a job killed for its time or memory that survive it (shared memory per job process)."""
MEMORY_DEATH_RATIO = 0.9
"""A job that died without a result after using this share of its limit is reported memory_limit."""


@dataclass
class JobProcess:
    """A forked job process: idle (waiting for a job) or running one."""

    pid: int
    channel: socket.socket
    pidfd: int
    logs: mmap.mmap
    id: str | None = None
    started: float = 0.0
    deadline: float = 0.0
    header: dict[str, Any] = field(default_factory=dict)
    reader: protocol.FrameReader = field(default_factory=protocol.FrameReader)
    reported: bool = False
    timed_out: bool = False
    cache_key: str = ""
    first_frame_seen: bool = False


class Zygote:
    """Serves the control socket until it closes or SIGTERM arrives."""

    def __init__(self, control: socket.socket, confinement: executor.Confinement, idle_target: int):
        self.control = control
        self.confinement = confinement
        self.idle_target = idle_target
        self.selector = selectors.DefaultSelector()
        self.control_reader = protocol.FrameReader()
        self.idle: list[JobProcess] = []
        self.compiled = CompiledCache()
        self.jobs: dict[str, JobProcess] = {}
        self.running = True

    # -- control socket ------------------------------------------------------------------------
    def _on_control(self) -> None:
        data = self.control.recv(RECV_CHUNK_BYTES)
        if not data:
            self.running = False
            return
        for kind, body in self.control_reader.feed(data):
            if kind == protocol.JOB:
                self._start(body)
            elif kind == protocol.HTTP:
                header, payload = protocol.split(body)
                job = self.jobs.get(header["id"])
                if job is not None:
                    self._send_to(job, protocol.HTTP, payload)

    def _send_to(self, process: JobProcess, kind: bytes, body: bytes) -> bool:
        process.channel.setblocking(True)
        try:
            protocol.send(process.channel, kind, body)
            return True
        except OSError:
            return False  # the process died meanwhile; its pidfd reports it
        finally:
            process.channel.setblocking(False)

    def _reply(self, kind: bytes, header: dict[str, Any], payload: bytes = b"") -> None:
        self.control.setblocking(True)
        try:
            protocol.send(self.control, kind, protocol.join(header, payload))
        finally:
            self.control.setblocking(False)

    # -- job processes -------------------------------------------------------------------------
    def _fork(self) -> JobProcess:
        ours, theirs = socket.socketpair()
        logs = mmap.mmap(-1, LOG_MIRROR_BYTES)  # shared with the child: its logs outlive a kill
        # Block our signals across fork: a SIGTERM landing in the child before it resets its
        # handlers would run the zygote's shutdown code in the child.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        try:
            pid = os.fork()
            if pid == 0:
                ours.close()
                for other in (*self.idle, *self.jobs.values()):
                    other.logs.close()  # other jobs' logs are no business of this one
                executor.child_main(theirs, self.confinement, logs)  # never returns
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
        theirs.close()
        ours.setblocking(False)
        process = JobProcess(pid=pid, channel=ours, pidfd=os.pidfd_open(pid), logs=logs)
        self.selector.register(process.pidfd, selectors.EVENT_READ, ("exit", process))
        return process

    def _top_up(self) -> None:
        while len(self.idle) < self.idle_target:
            self.idle.append(self._fork())

    def _start(self, body: bytes) -> None:
        newline = body.find(b"\n")
        header = json.loads(body[:newline])
        process = self.idle.pop() if self.idle else self._fork()
        process.cache_key = hashlib.sha256(header["code"].encode("utf-8", "surrogatepass")).hexdigest()
        compiled = self.compiled.get(process.cache_key)
        kind = protocol.JOB
        if compiled is not None:
            kind, body = protocol.JOB_COMPILED, protocol.prefix(compiled, body)
        process.id = header["id"]
        process.header = header
        process.started = time.monotonic()
        process.deadline = process.started + header["timeout_seconds"]
        self.jobs[process.id] = process
        self.selector.register(process.channel, selectors.EVENT_READ, ("channel", process))
        if not self._send_to(process, kind, body):
            self._kill(process)

    def _on_channel(self, job: JobProcess) -> None:
        while not job.reported:
            try:
                data = job.channel.recv(RECV_CHUNK_BYTES)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._unregister(job.channel)
                return
            try:
                frames = job.reader.feed(data)
            except protocol.PeerClosed:
                self._kill(job)
                return
            for kind, body in frames:
                if not job.first_frame_seen:
                    # Written by the runner's code before any user code ran: the only frame whose
                    # content the zygote keeps (compiled code for the cache).
                    job.first_frame_seen = True
                    if kind == protocol.COMPILED and body:
                        self.compiled.put(job.cache_key, body)
                    if kind == protocol.COMPILED:
                        continue
                if kind == protocol.RESULT and not job.timed_out:
                    # Answer now; the exit is reaped later, off the latency path.
                    job.reported = True
                    self._kill(job)
                    self._unregister(job.channel)
                    duration_ms = round((time.monotonic() - job.started) * 1000, 3)
                    self._reply(protocol.RESULT, {"id": job.id, "duration_ms": duration_ms}, body)
                    return
                if kind == protocol.HTTP and not job.timed_out:
                    self._reply(protocol.HTTP, {"id": job.id}, body)

    def _unregister(self, fileobj: Any) -> None:
        try:
            self.selector.unregister(fileobj)
        except (KeyError, ValueError):
            pass

    def _kill(self, process: JobProcess) -> None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        except PermissionError:  # it has not called setsid yet: kill it alone
            os.kill(process.pid, signal.SIGKILL)

    def _on_exit(self, process: JobProcess) -> None:
        _, status, usage = os.wait4(process.pid, 0)
        if process.id is not None and not process.reported:
            self._on_channel(process)  # whatever the job wrote before exiting
        self._unregister(process.pidfd)
        os.close(process.pidfd)
        self._unregister(process.channel)
        process.channel.close()
        if process.id is None:
            process.logs.close()  # an idle process died (killed from outside?): the pool refills
            if process in self.idle:
                self.idle.remove(process)
            return
        del self.jobs[process.id]
        try:
            os.killpg(process.pid, signal.SIGKILL)  # anything the job left behind in its group
        except (ProcessLookupError, PermissionError):
            pass
        if not process.reported:
            duration_ms = (time.monotonic() - process.started) * 1000
            self._report_death(process, status, usage.ru_maxrss * 1024, duration_ms)
        process.logs.close()

    def _report_death(self, job: JobProcess, status: int, peak_rss_bytes: int, duration_ms: float) -> None:
        """Answer for a job that ended without sending its result: time, memory or a crash."""
        limit_mb = job.header["memory_limit_mb"]
        # Without the job's own baseline, count from the zygote's resident size as an estimate.
        peak_mb = max(0.0, (peak_rss_bytes - self.baseline_rss_bytes) / (1024 * 1024))
        header: dict[str, Any] = {
            "id": job.id,
            "duration_ms": round(duration_ms, 3),
            "peak_memory_mb": round(peak_mb, 2),
            "logs": executor.LogMirror.read(job.logs),
        }
        signum = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        if job.timed_out or signum == signal.SIGXCPU:
            header["error"] = {
                "type": ErrorType.TIME_LIMIT,
                "line": None,
                "message": f"the job exceeded its time limit of {job.header['timeout_seconds']} s",
            }
        elif (
            os.WIFEXITED(status) and os.WEXITSTATUS(status) == 3
        ) or peak_mb >= MEMORY_DEATH_RATIO * limit_mb:
            header["error"] = {
                "type": ErrorType.MEMORY_LIMIT,
                "line": None,
                "message": f"the job exceeded its memory limit of {limit_mb} MB",
            }
        else:
            how = (
                f"signal {signal.Signals(signum).name}" if signum else f"exit status {os.WEXITSTATUS(status)}"
            )
            header["error"] = {
                "type": ErrorType.RUNTIME_ERROR,
                "line": None,
                "message": f"the job process died unexpectedly ({how})",
            }
        self._reply(protocol.RESULT, header)

    # -- loop ----------------------------------------------------------------------------------
    def serve_forever(self) -> None:
        """Run until the control socket closes; then kill every job process."""
        self.baseline_rss_bytes = executor.memory_usage_bytes()[1]
        self.control.setblocking(False)
        self.selector.register(self.control, selectors.EVENT_READ, ("control", None))
        try:
            self._top_up()
            while self.running:
                now = time.monotonic()
                timeout = None
                for job in self.jobs.values():
                    if job.reported or job.timed_out:
                        continue
                    if now >= job.deadline:
                        job.timed_out = True
                        self._kill(job)
                    else:
                        left = job.deadline - now
                        timeout = left if timeout is None else min(timeout, left)
                events = self.selector.select(timeout)
                for key, _ in events:
                    role, process = key.data
                    if role == "control":
                        self._on_control()
                    elif role == "channel":
                        self._on_channel(process)
                    elif role == "exit":
                        self._on_exit(process)
                if not any(not job.reported for job in self.jobs.values()):
                    # Refill only between jobs: a fork blocks this loop for about a millisecond
                    # and the new process's warm-up takes CPU a running job would wait for.
                    self._top_up()
        finally:
            for process in [*self.jobs.values(), *self.idle]:
                self._kill(process)


class CompiledCache:
    """Marshalled code objects by sha256 of their source, least recently used out first.

    Connector operations and flow nodes run the same code again and again; compiling with
    RestrictedPython in a fresh job process costs about 1.6 ms of CPU (mostly copy-on-write page
    faults), loading marshalled code almost nothing.
    """

    def __init__(self, max_entries: int = COMPILED_CACHE_ENTRIES, max_bytes: int = COMPILED_CACHE_BYTES):
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.size = 0
        self._entries: OrderedDict[str, bytes] = OrderedDict()

    def get(self, key: str) -> bytes | None:
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: str, value: bytes) -> None:
        if key in self._entries or len(value) > self.max_bytes:
            return
        self._entries[key] = value
        self.size += len(value)
        while len(self._entries) > self.max_entries or self.size > self.max_bytes:
            _, dropped = self._entries.popitem(last=False)
            self.size -= len(dropped)


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
    return executor.Confinement(uid=uid, gid=gid, isolate_network=isolate_network, devnull_fd=devnull)


def warm_up() -> None:
    """Load everything a job touches, so job processes start warm and import nothing."""
    executor.warm_up()
    seccomp.prepare()
    os.environ.clear()  # job processes inherit an empty environment
    compile_source("x = 1")
    gc.collect()
    gc.freeze()  # job processes must not copy-on-write every object when the collector runs


def main(argv: list[str] | None = None) -> None:
    """Entry point of `python -m sandbox.zygote --fd N`."""
    parser = argparse.ArgumentParser(prog="sandbox.zygote")
    parser.add_argument("--fd", type=int, required=True, help="inherited control socket")
    parser.add_argument("--isolate-network", type=int, default=1)
    parser.add_argument("--idle", type=int, default=2, help="job processes kept forked and waiting")
    args = parser.parse_args(argv)
    control = socket.socket(fileno=args.fd)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the server stops us
    confinement = confinement_for(bool(args.isolate_network))
    warm_up()
    control.sendall(
        protocol.pack(
            protocol.RESULT, protocol.join({"ready": True, "pid": os.getpid(), "uid": confinement.uid})
        )
    )
    Zygote(control, confinement, max(0, args.idle)).serve_forever()


if __name__ == "__main__":
    main()
