"""The API's gunicorn worker: gevent's WSGI server, with the two request timeouts of the API.

gunicorn's own `gevent` worker parses HTTP in Python and sends a response's headers and body in
two writes; gevent's WSGI server (gunicorn's `gevent_pywsgi` worker) sends them in one and costs
less CPU per request: about 5% more action runs per second on 2 cores (docs/benchmarks.md). It
has no timeouts of its own, so the request handler here adds the two the API documents:

- KEEPALIVE_TIMEOUT_MS: how long a connection may wait, idle, for its next request (or its first);
  then the server closes it.
- HEADERS_TIMEOUT_MS: how long a request's headers may take to arrive after its request line;
  then the server answers 408 and closes the connection. (gunicorn's own workers have no such
  timeout: gunicorn#2652.)

Import only in a process gevent patched (engine/green.py): gunicorn's gevent module imports gevent.
"""

from __future__ import annotations

import http.client
from typing import Any

import gevent
from gunicorn.workers.ggevent import GeventPyWSGIWorker, PyWSGIHandler

REQUEST_TIMEOUT_RESPONSE = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


class HeadersTimeout(ValueError):
    """The request's headers did not arrive within HEADERS_TIMEOUT_MS."""


class ApiRequestHandler(PyWSGIHandler):
    """gunicorn's handler for gevent's WSGI server, with the idle and headers timeouts (seconds)."""

    keepalive_seconds: float = 61.0
    headers_seconds: float = 61.0

    def read_requestline(self) -> str:
        # The wait for a request line is the connection's idle time. An empty line ends the
        # connection (gevent's handle_one_request), as when the client closes it.
        line = ""
        with gevent.Timeout(self.keepalive_seconds, False):
            line = super().read_requestline()
        return line

    def read_request(self, raw_requestline: str) -> Any:
        with gevent.Timeout(self.headers_seconds, HeadersTimeout()):
            return super().read_request(raw_requestline)

    def _handle_client_error(self, ex: BaseException) -> Any:
        # gevent's hook for a request it could not read (it prints a traceback for anything that is
        # not a ValueError): late headers are a 408, too many header lines a plain 400.
        if isinstance(ex, HeadersTimeout):
            self.log_error(
                "request headers from %s took over %.1f s (HEADERS_TIMEOUT_MS): 408",
                self.client_address,
                self.headers_seconds,
            )
            return ("408", REQUEST_TIMEOUT_RESPONSE)
        if isinstance(ex, http.client.HTTPException):
            ex = ValueError(f"{type(ex).__name__}: {ex}")
        return super()._handle_client_error(ex)


class ApiWorker(GeventPyWSGIWorker):
    """gunicorn's `gevent_pywsgi` worker serving with ApiRequestHandler. Its application must
    carry the engine's Config as `engine_config` (engine.server.ApiServer does)."""

    def run(self) -> None:
        config = self.app.engine_config
        self.wsgi_handler = type(
            "ConfiguredApiRequestHandler",
            (ApiRequestHandler,),
            {
                "keepalive_seconds": config.keepalive_timeout_ms / 1000,
                "headers_seconds": config.headers_timeout_ms / 1000,
            },
        )
        super().run()
