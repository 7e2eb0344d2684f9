"""h2ws: WebSockets over HTTP/2 (RFC 8441) and HTTP/1.1 (RFC 6455), with a C core."""

from __future__ import annotations

from . import exceptions
from ._core import nghttp2_version
from .exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    H2WSError,
    InvalidState,
    PayloadTooBig,
    ProtocolError,
)

__version__ = "0.1.0.dev0"

__all__ = [
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "H2WSError",
    "InvalidState",
    "PayloadTooBig",
    "ProtocolError",
    "exceptions",
    "nghttp2_version",
]
