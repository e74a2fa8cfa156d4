"""The benchmarks' lean HTTP client, against real sockets served by a thread of this process."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from bench.http_client import HttpClientError, LeanHttpClient

Behaviour = Callable[[socket.socket, list[bytes]], None]
"""What the server does with one connection, given the list of requests received so far."""


def _read_request(connection: socket.socket) -> bytes:
    """One request's bytes (its head and a Content-Length body), or b"" when the peer closed."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = connection.recv(65536)
        if not chunk:
            return b""
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        ),
        0,
    )
    while len(body) < length:
        body += connection.recv(65536)
    return head + b"\r\n\r\n" + body


def _answer(body: bytes, *extra_headers: str, status: str = "200 OK") -> bytes:
    headers = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *extra_headers]
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + body


@contextmanager
def _server(behaviour: Behaviour) -> Iterator[tuple[str, list[bytes]]]:
    """A listening socket whose every connection is handed to behaviour on its own thread; yields
    the base URL and the list of requests received (behaviours append to it)."""
    listener = socket.create_server(("127.0.0.1", 0))
    requests: list[bytes] = []

    def accept() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=behaviour, args=(connection, requests), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", requests
    finally:
        listener.close()


def _echo_server(*, answers_per_connection: int = 1000, extra_headers: tuple[str, ...] = ()) -> Behaviour:
    """Answers each request with its own body (keeping the connection) up to answers_per_connection,
    then closes the connection without a word, as a server does with an idle kept-alive one."""

    def behaviour(connection: socket.socket, requests: list[bytes]) -> None:
        with connection:
            for _ in range(answers_per_connection):
                request = _read_request(connection)
                if not request:
                    return
                requests.append(request)
                connection.sendall(_answer(request.partition(b"\r\n\r\n")[2], *extra_headers))

    return behaviour


def test_requests_share_one_kept_alive_connection_and_bodies_arrive_whole():
    # Given a server that echoes bodies and keeps connections open
    with _server(_echo_server()) as (url, received), LeanHttpClient(url) as client:
        # When a small and then a 300 KB body (several recv calls) are sent, twice each
        small = client.prepare("POST", "/echo", b'{"input": {}}', {"Authorization": "Bearer t"})
        large = client.prepare("POST", "/echo", b"x" * 300_000)
        answers = [client.send(request) for request in (small, large, small, large)]
    # Then each answer is the status and the whole body, all over one connection
    assert answers == [(200, b'{"input": {}}'), (200, b"x" * 300_000)] * 2
    assert client.connections_opened == 1
    # And the request carried the method, path, Host, Content-Length and the given headers
    head = received[0].partition(b"\r\n\r\n")[0].split(b"\r\n")
    assert head[0] == b"POST /echo HTTP/1.1"
    assert {
        b"Host: " + url.removeprefix("http://").encode(),
        b"Content-Length: 13",
        b"Authorization: Bearer t",
    } <= set(head)


def test_a_connection_the_server_closed_while_idle_is_reopened_and_the_request_sent_again():
    # Given a server that closes each connection after one answer, without saying so
    with _server(_echo_server(answers_per_connection=1)) as (url, received), LeanHttpClient(url) as client:
        request = client.prepare("POST", "/echo", b"again")
        # When three requests are sent one after the other
        answers = [client.send(request) for _ in range(3)]
    # Then each got its answer, on a new connection each time, and the server saw each once
    assert answers == [(200, b"again")] * 3
    assert client.connections_opened == 3
    assert len(received) == 3


def test_an_answer_that_says_connection_close_closes_the_connection():
    with (
        _server(_echo_server(extra_headers=("Connection: close",))) as (url, _),
        LeanHttpClient(url) as client,
    ):
        request = client.prepare("GET", "/")
        assert client.send(request) == (200, b"")
        assert client.send(request) == (200, b"")
    assert client.connections_opened == 2


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "chunked"),
        (b"HTTP/1.1 200 OK\r\nX-Nothing: here\r\n\r\n", "no Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf", "in the middle of an answer"),
        (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP/1.x status line"),
    ],
)
def test_an_answer_it_cannot_read_raises_a_clear_error(answer: bytes, problem: str):
    # Given a server that sends this answer to any request, then closes
    def behaviour(connection: socket.socket, _requests: list[bytes]) -> None:
        with connection:
            _read_request(connection)
            connection.sendall(answer)

    with _server(behaviour) as (url, _), LeanHttpClient(url) as client:
        # Then the client says what is wrong
        with pytest.raises(HttpClientError, match=problem):
            client.send(client.prepare("GET", "/"))


def test_a_server_that_never_answers_a_new_connection_is_an_error_not_a_loop():
    def behaviour(connection: socket.socket, _requests: list[bytes]) -> None:
        _read_request(connection)
        connection.close()

    with _server(behaviour) as (url, _), LeanHttpClient(url) as client:
        with pytest.raises(HttpClientError, match="closed a new connection"):
            client.send(client.prepare("GET", "/"))
    assert client.connections_opened == 1


def test_only_plain_http_urls_are_accepted():
    with pytest.raises(ValueError, match="http://host"):
        LeanHttpClient("https://example.com")
