"""The API's connection timeouts, on a raw socket to the API process started as a user would:
KEEPALIVE_TIMEOUT_MS closes an idle connection, HEADERS_TIMEOUT_MS answers late headers 408, and
headers the server cannot take get a 400."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.slow

REQUEST = b"GET / HTTP/1.1\r\nHost: engine\r\n\r\n"


def _connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    connection = socket.create_connection((parts.hostname, parts.port), timeout=10)
    return connection


def _read_response(connection: socket.socket) -> bytes:
    """One whole response (headers and a Content-Length body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += connection.recv(65536)
    return head


def _closed_within(connection: socket.socket, seconds: float) -> float | None:
    """Seconds until the server closed the connection (None if it stayed open that long)."""
    started = time.monotonic()
    connection.settimeout(seconds)
    try:
        while connection.recv(65536):
            pass
    except TimeoutError:
        return None
    return time.monotonic() - started


def test_an_idle_connection_serves_requests_and_is_closed_after_the_keepalive_timeout(
    engine_env, start_engine
):
    # Given the API with a 1 s keep-alive timeout
    api = start_engine({**engine_env, "KEEPALIVE_TIMEOUT_MS": "1000"})
    api.wait_healthy()
    connection = _connect(api.url)
    # When a kept-alive connection sends a request, then another 0.5 s later
    connection.sendall(REQUEST)
    assert _read_response(connection).startswith(b"HTTP/1.1 200")
    time.sleep(0.5)
    connection.sendall(REQUEST)
    # Then both are served on it
    assert _read_response(connection).startswith(b"HTTP/1.1 200")
    # And once idle, the server closes it after about a second, not before
    closed_after = _closed_within(connection, 5)
    assert closed_after is not None and 0.8 <= closed_after <= 3
    # And a connection that never sends a request is closed too
    silent = _connect(api.url)
    assert _closed_within(silent, 5) is not None


def test_headers_that_arrive_later_than_the_headers_timeout_get_408(engine_env, start_engine):
    # Given the API with a 1 s headers timeout (and the default 61 s keep-alive)
    api = start_engine({**engine_env, "HEADERS_TIMEOUT_MS": "1000"})
    api.wait_healthy()
    # When a request line arrives and its headers stall
    connection = _connect(api.url)
    connection.sendall(b"GET / HTTP/1.1\r\nHost: engine\r\n")
    # Then the API answers 408 after about a second and closes the connection
    connection.settimeout(5)
    answer = connection.recv(65536)
    assert answer.startswith(b"HTTP/1.1 408")
    assert _closed_within(connection, 5) is not None
    # And headers sent slowly but within the timeout are served
    slow = _connect(api.url)
    for piece in (b"GET / HTTP/1.1\r\n", b"Host: engine\r\n", b"\r\n"):
        slow.sendall(piece)
        time.sleep(0.3)
    assert _read_response(slow).startswith(b"HTTP/1.1 200")
    # And the late request was logged as such, without a traceback
    logs = api.logs()
    assert "HEADERS_TIMEOUT_MS" in logs and "Traceback" not in logs


def test_too_many_or_too_long_header_lines_get_400_without_a_traceback(engine_env, start_engine):
    api = start_engine(engine_env)
    api.wait_healthy()
    many = b"".join(b"X-H%d: 1\r\n" % index for index in range(150))
    for headers in (b"X-Big: " + b"a" * 70_000 + b"\r\n", many):
        connection = _connect(api.url)
        connection.sendall(b"GET / HTTP/1.1\r\nHost: engine\r\n" + headers + b"\r\n")
        assert _read_response(connection).startswith(b"HTTP/1.1 400")
    # And the server goes on serving
    again = _connect(api.url)
    again.sendall(REQUEST)
    assert _read_response(again).startswith(b"HTTP/1.1 200")
    assert "Traceback" not in api.logs()
