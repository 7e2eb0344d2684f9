"""What every server connection does, whatever the HTTP version: run
``process_request``, check the origin, choose the subprotocol, start the
WebSocket's protocol and handler, track tasks."""

from __future__ import annotations

import abc
import asyncio
import inspect
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from .exceptions import ConnectionClosed
from .http import Request, Response
from .websocket import WebSocket, WebSocketTransport

if TYPE_CHECKING:
    from .server import Server

__all__ = ["ServerConnection", "select_subprotocol", "NOT_A_WEBSOCKET"]

logger = logging.getLogger("h2ws.server")

NOT_A_WEBSOCKET = (
    b"This server speaks WebSockets: open one with extended CONNECT (RFC 8441) "
    b"or an HTTP/1.1 Upgrade (RFC 6455).\n"
)
TEXT = [("content-type", "text/plain; charset=utf-8")]


def select_subprotocol(request: Request, supported: list[str] | None) -> str | None:
    """The first of the server's subprotocols that the client offered."""
    if not supported:
        return None
    offered = [
        p.strip() for v in request.headers.get_all("sec-websocket-protocol") for p in v.split(",")
    ]
    for proto in supported:
        if proto in offered:
            return proto
    return None


class ServerConnection(abc.ABC):
    """Base of the per-connection protocols (HTTP/2 and HTTP/1.1)."""

    http_version = "?"

    def __init__(self, server: Server) -> None:
        self._server = server
        self._loop = server.loop
        self._tasks: set[asyncio.Task[None]] = set()

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = self._loop.create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @abc.abstractmethod
    async def shutdown(self, timeout: float) -> None:
        """Graceful shutdown of the connection, at most `timeout` seconds."""

    def _cancel_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()

    def _check_origin(self, request: Request) -> Response | None:
        """403 for an Origin not in ``serve(origins=[...])`` (None allows no Origin)."""
        origins = self._server.origins
        if origins is None:
            return None
        origin = request.headers.get("origin")
        if origin in origins:
            return None
        return Response(403, list(TEXT), b"origin not allowed\n")

    async def _decide(self, request: Request) -> Response | None:
        """Runs the origin check and ``process_request``: None to go on, or the
        response to send instead. Never raises."""
        refusal = self._check_origin(request)
        if refusal is not None:
            return refusal
        process = self._server.process_request
        if process is None:
            return None
        try:
            result = process(request)
            if inspect.isawaitable(result):
                result = await asyncio.wait_for(result, self._server.config.open_timeout)
            if result is not None and not isinstance(result, Response):
                raise TypeError("process_request must return None or an h2ws.Response")
            return result
        except asyncio.TimeoutError:
            return Response(503, list(TEXT), b"request timed out\n")
        except Exception:
            logger.exception("process_request failed")
            return Response(500, list(TEXT), b"internal error\n")

    def _new_transport(
        self, sid: int, request: Request, subprotocol: str | None
    ) -> WebSocketTransport:
        cfg = self._server.config
        return WebSocketTransport(
            self,  # type: ignore[arg-type]  # subclasses implement the carrier methods
            sid,
            request,
            subprotocol,
            self.http_version,
            loop=self._loop,
            close_timeout=cfg.close_timeout,
            ping_interval=cfg.ping_interval,
            ping_timeout=cfg.ping_timeout,
        )

    def _start_websocket(self, transport: WebSocketTransport) -> None:
        """Connects the application's protocol; runs the handler if any."""
        server = self._server
        protocol = server.protocol_factory()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        transport._start_keepalive()
        logger.debug(
            "WebSocket over HTTP/%s: stream %s, path %s",
            self.http_version,
            transport.stream_id,
            transport.request.path,
        )
        if isinstance(protocol, WebSocket) and server.handler is not None:
            self._spawn(self._run_handler(protocol))

    async def _run_handler(self, ws: WebSocket) -> None:
        handler = self._server.handler
        assert handler is not None
        try:
            await handler(ws)
        except ConnectionClosed:
            pass
        except Exception:
            logger.exception("WebSocket handler failed")
            ws.transport.close(1011, "internal error")
        else:
            ws.transport.close(1000)
        await ws.wait_closed()
        if logger.isEnabledFor(logging.DEBUG):
            exc = ws._closed_exc
            logger.debug(
                "WebSocket closed: HTTP/%s, stream %s, path %s, code %s (%s)",
                self.http_version,
                ws.stream_id,
                ws.request.path,
                exc.code if exc else None,
                "received" if exc is not None and exc.received else "not received",
            )
