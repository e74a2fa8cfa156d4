"""Flows and flow instances: create, read, update, delete, enable/disable (API -> here -> stores)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter

from engine.auth.principal import Principal, Role
from engine.domain.common import Page, iso, now, page_of
from engine.domain.connections import Connection, get_connection
from engine.errors import Conflict, Forbidden, NotFound, ValidationFailed
from engine.flows.definition import DATA_RECORD_CHANGE, FlowDefinition, TriggerType, parse_definition
from engine.ids import new_id
from engine.services import Services
from engine.store import flow_instances as instances_store
from engine.store import flows as flows_store

FLOW_KEY_MAX_CHARS = 64


@dataclass(frozen=True)
class Flow:
    """A stored flow definition of a workspace."""

    id: str
    workspace_id: str
    key: str
    name: str
    definition: FlowDefinition
    created_at: datetime
    updated_at: datetime
    version: int = 1

    @classmethod
    def from_document(cls, d: Mapping[str, Any]) -> Flow:
        return cls(
            d["_id"],
            d["workspaceId"],
            d["key"],
            d.get("name") or d["key"],
            FlowDefinition.from_document(d),
            d["createdAt"],
            d["updatedAt"],
            d.get("version", 1),
        )

    def to_document(self) -> dict[str, Any]:
        return {
            "_id": self.id,
            "workspaceId": self.workspace_id,
            "key": self.key,
            "name": self.name,
            **self.definition.to_document(),
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "version": self.version,
        }

    def to_public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "key": self.key,
            "name": self.name,
            **self.definition.to_document(),
            "version": self.version,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
        }


@dataclass(frozen=True)
class FlowInstance:
    """A flow enabled for one connection (customer), with its own parameters."""

    id: str
    workspace_id: str
    flow_id: str
    connection_id: str
    customer_id: str | None
    enabled: bool
    parameters: dict[str, Any] = field(default_factory=dict)
    trigger: dict[str, Any] = field(default_factory=dict)
    """The denormalised trigger fields (triggerType, eventType, dataSource, webhookEvents,
    schedule, nextRunAt): see engine/store/flow_instances.py."""
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @classmethod
    def from_document(cls, d: Mapping[str, Any]) -> FlowInstance:
        trigger = {k: d.get(k) for k in _TRIGGER_FIELDS if d.get(k) is not None}
        return cls(
            d["_id"],
            d["workspaceId"],
            d["flowId"],
            d["connectionId"],
            d.get("customerId"),
            bool(d.get("enabled")),
            dict(d.get("parameters") or {}),
            trigger,
            d.get("createdAt"),
            d.get("updatedAt"),
        )

    def to_document(self) -> dict[str, Any]:
        return {
            "_id": self.id,
            "workspaceId": self.workspace_id,
            "flowId": self.flow_id,
            "connectionId": self.connection_id,
            "customerId": self.customer_id,
            "enabled": self.enabled,
            "parameters": self.parameters,
            **_trigger_defaults(),
            **self.trigger,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }

    def to_public(self) -> dict[str, Any]:
        public = {
            "id": self.id,
            "flowId": self.flow_id,
            "connectionId": self.connection_id,
            "customerId": self.customer_id,
            "enabled": self.enabled,
            "parameters": self.parameters,
            "triggerType": self.trigger.get("triggerType"),
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
        }
        if self.trigger.get("schedule"):
            public["schedule"] = self.trigger["schedule"]
            public["nextRunAt"] = iso(self.trigger.get("nextRunAt"))
        return public


_TRIGGER_FIELDS = (
    "triggerType",
    "eventType",
    "dataSource",
    "dataChange",
    "webhookEvents",
    "schedule",
    "nextRunAt",
)


def _trigger_defaults() -> dict[str, Any]:
    return dict.fromkeys(_TRIGGER_FIELDS)


def next_run_at(schedule: Mapping[str, Any], after: datetime | None = None) -> datetime:
    """The next UTC time the cron schedule fires strictly after `after` (now by default), computed
    in the schedule's timezone (so "0 9 * * *" in Europe/Paris follows daylight saving)."""
    zone = ZoneInfo(schedule.get("timezone") or "UTC")
    base = (after or datetime.now(UTC)).astimezone(zone)
    return croniter(schedule["cron"], base).get_next(datetime).astimezone(UTC)


def trigger_fields(definition: FlowDefinition, enabled: bool) -> dict[str, Any]:
    """The trigger fields stored on each instance of a flow."""
    trigger = definition.trigger
    fields: dict[str, Any] = {"triggerType": trigger.type}
    if trigger.type == TriggerType.SCHEDULE:
        schedule = {
            "cron": trigger.config["cron"],
            "timezone": trigger.config.get("timezone") or "UTC",
            "overlap": trigger.config.get("overlap") or "skip",
        }
        fields["schedule"] = schedule
        fields["nextRunAt"] = next_run_at(schedule) if enabled else None
    elif trigger.type == TriggerType.APP_EVENT:
        fields["eventType"] = trigger.config["eventType"]
    elif trigger.type in DATA_RECORD_CHANGE:
        fields["dataSource"] = trigger.config["dataSource"]
        fields["dataChange"] = DATA_RECORD_CHANGE[trigger.type]
        fields["webhookEvents"] = list(trigger.config.get("webhookEvents") or [])
    return fields


# --- flows ---------------------------------------------------------------------------------


def _flow_header(body: Mapping[str, Any], current: Flow | None = None) -> tuple[str, str]:
    key = body.get("key", current.key if current else None)
    if not isinstance(key, str) or not key or len(key) > FLOW_KEY_MAX_CHARS:
        raise ValidationFailed(f"key is required (1-{FLOW_KEY_MAX_CHARS} characters)", field="key")
    name = body.get("name", current.name if current else key)
    if not isinstance(name, str) or not name.strip():
        raise ValidationFailed("name must be a non-empty string", field="name")
    return key, name


def create_flow(services: Services, workspace_id: str, body: Mapping[str, Any]) -> Flow:
    """Validate and store a flow; ValidationFailed (nothing stored) on any problem."""
    key, name = _flow_header(body)
    definition = parse_definition(body)
    created = now()
    flow = Flow(new_id("flow"), workspace_id, key, name, definition, created, created)
    try:
        flows_store.insert(services.db, flow.to_document())
    except flows_store.FlowExists:
        raise Conflict(f"a flow with key {key!r} already exists", field="key")
    return flow


def get_flow(services: Services, workspace_id: str, id_or_key: str) -> Flow:
    document = flows_store.find(services.db, workspace_id, id_or_key)
    if document is None:
        raise NotFound(f"no flow {id_or_key}")
    return Flow.from_document(document)


def list_flows(services: Services, workspace_id: str, *, cursor: str | None, limit: int) -> Page:
    documents = flows_store.list_page(services.db, workspace_id, after_id=cursor, limit=limit + 1)
    return page_of(documents, limit, Flow.from_document)


def update_flow(services: Services, workspace_id: str, id_or_key: str, body: Mapping[str, Any]) -> Flow:
    """Replace the definition (validated first); its instances take the new trigger."""
    current = get_flow(services, workspace_id, id_or_key)
    key, name = _flow_header(body, current)
    definition = parse_definition(body)
    flow = Flow(
        current.id, workspace_id, key, name, definition, current.created_at, now(), current.version + 1
    )
    try:
        flows_store.replace(services.db, flow.to_document())
    except flows_store.FlowExists:
        raise Conflict(f"a flow with key {key!r} already exists", field="key")
    for instance in instances_store.of_flow(services.db, flow.id):
        fields = {
            **_trigger_defaults(),
            **trigger_fields(definition, bool(instance.get("enabled"))),
            "updatedAt": now(),
        }
        instances_store.update(services.db, instance["_id"], fields)
    return flow


def delete_flow(services: Services, workspace_id: str, id_or_key: str) -> None:
    """Delete a flow and its instances (past runs stay readable)."""
    flow = get_flow(services, workspace_id, id_or_key)
    instances_store.delete_of_flow(services.db, flow.id)
    flows_store.delete(services.db, workspace_id, flow.id)


# --- flow instances ------------------------------------------------------------------------


def _connection(services: Services, principal: Principal, connection_id: str) -> Connection:
    customer_id = principal.customer_id if principal.role is Role.CUSTOMER else None
    try:
        return get_connection(services, principal.workspace, connection_id, customer_id)
    except NotFound:
        raise NotFound(f"no connection {connection_id!r}", field="connectionId") from None


def create_instance(services: Services, principal: Principal, body: Mapping[str, Any]) -> FlowInstance:
    """Enable a flow for one connection (a workspace admin, or the connection's customer)."""
    flow = get_flow(services, principal.workspace, str(body.get("flowId") or body.get("flowKey") or ""))
    connection = _connection(services, principal, str(body.get("connectionId") or ""))
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, Mapping):
        raise ValidationFailed("parameters must be an object", field="parameters")
    enabled = bool(body.get("enabled", True))
    created = now()
    instance = FlowInstance(
        new_id("finst"),
        flow.workspace_id,
        flow.id,
        connection.id,
        connection.customer_id,
        enabled,
        dict(parameters),
        trigger_fields(flow.definition, enabled),
        created,
        created,
    )
    try:
        instances_store.insert(services.db, instance.to_document())
    except instances_store.FlowInstanceExists:
        raise Conflict(f"flow {flow.key!r} is already enabled for connection {connection.id}")
    return instance


def get_instance(services: Services, principal: Principal, instance_id: str) -> FlowInstance:
    """The instance, if this principal may see it (customers: only their own)."""
    document = instances_store.find_by_id(services.db, instance_id)
    if (
        document is None
        or document["workspaceId"] != principal.workspace_id
        or (principal.role is Role.CUSTOMER and document.get("customerId") != principal.customer_id)
    ):
        raise NotFound(f"no flow instance {instance_id}")
    return FlowInstance.from_document(document)


def list_instances(
    services: Services,
    principal: Principal,
    *,
    flow_id: str | None,
    connection_id: str | None,
    cursor: str | None,
    limit: int,
) -> Page:
    query: dict[str, Any] = {"workspaceId": principal.workspace_id}
    if principal.role is Role.CUSTOMER:
        query["customerId"] = principal.customer_id
    if flow_id:
        query["flowId"] = flow_id
    if connection_id:
        query["connectionId"] = connection_id
    documents = instances_store.list_page(services.db, query, after_id=cursor, limit=limit + 1)
    return page_of(documents, limit, FlowInstance.from_document)


def update_instance(
    services: Services, principal: Principal, instance_id: str, body: Mapping[str, Any]
) -> FlowInstance:
    """Change parameters and/or enabled; enabling a schedule computes its next run."""
    instance = get_instance(services, principal, instance_id)
    fields: dict[str, Any] = {"updatedAt": now()}
    if "parameters" in body:
        if not isinstance(body["parameters"], Mapping):
            raise ValidationFailed("parameters must be an object", field="parameters")
        fields["parameters"] = dict(body["parameters"])
    if "enabled" in body:
        if not isinstance(body["enabled"], bool):
            raise ValidationFailed("enabled must be true or false", field="enabled")
        fields["enabled"] = body["enabled"]
        schedule = instance.trigger.get("schedule")
        if schedule:
            fields["nextRunAt"] = next_run_at(schedule) if body["enabled"] else None
    instances_store.update(services.db, instance.id, fields)
    return get_instance(services, principal, instance_id)


def set_enabled(services: Services, principal: Principal, instance_id: str, enabled: bool) -> FlowInstance:
    return update_instance(services, principal, instance_id, {"enabled": enabled})


def delete_instance(services: Services, principal: Principal, instance_id: str) -> None:
    if principal.role is Role.CUSTOMER:
        raise Forbidden("only a workspace admin may delete a flow instance; disable it instead")
    instance = get_instance(services, principal, instance_id)
    instances_store.delete(services.db, instance.id)


def mark_schedule_fired(services: Services, instance_id: str, fired_at: datetime) -> datetime | None:
    """For the orchestrator: after firing a schedule due at fired_at, store and return the next time."""
    document = instances_store.find_by_id(services.db, instance_id)
    if document is None or not document.get("schedule"):
        return None
    following = next_run_at(document["schedule"], fired_at)
    instances_store.update(services.db, instance_id, {"nextRunAt": following})
    return following
