"""A small HTTP server inside worker and orchestrator processes: GET / health, plus extra routes."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger(__name__)

Route = Callable[[], tuple[int, str, bytes]]
"""A route returns (status, content type, body)."""


def json_route(report: Callable[[], tuple[int, dict]]) -> Route:
    """Wrap a function returning (status, document) as a JSON route."""

    def route() -> tuple[int, str, bytes]:
        status, document = report()
        return status, "application/json", json.dumps(document).encode()

    return route


class _Handler(BaseHTTPRequestHandler):
    routes: dict[str, Route] = {}

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        route = self.routes.get(self.path.split("?", 1)[0])
        if route is None:
            status, content_type, body = 404, "application/json", b'{"error": {"type": "not_found"}}'
        else:
            try:
                status, content_type, body = route()
            except Exception:  # noqa: BLE001 - the server must survive a failing route
                log.exception("health route failed")
                status, content_type, body = 503, "application/json", b'{"status": "unavailable"}'
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        log.debug("health %s", format % args)


def start_health_server(port: int, routes: dict[str, Route], *, host: str = "0.0.0.0") -> ThreadingHTTPServer:
    """Serve routes on port from a daemon thread; returns the server (call shutdown() to stop)."""
    handler = type("HealthHandler", (_Handler,), {"routes": routes})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="health-server", daemon=True)
    thread.start()
    log.info("health endpoint listening on %s:%d", host, port)
    return server
