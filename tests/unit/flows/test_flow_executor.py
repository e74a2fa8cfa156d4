"""The graph walk, with node executors injected as plain functions (no I/O here)."""

from __future__ import annotations

import pytest

from engine.flows.definition import parse_definition
from engine.flows.executor import FlowFailed, FlowRunEnvironment, FlowStopped, NodeFailed, execute_flow


class MemoryRecorder:
    def __init__(self):
        self.runs = {}
        self.events = []

    def started(self, run):
        self.events.append(("started", run.key))

    def finished(self, run):
        self.events.append(("finished", run.key, run.status))
        self.runs[run.key] = run


def echo(node, value, ctx):
    ctx.log(f"{node.key} got {value}")
    return [value]


def for_each(node, value, ctx):
    return list(value["items"])


def double(node, value, ctx):
    if value == 3 and node.config.get("failOn3"):
        raise NodeFailed("three is bad")
    return [value * 2]


def _flow(*, on_error="stop", fail_on_3=False, link_filter=None):
    return parse_definition(
        {
            "trigger": {"type": "api-trigger"},
            "nodes": [
                {"key": "each", "type": "for-each", "config": {"items": "{{ input.items }}"}},
                {
                    "key": "double",
                    "type": "run-python",
                    "onError": on_error,
                    "config": {"code": "x = 1", "failOn3": fail_on_3},
                },
                {"key": "last", "type": "transform-data", "config": {"mapping": {"v": "{{ input }}"}}},
            ],
            "links": [
                {"from": "trigger", "to": "each"},
                {"from": "each", "to": "double"},
                {"from": "double", "to": "last", **({"filter": link_filter} if link_filter else {})},
            ],
        }
    )


def _env(recorder, **kw):
    return FlowRunEnvironment(
        run_id="run_1",
        recorder=recorder,
        executors={"for-each": for_each, "run-python": double, "transform-data": echo},
        **kw,
    )


def test_fan_out_runs_downstream_once_per_output():
    recorder = MemoryRecorder()
    summary = execute_flow(_flow(), {"items": [1, 2, 3]}, _env(recorder))
    assert summary["nodes"] == {
        "trigger": "completed",
        "each": "completed",
        "double": "completed",
        "last": "completed",
    }
    assert recorder.runs["double"].invocations == 3
    assert recorder.runs["last"].outputs == [2, 4, 6]
    assert len(recorder.runs["last"].logs) == 3 and recorder.runs["last"].logs[0].endswith("last got 2")


def test_link_filter_drops_outputs_and_an_unreached_node_is_skipped():
    recorder = MemoryRecorder()
    big = {"conditions": [{"value": "{{ input }}", "operator": "gt", "to": 100}]}
    summary = execute_flow(_flow(link_filter=big), {"items": [1, 2]}, _env(recorder))
    assert summary["nodes"]["last"] == "skipped"
    assert recorder.runs["last"].invocations == 0


def test_on_error_stop_fails_the_run_naming_the_node():
    recorder = MemoryRecorder()
    with pytest.raises(FlowFailed) as caught:
        execute_flow(_flow(fail_on_3=True), {"items": [1, 3, 5]}, _env(recorder))
    assert caught.value.node_key == "double" and "three is bad" in caught.value.error["message"]
    assert recorder.runs["double"].status == "failed"
    assert "last" not in recorder.runs


def test_on_error_continue_keeps_the_other_outputs():
    recorder = MemoryRecorder()
    summary = execute_flow(_flow(on_error="continue", fail_on_3=True), {"items": [1, 3, 5]}, _env(recorder))
    assert summary["failedNodes"] == ["double"]
    assert recorder.runs["double"].errors[0]["invocation"] == 2
    assert recorder.runs["last"].outputs == [2, 10]


def test_an_unexpected_exception_is_the_nodes_failure():
    recorder = MemoryRecorder()

    def boom(node, value, ctx):
        raise RuntimeError("kaput")

    env = _env(recorder)
    env.executors = {**env.executors, "run-python": boom}
    with pytest.raises(FlowFailed, match="kaput"):
        execute_flow(_flow(), {"items": [1]}, env)


def test_should_stop_is_checked_between_invocations():
    recorder = MemoryRecorder()
    calls = {"n": 0}

    def stop_after_two():
        calls["n"] += 1
        return calls["n"] > 3

    with pytest.raises(FlowStopped):
        execute_flow(_flow(), {"items": [1, 2, 3, 4]}, _env(recorder, should_stop=stop_after_two))
    assert recorder.runs["double"].status == "failed" and recorder.runs["double"].invocations == 2


def test_the_walk_is_deterministic():
    outputs = []
    for _ in range(3):
        recorder = MemoryRecorder()
        execute_flow(_flow(), {"items": [5, 4, 3]}, _env(recorder))
        outputs.append((recorder.events, recorder.runs["last"].outputs))
    assert outputs[0] == outputs[1] == outputs[2]


def test_output_check_fails_the_node():
    recorder = MemoryRecorder()

    def too_big(node, output):
        if node.key == "double" and output > 5:
            raise NodeFailed("output too large", type="output_too_large")

    with pytest.raises(FlowFailed) as caught:
        execute_flow(_flow(), {"items": [1, 3]}, _env(recorder, check_output=too_big))
    assert caught.value.error["type"] == "output_too_large"
