"""The pure node executors (transform-data, filter, for-each) and the output size check."""

from __future__ import annotations

import pytest

from engine.flows.definition import Node
from engine.flows.executor import NodeContext, NodeFailed
from engine.flows.nodes import filter_node, for_each, transform_data
from engine.flows.outputs import MAX_NODE_OUTPUT_BYTES, check_output


def _ctx(node: Node, parameters=None) -> NodeContext:
    return NodeContext("run_1", node, parameters or {"team": "blue"}, {"id": "con_1"})


def test_transform_copies_fields_renders_templates_and_applies_defaults():
    node = Node(
        "t",
        "transform-data",
        {
            "mapping": {
                "email": "{{ input.email }}",
                "who": "{{ input.first }} of {{ parameters.team }}",
                "age": "{{ input.age }}",
                "tags": ["{{ input.first | upper }}"],
                "fixed": 7,
                "missing": "{{ input.nothing }}",
            },
            "defaults": {"age": 18},
        },
    )
    [out] = transform_data(node, {"email": "a@b.c", "first": "ann"}, _ctx(node))
    assert out == {"email": "a@b.c", "who": "ann of blue", "age": 18, "tags": ["ANN"], "fixed": 7}


def test_filter_passes_or_drops():
    node = Node(
        "f",
        "filter",
        {
            "match": "any",
            "conditions": [
                {"value": "{{ input.score }}", "operator": "gte", "to": 50},
                {"value": "{{ input.vip }}", "operator": "eq", "to": True},
            ],
        },
    )
    assert filter_node(node, {"score": 70}, _ctx(node)) == [{"score": 70}]
    assert filter_node(node, {"score": 10, "vip": True}, _ctx(node)) == [{"score": 10, "vip": True}]
    assert filter_node(node, {"score": 10}, _ctx(node)) == []
    assert filter_node(node, {"score": "not a number"}, _ctx(node)) == []


def test_for_each_emits_one_output_per_item_and_refuses_non_lists():
    node = Node("e", "for-each", {"items": "{{ input.items }}"})
    ctx = _ctx(node)
    assert for_each(node, {"items": [1, {"a": 2}]}, ctx) == [1, {"a": 2}]
    assert ctx.logs[-1].endswith("2 items")
    with pytest.raises(NodeFailed, match="must render to a list"):
        for_each(node, {"items": "nope"}, ctx)
    with pytest.raises(NodeFailed, match="no value"):
        for_each(node, {}, ctx)


def test_output_limit_fails_clearly():
    node = Node("big", "transform-data", {"mapping": {"x": 1}})
    check_output(node, {"small": "x" * 1000})
    with pytest.raises(NodeFailed) as caught:
        check_output(node, "x" * (MAX_NODE_OUTPUT_BYTES + 10))
    assert caught.value.type == "output_too_large" and "20 MB" in caught.value.message
    with pytest.raises(NodeFailed, match="not JSON"):
        check_output(node, {"when": object()})
