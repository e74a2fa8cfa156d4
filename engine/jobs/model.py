"""The job record: one document of the `jobs` collection per queued task."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


class JobState(StrEnum):
    """queued -> running -> completed | failed | stopped (a lost lease goes back to queued)."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    STOPPED = "stopped"


FINISHED_STATES = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.STOPPED})

FLOW_CLASS, PULL_CLASS, OTHER_CLASS = "flow", "pull", "other"
_LIMIT_CLASSES: dict[str, str] = {
    "flow-run": FLOW_CLASS,
    "event-pull": PULL_CLASS,
    "data-source-sync": PULL_CLASS,
}
"""Which limits a kind counts against: flow (parallelFlowRunsPerConnection, parallelFlowRuns),
pull (parallelEventPulls); every kind counts against parallelBackgroundJobsPerCustomer."""


def limit_class(kind: str) -> str:
    return _LIMIT_CLASSES.get(kind, OTHER_CLASS)


def set_limit_class(kind: str, value: str) -> None:
    """Count a new kind as flow / pull work (register it in every process: API and workers)."""
    if value not in (FLOW_CLASS, PULL_CLASS, OTHER_CLASS):
        raise ValueError(f"unknown limit class {value!r}")
    _LIMIT_CLASSES[kind] = value


@dataclass(frozen=True)
class Job:
    """A queued task. `error` is {type, message} when failed; lease fields while running."""

    id: str
    kind: str
    state: JobState
    workspace_id: str
    customer_id: str
    connection_id: str | None
    payload: dict[str, Any]
    launched_by: str
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    attempts: int = 0
    max_attempts: int = 3
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    stop_requested: bool = False
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    dispatched_at: datetime | None = None
    dispatch_token: str | None = None
    lane: str = ""
    slots: tuple[str, ...] = ()
    """The limit keys whose slots this job's dispatch holds (as `slot_holder`)."""
    slot_holder: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES

    @classmethod
    def from_document(cls, d: dict[str, Any]) -> Job:
        return cls(
            id=d["_id"],
            kind=d["kind"],
            state=JobState(d["state"]),
            workspace_id=d["workspaceId"],
            customer_id=d["customerId"],
            connection_id=d.get("connectionId"),
            payload=d.get("payload") or {},
            launched_by=d.get("launchedBy", ""),
            result=d.get("result"),
            error=d.get("error"),
            attempts=d.get("attempts", 0),
            max_attempts=d.get("maxAttempts", 3),
            created_at=d.get("createdAt"),
            started_at=d.get("startedAt"),
            finished_at=d.get("finishedAt"),
            stop_requested=bool(d.get("stopRequested")),
            lease_owner=d.get("leaseOwner"),
            lease_expires_at=d.get("leaseExpiresAt"),
            dispatched_at=d.get("dispatchedAt"),
            dispatch_token=d.get("dispatchToken"),
            lane=d.get("lane", ""),
            slots=tuple(d.get("slots") or ()),
            slot_holder=d.get("slotHolder"),
        )

    def to_document(self) -> dict[str, Any]:
        return {
            "_id": self.id,
            "kind": self.kind,
            "state": self.state.value,
            "workspaceId": self.workspace_id,
            "customerId": self.customer_id,
            "connectionId": self.connection_id,
            "payload": self.payload,
            "launchedBy": self.launched_by,
            "result": self.result,
            "error": self.error,
            "attempts": self.attempts,
            "maxAttempts": self.max_attempts,
            "createdAt": self.created_at,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "stopRequested": self.stop_requested,
            "leaseOwner": self.lease_owner,
            "leaseExpiresAt": self.lease_expires_at,
            "dispatchedAt": self.dispatched_at,
            "dispatchToken": self.dispatch_token,
            "lane": self.lane,
            "slots": list(self.slots),
            "slotHolder": self.slot_holder,
        }


def lane_of(kind: str, customer_id: str, connection_id: str | None) -> str:
    """The backlog a job waits in: per connection for connection work, else per customer."""
    return f"conn:{connection_id}" if connection_id else f"cus:{customer_id}"
