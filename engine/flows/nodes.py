"""The real node executors: what each node type does to one input.

Each has the NodeExecutor signature `(node, input, ctx) -> list of outputs`. They read what
they need from `ctx.extra`: "services", "workspace_id", "connection" (the connection record, for
run-action). User code never runs here: run-python goes to the custom code runner.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import requests

from engine.config import Config
from engine.connectors.errors import TemplateRenderError
from engine.connectors.templates import render_tree
from engine.errors import TooManyRequests
from engine.flows.conditions import filter_passes
from engine.flows.definition import Node
from engine.flows.executor import NodeContext, NodeExecutor, NodeFailed
from engine.flows.outputs import MAX_NODE_OUTPUT_BYTES
from engine.limits.custom_code import LIMIT_NAME as CUSTOM_CODE_LIMIT_NAME
from engine.limits.custom_code import custom_code_slot
from engine.outbound import outbound_session

HTTP_REQUEST_TIMEOUT_SECONDS = 30.0
"""Connect + read timeout of an http-request node."""
CUSTOM_CODE_TIMEOUT_SECONDS = 60.0
"""Longest a run-python invocation may take end to end; the runner's own per-job limit (its
CUSTOM_CODE_TIMEOUT_SECONDS, or the node's `timeoutSeconds`) is usually lower."""
RUNNER_HTTP_GRACE_SECONDS = 10.0
"""The HTTP call to the runner may last this much longer than the job's own limit."""
RUNNER_BUSY_WAIT_SECONDS = 30.0
"""How long a run-python node retries a runner that has no free job space."""
MAX_FOR_EACH_ITEMS = 100_000


def _render(value: Any, node: Node, ctx: NodeContext, data: Any, field: str) -> Any:
    try:
        return render_tree(value, ctx.template_context(data))
    except TemplateRenderError as error:
        raise NodeFailed(f"config.{field}: {error.message}", type="template_error")


def transform_data(node: Node, value: Any, ctx: NodeContext) -> list[Any]:
    """Build a new object from `mapping` (output field -> template or literal); a field whose
    template finds no value takes `defaults[field]`, or is left out."""
    defaults = node.config.get("defaults") or {}
    out: dict[str, Any] = {}
    for name, template in node.config["mapping"].items():
        try:
            rendered = render_tree(template, ctx.template_context(value))
        except TemplateRenderError:
            rendered = None
        if rendered is None:
            if name in defaults:
                out[name] = defaults[name]
            continue
        out[name] = rendered
    return [out]


def filter_node(node: Node, value: Any, ctx: NodeContext) -> list[Any]:
    """Pass the input through when the conditions hold, else emit nothing."""
    passed = filter_passes(node.config, ctx.template_context(value))
    ctx.log("passed" if passed else "filtered out")
    return [value] if passed else []


def for_each(node: Node, value: Any, ctx: NodeContext) -> list[Any]:
    """One output per item of the list `items` renders to."""
    items = _render(node.config["items"], node, ctx, value, "items")
    if not isinstance(items, list):
        raise NodeFailed(
            f"config.items must render to a list, got {type(items).__name__}", type="invalid_items"
        )
    if len(items) > MAX_FOR_EACH_ITEMS:
        raise NodeFailed(
            f"config.items has {len(items)} items, above {MAX_FOR_EACH_ITEMS}", type="too_many_items"
        )
    ctx.log(f"{len(items)} items")
    return list(items)


_http_local = threading.local()


def _http_session(config: Config) -> requests.Session:
    """This thread's guarded session for the config's outbound policy (kept-alive connections)."""
    sessions = getattr(_http_local, "sessions", None)
    if sessions is None:
        sessions = _http_local.sessions = {}
    key = (config.is_production, config.outbound_allowed_networks)
    session = sessions.get(key)
    if session is None:
        session = sessions[key] = outbound_session(config)
    return session


def http_request(node: Node, value: Any, ctx: NodeContext) -> list[Any]:
    """Send the rendered request; output {status, headers, body}. A 4xx/5xx answer fails the node."""
    config = node.config
    method = str(config.get("method", "GET")).upper()
    url = _render(config["url"], node, ctx, value, "url")
    headers = {
        k: str(v) for k, v in (_render(config.get("headers") or {}, node, ctx, value, "headers")).items()
    }
    query = _render(config.get("query") or {}, node, ctx, value, "query")
    body = _render(config["body"], node, ctx, value, "body") if config.get("body") is not None else None
    started = time.monotonic()
    try:
        response = _http_session(ctx.extra["services"].config).request(
            method,
            url,
            headers=headers,
            params=query,
            json=body,
            timeout=HTTP_REQUEST_TIMEOUT_SECONDS,
            stream=True,
        )
        content = response.raw.read(MAX_NODE_OUTPUT_BYTES + 1, decode_content=True)
    except requests.RequestException as error:
        raise NodeFailed(f"{method} {url} failed: {error}", type="http_error")
    ctx.log(f"{method} {url} -> {response.status_code} in {(time.monotonic() - started) * 1000:.0f} ms")
    if len(content) > MAX_NODE_OUTPUT_BYTES:
        raise NodeFailed(
            f"the response of {method} {url} is larger than the node output limit", type="output_too_large"
        )
    text = content.decode(response.encoding or "utf-8", errors="replace")
    try:
        parsed: Any = json.loads(text) if text else None
    except ValueError:
        parsed = text
    if response.status_code >= 400:
        raise NodeFailed(f"{method} {url} answered {response.status_code}: {text[:500]}", type="http_status")
    return [{"status": response.status_code, "headers": dict(response.headers), "body": parsed}]


def _runner(uri: str):
    from sandbox.client import shared_client

    return shared_client(uri, CUSTOM_CODE_TIMEOUT_SECONDS + RUNNER_HTTP_GRACE_SECONDS)


def run_python(node: Node, value: Any, ctx: NodeContext) -> list[Any]:
    """Run the node's code on the custom code runner with the input; its result is the output and
    its print() output the node's logs."""
    from sandbox.client import JobLimits
    from sandbox.errors import InvalidJob, RunnerBusy, RunnerUnavailable

    services = ctx.extra["services"]
    client = _runner(services.config.custom_code_runner_uri)
    timeout = node.config.get("timeoutSeconds")
    limits = JobLimits(timeout_seconds=float(timeout)) if timeout else None
    job = ctx.extra.get("job")
    workspace_id = job.workspace_id if job else ctx.extra.get("workspace_id", "")
    try:
        with custom_code_slot(services, workspace_id, job.customer_id if job else None) as waited:
            if waited:
                ctx.log(f"waited {waited:.1f} s for a custom code slot ({CUSTOM_CODE_LIMIT_NAME})")
            deadline = time.monotonic() + RUNNER_BUSY_WAIT_SECONDS
            while True:
                try:
                    result = client.run_job(
                        node.config["code"], value, connection=dict(ctx.connection), limits=limits
                    )
                    break
                except RunnerBusy as busy:
                    if time.monotonic() + busy.retry_after_seconds > deadline:
                        raise NodeFailed("the custom code runner stayed busy", type="runner_busy")
                    time.sleep(busy.retry_after_seconds)
                except RunnerUnavailable as error:
                    raise NodeFailed(error.message, type="runner_unavailable")
                except InvalidJob as error:
                    raise NodeFailed(
                        f"the custom code runner refused the job: {error.message}", type="invalid_job"
                    )
    except TooManyRequests as error:
        raise NodeFailed(error.message, type="custom_code_limit")
    for line in (result.logs or "").splitlines():
        ctx.log(line)
    if not result.ok:
        code_error = result.error
        where = f" (line {code_error.line})" if code_error and code_error.line else ""
        raise NodeFailed(
            f"{code_error.message if code_error else 'failed'}{where}",
            type=code_error.type if code_error else "custom_code_error",
        )
    return [result.result]


def run_action(node: Node, value: Any, ctx: NodeContext) -> list[Any]:
    """Run the workspace's action `config.action` on the run's connection with the rendered input."""
    from engine.flows.actions import run_action_for_flow

    action_input = _render(node.config.get("input") or {}, node, ctx, value, "input")
    return [run_action_for_flow(ctx, node.config["action"], action_input)]


EXECUTORS: dict[str, NodeExecutor] = {
    "transform-data": transform_data,
    "filter": filter_node,
    "for-each": for_each,
    "http-request": http_request,
    "run-python": run_python,
    "run-action": run_action,
}
"""The executor of each node type."""
