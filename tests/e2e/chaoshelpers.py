"""Helpers of the chaos test: an HTTP recorder the flow's nodes call, and the analysis of what it saw.

The flow under test is

    api-trigger {key} -> http-request POST /begin {key}        -> answers {key, exec: <new id>}
                      -> http-request POST /sleep?ms=N {key, exec} (the run's "work")
                      -> http-request POST /end {key, exec}

so every execution of a run (every attempt that got as far as its first node) has its own
`exec` id, and the recorder knows when each execution began and when it was last heard of.
Two executions of one run overlap when the second began before the first was last heard of.
This is evidence independent of the engine's own bookkeeping (leases, attempts).
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, jsonify, request
from werkzeug.serving import WSGIRequestHandler, make_server

MAX_SLEEP_MS = 5_000


@dataclass
class Execution:
    """One execution of one run, as the recorder saw it (times are time.monotonic() seconds)."""

    key: str
    exec_id: str
    began: float
    last_seen: float
    worked: bool = False
    ended: bool = False


@dataclass
class Recorder:
    """What the flow's http-request nodes reported, by run key."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    executions: dict[str, Execution] = field(default_factory=dict)
    by_key: dict[str, list[str]] = field(default_factory=dict)
    unknown: list[dict[str, Any]] = field(default_factory=list)

    def begin(self, key: str) -> str:
        exec_id = uuid.uuid4().hex
        now = time.monotonic()
        with self.lock:
            self.executions[exec_id] = Execution(key, exec_id, now, now)
            self.by_key.setdefault(key, []).append(exec_id)
        return exec_id

    def seen(self, key: str, exec_id: str, what: str) -> None:
        now = time.monotonic()
        with self.lock:
            execution = self.executions.get(exec_id)
            if execution is None or execution.key != key:
                self.unknown.append({"key": key, "exec": exec_id, "what": what})
                return
            execution.last_seen = max(execution.last_seen, now)
            if what == "work":
                execution.worked = True
            elif what == "end":
                execution.ended = True

    def open_keys(self) -> set[str]:
        """Run keys with an execution that began and has not ended (running right now, or killed)."""
        with self.lock:
            return {e.key for e in self.executions.values() if not e.ended}

    def snapshot(self) -> tuple[dict[str, list[Execution]], list[dict[str, Any]]]:
        with self.lock:
            runs = {key: [self.executions[i] for i in ids] for key, ids in self.by_key.items()}
            return runs, list(self.unknown)


def recorder_app(recorder: Recorder) -> Flask:
    app = Flask("chaos-recorder")

    @app.post("/begin")
    def begin():
        key = str((request.get_json(silent=True) or {}).get("key", ""))
        return jsonify({"key": key, "exec": recorder.begin(key)})

    @app.post("/sleep")
    def sleep():
        body = request.get_json(silent=True) or {}
        milliseconds = min(int(request.args.get("ms", "0")), MAX_SLEEP_MS)
        recorder.seen(str(body.get("key")), str(body.get("exec")), "work-start")
        time.sleep(milliseconds / 1000)
        recorder.seen(str(body.get("key")), str(body.get("exec")), "work")
        return jsonify({"key": body.get("key"), "exec": body.get("exec")})

    @app.post("/end")
    def end():
        body = request.get_json(silent=True) or {}
        recorder.seen(str(body.get("key")), str(body.get("exec")), "end")
        return jsonify({"ok": True})

    return app


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        """Thousands of requests: not one log line each."""


class RecorderServer:
    """The recorder on a free port of 127.0.0.1, served by threads (stopped with .stop())."""

    def __init__(self) -> None:
        self.recorder = Recorder()
        self.server = make_server(
            "127.0.0.1", 0, recorder_app(self.recorder), threaded=True, request_handler=_QuietHandler
        )
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()


def chaos_flow(key: str, sleep_ms: int) -> dict[str, Any]:
    """begin -> work (the recorder sleeps sleep_ms) -> end, each an http-request to the recorder."""
    carried = {"key": "{{ input.body.key }}", "exec": "{{ input.body.exec }}"}
    return {
        "key": key,
        "trigger": {"type": "api-trigger"},
        "nodes": [
            {
                "key": "begin",
                "type": "http-request",
                "config": {
                    "method": "POST",
                    "url": "{{ parameters.recorder }}/begin",
                    "body": {"key": "{{ input.key }}"},
                },
            },
            {
                "key": "work",
                "type": "http-request",
                "config": {
                    "method": "POST",
                    "url": "{{ parameters.recorder }}/sleep",
                    "query": {"ms": sleep_ms},
                    "body": carried,
                },
            },
            {
                "key": "end",
                "type": "http-request",
                "config": {"method": "POST", "url": "{{ parameters.recorder }}/end", "body": carried},
            },
        ],
        "links": [
            {"from": "trigger", "to": "begin"},
            {"from": "begin", "to": "work"},
            {"from": "work", "to": "end"},
        ],
    }


@dataclass(frozen=True)
class Overlap:
    key: str
    first: str
    second: str
    seconds: float


def overlaps(runs: dict[str, list[Execution]]) -> list[Overlap]:
    """Pairs of executions of one run that were alive at the same time (by the recorder's clock)."""
    found: list[Overlap] = []
    for key, executions in runs.items():
        ordered = sorted(executions, key=lambda e: e.began)
        latest = None
        for execution in ordered:
            if latest is not None and execution.began < latest.last_seen:
                found.append(
                    Overlap(key, latest.exec_id, execution.exec_id, latest.last_seen - execution.began)
                )
            if latest is None or execution.last_seen > latest.last_seen:
                latest = execution
    return found
