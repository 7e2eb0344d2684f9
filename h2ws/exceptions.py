"""Exceptions raised by h2ws.

The C core maps its error codes to these classes in one place
(``csrc/py/module.c``); the asyncio layer raises the ``ConnectionClosed``
family when a WebSocket ends.
"""

from __future__ import annotations

__all__ = [
    "H2WSError",
    "ProtocolError",
    "InvalidState",
    "PayloadTooBig",
    "ConnectionClosed",
    "ConnectionClosedOK",
    "ConnectionClosedError",
    "ClientDisconnected",
    "InvalidHandshake",
    "InvalidStatus",
]


class H2WSError(Exception):
    """Base class of every exception h2ws raises on its own."""


class ProtocolError(H2WSError):
    """The peer broke the protocol in a way that ends the whole connection."""


class InvalidState(H2WSError):
    """The operation is not allowed in the current state (e.g. send after close)."""


class PayloadTooBig(H2WSError, ValueError):
    """A payload exceeds a configured limit."""


class ConnectionClosed(H2WSError):
    """The WebSocket is closed; ``code`` and ``reason`` say how (RFC 6455 §7.4).

    ``code`` is 1006 when the connection or stream ended without a close frame.
    """

    def __init__(self, code: int, reason: str = "", *, received: bool = True) -> None:
        self.code = code
        self.reason = reason
        self.received = received
        super().__init__(code, reason)

    def __str__(self) -> str:
        if self.reason:
            return f"WebSocket closed with code {self.code}: {self.reason}"
        return f"WebSocket closed with code {self.code}"


class ConnectionClosedOK(ConnectionClosed):
    """Closed cleanly with code 1000 or 1001 (or no code, 1005)."""


class ConnectionClosedError(ConnectionClosed):
    """Closed with an error code, or without a close frame (1006)."""


class ClientDisconnected(H2WSError, OSError):
    """The client went away (or reset the stream) before the exchange ended.

    An ``OSError``, as the ASGI spec asks of a ``send()`` on a closed connection.
    """


class InvalidHandshake(H2WSError):
    """The server refused the WebSocket or answered the opening handshake wrongly."""


class InvalidStatus(InvalidHandshake):
    """The server answered the WebSocket request with an HTTP status other
    than 200 (HTTP/2) or 101 (HTTP/1.1); ``status``, ``headers`` and
    ``body`` hold that response."""

    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes = b"") -> None:
        self.status = status
        self.headers = headers
        self.body = body
        super().__init__(f"server rejected WebSocket connection: HTTP {status}")
