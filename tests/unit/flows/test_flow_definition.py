"""Validation of flow definitions on save: every problem is a 400 naming the node and field."""

from __future__ import annotations

import copy

import pytest

from engine.errors import ValidationFailed
from engine.flows.definition import FlowDefinition, parse_definition

VALID = {
    "trigger": {"type": "api-trigger"},
    "nodes": [
        {"key": "list", "type": "run-action", "config": {"action": "list-contacts", "input": {"limit": 5}}},
        {"key": "each", "type": "for-each", "config": {"items": "{{ input.records }}"}},
        {"key": "score", "type": "run-python", "config": {"code": "def run(input, ctx):\n    return 1\n"}},
        {
            "key": "hot",
            "type": "filter",
            "config": {"conditions": [{"value": "{{ input.score }}", "operator": "gte", "to": 50}]},
        },
        {
            "key": "post",
            "type": "http-request",
            "onError": "continue",
            "config": {
                "method": "POST",
                "url": "{{ parameters.url }}/contacts",
                "body": {"email": "{{ input.email }}"},
            },
        },
        {"key": "shape", "type": "transform-data", "config": {"mapping": {"id": "{{ input.id }}"}}},
    ],
    "links": [
        {"from": "trigger", "to": "list"},
        {"from": "list", "to": "each"},
        {"from": "each", "to": "score"},
        {"from": "score", "to": "hot"},
        {"from": "hot", "to": "post"},
        {
            "from": "score",
            "to": "shape",
            "filter": {"conditions": [{"value": "{{ input.id }}", "operator": "exists"}]},
        },
    ],
}


def _invalid(mutate) -> ValidationFailed:
    body = copy.deepcopy(VALID)
    mutate(body)
    with pytest.raises(ValidationFailed) as caught:
        parse_definition(body)
    return caught.value


def test_a_valid_definition_parses_and_round_trips():
    definition = parse_definition(VALID)
    assert definition.order() == ["trigger", "list", "each", "score", "hot", "post", "shape"]
    again = FlowDefinition.from_document(definition.to_document())
    assert again == definition


def test_unknown_node_type_names_the_node_and_field():
    error = _invalid(lambda b: b["nodes"][2].update(type="run-perl"))
    assert "'score'" in error.message and error.field == "nodes[2].type"


def test_dangling_link_names_the_link_end():
    error = _invalid(lambda b: b["links"].append({"from": "post", "to": "nowhere"}))
    assert "dangling" in error.message and error.field == "links[6].to"


def test_cycle_is_refused():
    error = _invalid(lambda b: b["links"].append({"from": "post", "to": "each"}))
    assert "cycle" in error.message and error.field == "links"


def test_self_link_is_a_cycle():
    error = _invalid(lambda b: b["links"].append({"from": "post", "to": "post"}))
    assert "cycle" in error.message


def test_invalid_cron_is_refused():
    error = _invalid(
        lambda b: b.update(trigger={"type": "schedule-trigger", "config": {"cron": "61 * * * *"}})
    )
    assert error.field == "trigger.config.cron"


def test_unknown_timezone_is_refused():
    error = _invalid(
        lambda b: b.update(
            trigger={"type": "schedule-trigger", "config": {"cron": "*/5 * * * *", "timezone": "Mars/Base"}}
        )
    )
    assert error.field == "trigger.config.timezone"


def test_bad_template_names_the_nested_field():
    error = _invalid(lambda b: b["nodes"][4]["config"]["body"].update(email="{{ input.email | nope }}"))
    assert "'post'" in error.message and error.field == "nodes[4].config.body.email"


def test_template_with_unknown_root_is_refused():
    error = _invalid(lambda b: b["nodes"][1]["config"].update(items="{{ secrets.x }}"))
    assert error.field == "nodes[1].config.items"


def test_missing_required_config_names_the_field():
    error = _invalid(lambda b: b["nodes"][0]["config"].pop("action"))
    assert "'list'" in error.message and error.field == "nodes[0].config.action"


def test_python_syntax_error_is_refused_without_running_it():
    error = _invalid(lambda b: b["nodes"][2]["config"].update(code="def run(:\n"))
    assert error.field == "nodes[2].config.code" and "line 1" in error.message


def test_duplicate_keys_and_bad_on_error():
    assert _invalid(lambda b: b["nodes"][1].update(key="list")).field == "nodes[1].key"
    assert _invalid(lambda b: b["nodes"][1].update(onError="retry")).field == "nodes[1].onError"


def test_bad_link_filter_operator():
    error = _invalid(lambda b: b["links"][5]["filter"]["conditions"][0].update(operator="like"))
    assert error.field == "links[5].filter.conditions[0].operator"


def test_schedule_trigger_with_timezone_is_accepted():
    body = copy.deepcopy(VALID)
    body["trigger"] = {
        "type": "schedule-trigger",
        "config": {"cron": "0 9 * * 1-5", "timezone": "Europe/Paris"},
    }
    assert parse_definition(body).trigger.config["timezone"] == "Europe/Paris"


def test_data_record_trigger_requires_a_data_source():
    error = _invalid(lambda b: b.update(trigger={"type": "data-record-created-trigger", "config": {}}))
    assert error.field == "trigger.config.dataSource"
