"""The graph walk of one flow run: deterministic, with fan-out, stoppable between invocations.

Nodes run in a fixed topological order (the trigger first, ties broken by declaration order).
A node runs once per input it received: every output of every upstream node whose link filter
passes. A node executor returns a list of outputs (for-each: one per item; filter: zero or one;
the others: one), so downstream nodes run once per output.

The walk knows nothing about Mongo, HTTP or Celery: node executors and the recorder are passed
in, which is what lets the unit tests drive it with plain functions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from engine.flows.conditions import filter_passes
from engine.flows.definition import FlowDefinition, Node

MAX_LOG_LINES_PER_NODE = 1000
"""Log lines kept per node run; later lines are counted, not kept."""
MAX_LOG_LINE_CHARS = 4000


class NodeFailed(Exception):
    """The node failed."""

    def __init__(self, message: str, *, type: str = "node_error"):  # noqa: A002
        super().__init__(message)
        self.message = message
        self.type = type


class FlowStopped(Exception):
    """The flow run was stopped on request."""


class FlowFailed(Exception):
    """A node with onError=stop failed, so the run failed."""

    def __init__(self, node_key: str, error: dict[str, str]):
        super().__init__(f"node {node_key!r} failed: {error['message']}")
        self.node_key = node_key
        self.error = {"type": error.get("type", "node_error"), "message": str(self), "node": node_key}


@dataclass
class NodeContext:
    """What a node executor may use for one invocation."""

    run_id: str
    node: Node
    parameters: Mapping[str, Any]
    connection: Mapping[str, Any]
    """The connection's non-secret fields, for templates (`{{ connection.x }}`)."""
    logs: list[str] = field(default_factory=list)
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Anything the process's node executors need (services, the connection record ...)."""
    dropped_log_lines: int = 0

    def log(self, message: str) -> None:
        """Append a timestamped line to this node run's logs."""
        if len(self.logs) >= MAX_LOG_LINES_PER_NODE:
            self.dropped_log_lines += 1
            return
        stamp = datetime.now(UTC).strftime("%H:%M:%S.%f")[:-3]
        self.logs.append(f"{stamp} {message[:MAX_LOG_LINE_CHARS]}")

    def template_context(self, value: Any) -> dict[str, Any]:
        """The roots templates render over: `input` (this invocation's input), `parameters`
        (the flow instance's) and `connection`."""
        return {"input": value, "parameters": dict(self.parameters), "connection": dict(self.connection)}


NodeExecutor = Callable[[Node, Any, NodeContext], list[Any]]
"""Runs one node on one input and returns its outputs; raises NodeFailed (or any error) on failure."""


@dataclass
class NodeRun:
    """What a node did in one flow run (all its invocations together)."""

    key: str
    type: str
    status: str = "running"
    """running while it works, then completed | failed | skipped."""
    outputs: list[Any] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    invocations: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None


class NodeRecorder(Protocol):
    """Where node runs are written as they start and finish (Mongo in production)."""

    def started(self, run: NodeRun) -> None: ...

    def finished(self, run: NodeRun) -> None: ...


OutputCheck = Callable[[Node, Any], None]
"""Raises NodeFailed when an output is unacceptable (e.g. larger than the output limit)."""


@dataclass
class FlowRunEnvironment:
    """Everything around one run that is not the graph."""

    run_id: str
    executors: Mapping[str, NodeExecutor]
    recorder: NodeRecorder
    parameters: Mapping[str, Any] = field(default_factory=dict)
    connection: Mapping[str, Any] = field(default_factory=dict)
    should_stop: Callable[[], bool] = lambda: False
    check_output: OutputCheck | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


def execute_flow(definition: FlowDefinition, trigger_input: Any, env: FlowRunEnvironment) -> dict[str, Any]:
    """Run the graph. Returns a summary {nodes: {key: status}, failedNodes: [...], durationMs}.

    Raises FlowStopped when should_stop() turns true between invocations, FlowFailed when a
    node with onError=stop fails."""
    started = time.monotonic()
    pending: dict[str, list[Any]] = {node.key: [] for node in definition.nodes}
    statuses: dict[str, str] = {}
    trigger = definition.trigger
    now = datetime.now(UTC)
    trigger_run = NodeRun(trigger.key, trigger.type, "completed", [trigger_input], [], [], 1, now, now)
    env.recorder.finished(trigger_run)
    statuses[trigger.key] = "completed"
    _route(definition, trigger, trigger_run.outputs, pending, env)

    for key in definition.order()[1:]:
        node = definition.node(key)
        inputs = pending.pop(key, [])
        if not inputs:
            now = datetime.now(UTC)
            env.recorder.finished(NodeRun(key, node.type, "skipped", started_at=now, finished_at=now))
            statuses[key] = "skipped"
            continue
        run = _run_node(node, inputs, env)
        statuses[key] = run.status
        _route(definition, node, run.outputs, pending, env)
    return {
        "nodes": statuses,
        "failedNodes": [k for k, s in statuses.items() if s == "failed"],
        "durationMs": round((time.monotonic() - started) * 1000, 1),
    }


def _run_node(node: Node, inputs: list[Any], env: FlowRunEnvironment) -> NodeRun:
    run = NodeRun(node.key, node.type, started_at=datetime.now(UTC))
    env.recorder.started(run)
    executor = env.executors.get(node.type)
    for value in inputs:
        if env.should_stop():
            run.errors.append({"type": "stopped", "message": "the run was stopped"})
            _finish(run, env, "failed")
            raise FlowStopped()
        ctx = NodeContext(env.run_id, node, env.parameters, env.connection, extra=env.extra)
        run.invocations += 1
        try:
            if executor is None:
                raise NodeFailed(f"no executor for node type {node.type!r}", type="unsupported_node")
            outputs = executor(node, value, ctx)
            if env.check_output is not None:
                for output in outputs:
                    env.check_output(node, output)
        except FlowStopped:
            run.logs.extend(ctx.logs)
            _finish(run, env, "failed")
            raise
        except NodeFailed as error:
            failure = {"type": error.type, "message": error.message}
            outputs = None
        except Exception as error:  # noqa: BLE001 - any node error is the node's failure, reported
            failure = {"type": type(error).__name__, "message": str(error) or type(error).__name__}
            outputs = None
        run.logs.extend(ctx.logs)
        if ctx.dropped_log_lines:
            run.logs.append(f"... {ctx.dropped_log_lines} more log lines dropped")
        if outputs is None:
            ctx_error = {**failure, "invocation": run.invocations}
            run.errors.append(ctx_error)
            if node.on_error == "stop":
                _finish(run, env, "failed")
                raise FlowFailed(node.key, failure)
            continue
        run.outputs.extend(outputs)
    _finish(run, env, "failed" if run.errors else "completed")
    return run


def _finish(run: NodeRun, env: FlowRunEnvironment, status: str) -> None:
    run.status = status
    run.finished_at = datetime.now(UTC)
    env.recorder.finished(run)


def _route(
    definition: FlowDefinition,
    node: Node,
    outputs: list[Any],
    pending: dict[str, list[Any]],
    env: FlowRunEnvironment,
) -> None:
    for link in definition.outgoing(node.key):
        for output in outputs:
            if link.filter is None:
                pending[link.target].append(output)
                continue
            context = {
                "input": output,
                "parameters": dict(env.parameters),
                "connection": dict(env.connection),
            }
            if filter_passes(link.filter, context):
                pending[link.target].append(output)
