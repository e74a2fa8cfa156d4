"""Fixtures: the demo app on a real port (werkzeug server in a thread), a requests session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from demo_helpers import RunningApp, serve, spec_with_auth

from demoapp import DemoState, create_app
from engine.connectors.spec import ConnectorSpec


@pytest.fixture
def demo() -> Iterator[RunningApp]:
    state = DemoState()
    app = create_app(state, seed=1)
    url, server = serve(app)
    yield RunningApp(url, state, app)
    server.shutdown()
    app.extensions["demoapp"]["dispatcher"].stop()


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


@pytest.fixture
def api_key_spec() -> ConnectorSpec:
    return spec_with_auth("api-key")
