"""h2ws: WebSockets over HTTP/2 (RFC 8441) and HTTP/1.1 (RFC 6455), with a C core."""

from __future__ import annotations

from . import exceptions
from ._core import nghttp2_version
from .config import ServerConfig
from .exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    H2WSError,
    InvalidState,
    PayloadTooBig,
    ProtocolError,
)
from .http import Headers, Request, Response
from .server import Server, serve
from .websocket import WebSocket, WebSocketProtocol, WebSocketTransport

__version__ = "0.1.0.dev0"

__all__ = [
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "H2WSError",
    "Headers",
    "InvalidState",
    "PayloadTooBig",
    "ProtocolError",
    "Request",
    "Response",
    "Server",
    "ServerConfig",
    "WebSocket",
    "WebSocketProtocol",
    "WebSocketTransport",
    "exceptions",
    "nghttp2_version",
    "serve",
]
