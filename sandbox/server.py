"""The runner's HTTP service: POST /api/v2/jobs, GET / (health), GET /api/v2/prometheus.

One gunicorn gthread worker (keep-alive connections, a thread per request in flight) in front of
the JobRunner, which hands jobs to the single-threaded zygote. The HTTP process never forks.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import threading
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, request
from gunicorn.app.base import BaseApplication

from sandbox.connectors import ConnectorSources, parse_reference
from sandbox.errors import BadRequest, ErrorType, RunnerBusy, RunnerUnavailable
from sandbox.metrics import RunnerMetrics
from sandbox.models import HttpContext
from sandbox.runner import JobRequest, JobRunner
from sandbox.settings import RunnerSettings

log = logging.getLogger(__name__)

MODE = "custom-code-runner"
MAX_REQUEST_BYTES = 64 * 1024 * 1024
"""Code plus input plus context; bigger requests get 413."""
MAX_CODE_CHARS = 1024 * 1024
JSON = "application/json"


def _version() -> str:
    try:
        from engine import __version__

        return __version__
    except Exception:  # noqa: BLE001 - the runner does not depend on the engine package
        return "0.0.0"


def _error(
    status: int,
    error_type: ErrorType,
    message: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    error: dict[str, Any] = {"type": str(error_type), "message": message}
    if field:
        error["field"] = field
    return Response(json.dumps({"error": error}), status=status, mimetype=JSON, headers=headers)


def parse_job(
    document: Any, settings: RunnerSettings, connectors: ConnectorSources | None = None
) -> JobRequest:
    """Validate a POST /api/v2/jobs body. Raises BadRequest naming the offending field.

    A `connector` reference is resolved last, once the rest is valid (sandbox/connectors.py):
    ConnectorStoreUnavailable (a RunnerUnavailable) when S3 cannot be read."""
    if not isinstance(document, dict):
        raise BadRequest("body", "must be a JSON object")
    unknown = set(document) - {"code", "connector", "input", "limits", "connection", "http", "entrypoint"}
    if unknown:
        raise BadRequest(sorted(unknown)[0], "unknown field")
    code = document.get("code")
    reference = None
    if document.get("connector") is not None:
        if code is not None:
            raise BadRequest("connector", "send either `code` or `connector`, not both")
        reference = parse_reference(document["connector"])
        code = ""  # resolved last, once the rest of the request is valid
    elif not isinstance(code, str) or not code.strip():
        raise BadRequest("code", "must be a non-empty string of Python source (or send `connector`)")
    elif len(code) > MAX_CODE_CHARS:
        raise BadRequest("code", f"must be at most {MAX_CODE_CHARS} characters")
    entrypoint = document.get("entrypoint", "run")
    if not isinstance(entrypoint, str) or not entrypoint.isidentifier() or entrypoint.startswith("_"):
        raise BadRequest("entrypoint", "must be a public Python identifier")
    limits = document.get("limits") or {}
    if not isinstance(limits, dict):
        raise BadRequest("limits", "must be an object")
    if set(limits) - {"memory_mb", "timeout_seconds"}:
        raise BadRequest(
            "limits." + sorted(set(limits) - {"memory_mb", "timeout_seconds"})[0], "unknown field"
        )
    memory = limits.get("memory_mb", settings.default_memory_limit_mb)
    if type(memory) is not int or not 16 <= memory <= settings.default_memory_limit_mb:
        raise BadRequest(
            "limits.memory_mb", f"must be a whole number of MB, 16..{settings.default_memory_limit_mb}"
        )
    timeout = limits.get("timeout_seconds", settings.default_timeout_seconds)
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not math.isfinite(timeout)
        or not 0 < timeout <= settings.default_timeout_seconds
    ):
        raise BadRequest(
            "limits.timeout_seconds",
            f"must be a number of seconds, above 0 and at most {settings.default_timeout_seconds}",
        )
    connection = document.get("connection") or {}
    if not isinstance(connection, dict):
        raise BadRequest("connection", "must be an object of the connection's non-secret fields")
    http = _parse_http(document.get("http"))
    try:
        input_json = json.dumps(
            document.get("input"), ensure_ascii=False, allow_nan=False, separators=(",", ":")
        ).encode("utf-8", "surrogatepass")
    except ValueError as error:
        raise BadRequest("input", f"must be JSON: {error}")
    if reference is not None:
        if connectors is None:
            raise BadRequest("connector", "this runner reads no connectors (CONNECTORS_S3_BUCKET is unset)")
        code = connectors.source_of(reference)
        if len(code) > MAX_CODE_CHARS:
            raise BadRequest("connector.operation", f"its source is over {MAX_CODE_CHARS} characters")
    return JobRequest(
        code=code,
        input_json=input_json,
        connection=connection,
        http=http,
        memory_limit_mb=memory,
        timeout_seconds=float(timeout),
        entrypoint=entrypoint,
    )


def _parse_http(document: Any) -> HttpContext | None:
    if document is None:
        return None
    if not isinstance(document, dict):
        raise BadRequest("http", "must be an object {base_url, headers, allowed_hosts}")
    base_url = document.get("base_url")
    if (
        not isinstance(base_url, str)
        or urlsplit(base_url).scheme not in ("http", "https")
        or not urlsplit(base_url).hostname
    ):
        raise BadRequest("http.base_url", "must be an absolute http(s) URL")
    headers = document.get("headers") or {}
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise BadRequest("http.headers", "must be an object of string header values")
    hosts = document.get("allowed_hosts") or []
    if not isinstance(hosts, list) or not all(isinstance(h, str) and h for h in hosts):
        raise BadRequest("http.allowed_hosts", "must be a list of host names")
    return HttpContext(base_url=base_url, headers=headers, allowed_hosts=tuple(hosts))


def create_app(runner: JobRunner, metrics: RunnerMetrics) -> Flask:
    """The WSGI application around a started JobRunner."""
    app = Flask("sandbox")
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    settings = runner.settings
    version = _version()
    connectors = ConnectorSources(settings.connector_store) if settings.connector_store else None

    @app.get("/")
    def health() -> Response:
        alive = runner.zygote.alive
        document = {
            "status": "ok" if alive else "unavailable",
            "mode": MODE,
            "version": version,
            "job_spaces": settings.job_spaces,
            "remaining": runner.remaining_job_spaces,
        }
        return Response(json.dumps(document), status=200 if alive else 503, mimetype=JSON)

    @app.get("/api/v2/prometheus")
    def prometheus() -> Response:
        return Response(metrics.render(), mimetype=metrics.content_type)

    @app.post("/api/v2/jobs")
    def run_job() -> Response:
        try:
            document = json.loads(request.get_data(cache=False))
        except ValueError as error:
            return _error(400, ErrorType.INVALID_REQUEST, f"the body is not JSON: {error}", "body")
        try:
            job = parse_job(document, settings, connectors)
        except BadRequest as error:
            return _error(400, ErrorType.INVALID_REQUEST, error.message, error.field)
        except RunnerUnavailable as error:  # the connector store (S3)
            return _error(503, ErrorType.RUNNER_ERROR, error.message)
        try:
            answer = runner.run(job)
        except RunnerBusy as error:
            metrics.rejected.inc()
            return _error(
                429,
                ErrorType.RUNNER_BUSY,
                error.message,
                headers={"Retry-After": str(math.ceil(error.retry_after_seconds))},
            )
        except RunnerUnavailable as error:
            return _error(503, ErrorType.RUNNER_ERROR, error.message)
        metrics.observe(answer.status, answer.error_type, answer.duration_ms)
        return Response(answer.body, status=200, mimetype=JSON)

    @app.errorhandler(413)
    def too_large(_: Exception) -> Response:
        return _error(
            413, ErrorType.INVALID_REQUEST, f"the body is larger than {MAX_REQUEST_BYTES} bytes", "body"
        )

    @app.errorhandler(404)
    def not_found(_: Exception) -> Response:
        return _error(404, ErrorType.INVALID_REQUEST, "no such route")

    @app.errorhandler(405)
    def not_allowed(_: Exception) -> Response:
        return _error(405, ErrorType.INVALID_REQUEST, "method not allowed on this route")

    return app


SERVER_THREADS_PER_JOB_SPACE = 2
"""gunicorn threads per job space: a request beyond capacity holds a thread while it waits for a
space (up to queue_wait_seconds), and health or metrics scrapes must still get one."""
SERVER_SPARE_THREADS = 4
KEEPALIVE_SECONDS = 75
"""Idle keep-alive connections are held this long (the engine's clients reuse theirs)."""
GRACEFUL_MARGIN_SECONDS = 5
"""On SIGTERM, jobs in flight are drained: the longest allowed job, plus this, before a hard stop."""
WORKER_TIMEOUT_SECONDS = 60
"""gunicorn restarts a worker whose main loop is silent this long (busy job threads do not count)."""


class RunnerServer(BaseApplication):
    """gunicorn (one gthread worker, keep-alive) around the runner.

    One worker: the job spaces, the zygote and the metrics belong to one process. The runner and
    its zygote start in the worker after the fork, and stop with it, so the arbiter restarts both
    if the worker dies. (werkzeug's development server closes every connection, so each job paid
    for a new TCP connection and a new thread.)"""

    def __init__(self, settings: RunnerSettings, ready: threading.Event | None = None):
        self.settings = settings
        self.ready = ready
        self.runner: JobRunner | None = None
        super().__init__()

    def load_config(self) -> None:
        settings = self.settings
        values = {
            "bind": f"{settings.host}:{settings.port}",
            "workers": 1,
            "worker_class": "gthread",
            "threads": settings.job_spaces * SERVER_THREADS_PER_JOB_SPACE + SERVER_SPARE_THREADS,
            "keepalive": KEEPALIVE_SECONDS,
            "timeout": WORKER_TIMEOUT_SECONDS,
            "graceful_timeout": math.ceil(settings.default_timeout_seconds) + GRACEFUL_MARGIN_SECONDS,
            "accesslog": "-" if settings.debug else None,
            "loglevel": "debug" if settings.debug else "warning",
            "proc_name": "custom-code-runner",
            "worker_exit": self._worker_exit,
            "when_ready": self._when_ready,
        }
        for key, value in values.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        runner = JobRunner(self.settings)
        runner.start()
        self.runner = runner
        metrics = RunnerMetrics(self.settings.job_spaces, lambda: runner.remaining_job_spaces)
        log.info(
            "custom code runner listening on http://%s:%s with %s job spaces",
            self.settings.host,
            self.settings.port,
            self.settings.job_spaces,
        )
        return create_app(runner, metrics)

    def _worker_exit(self, _server: Any, _worker: Any) -> None:
        if self.runner is not None:
            self.runner.stop()

    def _when_ready(self, _server: Any) -> None:
        if self.ready is not None:
            self.ready.set()


def serve(settings: RunnerSettings, *, ready: threading.Event | None = None) -> None:
    """Run the runner until Ctrl-C or SIGTERM (blocking). SIGTERM drains the jobs in flight (see
    GRACEFUL_MARGIN_SECONDS), then the zygote and every job process stop."""
    logging.basicConfig(
        level=logging.DEBUG if settings.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    RunnerServer(settings, ready).run()
