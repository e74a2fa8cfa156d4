"""Fixtures of the API tests: an in-process client, a tenant, and the demo app on a real port."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from werkzeug.serving import make_server

from engine.app import create_app
from engine.domain import tenancy
from tests.factories import create_workspace, customer_token, workspace_token

DEMO_API_KEY = "demo-key-Zq81LxTTp0ffA9"
"""A distinctive API key: tests search for it everywhere it must not be."""


@dataclass
class Demo:
    url: str
    state: Any
    app: Any


@pytest.fixture
def demo() -> Iterator[Demo]:
    from demoapp import DemoState
    from demoapp import create_app as create_demo_app

    state = DemoState(api_keys=(DEMO_API_KEY,))
    app = create_demo_app(state, seed=1)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield Demo(f"http://127.0.0.1:{server.server_port}", state, app)
    server.shutdown()
    dispatcher = app.extensions.get("demoapp", {}).get("dispatcher")
    if dispatcher is not None:
        dispatcher.stop()


@pytest.fixture
def client(config, services):
    tenancy.clear_caches()
    return create_app(config, services).test_client()


@dataclass
class Tenant:
    workspace: Any
    secret: str
    admin: str
    customer: str

    def token_of(self, internal_id: str) -> str:
        return customer_token(self.workspace, self.secret, internal_id)


@pytest.fixture
def tenant(services) -> Tenant:
    workspace, secret = create_workspace(services)
    return Tenant(
        workspace, secret, workspace_token(workspace, secret), customer_token(workspace, secret, "cust-1")
    )
