"""h2ws: WebSockets over HTTP/2 (RFC 8441) and HTTP/1.1 (RFC 6455), with a C core."""

from __future__ import annotations

from . import exceptions
from ._core import nghttp2_version
from .client import ClientConfig, ConnectionPool, connect
from .config import ServerConfig
from .exceptions import (
    ClientDisconnected,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    H2WSError,
    InvalidHandshake,
    InvalidState,
    InvalidStatus,
    PayloadTooBig,
    ProtocolError,
)
from .http import Headers, Request, Response
from .server import Server, serve
from .websocket import WebSocket, WebSocketProtocol, WebSocketTransport

__version__ = "0.1.0.dev0"

__all__ = [
    "ClientConfig",
    "ConnectionClosed",
    "ConnectionPool",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "ClientDisconnected",
    "H2WSError",
    "Headers",
    "InvalidHandshake",
    "InvalidState",
    "InvalidStatus",
    "PayloadTooBig",
    "ProtocolError",
    "Request",
    "Response",
    "Server",
    "ServerConfig",
    "WebSocket",
    "WebSocketProtocol",
    "WebSocketTransport",
    "connect",
    "exceptions",
    "nghttp2_version",
    "serve",
]
