"""A lean HTTP/1.1 load generator: one kept-alive connection, a request prepared once.

The benchmarks run the load generator on the same 2 cores as the engine. urllib3 spends about
0.6 ms of CPU per request there, about a seventh of what the whole engine spends per action run,
so the engine would be charged with its test harness. This client, like wrk, sends a request
prepared once as bytes and reads the answer by its Content-Length: about 0.1 ms per request. The
engine still parses every request in full; only the harness got lighter.

    client = LeanHttpClient("http://127.0.0.1:8080")
    request = client.prepare("POST", "/actions/noop/run", b'{"input": {}}', {"Authorization": "Bearer ..."})
    status, body = client.send(request)
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

RECEIVE_BYTES = 65536
"""How much one recv asks for."""
MAX_HEADER_BYTES = 65536
"""An answer whose headers run longer than this is refused (a broken server, not a slow one)."""
BODILESS_STATUSES = frozenset({204, 304})
"""Answers that have no body, hence may have no Content-Length."""


class HttpClientError(Exception):
    """The server's answer could not be read as HTTP/1.1."""


class LeanHttpClient:
    """One kept-alive HTTP/1.1 connection to the server of `base_url`, opened on first use and
    reopened when the server closed it between two requests. Not thread-safe: one per thread."""

    def __init__(self, base_url: str, *, timeout_seconds: float = 30.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"base_url must be http://host[:port], not {base_url!r}")
        self._address = (parts.hostname, parts.port or 80)
        self._host_header = parts.netloc
        self._timeout_seconds = timeout_seconds
        self._socket: socket.socket | None = None
        self.connections_opened = 0
        """How many connections this client opened (1 while the server keeps the connection alive)."""

    def prepare(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> bytes:
        """The bytes of a request, to send as often as needed."""
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self._host_header}", f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    def send(self, request: bytes) -> tuple[int, bytes]:
        """Send a prepared request; (status, body) of the answer. A connection the server closed
        while idle is reopened and the request sent again, once; any other failure raises."""
        if self._socket is not None:
            try:
                return self._exchange(self._socket, request)
            except _ClosedBeforeAnswer:
                self.close()
        try:
            return self._exchange(self._connect(), request)
        except _ClosedBeforeAnswer:
            self.close()
            raise HttpClientError("the server closed a new connection without answering") from None

    def close(self) -> None:
        """Close the connection (the next request opens a new one)."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> LeanHttpClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _connect(self) -> socket.socket:
        connection = socket.create_connection(self._address, timeout=self._timeout_seconds)
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._socket = connection
        self.connections_opened += 1
        return connection

    def _exchange(self, connection: socket.socket, request: bytes) -> tuple[int, bytes]:
        try:
            connection.sendall(request)
            received = connection.recv(RECEIVE_BYTES)
        except (BrokenPipeError, ConnectionResetError) as error:
            raise _ClosedBeforeAnswer() from error
        if not received:
            raise _ClosedBeforeAnswer()
        while b"\r\n\r\n" not in received:
            if len(received) > MAX_HEADER_BYTES:
                raise HttpClientError(f"the answer's headers exceed {MAX_HEADER_BYTES} bytes")
            received += self._receive(connection)
        head, _, body = received.partition(b"\r\n\r\n")
        status, length, keep_alive = _parse_head(head)
        while len(body) < length:
            body += self._receive(connection)
        if len(body) > length:
            raise HttpClientError(f"the server sent {len(body) - length} bytes past the answer")
        if not keep_alive:
            self.close()
        return status, body

    def _receive(self, connection: socket.socket) -> bytes:
        chunk = connection.recv(RECEIVE_BYTES)
        if not chunk:
            self.close()
            raise HttpClientError("the server closed the connection in the middle of an answer")
        return chunk


class _ClosedBeforeAnswer(Exception):
    """The server had closed the kept-alive connection before this request: send it again."""


def _parse_head(head: bytes) -> tuple[int, int, bool]:
    """(status, Content-Length, whether the connection stays open) of an answer's head."""
    status_line, *header_lines = head.split(b"\r\n")
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise HttpClientError(f"not an HTTP/1.x status line: {status_line[:100]!r}")
    length: int | None = None
    keep_alive = parts[0] == b"HTTP/1.1"
    for line in header_lines:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"transfer-encoding":
            raise HttpClientError("chunked answers are not supported: the server must send Content-Length")
        elif name == b"connection" and value.strip().lower() in (b"close", b"keep-alive"):
            keep_alive = value.strip().lower() == b"keep-alive"
    status = int(parts[1])
    if length is None:
        if status not in BODILESS_STATUSES:
            raise HttpClientError("the answer has no Content-Length")
        length = 0
    return status, length, keep_alive
