"""Helpers of the demo app integration tests: serve an app on a real port, connector specs."""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml
from werkzeug.serving import make_server

from demoapp import DemoState
from engine.connectors.spec import ConnectorSpec

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "connectors"
API_KEY = "demo-key"
OAUTH_PARAMETERS = {"clientId": "demo-client", "clientSecret": "demo-secret"}


@dataclass
class RunningApp:
    url: str
    state: DemoState
    app: Any

    def admin(self, path: str, **body: Any) -> dict:
        response = requests.post(f"{self.url}/_admin/{path}", json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    @property
    def dispatcher(self):
        return self.app.extensions["demoapp"]["dispatcher"]


def serve(app: Any) -> tuple[str, Any]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="test-server", daemon=True
    ).start()
    return f"http://127.0.0.1:{server.server_port}", server


def load_document(variant: str) -> dict:
    return yaml.safe_load((EXAMPLES / variant / "spec.yaml").read_text())


def spec_with_auth(auth_type: str) -> ConnectorSpec:
    """The demo connector with each kind of auth the demo app accepts."""
    if auth_type == "oauth2":
        return ConnectorSpec.from_document(load_document("demo-oauth2"))
    document = copy.deepcopy(load_document("demo"))
    auth = document["auth"]
    if auth_type == "api-key-query":
        auth["apiKey"] = {"in": "query", "name": "api_key", "value": "{{ connection.apiKey }}"}
    elif auth_type == "basic":
        auth.update(
            type="basic",
            basic={"username": "{{ connection.username }}", "password": "{{ connection.password }}"},
        )
        del auth["apiKey"]
    elif auth_type == "bearer":
        auth.update(type="bearer", bearer={"token": "{{ connection.apiKey }}"})
        del auth["apiKey"]
    return ConnectorSpec.from_document(document)


def api_key_credentials(demo: RunningApp) -> dict:
    return {"baseUrl": demo.url, "apiKey": API_KEY}
