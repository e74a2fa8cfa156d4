"""SandboxClient: how engine code (Celery workers, the API) runs custom code on a runner.

A thin wrapper over one urllib3 pool, so connections to the runner are kept alive and reused.
(urllib3 rather than requests: requests costs about 0.7 ms of CPU per call, a sixth of a job.)
"""

from __future__ import annotations

import json
import threading
from typing import Any

import urllib3

from sandbox.errors import InvalidJob, RunnerBusy, RunnerUnavailable
from sandbox.models import ConnectorReference, HttpContext, JobError, JobLimits, JobResult

JOBS_PATH = "/api/v2/jobs"
POOL_CONNECTIONS = 16
"""Kept-alive connections per client; one per concurrent caller thread is enough."""

__all__ = ["SandboxClient", "ConnectorReference", "HttpContext", "JobLimits", "JobResult", "JobError"]


_shared: dict[tuple[str, float], SandboxClient] = {}
_shared_lock = threading.Lock()


def shared_client(base_uri: str, timeout_seconds: float) -> SandboxClient:
    """This process's client of the runner at base_uri (its kept-alive connections are reused by
    every caller; urllib3's pool is thread-safe)."""
    key = (base_uri, timeout_seconds)
    client = _shared.get(key)
    if client is None:
        with _shared_lock:
            client = _shared.setdefault(key, SandboxClient(base_uri, timeout_seconds))
    return client


class SandboxClient:
    """Client of one custom code runner (or of a load balancer in front of several)."""

    def __init__(self, base_uri: str, timeout_seconds: float):
        """`timeout_seconds` bounds the whole HTTP call; keep it above the jobs' own time limit."""
        self.base_uri = base_uri.rstrip("/")
        self.timeout_seconds = timeout_seconds
        self._http = urllib3.PoolManager(num_pools=1, maxsize=POOL_CONNECTIONS, retries=False)

    def _request(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> urllib3.BaseHTTPResponse:
        """One call to the runner; raises urllib3.exceptions.HTTPError when it cannot be made."""
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json"} if data is not None else None
        return self._http.request(
            method,
            self.base_uri + path,
            body=data,
            headers=headers,
            timeout=urllib3.Timeout(total=self.timeout_seconds),
        )

    def run_job(
        self,
        code: str | None,
        input: Any,
        *,
        connection: dict | None = None,  # noqa: A002
        http: HttpContext | None = None,
        limits: JobLimits | None = None,
        entrypoint: str = "run",
        connector: ConnectorReference | None = None,
    ) -> JobResult:
        """Run `code` (or, with code None, the `connector` operation) and return its JobResult.

        Raises RunnerBusy on 429 and RunnerUnavailable when the runner cannot be reached or fails
        (503 also when it cannot read the connector store): both are safe to retry. Raises
        InvalidJob when the runner refuses the request: a bug here, or a reference naming nothing
        stored (`field` is then `connector.key`, `.version`, `.sha256` or `.operation`).
        """
        body: dict[str, Any] = {"code": code, "input": input, "entrypoint": entrypoint}
        if connector is not None:
            body = {"connector": connector.to_document(), "input": input, "entrypoint": entrypoint}
        if connection is not None:
            body["connection"] = connection
        if http is not None:
            body["http"] = http.to_document()
        if limits is not None:
            body["limits"] = limits.to_document()
        try:
            response = self._request("POST", JOBS_PATH, body)
        except urllib3.exceptions.HTTPError as error:
            raise RunnerUnavailable(f"custom code runner at {self.base_uri} unreachable: {error}")
        if response.status == 200:
            try:
                return JobResult.from_document(json.loads(response.data))
            except ValueError as error:
                raise RunnerUnavailable(f"custom code runner answered malformed JSON: {error}")
        detail = _error_of(response)
        if response.status == 429:
            retry_after = response.headers.get("Retry-After", "1")
            raise RunnerBusy(
                detail.get("message"),
                retry_after_seconds=float(retry_after) if retry_after.isdigit() else 1.0,
            )
        if response.status in (400, 413):
            raise InvalidJob(detail.get("message"), field=detail.get("field"))
        raise RunnerUnavailable(f"custom code runner answered {response.status}: {detail.get('message')}")

    def run_connector_operation(
        self,
        connector: ConnectorReference,
        input: Any,  # noqa: A002
        *,
        connection: dict | None = None,
        http: HttpContext | None = None,
        limits: JobLimits | None = None,
        entrypoint: str = "run",
    ) -> JobResult:
        """Run a connector's Python operation by reference: the runner reads its source from the
        connector archive in S3 (see run_job for the errors)."""
        return self.run_job(
            None,
            input,
            connection=connection,
            http=http,
            limits=limits,
            entrypoint=entrypoint,
            connector=connector,
        )

    def health(self) -> dict[str, Any]:
        """The runner's GET / document. Raises RunnerUnavailable."""
        try:
            response = self._request("GET", "/")
        except urllib3.exceptions.HTTPError as error:
            raise RunnerUnavailable(f"custom code runner at {self.base_uri} unhealthy: {error}")
        if response.status != 200:
            raise RunnerUnavailable(
                f"custom code runner at {self.base_uri} unhealthy: HTTP {response.status}"
            )
        try:
            return json.loads(response.data)
        except ValueError as error:
            raise RunnerUnavailable(f"custom code runner at {self.base_uri} unhealthy: {error}")

    def close(self) -> None:
        self._http.clear()

    def __enter__(self) -> SandboxClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _error_of(response: urllib3.BaseHTTPResponse) -> dict[str, Any]:
    try:
        document = json.loads(response.data)
        return (document.get("error") if isinstance(document, dict) else None) or {}
    except ValueError:
        return {"message": response.data[:500].decode("utf-8", "replace")}
