"""Fixtures of the flow tests: the API tests' client, tenant and demo app, plus flow bodies."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.factories import create_connection, create_integration, upload_demo_connector
from tests.integration.api.conftest import DEMO_API_KEY, client, demo, tenant  # noqa: F401 - fixtures

SCORE_CODE = """
def run(input, ctx):
    contact = input
    score = 0
    if contact.get("company"):
        score += 40
    if (contact.get("email") or "").endswith(".com"):
        score += 30
    print("scored", contact.get("id"), score)
    return {"id": contact.get("id"), "email": contact.get("email"), "score": score}
"""


def light_flow(
    key: str = "light", code: str = "def run(input, ctx):\n    return {'ok': True}\n"
) -> dict[str, Any]:
    """An api-trigger followed by one run-python node."""
    return {
        "key": key,
        "name": key,
        "trigger": {"type": "api-trigger"},
        "nodes": [{"key": "code", "type": "run-python", "config": {"code": code}}],
        "links": [{"from": "trigger", "to": "code"}],
    }


def transform_flow(key: str = "shape") -> dict[str, Any]:
    """api-trigger -> for-each -> transform-data -> filter: no external service needed."""
    return {
        "key": key,
        "trigger": {"type": "api-trigger"},
        "nodes": [
            {"key": "each", "type": "for-each", "config": {"items": "{{ input.people }}"}},
            {
                "key": "shape",
                "type": "transform-data",
                "config": {
                    "mapping": {
                        "name": "{{ input.name | upper }}",
                        "age": "{{ input.age }}",
                        "greeting": "Hello {{ input.name }} from {{ parameters.team }}",
                    },
                    "defaults": {"age": 0},
                },
            },
            {
                "key": "adults",
                "type": "filter",
                "config": {"conditions": [{"value": "{{ input.age }}", "operator": "gte", "to": 18}]},
            },
        ],
        "links": [
            {"from": "trigger", "to": "each"},
            {"from": "each", "to": "shape"},
            {"from": "shape", "to": "adults"},
        ],
    }


def scored_flow(
    key: str, trigger: dict[str, Any], demo_url_template: str = "{{ parameters.demoUrl }}"
) -> dict[str, Any]:
    """The e2e flow: run-action (list contacts) -> for-each -> run-python -> filter -> http-request."""
    return {
        "key": key,
        "trigger": copy.deepcopy(trigger),
        "nodes": [
            {
                "key": "list",
                "type": "run-action",
                "config": {"action": "list-contacts", "input": {"limit": 50}},
            },
            {"key": "each", "type": "for-each", "config": {"items": "{{ input }}"}},
            {"key": "score", "type": "run-python", "config": {"code": SCORE_CODE}},
            {
                "key": "hot",
                "type": "filter",
                "config": {"conditions": [{"value": "{{ input.score }}", "operator": "gte", "to": 50}]},
            },
            {
                "key": "post",
                "type": "http-request",
                "config": {
                    "method": "POST",
                    "url": demo_url_template + "/contacts",
                    "headers": {"X-Api-Key": "{{ parameters.apiKey }}"},
                    "body": {"email": "hot-{{ input.email }}", "company": "score {{ input.score }}"},
                },
            },
        ],
        "links": [
            {"from": "trigger", "to": "list"},
            {"from": "list", "to": "each"},
            {"from": "each", "to": "score"},
            {"from": "score", "to": "hot"},
            {"from": "hot", "to": "post"},
        ],
    }


@pytest.fixture
def connection(client, tenant, demo) -> dict[str, Any]:  # noqa: F811
    """The customer's connection to the demo app (connector uploaded, integration created)."""
    upload_demo_connector(client, tenant.admin)
    create_integration(client, tenant.admin)
    return create_connection(client, tenant.customer, {"baseUrl": demo.url, "apiKey": DEMO_API_KEY})
