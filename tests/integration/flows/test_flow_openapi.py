"""The flow routes are in the OpenAPI document, with their request schemas."""

from __future__ import annotations


def test_flow_routes_are_documented(client):
    document = client.get("/openapi.json").get_json()
    paths = document["paths"]
    for path, method in (
        ("/flows", "post"),
        ("/flows/{flow_id}", "put"),
        ("/flow-instances", "post"),
        ("/flow-instances/{instance_id}/run", "post"),
        ("/flow-runs", "get"),
        ("/flow-runs/{run_id}", "get"),
        ("/flow-runs/{run_id}/nodes/{node_key}", "get"),
        ("/flow-runs/{run_id}/stop", "post"),
        ("/webhooks/{integration_key}/{connection_id}", "post"),
        ("/app-events/{event_type}", "post"),
    ):
        assert method in paths.get(path, {}), (path, sorted(paths))
    assert "requestBody" in paths["/flows"]["post"]
