"""Fixtures of the data-source tests: the demo app served on a real port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.datasources.sync_helpers import DemoApp, serve_demo


@pytest.fixture
def demo() -> Iterator[DemoApp]:
    app, server = serve_demo()
    yield app
    server.shutdown()
    app.app.extensions["demoapp"]["dispatcher"].stop()
