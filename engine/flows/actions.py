"""The run-action node: runs a workspace action in-process through engine.domain.actions.

A flow run is already a queued job on a worker, so the action runs here rather than as an
instant task (one hop fewer, and the run's limits cover it).
"""

from __future__ import annotations

from typing import Any

from engine.domain.actions import execute_action, get_action
from engine.errors import NotFound
from engine.flows.executor import NodeContext, NodeFailed


def run_action_for_flow(ctx: NodeContext, action_key: str, action_input: Any) -> Any:
    """The action's output; NodeFailed with the action's error type and message on failure."""
    services = ctx.extra["services"]
    try:
        action = get_action(services, ctx.extra["workspace_id"], action_key, cached=True)
    except NotFound:
        raise NodeFailed(f"no action {action_key!r} in this workspace", type="action_not_found")
    result = execute_action(services, action, ctx.extra.get("connection"), action_input)
    for line in (result.logs or "").splitlines():
        ctx.log(line)
    summary = result.request or {}
    target = f" {summary.get('method', '')} {summary.get('url', summary.get('path', ''))}".rstrip()
    ctx.log(f"action {action_key}{target}: {'ok' if result.ok else 'failed'} in {result.duration_ms:.0f} ms")
    if not result.ok:
        error = result.error or {}
        raise NodeFailed(
            str(error.get("message") or "the action failed"), type=str(error.get("type") or "action_error")
        )
    return result.output
