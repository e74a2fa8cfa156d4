"""SandboxClient: how engine code (Celery workers, the API) runs custom code on a runner.

A thin wrapper over one requests.Session, so connections to the runner are reused.
"""

from __future__ import annotations

from typing import Any

import requests
from requests.adapters import HTTPAdapter

from sandbox.errors import InvalidJob, RunnerBusy, RunnerUnavailable
from sandbox.models import HttpContext, JobError, JobLimits, JobResult

JOBS_PATH = "/api/v2/jobs"
POOL_CONNECTIONS = 16
"""Kept-alive connections per client; one per concurrent caller thread is enough."""

__all__ = ["SandboxClient", "HttpContext", "JobLimits", "JobResult", "JobError"]


class SandboxClient:
    """Client of one custom code runner (or of a load balancer in front of several)."""

    def __init__(self, base_uri: str, timeout_seconds: float):
        """`timeout_seconds` bounds the whole HTTP call; keep it above the jobs' own time limit."""
        self.base_uri = base_uri.rstrip("/")
        self.timeout_seconds = timeout_seconds
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=POOL_CONNECTIONS)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def run_job(
        self,
        code: str,
        input: Any,
        *,
        connection: dict | None = None,  # noqa: A002
        http: HttpContext | None = None,
        limits: JobLimits | None = None,
        entrypoint: str = "run",
    ) -> JobResult:
        """Run `code` on the runner and return its JobResult (completed or failed).

        Raises RunnerBusy on 429 and RunnerUnavailable when the runner cannot be reached or fails:
        both are safe to retry. Raises InvalidJob when the runner refuses the request (a bug here).
        """
        body: dict[str, Any] = {"code": code, "input": input, "entrypoint": entrypoint}
        if connection is not None:
            body["connection"] = connection
        if http is not None:
            body["http"] = http.to_document()
        if limits is not None:
            body["limits"] = limits.to_document()
        try:
            response = self.session.post(self.base_uri + JOBS_PATH, json=body, timeout=self.timeout_seconds)
        except requests.RequestException as error:
            raise RunnerUnavailable(f"custom code runner at {self.base_uri} unreachable: {error}")
        if response.status_code == 200:
            return JobResult.from_document(response.json())
        detail = _error_of(response)
        if response.status_code == 429:
            retry_after = response.headers.get("Retry-After", "1")
            raise RunnerBusy(
                detail.get("message"),
                retry_after_seconds=float(retry_after) if retry_after.isdigit() else 1.0,
            )
        if response.status_code in (400, 413):
            raise InvalidJob(detail.get("message"), field=detail.get("field"))
        raise RunnerUnavailable(
            f"custom code runner answered {response.status_code}: {detail.get('message')}"
        )

    def health(self) -> dict[str, Any]:
        """The runner's GET / document. Raises RunnerUnavailable."""
        try:
            response = self.session.get(self.base_uri + "/", timeout=self.timeout_seconds)
            response.raise_for_status()
            return response.json()
        except requests.RequestException as error:
            raise RunnerUnavailable(f"custom code runner at {self.base_uri} unhealthy: {error}")

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> SandboxClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _error_of(response: requests.Response) -> dict[str, Any]:
    try:
        return response.json().get("error") or {}
    except ValueError:
        return {"message": response.text[:500]}
