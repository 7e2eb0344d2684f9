"""One listening socket, every protocol: picks HTTP/2 or HTTP/1.1 per connection.

- TLS: the ALPN result decides (``h2`` → HTTP/2, anything else → HTTP/1.1).
- Cleartext: a connection that opens with the HTTP/2 connection preface is
  h2c with prior knowledge; anything else is HTTP/1.1. (``Upgrade: h2c`` is
  answered as plain HTTP/1.1.)
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from .h1 import H1ServerProtocol
from .protocol import H2ServerProtocol

if TYPE_CHECKING:
    from .server import Server

__all__ = ["ProtocolSelector", "PREFACE"]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class ProtocolSelector(asyncio.BufferedProtocol):
    """Reads until the protocol is known, then hands the connection (and the
    bytes read so far) to the HTTP/2 or HTTP/1.1 protocol."""

    def __init__(self, server: Server) -> None:
        self._server = server
        self._buffer = bytearray(len(PREFACE))
        self._have = 0
        self._transport: asyncio.Transport | None = None
        self._chosen: asyncio.BaseProtocol | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            h2 = ssl_object.selected_alpn_protocol() == "h2"
            self._hand_over(h2)
            return
        # A cleartext client that never sends a byte is dropped after open_timeout.
        timeout = self._server.config.open_timeout
        if timeout:
            self._timer = self._server.loop.call_later(timeout, transport.close)

    def get_buffer(self, sizehint: int) -> memoryview:
        return memoryview(self._buffer)[self._have :]

    def buffer_updated(self, nbytes: int) -> None:
        self._have += nbytes
        have = bytes(self._buffer[: self._have])
        if have != PREFACE[: self._have]:
            self._hand_over(False)
        elif self._have == len(PREFACE):
            self._hand_over(True)

    def eof_received(self) -> bool | None:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:  # nothing else was started yet
            self._timer.cancel()

    def _hand_over(self, h2: bool) -> None:
        assert self._transport is not None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        proto: H2ServerProtocol | H1ServerProtocol = (
            H2ServerProtocol(self._server) if h2 else H1ServerProtocol(self._server)
        )
        self._chosen = proto
        self._transport.set_protocol(proto)
        proto.connection_made(self._transport)
        if self._have:
            buf = proto.get_buffer(self._have)
            buf[: self._have] = self._buffer[: self._have]
            proto.buffer_updated(self._have)
