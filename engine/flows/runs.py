"""Flow runs: jobs of kind "flow-run" in the durable job system (engine/jobs), plus their node
runs (engine/store/flow_node_runs.py).

The job system owns states, leases, attempts, limits and stop mechanics; this module owns what a
flow run *does* (the handler below) and how a run reads through the API (`to_public`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jsonschema

from engine.auth.principal import Principal, Role
from engine.domain.common import Page, iso
from engine.domain.connections import Connection, bind
from engine.errors import Conflict, EngineError, NotFound, PayloadTooLarge, ValidationFailed
from engine.flows import outputs
from engine.flows.definition import FlowDefinition, TriggerType
from engine.flows.executor import FlowFailed, FlowRunEnvironment, FlowStopped, NodeRun, execute_flow
from engine.flows.nodes import EXECUTORS
from engine.flows.service import FlowInstance
from engine.ids import new_id
from engine.jobs import service as jobs
from engine.jobs.model import Job, JobState
from engine.jobs.registry import job_handler
from engine.services import Services
from engine.store import connections as connections_store
from engine.store import flow_instances as instances_store
from engine.store import flow_node_runs as node_runs_store
from engine.store import flows as flows_store
from engine.timers import Delayed, call_later

log = logging.getLogger(__name__)

FLOW_RUN_KIND = "flow-run"
MAX_RUN_INPUT_BYTES = 1024 * 1024
"""Largest trigger input a run is queued with (it travels inside the job document)."""
FLOW_CACHE_SECONDS = 2.0
"""How long a worker reuses a flow definition it read; an edit reaches new runs within this."""
FLOW_CACHE_MAX_ENTRIES = 1000
LAUNCHED_BY = ("api", "schedule", "app-event", "data-source", "external-event")


class FlowRunError(Exception):
    """The flow run failed."""

    def __init__(self, error: Mapping[str, Any]):
        super().__init__(error.get("message", "the flow run failed"))
        self.type = error.get("type", "flow_failed")
        self.message = error.get("message", "the flow run failed")
        self.node = error.get("node")


# --- queueing ------------------------------------------------------------------------------


def enqueue_flow_run(
    services: Services,
    instance: FlowInstance,
    trigger_input: Any,
    *,
    launched_by: str,
    event_id: str | None = None,
    job_id: str | None = None,
) -> Job:
    """Queue one run of the instance's flow with this trigger input (429 beyond the queue size)."""
    size = len(outputs.encode(trigger_input))
    if size > MAX_RUN_INPUT_BYTES:
        raise PayloadTooLarge(f"the run input is {size} bytes, above {MAX_RUN_INPUT_BYTES}", field="input")
    # The instance's parameters travel with the run: a run uses the parameters of when it was queued,
    # and the worker saves a read.
    payload = {
        "flowId": instance.flow_id,
        "flowInstanceId": instance.id,
        "input": trigger_input,
        "parameters": instance.parameters,
    }
    if event_id:
        payload["eventId"] = event_id
    return jobs.enqueue_job(
        services,
        kind=FLOW_RUN_KIND,
        workspace_id=instance.workspace_id,
        customer_id=instance.customer_id or "",
        connection_id=instance.connection_id,
        payload=payload,
        launched_by=launched_by,
        job_id=job_id or new_id("frun"),
    )


def run_instance(services: Services, instance: FlowInstance, trigger_input: Any) -> Job:
    """POST /flow-instances/{id}/run: the api-trigger, checked against its inputSchema."""
    if not instance.enabled:
        raise Conflict(f"flow instance {instance.id} is disabled")
    document = flows_store.find_by_id(services.db, instance.flow_id)
    if document is None:
        raise NotFound(f"the flow of instance {instance.id} no longer exists")
    trigger = FlowDefinition.from_document(document).trigger
    if trigger.type != TriggerType.API:
        raise Conflict(f"this flow starts on {trigger.type}, not api-trigger")
    schema = trigger.config.get("inputSchema")
    if schema:
        error = jsonschema.exceptions.best_match(
            jsonschema.Draft202012Validator(schema).iter_errors(trigger_input)
        )
        if error is not None:
            where = ".".join(str(p) for p in error.absolute_path)
            raise ValidationFailed(
                f"input{'.' + where if where else ''}: {error.message}",
                field=f"input.{where}" if where else "input",
            )
    return enqueue_flow_run(services, instance, trigger_input, launched_by="api")


# --- execution (in the queued worker) ------------------------------------------------------


PROGRESS_WRITE_DELAY_SECONDS = 0.05
"""A node still running this long after it started is written as running (and the records
waiting with it); a node that finishes sooner is written once, finished."""


class MongoNodeRecorder:
    """Writes node runs, by _id, in as few writes as the API's view of progress allows.

    Records wait in `pending` and go together in one insert: when a node has been running for
    PROGRESS_WRITE_DELAY_SECONDS (so the API shows it running within that), and at the end of the
    walk (`flush()`). A node written as running is updated in place when it finishes."""

    def __init__(self, services: Services, run_id: str):
        self.services = services
        self.run_id = run_id
        self.written: set[str] = set()
        self.pending: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.progress_write: Delayed | None = None
        self.order: dict[str, int] = {}
        """The position of each node in the walk (the API lists node runs in this order)."""

    def _document(self, run: NodeRun) -> dict[str, Any]:
        return {
            "_id": node_runs_store.node_run_id(self.run_id, run.key),
            "runId": self.run_id,
            "nodeKey": run.key,
            "nodeType": run.type,
            "seq": self.order.setdefault(run.key, len(self.order)),
            "status": run.status,
            "invocations": run.invocations,
            "startedAt": run.started_at,
            "finishedAt": run.finished_at,
        }

    def started(self, run: NodeRun) -> None:
        document = {**self._document(run), "outputs": [], "outputCount": 0, "logs": [], "errors": []}
        with self.lock:
            self.pending.append(document)
        self.progress_write = call_later(PROGRESS_WRITE_DELAY_SECONDS, self.flush)

    def finished(self, run: NodeRun) -> None:
        document = {
            **self._document(run),
            **outputs.pack(self.services, self.run_id, run.key, run.outputs),
            "logs": run.logs,
            "errors": run.errors,
        }
        if self.progress_write is not None:
            self.progress_write.cancel()
        with self.lock:
            if run.key not in self.written:
                # Not written yet: the finished record takes the place of the running one.
                self.pending = [d for d in self.pending if d["nodeKey"] != run.key] + [document]
                return
        fields = {k: v for k, v in document.items() if k != "_id"}
        if "outputsRef" in document:
            fields["outputs"] = []
        node_runs_store.update(self.services.db, document["_id"], fields)

    def flush(self) -> None:
        """Write the records still waiting (one insert)."""
        with self.lock:
            if self.pending:
                documents, self.pending = self.pending, []
                node_runs_store.save_many(self.services.db, documents)
                self.written.update(d["nodeKey"] for d in documents)


@job_handler(FLOW_RUN_KIND)
def run_flow_job(job: Job, ctx: Any) -> dict[str, Any] | None:
    """Execute one flow run. A retried attempt (after a worker died) starts over from the trigger."""
    services: Services = ctx.services
    payload = job.payload
    flow = _cached_flow(services, payload["flowId"])
    if "parameters" in payload:
        parameters = payload["parameters"] or {}
    else:
        parameters = (instances_store.find_by_id(services.db, payload["flowInstanceId"]) or {}).get(
            "parameters"
        ) or {}
    connection = None
    if flow.needs_connection and job.connection_id:
        connection_document = connections_store.find_by_id(services.db, job.connection_id)
        connection = Connection.from_document(connection_document) if connection_document else None
    if job.attempts > 1:
        node_runs_store.delete_of_run(services.db, job.id)  # an earlier attempt's records
    recorder = MongoNodeRecorder(services, job.id)
    env = FlowRunEnvironment(
        run_id=job.id,
        executors=EXECUTORS,
        recorder=recorder,
        parameters=parameters,
        connection=_template_connection(services, connection, flow.mentions_connection)
        if connection
        else {"id": job.connection_id},
        should_stop=ctx.should_stop,
        check_output=outputs.check_output,
        extra={"services": services, "workspace_id": job.workspace_id, "connection": connection, "job": job},
    )
    try:
        return execute_flow(flow.definition, payload.get("input"), env)
    except FlowFailed as failure:
        raise FlowRunError(failure.error) from None
    except FlowStopped:
        ctx.log("stopped on request between nodes")
        return None
    finally:
        recorder.flush()


@dataclass(frozen=True)
class _RunnableFlow:
    definition: FlowDefinition
    needs_connection: bool
    """A run-action node, or templates mentioning `connection`: the connection record is loaded."""
    mentions_connection: bool
    """Templates or code mention `connection`: its non-secret fields are decrypted for them."""


_flow_cache: dict[tuple[str, str], tuple[float, _RunnableFlow]] = {}


def _cached_flow(services: Services, flow_id: str) -> _RunnableFlow:
    """The flow, reused for FLOW_CACHE_SECONDS by this process (flow runs come in bursts)."""
    key = (services.db.name, flow_id)
    hit = _flow_cache.get(key)
    if hit and hit[0] > time.monotonic():
        return hit[1]
    document = flows_store.find_by_id(services.db, flow_id)
    if document is None:
        raise FlowRunError({"type": "flow_deleted", "message": f"flow {flow_id} no longer exists"})
    definition = FlowDefinition.from_document(document)
    mentions = "connection" in json.dumps([document.get("nodes"), document.get("links")], default=str)
    flow = _RunnableFlow(
        definition, mentions or any(n.type == "run-action" for n in definition.nodes), mentions
    )
    if len(_flow_cache) > FLOW_CACHE_MAX_ENTRIES:
        _flow_cache.clear()
    _flow_cache[key] = (time.monotonic() + FLOW_CACHE_SECONDS, flow)
    return flow


def _template_connection(services: Services, connection: Connection, mentioned: bool) -> dict[str, Any]:
    """`{{ connection.x }}` in templates and `ctx.connection` in run-python: the connection's
    non-secret fields. Decrypting costs a few reads, so only flows that mention it pay for it."""
    fields: dict[str, Any] = {
        "id": connection.id,
        "name": connection.name,
        "integrationKey": connection.integration_key,
    }
    if mentioned:
        try:
            fields.update(bind(services, connection).public_fields())
        except EngineError as error:
            log.warning("connection %s could not be bound: %s", connection.id, error.message)
    return fields


# --- reading -------------------------------------------------------------------------------


def _visible(job: Job | None, principal: Principal) -> bool:
    return (
        job is not None
        and job.kind == FLOW_RUN_KIND
        and job.workspace_id == principal.workspace_id
        and (principal.role is not Role.CUSTOMER or job.customer_id == principal.customer_id)
    )


def get_run(services: Services, principal: Principal, run_id: str) -> Job:
    job = jobs.get_job(services, run_id)
    if not _visible(job, principal):
        raise NotFound(f"no flow run {run_id}")
    return job


def to_public(services: Services, job: Job, *, with_nodes: bool = True) -> dict[str, Any]:
    """A flow run as the API shows it."""
    state = job.state.value if isinstance(job.state, JobState) else str(job.state)
    public: dict[str, Any] = {
        "id": job.id,
        "flowId": job.payload.get("flowId"),
        "flowInstanceId": job.payload.get("flowInstanceId"),
        "connectionId": job.connection_id,
        "customerId": job.customer_id,
        "state": state,
        "launchedBy": job.launched_by,
        "input": job.payload.get("input"),
        "result": job.result,
        "error": job.error,
        "attempts": job.attempts,
        "createdAt": iso(job.created_at),
        "startedAt": iso(job.started_at),
        "finishedAt": iso(job.finished_at),
    }
    if job.payload.get("eventId"):
        public["eventId"] = job.payload["eventId"]
    if with_nodes:
        projection = {"outputs": 0, "logs": 0}
        documents = node_runs_store.of_run(services.db, job.id, projection=projection)
        # Sorted here: secantusdb (tests, development) is slow on sorted queries, and a run has few nodes.
        documents.sort(
            key=lambda d: (
                d.get("seq", 0),
                d.get("startedAt") is None,
                d.get("startedAt") or 0,
                d.get("nodeKey"),
            )
        )
        public["nodes"] = [_node_summary(d) for d in documents]
    return public


def _node_summary(document: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "key": document["nodeKey"],
        "type": document.get("nodeType"),
        "status": document["status"],
        "invocations": document.get("invocations", 0),
        "outputCount": document.get("outputCount", 0),
        "errors": document.get("errors") or [],
        "startedAt": iso(document.get("startedAt")),
        "finishedAt": iso(document.get("finishedAt")),
    }


def get_node_run(services: Services, principal: Principal, run_id: str, node_key: str) -> dict[str, Any]:
    """One node's run: status, outputs (fetched from TMP_S3_BUCKET when large), logs, times."""
    job = get_run(services, principal, run_id)
    document = node_runs_store.find(services.db, job.id, node_key)
    if document is None:
        if job.state in (JobState.QUEUED, JobState.RUNNING):
            return {"key": node_key, "status": "pending", "outputs": [], "logs": []}
        raise NotFound(f"flow run {run_id} has no node {node_key!r}")
    return {
        **_node_summary(document),
        "outputs": outputs.unpack(services, document),
        "outputBytes": document.get("outputBytes", 0),
        "logs": document.get("logs") or [],
    }


def list_runs(
    services: Services,
    principal: Principal,
    *,
    flow_instance_id: str | None,
    state: str | None,
    created_from: datetime | None,
    created_to: datetime | None,
    cursor: str | None,
    limit: int,
) -> Page:
    """Runs of the workspace (customers: their own), newest first, filtered."""
    customer_id = principal.customer_id if principal.role is Role.CUSTOMER else None
    extra: dict[str, Any] = {}
    if flow_instance_id:
        extra["payload_filter"] = {"flowInstanceId": flow_instance_id}
    items, next_cursor = jobs.list_jobs(
        services,
        workspace_id=principal.workspace_id or "",
        customer_id=customer_id,
        kind=FLOW_RUN_KIND,
        state=state,
        created_from=created_from,
        created_to=created_to,
        cursor=cursor,
        limit=limit,
        **extra,
    )
    return Page(items, next_cursor)


def stop_run(services: Services, principal: Principal, run_id: str) -> Job:
    """Ask a queued or running run to stop (it stops between nodes, within seconds)."""
    job = get_run(services, principal, run_id)
    return jobs.request_stop(services, job.id)
