"""Action runs: start a run (a job on the `instant` queue that carries the run), execute it in a
worker, which records it in MongoDB, and wait for its end (Redis signal, MongoDB as the truth).

States: queued -> running -> completed | failed. The run document is the log record: status,
duration, redacted request/response summaries, error and custom-code logs.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from engine import broker
from engine.auth.principal import Principal, Role
from engine.domain import actions as action_service
from engine.domain import connections as connection_service
from engine.domain.actions import Action, ActionResult
from engine.domain.common import Page, iso, now, page_of
from engine.errors import BadRequest, NotFound, ServiceUnavailable, ValidationFailed
from engine.ids import new_id
from engine.limits.rate import check_instant_queue_size
from engine.logs import log_context
from engine.services import Services
from engine.store import action_runs as run_store
from engine.store import connections as connection_store

log = logging.getLogger(__name__)

ACTION_RUN_WAIT_SECONDS = 10.0
"""How long POST /actions/{key}/run waits for the answer before replying 202 with the run id."""
MAX_RUN_ATTEMPTS = 3
"""A run redelivered after a worker died is retried this many times in all, then left failed."""
RUN_ACTION_TASK = "instant.run_action"
MAX_MESSAGE_BYTES = 96 * 1024
"""A run whose task message (with the run document, base64-encoded by kombu) stays within this
size travels in the message; a larger one is recorded first and its message carries only the id."""
MAX_SIGNAL_PAYLOAD_BYTES = 64 * 1024
"""A finished run up to this size rides on the completion signal; a larger one is read from MongoDB."""


class RunState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


FINAL_STATE_VALUES = (RunState.COMPLETED.value, RunState.FAILED.value)
"""The states a run ends in, as MongoDB stores them."""


@dataclass(frozen=True)
class ActionRun:
    id: str
    workspace_id: str
    customer_id: str | None
    action_key: str
    connection_id: str | None
    state: RunState
    created_at: datetime
    output: Any = None
    error: dict | None = None
    duration_ms: float | None = None
    request: dict | None = None
    response: dict | None = None
    logs: str = ""
    finished_at: datetime | None = None
    attempts: int = 0

    @classmethod
    def from_document(cls, d: dict[str, Any]) -> ActionRun:
        return cls(
            d["_id"],
            d["workspaceId"],
            d.get("customerId"),
            d["actionKey"],
            d.get("connectionId"),
            RunState(d["state"]),
            d["createdAt"],
            d.get("output"),
            d.get("error"),
            d.get("durationMs"),
            d.get("request"),
            d.get("response"),
            d.get("logs", ""),
            d.get("finishedAt"),
            d.get("attempts", 0),
        )

    def to_signal(self) -> dict[str, Any]:
        document = {
            "_id": self.id,
            "workspaceId": self.workspace_id,
            "customerId": self.customer_id,
            "actionKey": self.action_key,
            "connectionId": self.connection_id,
            "state": self.state.value,
            "createdAt": self.created_at.isoformat(),
            "output": self.output,
            "error": self.error,
            "durationMs": self.duration_ms,
            "request": self.request,
            "response": self.response,
            "logs": self.logs,
            "finishedAt": self.finished_at.isoformat() if self.finished_at else None,
            "attempts": self.attempts,
        }
        return document

    @classmethod
    def from_signal(cls, d: dict[str, Any]) -> ActionRun:
        parse = datetime.fromisoformat
        return cls.from_document(
            {
                **d,
                "createdAt": parse(d["createdAt"]),
                "finishedAt": parse(d["finishedAt"]) if d.get("finishedAt") else None,
            }
        )

    def to_public(self) -> dict[str, Any]:
        document = {
            "id": self.id,
            "actionKey": self.action_key,
            "connectionId": self.connection_id,
            "state": self.state.value,
            "createdAt": iso(self.created_at),
            "finishedAt": iso(self.finished_at),
            "durationMs": self.duration_ms,
            "request": self.request,
            "response": self.response,
            "logs": self.logs,
        }
        if self.state is RunState.COMPLETED:
            document["output"] = self.output
        if self.error:
            document["error"] = self.error
        return document


CONNECTION_LOOKUP_CACHE_SECONDS = 2.0
"""How long the API reuses which connection a customer has to an integration. Only the choice is
cached: the worker re-reads the connection (state, credentials) before calling the app."""
_connection_cache: dict[tuple[str, str, str, str], tuple[float, dict[str, Any]]] = {}


def _customer_connection(
    services: Services, workspace_id: str, customer_id: str, integration_id: str
) -> dict[str, Any] | None:
    key = (services.db.name, workspace_id, customer_id, integration_id)
    hit = _connection_cache.get(key)
    if hit and hit[0] > time.monotonic():
        return hit[1]
    document = connection_store.find_for_customer(services.db, workspace_id, customer_id, integration_id)
    if document is not None:  # a customer who just connected must not be told to connect again
        if len(_connection_cache) > 100_000:
            _connection_cache.clear()
        _connection_cache[key] = (time.monotonic() + CONNECTION_LOOKUP_CACHE_SECONDS, document)
    return document


def _resolve_connection(
    services: Services, principal: Principal, action: Action, connection_id: str | None
) -> connection_service.Connection | None:
    if principal.role is Role.CUSTOMER:
        assert principal.customer_id is not None, (
            "authenticate() sets customer_id on every customer principal"
        )
        if connection_id:
            return connection_service.get_connection(
                services, principal.workspace, connection_id, principal.customer_id
            )
        document = _customer_connection(
            services, principal.workspace, principal.customer_id, action.integration_id
        )
        if document is None:
            if action.operation["type"] == action_service.ActionOperationType.TRANSFORM:
                return None
            raise NotFound(f"you have no connection to integration {action.integration_key!r}: connect first")
        return connection_service.Connection.from_document(document)
    if connection_id:
        return connection_service.get_connection(services, principal.workspace, connection_id)
    if action.operation["type"] == action_service.ActionOperationType.TRANSFORM:
        return None
    raise ValidationFailed(
        "a workspace admin must name the connection to run the action for", field="connectionId"
    )


@dataclass(frozen=True)
class StartedRun:
    """A run just enqueued, with the document to record should the caller stop waiting for it,
    and what the first slice of the wait got (`start_run`'s wait_seconds): the completion
    signal, b"" if none came, or None if no slice ran."""

    run: ActionRun
    document: dict[str, Any]
    signal: bytes | None = None


def start_run(
    services: Services,
    principal: Principal,
    action_key: str,
    input: Any,
    connection_id: str | None = None,
    *,
    wait_seconds: float = 0.0,
) -> StartedRun:
    """Check the input and enqueue the run (400/404 before anything is sent or stored).

    Nothing is written to MongoDB yet: the worker records the run when it ends, and
    `wait_for_run` records it as queued if the caller stops waiting first, so every run id
    handed out is in MongoDB.

    With wait_seconds > 0 the first slice of the wait for its signal (up to MAX_BLOCK_SECONDS)
    rides in the same Redis round trip as the message, when the broker is that Redis: a no-op
    run answers within it. Pass the signal on to `wait_for_run`."""
    action = action_service.get_action(services, principal.workspace, action_key, cached=True)
    action_service.validate_input(action, input)
    connection = _resolve_connection(services, principal, action, connection_id)
    if connection is not None and connection.integration_id != action.integration_id:
        raise BadRequest(
            f"connection {connection.id} is not a connection to integration {action.integration_key!r}",
            field="connectionId",
        )
    if connection is not None and connection.state is connection_service.ConnectionState.DISCONNECTED:
        raise BadRequest(f"connection {connection.id} is disconnected: reconnect first", field="connectionId")
    check_instant_queue_size(services, principal.workspace_id)
    run = ActionRun(
        new_id("arun"),
        principal.workspace,
        connection.customer_id if connection else principal.customer_id,
        action.key,
        connection.id if connection else None,
        RunState.QUEUED,
        now(),
    )
    document = {
        "_id": run.id,
        "workspaceId": run.workspace_id,
        "customerId": run.customer_id,
        "actionKey": run.action_key,
        "actionId": action.id,
        "connectionId": run.connection_id,
        "state": run.state.value,
        "createdAt": run.created_at,
        "input": input,
        "attempts": 0,
        # The definition the run was started with: the worker needs no second read.
        "action": action.to_run_document(),
    }
    # The run travels in its message and is written once, by the worker, when it ends; a run too
    # large for a message is recorded first and its message carries only the id.
    message = _run_message(run.id, _snapshot(document))
    if len(message) > MAX_MESSAGE_BYTES:
        run_store.insert_new(services.db, {**document, run_store.PENDING_FIELD: run.created_at})
        message = _run_message(run.id, None)
    signal = None
    try:
        if wait_seconds > 0 and services.broker is services.redis:
            # b"" when the slice ended without a signal. A connection lost during the slice,
            # after the message landed, fails the run here as below; should a worker still run
            # it, the worker's record of its end replaces that one.
            signal = (
                run_store.push_then_wait_signal(
                    services.redis, broker.INSTANT_QUEUE, message, run.id, wait_seconds
                )
                or b""
            )
        else:
            services.broker.lpush(broker.INSTANT_QUEUE, message)
    except Exception as error:  # noqa: BLE001 - the broker is down: the run is failed visibly, not lost
        fail_run(
            services,
            run.id,
            ServiceUnavailable(f"could not enqueue the run: {type(error).__name__}"),
            document=document,
        )
        raise ServiceUnavailable("the task queue is unavailable: retry later") from error
    return StartedRun(run, document, signal)


def _snapshot(document: dict[str, Any]) -> dict[str, Any]:
    """The run document as JSON for the message (datetimes as ISO text)."""
    return {
        **document,
        "createdAt": document["createdAt"].isoformat(),
        "action": {**document["action"], "createdAt": document["action"]["createdAt"].isoformat()},
    }


def _run_message(run_id: str, snapshot: dict[str, Any] | None) -> str:
    """The text to LPUSH on the instant queue for run_id, carrying snapshot when given."""
    return broker.task_message(
        RUN_ACTION_TASK,
        broker.INSTANT_QUEUE,
        [run_id],
        {"snapshot": snapshot} if snapshot else {},
        # What Celery shows of the arguments: without these it formats the whole snapshot.
        argsrepr=repr([run_id]),
        kwargsrepr="{'snapshot': ...}" if snapshot else "{}",
    )[1]


def _from_snapshot(snapshot: dict[str, Any]) -> dict[str, Any]:
    parse = datetime.fromisoformat
    return {
        **snapshot,
        "createdAt": parse(snapshot["createdAt"]),
        "action": {**snapshot["action"], "createdAt": parse(snapshot["action"]["createdAt"])},
    }


def fail_run(services: Services, run_id: str, error, *, document: dict[str, Any] | None = None) -> None:
    """Record the run as failed with error; `document` is the run as started, for a run not recorded yet."""
    detail = error.to_document()["error"]
    detail["status"] = error.status
    final = {"state": RunState.FAILED.value, "error": detail, "finishedAt": now()}
    if document is None or not run_store.insert_new(services.db, {**document, **final}):
        run_store.finish(services.db, run_id, final)


def get_run(services: Services, principal: Principal, run_id: str) -> ActionRun:
    document = run_store.find_by_id(services.db, run_id)
    if (
        document is None
        or document["workspaceId"] != principal.workspace_id
        or (principal.role is Role.CUSTOMER and document.get("customerId") != principal.customer_id)
    ):
        raise NotFound(f"no action run {run_id!r}")
    return ActionRun.from_document(document)


def wait_for_run(
    services: Services,
    run_id: str,
    timeout_seconds: float = ACTION_RUN_WAIT_SECONDS,
    *,
    pending: dict[str, Any] | None = None,
    signal: bytes | None = None,
) -> ActionRun:
    """The run once it ended, or as recorded when timeout_seconds passed. `pending` is the run as
    started (StartedRun.document): it is recorded as queued then if nothing recorded the run yet,
    so its id can be polled; `signal`, the one StartedRun got. Listens to the Redis signal and
    re-reads MongoDB at least every second, so a lost signal costs one second."""
    deadline = time.monotonic() + timeout_seconds
    payload = signal  # None until a slice of the wait has run
    while True:
        if payload and payload.startswith(b"{"):
            return ActionRun.from_signal(json.loads(payload))
        if payload is not None:  # a slice ended without the run, or with a bare state: ask MongoDB
            document = run_store.find_by_id(services.db, run_id)
            if document is not None and document["state"] in FINAL_STATE_VALUES:
                return ActionRun.from_document(document)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return _recorded(services, run_id, pending)
        try:
            payload = run_store.wait_signal(services.redis, run_id, remaining) or b""
        except Exception as error:  # noqa: BLE001 - Redis down: fall back to polling MongoDB
            log.warning("action run %s: completion signal unavailable (%s)", run_id, type(error).__name__)
            time.sleep(min(max(remaining, 0), 0.2))
            payload = b""


def _recorded(services: Services, run_id: str, pending: dict[str, Any] | None) -> ActionRun:
    """The run as MongoDB has it, recording `pending` as queued first if nothing recorded it yet."""
    if pending is not None:
        document = {**pending, run_store.PENDING_FIELD: pending["createdAt"]}
        if run_store.insert_new(services.db, document):
            return ActionRun.from_document(document)
    found = run_store.find_by_id(services.db, run_id)
    if found is None:  # never started here, or deleted in between (e.g. with its connection)
        raise NotFound(f"no action run {run_id!r}")
    return ActionRun.from_document(found)


def list_runs(
    services: Services, principal: Principal, *, action_key: str | None, cursor: str | None, limit: int
) -> Page:
    customer_id = principal.customer_id if principal.role is Role.CUSTOMER else None
    return page_of(
        run_store.list_page(
            services.db,
            principal.workspace,
            customer_id=customer_id,
            action_key=action_key,
            after_id=cursor,
            limit=limit + 1,
        ),
        limit,
        ActionRun.from_document,
    )


def _bounded_output(result: ActionResult) -> ActionResult:
    if result.ok and len(json.dumps(result.output, default=str)) > action_service.MAX_OUTPUT_BYTES:
        return ActionResult(
            False,
            None,
            {
                "type": "output_too_large",
                "status": 502,
                "message": f"the output exceeds {action_service.MAX_OUTPUT_BYTES} bytes",
            },
            result.duration_ms,
            result.request,
            result.response,
            result.logs,
        )
    return result


def _needs_claim(document: dict[str, Any], redelivered: bool) -> bool:
    """Whether to record `running` (and count an attempt) before executing.

    Always on a redelivery (a worker died with the run: the attempt counter stops a poison run).
    On a first delivery only for operations that call out: a `transform` ends in microseconds, so
    a `running` state would never be seen and its write would double the run's cost."""
    if redelivered or document.get("state") != RunState.QUEUED.value:
        return True
    operation = (document.get("action") or {}).get("operation") or {}
    return operation.get("type") != action_service.ActionOperationType.TRANSFORM


def execute_run(
    services: Services, run_id: str, *, redelivered: bool = False, snapshot: dict[str, Any] | None = None
) -> str | None:
    """Run a queued run (the instant task's body). Returns its final state, or None when there was
    nothing to do (already finished, unknown, or out of attempts).

    `snapshot` is the run as the API started it (its message); it is trusted only on a first delivery (a
    redelivered message may describe a run that has moved on, so MongoDB is read)."""
    from_message = snapshot is not None and snapshot.get("_id") == run_id
    # A first delivery trusts its message; a redelivered one may describe a run that moved on.
    document = None if from_message and not redelivered else run_store.find_by_id(services.db, run_id)
    recorded = document is not None
    if document is None and from_message:
        document = _from_snapshot(snapshot)  # type: ignore[arg-type]
    if document is None or document["state"] in FINAL_STATE_VALUES:
        return None
    if _needs_claim(document, redelivered):
        started_at = now()
        # pendingSince restarts with the claim: the recovery sweep must not re-send a run that
        # waited long in the queue and is now running.
        running = {
            "state": RunState.RUNNING.value,
            "startedAt": started_at,
            run_store.PENDING_FIELD: started_at,
        }
        claimed = not recorded and run_store.insert_new(services.db, {**document, **running, "attempts": 1})
        recorded = True
        if not claimed and not run_store.claim(
            services.db, run_id, [RunState.QUEUED.value, RunState.RUNNING.value], MAX_RUN_ATTEMPTS, running
        ):
            current = run_store.find_by_id(services.db, run_id) or document
            if current["state"] == RunState.RUNNING.value:
                # Redelivered too often (a poison run kills its worker): fail it visibly.
                fail_run(
                    services, run_id, ServiceUnavailable(f"the run was interrupted {MAX_RUN_ATTEMPTS} times")
                )
                _signal(services, run_id, RunState.FAILED)
            return None
        document = {**document, **running, "attempts": document.get("attempts", 0) + 1}
    with log_context(workspace=document["workspaceId"], run=run_id):
        try:
            action = (
                Action.from_document(document["action"])
                if document.get("action")
                else action_service.get_action(services, document["workspaceId"], document["actionKey"])
            )
            # A transform never calls the app: its connection is not read.
            calls_app = action.operation["type"] != action_service.ActionOperationType.TRANSFORM
            connection = (
                connection_service.get_connection_by_id(services, document["connectionId"])
                if document.get("connectionId") and calls_app
                else None
            )
            result = _bounded_output(
                action_service.execute_action(services, action, connection, document.get("input"))
            )
        except NotFound as error:
            result = ActionResult.failure(error, time.perf_counter())
        except Exception:  # noqa: BLE001 - an engine bug must fail the run visibly, not crash silently
            log.exception("action run %s failed unexpectedly", run_id)
            result = ActionResult(
                False,
                None,
                {"type": "internal_error", "status": 500, "message": "the engine failed to run the action"},
            )
        state = RunState.COMPLETED if result.ok else RunState.FAILED
        final = {
            "state": state.value,
            "output": result.output if result.ok else None,
            "error": result.error,
            "durationMs": round(result.duration_ms, 1),
            "request": result.request,
            "response": result.response,
            "logs": result.logs[:20_000],
            "finishedAt": now(),
        }
        if recorded or not run_store.insert_new(services.db, {**document, **final}):
            run_store.finish(services.db, run_id, final)
        log.info(
            "action %s run %s: %s in %.1f ms%s",
            document["actionKey"],
            run_id,
            state.value,
            result.duration_ms,
            f" ({result.error.get('type')})" if result.error else "",
        )
    # The signal carries the finished run (MongoDB has it already), so the API need not read it back.
    finished = ActionRun.from_document({**document, **final})
    _signal(services, run_id, state, finished)
    return state.value


def _signal(services: Services, run_id: str, state: RunState, run: ActionRun | None = None) -> None:
    payload = state.value
    if run is not None:
        text = json.dumps(run.to_signal(), default=str)
        if len(text) <= MAX_SIGNAL_PAYLOAD_BYTES:
            payload = text
    try:
        run_store.signal_done(services.redis, run_id, payload)
    except Exception as error:  # noqa: BLE001 - the waiter re-reads MongoDB
        log.warning("action run %s: could not signal completion (%s)", run_id, type(error).__name__)


STALE_RUN_SECONDS = 120.0
"""A run recorded queued this long ago, or claimed this long ago and still running, has lost its
message or its worker (e.g. Redis erased). Above the longest a started run can take: a custom-code
slot wait (30 s), an OAuth2 refresh (30 s) and the operation (30 s)."""


def requeue_stale_runs(
    services: Services, *, older_than_seconds: float = STALE_RUN_SECONDS, limit: int = 1000
) -> int:
    """Re-enqueue runs whose message was lost (MongoDB is the truth; Redis may have been erased).

    For the orchestrator's recovery sweep. The re-sent message is marked as a redelivery, so the
    worker reads the run from MongoDB and counts the attempt (MAX_RUN_ATTEMPTS still applies).
    Returns how many were re-enqueued."""
    from datetime import timedelta

    cutoff = now() - timedelta(seconds=older_than_seconds)
    count = 0
    for document in run_store.unfinished_before(services.db, cutoff, limit=limit):
        broker.publish(
            services.broker, RUN_ACTION_TASK, broker.INSTANT_QUEUE, [document["_id"]], {"redelivered": True}
        )
        count += 1
    return count
