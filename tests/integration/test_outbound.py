"""Outbound requests are checked on the connected socket (a real local HTTP server)."""

from __future__ import annotations

import dataclasses
import http.server
import threading
from collections.abc import Iterator

import pytest
import requests

from engine.outbound import outbound_session


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{self.server.server_port}/")
            self.end_headers()
            return
        body = b"hello"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args) -> None:
        pass


@pytest.fixture
def local_app() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_in_production_a_request_to_the_machine_itself_is_refused_naming_the_setting(config, local_app):
    production = dataclasses.replace(config, node_env="production")
    with outbound_session(production) as session, pytest.raises(requests.ConnectionError) as caught:
        session.get(local_app + "/", timeout=5)
    assert "127.0.0.1" in str(caught.value) and "OUTBOUND_ALLOWED_NETWORKS" in str(caught.value)


def test_an_allowed_network_and_development_reach_it(config, local_app):
    allowed = dataclasses.replace(config, node_env="production", outbound_allowed_networks=("127.0.0.0/8",))
    for each in (allowed, config):  # config: NODE_ENV=test, where local apps are the norm
        with outbound_session(each) as session:
            response = session.get(local_app + "/redirect", timeout=5)
            assert response.status_code == 200 and response.text == "hello"
