"""The job process: confine itself, run the custom code, report one result frame, exit.

Runs in a child forked from the zygote, single-threaded. Everything that could let the code out
(rlimits, session, fds, environment, uid, network namespace) is set before the code is compiled.
"""

from __future__ import annotations

import json
import marshal
import mmap
import os
import resource
import signal
import socket
import struct
import sys
import traceback
from dataclasses import dataclass
from typing import Any

from sandbox import protocol, seccomp
from sandbox.compiler import CODE_FILENAME, CompileFailure, compile_source, make_globals
from sandbox.errors import ErrorType
from sandbox.policy import ForbiddenError

RECURSION_LIMIT = 1000
"""Python frames; deeper recursion fails the job with recursion_limit, well before the C stack."""
OPEN_FILES_LIMIT = 8
"""RLIMIT_NOFILE: the job holds stdin/out/err and its channel; it needs no more."""
MEMORY_RESERVE_BYTES = 1024 * 1024
"""Freed on MemoryError so the job can still build and send its error report."""
MAX_ERROR_MESSAGE_CHARS = 4000
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Confinement:
    """What the zygote decided once for every job (looked up at its start, not per job)."""

    uid: int | None
    """Drop to this uid (and gid) when running as root; None when not root."""
    gid: int | None
    isolate_network: bool
    """Install the seccomp filter (no sockets, processes, exec) before the job runs."""
    devnull_fd: int


def memory_usage_bytes() -> tuple[int, int]:
    """(virtual size, resident size) of this process, in bytes."""
    with open("/proc/self/statm", "rb") as statm:
        size, resident = statm.read().split()[:2]
    return int(size) * PAGE_BYTES, int(resident) * PAGE_BYTES


def prepare(channel_fd: int, settings: Confinement) -> None:
    """Confine a freshly forked idle job process, before it receives a job (off the latency path)."""
    os.setsid()  # own process group: the parent kills the whole group on the deadline
    for fd in (0, 1, 2):
        os.dup2(settings.devnull_fd, fd)  # RLIMIT_FSIZE=0 must not kill a job writing to a log file
    _close_fds_except(channel_fd)  # the zygote's control socket, other jobs' channels, pidfds
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])  # the zygote blocked them around fork()
    if settings.uid is not None and settings.gid is not None:
        os.setgroups([])
        os.setgid(settings.gid)
        os.setuid(settings.uid)
    if settings.isolate_network:
        # No socket, fork, exec or namespace system call from here on, even for root. (A network
        # namespace would also do for sockets but costs ~1.2 ms per job plus its teardown.)
        seccomp.install()
    os.environ.clear()  # empty already (the zygote cleared its own at start): kept for clarity
    # Address space only (never touched, so it costs no page faults): RLIMIT_AS counts it, and
    # releasing it on MemoryError leaves room to build the error report.
    globals()["_reserve"] = mmap.mmap(-1, MEMORY_RESERVE_BYTES)


def _close_fds_except(keep: int) -> None:
    # os.closerange(3, 65536) costs 1.5 ms of close() calls; listing the open ones is cheaper.
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd != keep:
            try:
                os.close(fd)
            except OSError:
                pass  # the directory's own fd, already closed


def apply_limits(memory_limit_bytes: int, timeout_seconds: float) -> int:
    """Set the job's rlimits; returns the resident size in bytes before the code runs."""
    virtual, resident = memory_usage_bytes()
    # RLIMIT_AS counts address space the process already has (the warm interpreter and the job's
    # input): the job's limit is added on top, so "128 MB" means 128 MB the code itself can allocate.
    address_space = virtual + memory_limit_bytes
    cpu_seconds = int(timeout_seconds) + 1  # backstop; the parent's wall-clock kill is the real limit
    limits = [
        (resource.RLIMIT_AS, address_space, address_space),
        (resource.RLIMIT_CPU, cpu_seconds, cpu_seconds + 1),
        (resource.RLIMIT_NOFILE, OPEN_FILES_LIMIT, OPEN_FILES_LIMIT),
        (resource.RLIMIT_FSIZE, 0, 0),
        (resource.RLIMIT_CORE, 0, 0),
        (resource.RLIMIT_NPROC, 0, 0),  # no fork (ignored for root, hence the uid drop)
        (resource.RLIMIT_MEMLOCK, 0, 0),
    ]
    for which, soft, hard in limits:
        try:
            resource.setrlimit(which, (soft, hard))
        except (ValueError, OSError):
            pass  # a hard limit already lower than ours is fine
    sys.setrecursionlimit(RECURSION_LIMIT)
    return resident


class LogMirror:
    """A copy of the first bytes of a job's logs in memory shared with the zygote, so the logs
    of a job killed for its time or memory survive it. Layout: 4-byte little-endian length, then
    UTF-8 text; the length is written after the text, so the reader never sees a torn line."""

    def __init__(self, memory: mmap.mmap):
        self.memory = memory
        self.used = 0

    def write(self, text: str) -> None:
        room = len(self.memory) - 4 - self.used
        if room <= 0:
            return
        data = text.encode("utf-8", "replace")[:room]
        self.memory[4 + self.used : 4 + self.used + len(data)] = data
        self.used += len(data)
        struct.pack_into("<I", self.memory, 0, self.used)

    @staticmethod
    def read(memory: mmap.mmap) -> str:
        """What a (dead) job mirrored."""
        (used,) = struct.unpack_from("<I", memory, 0)
        return memory[4 : 4 + min(used, len(memory) - 4)].decode("utf-8", "replace")


class LogBuffer:
    """The job's logs: print output and ctx.log lines, capped at a byte size."""

    def __init__(self, max_bytes: int, mirror: LogMirror | None = None):
        self.max_bytes = max_bytes
        self.parts: list[str] = []
        self.size = 0
        self.truncated = False
        self.mirror = mirror

    def write(self, text: str) -> None:
        if self.truncated:
            return
        if self.size + len(text) > self.max_bytes:
            text = text[: max(0, self.max_bytes - self.size)]
            self.truncated = True
        self.parts.append(text)
        self.size += len(text)
        if self.mirror is not None:
            self.mirror.write(text)

    def text(self) -> str:
        joined = "".join(self.parts)
        return joined + (f"\n[logs truncated at {self.max_bytes} bytes]\n" if self.truncated else "")


def make_print_collector(logs: LogBuffer) -> type:
    """The `_print_` class RestrictedPython instantiates per scope; output goes to `logs`."""

    class LogCollector:
        def __init__(self, _getattr_: Any = None):
            self._getattr_ = _getattr_
            self._local = LogBuffer(logs.max_bytes)  # what `printed` returns in this scope

        def write(self, text: str) -> None:
            logs.write(text)
            self._local.write(text)

        def __call__(self) -> str:
            return self._local.text()

        def _call_print(self, *objects: Any, **kwargs: Any) -> None:
            if kwargs.get("file") is None:
                kwargs["file"] = self
            else:
                self._getattr_(kwargs["file"], "write")
            print(*objects, **kwargs)

    return LogCollector


class HttpResponse:
    """What ctx.http methods return."""

    def __init__(self, document: dict[str, Any]):
        self.status_code: int = document["status_code"]
        self.headers: dict[str, str] = document["headers"]
        self.text: str = document["text"]
        self.url: str = document["url"]
        self.ok = 200 <= self.status_code < 400

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.text)

    def __repr__(self) -> str:
        return f"<HttpResponse {self.status_code}>"


class HttpError(Exception):
    """ctx.http could not complete the request (refused host, network error, timeout)."""


class HttpClient:
    """ctx.http: requests to the connection's app, performed by the runner on the job's behalf."""

    def __init__(self, channel: socket.socket | None):
        self._channel = channel

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        headers: Any = None,
        json: Any = None,
        data: Any = None,
        timeout: float | None = None,
    ) -> HttpResponse:
        """Send one request; `path` is relative to the connection's base URL (or an absolute URL
        on an allowed host). The runner adds the connection's authentication."""
        if self._channel is None:
            raise HttpError("this job has no connection: ctx.http is unavailable")
        request = {
            "method": str(method).upper(),
            "path": str(path),
            "params": params,
            "headers": headers,
            "json": json,
            "data": data,
            "timeout": timeout,
        }
        protocol.send(self._channel, protocol.HTTP, _dumps(request).encode())
        _, body = protocol.recv(self._channel)
        answer = _loads(body)
        if "error" in answer:
            if answer["error"]["type"] == ErrorType.FORBIDDEN:
                raise ForbiddenError(answer["error"]["message"])
            raise HttpError(answer["error"]["message"])
        return HttpResponse(answer["response"])

    def get(self, path: str, **kwargs: Any) -> HttpResponse:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> HttpResponse:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> HttpResponse:
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> HttpResponse:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> HttpResponse:
        return self.request("DELETE", path, **kwargs)


class Logger:
    """ctx.log: call it or use .info/.warning/.error; lines go to the job's logs."""

    def __init__(self, logs: LogBuffer):
        self._logs = logs

    def __call__(self, *parts: Any) -> None:
        self.info(*parts)

    def _line(self, level: str, parts: tuple[Any, ...]) -> None:
        self._logs.write(f"[{level}] " + " ".join(str(part) for part in parts) + "\n")

    def debug(self, *parts: Any) -> None:
        self._line("debug", parts)

    def info(self, *parts: Any) -> None:
        self._line("info", parts)

    def warning(self, *parts: Any) -> None:
        self._line("warning", parts)

    def error(self, *parts: Any) -> None:
        self._line("error", parts)


class Context:
    """The `ctx` argument of run(input, ctx)."""

    def __init__(self, http: HttpClient, connection: dict[str, Any], log: Logger):
        self.http = http
        self.connection = connection
        self.log = log


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _loads(data: bytes) -> Any:
    return json.loads(data)


def _user_line(error: BaseException) -> int | None:
    line = None
    for frame in traceback.extract_tb(error.__traceback__):
        if frame.filename == CODE_FILENAME:
            line = frame.lineno
    if isinstance(error, SyntaxError) and error.filename == CODE_FILENAME:
        line = error.lineno
    return line


def _classify(error: BaseException) -> ErrorType:
    if isinstance(error, MemoryError):
        return ErrorType.MEMORY_LIMIT
    if isinstance(error, RecursionError):
        return ErrorType.RECURSION_LIMIT
    if isinstance(error, ForbiddenError):
        return ErrorType.FORBIDDEN
    return ErrorType.RUNTIME_ERROR


def _failure(error_type: ErrorType, message: str, line: int | None) -> dict[str, Any]:
    return {
        "status": "failed",
        "error": {"type": str(error_type), "message": message[:MAX_ERROR_MESSAGE_CHARS], "line": line},
    }


def execute(
    header: dict[str, Any],
    input_json: bytes,
    channel: socket.socket | None,
    compiled: bytes | None = None,
    mirror: LogMirror | None = None,
) -> tuple[dict, bytes]:
    """Compile (or load `compiled`, the marshalled code from the zygote's cache) and run the job;
    returns (meta, result JSON bytes). Never raises.

    With a channel, the first frame sent is always COMPILED, before any user code runs: it carries
    the freshly compiled code for the zygote's cache (or nothing). The zygote trusts only that
    first frame, which user code can never have written.
    """
    logs = LogBuffer(header["max_log_bytes"], mirror)
    meta: dict[str, Any]
    result_bytes = b""
    try:
        if compiled:
            code = marshal.loads(compiled)
        else:
            try:
                code = compile_source(header["code"])
            except CompileFailure:
                if channel is not None:
                    protocol.send(channel, protocol.COMPILED, b"")
                raise
        if channel is not None:
            protocol.send(channel, protocol.COMPILED, b"" if compiled else marshal.dumps(code))
        job_input = _loads(input_json) if input_json else None
        context = Context(
            HttpClient(channel if header.get("http") else None),
            dict(header.get("connection") or {}),
            Logger(logs),
        )
        namespace = make_globals(make_print_collector(logs))
        exec(code, namespace)
        entrypoint = namespace.get(header.get("entrypoint") or "run")
        if callable(entrypoint):
            value = entrypoint(job_input, context)
        elif "result" in namespace:
            value = namespace["result"]
        else:
            raise _NoEntrypoint(
                f"the code defines neither {header.get('entrypoint') or 'run'}(input, ctx) "
                "nor a variable named result"
            )
        try:
            result_bytes = _dumps(value).encode("utf-8", "surrogatepass")
        except (TypeError, ValueError) as error:
            raise _BadResult(f"the result is not JSON-serialisable: {error}")
        if len(result_bytes) > header["max_output_bytes"]:
            size = len(result_bytes)
            result_bytes = b""
            meta = _failure(
                ErrorType.OUTPUT_LIMIT,
                f"the result is {size} bytes, more than the output limit "
                f"of {header['max_output_bytes']} bytes",
                None,
            )
        else:
            meta = {"status": "completed"}
    except CompileFailure as failure:
        meta = _failure(failure.type, failure.message, failure.line)
    except (_NoEntrypoint, _BadResult) as error:
        meta = _failure(ErrorType.INVALID_RESULT, str(error), None)
    except BaseException as error:  # noqa: BLE001 - whatever the code raised is its failure
        reserve = globals().pop("_reserve", None)
        if reserve is not None:
            reserve.close()
        result_bytes = b""
        error_type = _classify(error)
        if error_type is ErrorType.MEMORY_LIMIT:
            message = f"the job exceeded its memory limit of {header['memory_limit_mb']} MB"
        elif error_type is ErrorType.RECURSION_LIMIT:
            message = f"maximum recursion depth ({RECURSION_LIMIT}) exceeded"
        elif error_type is ErrorType.FORBIDDEN:
            message = str(error)
        else:
            message = f"{type(error).__name__}: {error}"
        meta = _failure(error_type, message, _user_line(error))
    meta["logs"] = logs.text()
    return meta, result_bytes


WARM_UP_CODE = """import json, math, re, datetime
def helper(n):
    return n if n < 2 else helper(n - 1) + helper(n - 2)
def run(input, ctx):
    print('warm', input)
    ctx.log.info('up')
    total = 0
    for i, value in enumerate(input):
        total += value
    return {'sum': total, 'h': helper(5), 'j': json.loads(json.dumps(input)), 's': f'{total}'}
"""


def warm_up() -> None:
    """Run a small fixed job in the zygote at start: loads anything imported lazily, so job
    processes import nothing. (Running it in each idle job process too, to pre-copy the pages a
    job touches, cost 3.5 ms of CPU per job for 1 ms of latency: not worth it.)"""
    header = {"code": WARM_UP_CODE, "max_log_bytes": 1024, "max_output_bytes": 4096, "memory_limit_mb": 64}
    execute(header, b"[1,2,3]", None)
    memory_usage_bytes()
    resource.getrusage(resource.RUSAGE_SELF)


class _NoEntrypoint(Exception):
    pass


class _BadResult(Exception):
    pass


def child_main(channel: socket.socket, settings: Confinement, log_memory: mmap.mmap | None = None) -> None:
    """Entry point of a forked job process: wait for one job, run it, report, exit. Never returns."""
    status = 0
    try:
        prepare(channel.fileno(), settings)
        try:
            kind, body = protocol.recv(channel)
        except (protocol.PeerClosed, OSError):
            os._exit(0)  # the zygote is gone or shrinking its pool
        compiled = None
        if kind == protocol.JOB_COMPILED:
            compiled, body = protocol.unprefix(body)
        header, input_json = protocol.split(body)
        baseline = apply_limits(header["memory_limit_mb"] * 1024 * 1024, header["timeout_seconds"])
        meta, result_bytes = execute(
            header, input_json, channel, compiled, LogMirror(log_memory) if log_memory is not None else None
        )
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        meta["peak_memory_mb"] = round(max(0, peak - baseline) / (1024 * 1024), 2)
        meta["baseline_rss_bytes"] = baseline
        body = json.dumps(meta, separators=(",", ":")).encode() + b"\n" + result_bytes
        protocol.send(channel, protocol.RESULT, body)
    except MemoryError:
        status = 3  # the parent reports memory_limit from the missing result and the exit code
    except BaseException:  # noqa: BLE001
        status = 4
    finally:
        os._exit(status)
