"""The shapes exchanged with the runner: what a caller sends and what a job answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class HttpContext:
    """What ctx.http may reach for one job: the connection's app.

    The runner adds `headers` (authentication) to every request; they never enter the job process.
    """

    base_url: str
    headers: dict[str, str] = field(default_factory=dict)
    allowed_hosts: tuple[str, ...] = ()
    """Host names requests may go to; empty means only the host of base_url."""

    def to_document(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "headers": dict(self.headers),
            "allowed_hosts": list(self.allowed_hosts),
        }


@dataclass(frozen=True)
class ConnectorReference:
    """A Python operation of an uploaded connector version, run by reference instead of by code.

    The runner reads the archive the engine stored on upload from CONNECTORS_S3_BUCKET (at
    `{workspace_id}/{key}/{version}/{sha256}.zip`) and runs the operation's file as inline code.
    `sha256` (the archive's digest) picks the exact archive; without it the version's only one is used.
    """

    workspace_id: str
    key: str
    version: str
    operation: str
    sha256: str | None = None

    def to_document(self) -> dict[str, Any]:
        document = {
            "workspace_id": self.workspace_id,
            "key": self.key,
            "version": self.version,
            "operation": self.operation,
        }
        if self.sha256 is not None:
            document["sha256"] = self.sha256
        return document


@dataclass(frozen=True)
class JobLimits:
    """Per-job limits; None takes the runner's default (which is also the maximum)."""

    memory_mb: int | None = None
    timeout_seconds: float | None = None

    def to_document(self) -> dict[str, Any]:
        return {
            key: value
            for key, value in (("memory_mb", self.memory_mb), ("timeout_seconds", self.timeout_seconds))
            if value is not None
        }


@dataclass(frozen=True)
class JobError:
    """Why a job failed: `type` is one of sandbox.errors.ErrorType."""

    type: str
    message: str
    line: int | None = None


@dataclass(frozen=True)
class JobResult:
    """The answer of POST /api/v2/jobs."""

    status: str
    """"completed" or "failed"."""
    result: Any = None
    error: JobError | None = None
    logs: str = ""
    duration_ms: float = 0.0
    """Wall-clock time of the job process, fork to exit, in milliseconds."""
    peak_memory_mb: float = 0.0
    """Peak resident memory the job added above the warm interpreter, in MiB."""

    @property
    def ok(self) -> bool:
        return self.status == "completed"

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> JobResult:
        error = document.get("error")
        return cls(
            status=document["status"],
            result=document.get("result"),
            error=JobError(error["type"], error["message"], error.get("line")) if error else None,
            logs=document.get("logs") or "",
            duration_ms=document.get("duration_ms") or 0.0,
            peak_memory_mb=document.get("peak_memory_mb") or 0.0,
        )
