"""Length-prefixed frames between the HTTP server, the zygote and job processes.

A frame is a 4-byte big-endian length, then a 1-byte kind, then the body. Bodies that carry a
header and a payload separate them with the first b"\\n": the header is small JSON, the payload
(a job's input, a result) is forwarded as raw JSON bytes without being parsed at every hop.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

HEADER = struct.Struct(">I")
MAX_FRAME_BYTES = 256 * 1024 * 1024
"""A frame announcing more than this is treated as a broken peer."""

JOB = b"J"
"""server -> zygote: header {id, code, limits, ...} \\n input JSON."""
JOB_COMPILED = b"K"
"""zygote -> child: 4-byte length, marshalled code from the cache, then a JOB body."""
COMPILED = b"C"
"""child -> zygote, always the first frame: marshalled code for the cache, or empty."""
RESULT = b"R"
"""child -> zygote: meta JSON \\n result JSON; zygote -> server: header \\n (child's body)."""
HTTP = b"H"
"""child -> zygote -> server: an HTTP request of ctx.http; and the response back."""


class PeerClosed(ConnectionError):
    """The other end closed the channel."""


def pack(kind: bytes, body: bytes) -> bytes:
    """One frame as bytes."""
    return HEADER.pack(len(body) + 1) + kind + body


def join(header: dict[str, Any], payload: bytes = b"") -> bytes:
    """A body made of a JSON header and a raw payload."""
    return json.dumps(header, separators=(",", ":")).encode() + b"\n" + payload


def prefix(blob: bytes, body: bytes) -> bytes:
    """`blob` length-prefixed in front of `body`."""
    return HEADER.pack(len(blob)) + blob + body


def unprefix(body: bytes) -> tuple[bytes, bytes]:
    """The inverse of prefix()."""
    (size,) = HEADER.unpack_from(body)
    return body[HEADER.size : HEADER.size + size], body[HEADER.size + size :]


def split(body: bytes) -> tuple[dict[str, Any], bytes]:
    """The inverse of join()."""
    newline = body.find(b"\n")
    if newline < 0:
        return json.loads(body), b""
    return json.loads(body[:newline]), body[newline + 1 :]


def send(sock: socket.socket, kind: bytes, body: bytes) -> None:
    """Send one frame on a blocking socket."""
    sock.sendall(pack(kind, body))


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = sock.recv(min(size, 1 << 20))
        if not chunk:
            raise PeerClosed("channel closed")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def recv(sock: socket.socket) -> tuple[bytes, bytes]:
    """Receive one frame on a blocking socket: (kind, body)."""
    (length,) = HEADER.unpack(_recv_exactly(sock, HEADER.size))
    if not 1 <= length <= MAX_FRAME_BYTES:
        raise PeerClosed(f"bad frame length {length}")
    data = _recv_exactly(sock, length)
    return data[:1], data[1:]


class FrameReader:
    """Incremental frame parser for non-blocking sockets (the zygote's event loop)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[bytes, bytes]]:
        """Add received bytes; return the complete frames now available."""
        self._buffer += data
        frames = []
        while len(self._buffer) >= HEADER.size:
            (length,) = HEADER.unpack_from(self._buffer)
            if not 1 <= length <= MAX_FRAME_BYTES:
                raise PeerClosed(f"bad frame length {length}")
            end = HEADER.size + length
            if len(self._buffer) < end:
                break
            frame = bytes(self._buffer[HEADER.size : end])
            del self._buffer[:end]
            frames.append((frame[:1], frame[1:]))
        return frames
