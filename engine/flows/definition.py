"""The model of a flow definition and its validation on save.

    {"key": "score-contacts", "name": "Score contacts",
     "trigger": {"key": "trigger", "type": "api-trigger", "config": {}},
     "nodes": [{"key": "list", "type": "run-action", "config": {"action": "list-contacts"},
                "onError": "stop"}, ...],
     "links": [{"from": "trigger", "to": "list"},
               {"from": "each", "to": "post", "filter": {"conditions": [...]}}]}

Every problem is a ValidationFailed (HTTP 400) whose message names the node and whose `field`
is the dotted path of the offending value, so nothing invalid is ever stored.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from engine.connectors.errors import TemplateError
from engine.connectors.templates import compile_tree
from engine.errors import ValidationFailed
from engine.flows.conditions import validate_filter

KEY_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_NODES = 200
MAX_CODE_BYTES = 256 * 1024
MAX_CODE_TIMEOUT_SECONDS = 3000
HTTP_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"})
ON_ERROR = ("stop", "continue")


class TriggerType:
    """The trigger types (strings, as stored)."""

    API = "api-trigger"
    SCHEDULE = "schedule-trigger"
    APP_EVENT = "app-event-trigger"
    DATA_RECORD_CREATED = "data-record-created-trigger"
    DATA_RECORD_UPDATED = "data-record-updated-trigger"
    DATA_RECORD_DELETED = "data-record-deleted-trigger"


TRIGGER_TYPES = frozenset(
    {
        TriggerType.API,
        TriggerType.SCHEDULE,
        TriggerType.APP_EVENT,
        TriggerType.DATA_RECORD_CREATED,
        TriggerType.DATA_RECORD_UPDATED,
        TriggerType.DATA_RECORD_DELETED,
    }
)
DATA_RECORD_CHANGE = {
    TriggerType.DATA_RECORD_CREATED: "created",
    TriggerType.DATA_RECORD_UPDATED: "updated",
    TriggerType.DATA_RECORD_DELETED: "deleted",
}
NODE_TYPES = frozenset({"run-action", "http-request", "run-python", "transform-data", "filter", "for-each"})


@dataclass(frozen=True)
class Node:
    """One node of the graph (the trigger is a node too, of a trigger type)."""

    key: str
    type: str
    config: dict[str, Any] = field(default_factory=dict)
    on_error: str = "stop"
    name: str | None = None

    def to_document(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "key": self.key,
            "type": self.type,
            "config": self.config,
            "onError": self.on_error,
        }
        if self.name:
            document["name"] = self.name
        return document

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> Node:
        return cls(
            key=document["key"],
            type=document["type"],
            config=dict(document.get("config") or {}),
            on_error=document.get("onError", "stop"),
            name=document.get("name"),
        )


@dataclass(frozen=True)
class Link:
    """An edge: every output of `source` flows to `target` when `filter` (if any) passes."""

    source: str
    target: str
    filter: dict[str, Any] | None = None

    def to_document(self) -> dict[str, Any]:
        document: dict[str, Any] = {"from": self.source, "to": self.target}
        if self.filter is not None:
            document["filter"] = self.filter
        return document

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> Link:
        return cls(source=document["from"], target=document["to"], filter=document.get("filter"))


@dataclass(frozen=True)
class FlowDefinition:
    """A validated graph: the trigger, the nodes and the links."""

    trigger: Node
    nodes: tuple[Node, ...]
    links: tuple[Link, ...]

    def node(self, key: str) -> Node:
        if key == self.trigger.key:
            return self.trigger
        for node in self.nodes:
            if node.key == key:
                return node
        raise KeyError(key)

    def outgoing(self, key: str) -> list[Link]:
        return [link for link in self.links if link.source == key]

    def incoming(self, key: str) -> list[Link]:
        return [link for link in self.links if link.target == key]

    def order(self) -> list[str]:
        """Node keys in a deterministic topological order, the trigger first (Kahn, ties by
        declaration order)."""
        keys = [self.trigger.key, *(node.key for node in self.nodes)]
        indegree = {key: 0 for key in keys}
        for link in self.links:
            indegree[link.target] += 1
        ready = [key for key in keys if indegree[key] == 0]
        ordered: list[str] = []
        while ready:
            key = ready.pop(0)
            ordered.append(key)
            for link in self.outgoing(key):
                indegree[link.target] -= 1
                if indegree[link.target] == 0:
                    ready.append(link.target)
            ready.sort(key=keys.index)
        return ordered

    def to_document(self) -> dict[str, Any]:
        return {
            "trigger": self.trigger.to_document(),
            "nodes": [n.to_document() for n in self.nodes],
            "links": [link.to_document() for link in self.links],
        }

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> FlowDefinition:
        """Rebuild a stored (already validated) definition."""
        return cls(
            trigger=Node.from_document(document["trigger"]),
            nodes=tuple(Node.from_document(n) for n in document.get("nodes") or []),
            links=tuple(Link.from_document(link) for link in document.get("links") or []),
        )


def parse_definition(body: Mapping[str, Any]) -> FlowDefinition:
    """Validate the trigger, nodes and links of a request body; raise ValidationFailed naming the
    node and field of the first problem."""
    trigger = _parse_trigger(body.get("trigger"))
    raw_nodes = body.get("nodes", [])
    if not isinstance(raw_nodes, list):
        raise ValidationFailed("nodes must be a list", field="nodes")
    if len(raw_nodes) > MAX_NODES:
        raise ValidationFailed(f"a flow has at most {MAX_NODES} nodes", field="nodes")
    nodes: list[Node] = []
    seen = {trigger.key}
    for index, raw in enumerate(raw_nodes):
        node = _parse_node(raw, f"nodes[{index}]")
        if node.key in seen:
            raise ValidationFailed(f"node {node.key!r}: duplicate key", field=f"nodes[{index}].key")
        seen.add(node.key)
        nodes.append(node)
    links = _parse_links(body.get("links", []), seen, trigger.key)
    definition = FlowDefinition(trigger, tuple(nodes), tuple(links))
    ordered = definition.order()
    if len(ordered) != len(seen):
        in_cycle = next(key for key in (n.key for n in nodes) if key not in ordered)
        raise ValidationFailed(f"node {in_cycle!r}: the links form a cycle through this node", field="links")
    return definition


def _key_of(raw: Mapping[str, Any], at: str, default: str | None = None) -> str:
    key = raw.get("key", default)
    if not isinstance(key, str) or not KEY_PATTERN.match(key):
        raise ValidationFailed(
            f"{at}: key is required: 1-64 letters, digits, '_', '-', '.'", field=f"{at}.key"
        )
    return key


def _parse_trigger(raw: Any) -> Node:
    if not isinstance(raw, Mapping):
        raise ValidationFailed("trigger is required (an object with a type)", field="trigger")
    key = _key_of(raw, "trigger", "trigger")
    kind = raw.get("type")
    if kind not in TRIGGER_TYPES:
        raise ValidationFailed(
            f"trigger {key!r}: unknown trigger type {kind!r}; use one of {sorted(TRIGGER_TYPES)}",
            field="trigger.type",
        )
    config = raw.get("config") or {}
    if not isinstance(config, Mapping):
        raise ValidationFailed(f"trigger {key!r}: config must be an object", field="trigger.config")
    where = f"trigger {key!r}"
    if kind == TriggerType.SCHEDULE:
        cron = config.get("cron")
        if not isinstance(cron, str) or not croniter.is_valid(cron):
            raise ValidationFailed(
                f"{where}: cron is not a valid cron expression: {cron!r}", field="trigger.config.cron"
            )
        try:
            ZoneInfo(str(config.get("timezone") or "UTC"))
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationFailed(
                f"{where}: unknown timezone {config.get('timezone')!r}", field="trigger.config.timezone"
            )
        if config.get("overlap", "skip") not in ("skip", "allow"):
            raise ValidationFailed(
                f"{where}: overlap must be 'skip' (the default) or 'allow'", field="trigger.config.overlap"
            )
    elif kind == TriggerType.APP_EVENT:
        _require_str(config, "eventType", where, "trigger.config")
    elif kind in DATA_RECORD_CHANGE:
        _require_str(config, "dataSource", where, "trigger.config")
        events = config.get("webhookEvents", [])
        if not isinstance(events, list) or not all(isinstance(e, str) and e for e in events):
            raise ValidationFailed(
                f"{where}: webhookEvents must be a list of event type names",
                field="trigger.config.webhookEvents",
            )
    elif (
        kind == TriggerType.API and "inputSchema" in config and not isinstance(config["inputSchema"], Mapping)
    ):
        raise ValidationFailed(
            f"{where}: inputSchema must be a JSON schema object", field="trigger.config.inputSchema"
        )
    return Node(key=key, type=kind, config=dict(config), name=raw.get("name"))


def _require_str(config: Mapping[str, Any], name: str, where: str, at: str) -> str:
    value = config.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ValidationFailed(f"{where}: {name} is required", field=f"{at}.{name}")
    return value


def _check_templates(value: Any, where: str, at: str) -> None:
    try:
        compile_tree(value)
    except TemplateError as error:
        inner = f"{at}.{error.field}" if error.field else at
        raise ValidationFailed(f"{where}: bad template: {error.message}", field=inner)


def _parse_node(raw: Any, at: str) -> Node:
    if not isinstance(raw, Mapping):
        raise ValidationFailed(f"{at}: a node must be an object", field=at)
    key = _key_of(raw, at)
    where = f"node {key!r}"
    kind = raw.get("type")
    if kind not in NODE_TYPES:
        raise ValidationFailed(
            f"{where}: unknown node type {kind!r}; use one of {sorted(NODE_TYPES)}", field=f"{at}.type"
        )
    on_error = raw.get("onError", "stop")
    if on_error not in ON_ERROR:
        raise ValidationFailed(f"{where}: onError must be 'stop' or 'continue'", field=f"{at}.onError")
    config = raw.get("config") or {}
    if not isinstance(config, Mapping):
        raise ValidationFailed(f"{where}: config must be an object", field=f"{at}.config")
    _CONFIG_CHECKS[kind](config, where, f"{at}.config")
    return Node(key=key, type=kind, config=dict(config), on_error=on_error, name=raw.get("name"))


def _check_run_action(config: Mapping[str, Any], where: str, at: str) -> None:
    _require_str(config, "action", where, at)
    _check_templates(config.get("input", {}), where, f"{at}.input")


def _check_http_request(config: Mapping[str, Any], where: str, at: str) -> None:
    _check_templates(_require_str(config, "url", where, at), where, f"{at}.url")
    method = str(config.get("method", "GET")).upper()
    if method not in HTTP_METHODS:
        raise ValidationFailed(f"{where}: method must be one of {sorted(HTTP_METHODS)}", field=f"{at}.method")
    for name in ("headers", "query"):
        if not isinstance(config.get(name, {}), Mapping):
            raise ValidationFailed(f"{where}: {name} must be an object", field=f"{at}.{name}")
        _check_templates(config.get(name, {}), where, f"{at}.{name}")
    _check_templates(config.get("body"), where, f"{at}.body")


def _check_run_python(config: Mapping[str, Any], where: str, at: str) -> None:
    code = _require_str(config, "code", where, at)
    if len(code.encode()) > MAX_CODE_BYTES:
        raise ValidationFailed(f"{where}: code is larger than {MAX_CODE_BYTES} bytes", field=f"{at}.code")
    timeout = config.get("timeoutSeconds")
    if timeout is not None and (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not 0 < timeout <= MAX_CODE_TIMEOUT_SECONDS
    ):
        raise ValidationFailed(
            f"{where}: timeoutSeconds must be a number in (0, {MAX_CODE_TIMEOUT_SECONDS}]",
            field=f"{at}.timeoutSeconds",
        )
    try:
        # Parsing only: the code never runs here (only in the custom code runner).
        ast.parse(code)
    except SyntaxError as error:
        raise ValidationFailed(
            f"{where}: code does not parse (line {error.lineno}): {error.msg}", field=f"{at}.code"
        )


def _check_transform(config: Mapping[str, Any], where: str, at: str) -> None:
    mapping = config.get("mapping")
    if not isinstance(mapping, Mapping) or not mapping:
        raise ValidationFailed(
            f"{where}: mapping is required (an object of output field -> template)", field=f"{at}.mapping"
        )
    _check_templates(mapping, where, f"{at}.mapping")
    if not isinstance(config.get("defaults", {}), Mapping):
        raise ValidationFailed(f"{where}: defaults must be an object", field=f"{at}.defaults")


def _check_filter(config: Mapping[str, Any], where: str, at: str) -> None:
    validate_filter(config, at, where)


def _check_for_each(config: Mapping[str, Any], where: str, at: str) -> None:
    _check_templates(_require_str(config, "items", where, at), where, f"{at}.items")


_CONFIG_CHECKS = {
    "run-action": _check_run_action,
    "http-request": _check_http_request,
    "run-python": _check_run_python,
    "transform-data": _check_transform,
    "filter": _check_filter,
    "for-each": _check_for_each,
}


def _parse_links(raw_links: Any, keys: set[str], trigger_key: str) -> list[Link]:
    if not isinstance(raw_links, list):
        raise ValidationFailed("links must be a list", field="links")
    links: list[Link] = []
    pairs: set[tuple[str, str]] = set()
    for index, raw in enumerate(raw_links):
        at = f"links[{index}]"
        if not isinstance(raw, Mapping):
            raise ValidationFailed(f"{at}: a link must be an object with from and to", field=at)
        for end in ("from", "to"):
            if raw.get(end) not in keys:
                raise ValidationFailed(
                    f"{at}: dangling link: {end} {raw.get(end)!r} is not a node of this flow",
                    field=f"{at}.{end}",
                )
        if raw["to"] == trigger_key:
            raise ValidationFailed(f"{at}: nothing may link into the trigger", field=f"{at}.to")
        if raw["from"] == raw["to"]:
            raise ValidationFailed(
                f"node {raw['from']!r}: a link from a node to itself is a cycle", field=f"{at}.to"
            )
        if (raw["from"], raw["to"]) in pairs:
            raise ValidationFailed(f"{at}: duplicate link {raw['from']} -> {raw['to']}", field=at)
        pairs.add((raw["from"], raw["to"]))
        if raw.get("filter") is not None:
            validate_filter(raw["filter"], f"{at}.filter", f"link {raw['from']} -> {raw['to']}")
        links.append(
            Link(raw["from"], raw["to"], dict(raw["filter"]) if raw.get("filter") is not None else None)
        )
    return links
