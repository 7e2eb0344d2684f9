"""``serve()``: an asyncio WebSocket server, over HTTP/2 (RFC 8441).

async def echo(ws):
    async for message in ws:
        await ws.send(message)

async with h2ws.serve(echo, "127.0.0.1", 8443, ssl=context) as server:
    await server.serve_forever()
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import logging
import socket
import ssl as ssl_module
import sys
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any

from ._opener import AsyncOpener
from .base import ServerConnection
from .config import ServerConfig
from .dispatch import ProtocolSelector
from .exceptions import ConnectionClosed
from .http import Request, Response
from .websocket import WebSocket, WebSocketProtocol

__all__ = ["serve", "Server", "Handler", "ProcessRequest"]

logger = logging.getLogger("h2ws.server")

Handler = Callable[[WebSocket], Awaitable[None]]
ProcessRequest = Callable[[Request], "Response | None | Awaitable[Response | None]"]


class Server:
    """A listening server; made by ``serve()``.

    ``close()`` stops accepting, closes every WebSocket with 1001, sends GOAWAY
    and waits (at most ``shutdown_timeout``) for streams to finish;
    ``wait_closed()`` waits for all that.
    """

    def __init__(
        self,
        handler: Handler | None,
        *,
        protocol_factory: Callable[[], WebSocketProtocol] | None,
        subprotocols: list[str] | None,
        process_request: ProcessRequest | None,
        config: ServerConfig,
        origins: list[str | None] | None = None,
        asgi_app: Any = None,
    ) -> None:
        if handler is None and protocol_factory is None and asgi_app is None:
            raise TypeError("serve() needs a handler or a protocol_factory")
        #: An ASGI 3 application (h2ws.asgi); then requests and WebSockets go to it.
        self.asgi_app = asgi_app
        #: ASGI lifespan state, copied into each request's scope.
        self.asgi_state: dict[str, Any] = {}
        self.handler = handler
        self.protocol_factory: Callable[[], WebSocketProtocol] = protocol_factory or WebSocket
        self.subprotocols = subprotocols
        self.process_request = process_request
        self.origins = origins
        self.config = config
        self.loop = asyncio.get_running_loop()
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[ServerConnection] = set()
        self._closing = False
        self._closed: asyncio.Future[None] = self.loop.create_future()
        # Running handlers (and ASGI applications), each with its WebSocket
        # (None for ASGI): _handler_done closes it when the task ends.
        self._handlers: dict[asyncio.Task[None], WebSocket | None] = {}
        self._handler_done_cb = self._handler_done  # one bound method for every task
        #: Coroutine functions run after the connections closed (ASGI lifespan).
        self._on_closed: list[Callable[[], Awaitable[None]]] = []

    def _register(self, conn: ServerConnection) -> None:
        self._connections.add(conn)

    def _unregister(self, conn: ServerConnection) -> None:
        self._connections.discard(conn)

    def _spawn_handler(self, coro: Coroutine[Any, Any, None], ws: WebSocket | None = None) -> None:
        """Runs a WebSocket handler. Its connection's end does not cancel it
        (recv() raises ConnectionClosed); a graceful shutdown cancels the
        handlers still running when shutdown_timeout is up. With `ws`, the
        WebSocket is closed when the handler ends (see _handler_done)."""
        if _TASK_CONTEXT:
            # The done callback runs in the task's own context (so logging
            # sees the handler's context variables), with no copy of its own.
            context = contextvars.copy_context()
            task = self.loop.create_task(coro, context=context)  # type: ignore[call-arg,unused-ignore]
            task.add_done_callback(self._handler_done_cb, context=context)
        else:
            task = self.loop.create_task(coro)
            task.add_done_callback(self._handler_done_cb)
        self._handlers[task] = ws

    def _handler_done(self, task: asyncio.Task[None]) -> None:
        # What a wrapper coroutine around the handler did, without its frame
        # kept alive for the life of every WebSocket.
        ws = self._handlers.pop(task, None)
        if ws is None or task.cancelled():
            return
        exc = task.exception()
        transport = ws._transport
        if exc is None:
            if transport is not None:
                transport.close(1000)
        elif isinstance(exc, ConnectionClosed):
            pass
        elif isinstance(exc, Exception):
            logger.error("WebSocket handler failed", exc_info=exc)
            if transport is not None:
                transport.close(1011, "internal error")
        else:
            return  # KeyboardInterrupt, SystemExit: they went up to the loop
        if logger.isEnabledFor(logging.DEBUG):
            self.loop.create_task(_log_closed(ws))

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return tuple(self._server.sockets) if self._server is not None else ()  # type: ignore[attr-defined]

    @property
    def connections(self) -> frozenset[ServerConnection]:
        return frozenset(self._connections)

    async def _start(
        self,
        host: str | None,
        port: int | None,
        ssl: ssl_module.SSLContext | None,
        sock: socket.socket | None,
        **kwargs: Any,
    ) -> None:
        if ssl is not None:
            ssl.set_alpn_protocols(["h2", "http/1.1"])
        self._server = await self.loop.create_server(
            lambda: ProtocolSelector(self),
            host,
            port,  # type: ignore[arg-type]  # None with sock=
            ssl=ssl,
            sock=sock,  # type: ignore[arg-type]
            **kwargs,
        )

    def close(self) -> None:
        """Starts a graceful shutdown (idempotent)."""
        if self._closing:
            return
        self._closing = True
        self.loop.create_task(self._shutdown())

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        timeout = self.config.shutdown_timeout
        deadline = self.loop.time() + timeout
        conns = list(self._connections)
        if conns:
            await asyncio.gather(*(c.shutdown(timeout) for c in conns), return_exceptions=True)
        if self._handlers:
            _, stubborn = await asyncio.wait(
                list(self._handlers), timeout=max(deadline - self.loop.time(), 0.0)
            )
            for task in stubborn:
                task.cancel()
        if self._server is not None:
            await self._server.wait_closed()
        for hook in self._on_closed:
            try:
                await hook()
            except Exception:
                logger.exception("shutdown hook failed")
        if not self._closed.done():
            self._closed.set_result(None)

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)

    async def serve_forever(self) -> None:
        """Runs until cancelled, then shuts down gracefully."""
        try:
            await asyncio.shield(self._closed)
        finally:
            self.close()
            await self.wait_closed()

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
        await self.wait_closed()


#: loop.create_task(context=...) exists (Python 3.11+).
_TASK_CONTEXT = sys.version_info >= (3, 11)


async def _log_closed(ws: WebSocket) -> None:
    """Logs (debug) how a handler's WebSocket closed, once it has."""
    await ws.wait_closed()
    exc = ws._closed_exc
    logger.debug(
        "WebSocket closed: HTTP/%s, stream %s, path %s, code %s (%s)",
        ws.http_version,
        ws.stream_id,
        ws.request.path,
        exc.code if exc else None,
        "received" if exc is not None and exc.received else "not received",
    )


class serve(AsyncOpener[Server]):  # noqa: N801 - used like a function, as in websockets
    """Starts a WebSocket server: ``await serve(...)`` or ``async with serve(...)``.

    ``handler(ws)`` runs once per WebSocket with an ``h2ws.WebSocket``; the
    WebSocket is closed (1000) when it returns, or 1011 if it raises.
    Cleartext connections speak HTTP/2 with prior knowledge (h2c); TLS ones
    negotiate ``h2`` by ALPN.

    Options: ``ssl`` (an ``ssl.SSLContext``), ``sock`` (a bound socket),
    ``subprotocols`` (in order of preference), ``origins`` (allowed values of
    the Origin header, ``None`` in the list allowing requests without one;
    others get 403), ``process_request(request)``
    (may return an ``h2ws.Response`` to refuse the WebSocket or answer a
    plain HTTP request, sync or async), ``protocol_factory`` (a
    ``WebSocketProtocol`` class for the callback API instead of ``handler``),
    and every field of ``h2ws.ServerConfig`` as a keyword
    (``max_message_size``, ``ping_interval``, ``ping_timeout``,
    ``close_timeout``, ``max_concurrent_streams``, ``write_limit``,
    ``ws_over_h2``...). Other keywords go to ``loop.create_server``
    (``reuse_port``, ``backlog``...).
    """

    def __init__(
        self,
        handler: Handler | None = None,
        host: str | None = None,
        port: int | None = None,
        *,
        ssl: ssl_module.SSLContext | None = None,
        sock: socket.socket | None = None,
        subprotocols: list[str] | None = None,
        process_request: ProcessRequest | None = None,
        protocol_factory: Callable[[], WebSocketProtocol] | None = None,
        origins: list[str | None] | None = None,
        config: ServerConfig | None = None,
        **kwargs: Any,
    ) -> None:
        fields = {f.name for f in dataclasses.fields(ServerConfig)}
        overrides = {k: kwargs.pop(k) for k in list(kwargs) if k in fields}
        self._config = dataclasses.replace(config or ServerConfig(), **overrides)
        self._args = (
            handler,
            host,
            port,
            ssl,
            sock,
            subprotocols,
            process_request,
            protocol_factory,
        )
        self._origins = origins
        self._kwargs = kwargs
        self._server: Server | None = None

    async def _open(self) -> Server:
        handler, host, port, ssl, sock, subprotocols, process_request, factory = self._args
        server = Server(
            handler,
            protocol_factory=factory,
            subprotocols=subprotocols,
            process_request=process_request,
            config=self._config,
            origins=self._origins,
        )
        await server._start(host, port, ssl, sock, **self._kwargs)
        self._server = server
        return server

    async def _close(self, opened: Server) -> None:
        opened.close()
        await opened.wait_closed()
