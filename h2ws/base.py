"""What every server connection does, whatever the HTTP version: run
``process_request``, check the origin, choose the subprotocol, start the
WebSocket's protocol and handler, track tasks."""

from __future__ import annotations

import abc
import asyncio
import collections
import inspect
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from .exceptions import ClientDisconnected
from .http import Request, Response
from .websocket import WebSocket, WebSocketTransport

if TYPE_CHECKING:
    from .server import Server

__all__ = [
    "ServerConnection",
    "HTTPExchange",
    "PendingWebSocket",
    "select_subprotocol",
    "NOT_A_WEBSOCKET",
]

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


class HTTPExchange(abc.ABC):
    """One plain HTTP request and its response, over HTTP/1.1 or HTTP/2.

    The request body is read with ``receive()`` (flow control follows the
    reads); the response is written with ``send_head()`` then ``send_body()``
    (waiting while the client is slower than the sender).
    """

    request: Request
    #: What receive() says once the client is gone.
    _gone_message = "the client went away"

    def __init__(self, loop: asyncio.AbstractEventLoop, body_done: bool) -> None:
        # Body chunks with the flow-control credit each stands for, given
        # back (_body_taken) when the application takes the chunk.
        self._loop = loop
        self._body: collections.deque[tuple[bytes, int]] = collections.deque()
        self._body_done = body_done
        self._closed = False
        self._waiter: asyncio.Future[None] | None = None
        self._disconnected: asyncio.Future[None] = loop.create_future()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _on_body_end(self) -> None:
        self._body_done = True
        self._wake()

    def _on_closed(self) -> None:
        """The client is gone (connection closed, stream reset)."""
        self._closed = True
        if not self._disconnected.done():
            self._disconnected.set_result(None)
        self._wake()

    async def _wait(self) -> None:
        """Until the next _wake()."""
        waiter = self._loop.create_future()
        self._waiter = waiter
        try:
            await waiter
        finally:
            self._waiter = None

    @abc.abstractmethod
    def _body_taken(self, credit: int) -> None:
        """The application took a body chunk worth `credit` bytes of flow control."""

    async def receive(self) -> tuple[bytes, bool]:
        """The next body chunk and whether more follows; ``(b"", False)`` once
        the body ended. Raises ClientDisconnected if the client went away."""
        while not self._body and not self._body_done:
            if self._closed:
                raise ClientDisconnected(self._gone_message)
            await self._wait()
        if self._body:
            data, credit = self._body.popleft()
            self._body_taken(credit)
            return data, bool(self._body) or not self._body_done
        return b"", False

    async def wait_disconnected(self) -> None:
        """Returns once the client is gone or the exchange is over."""
        await asyncio.shield(self._disconnected)

    @abc.abstractmethod
    async def send_head(self, status: int, headers: list[tuple[str, str]], end: bool) -> None:
        """Sends the status and headers (``end``: no body follows)."""

    @abc.abstractmethod
    async def send_body(self, data: bytes, end: bool) -> None:
        """Sends body bytes; ``end`` completes the response."""

    @abc.abstractmethod
    def abort(self) -> None:
        """Ends the exchange at once (a broken response)."""

    async def respond(self, response: Response) -> None:
        """Sends a whole response."""
        await self.send_head(response.status, response.headers, not response.body)
        if response.body:
            await self.send_body(response.body, True)


class PendingWebSocket:
    """A WebSocket request waiting for the application's decision."""

    def __init__(self, conn: ServerConnection, key: int, request: Request) -> None:
        self.conn = conn
        self.key = key
        self.request = request
        self.gone = False  # the request's stream/connection ended meanwhile
        self.decided = False
        self._gone_waiter: asyncio.Future[None] | None = None

    def _set_gone(self) -> None:
        self.gone = True
        if self._gone_waiter is not None and not self._gone_waiter.done():
            self._gone_waiter.set_result(None)

    async def wait_gone(self) -> None:
        """Returns when the client went away before the decision."""
        if self.gone:
            return
        if self._gone_waiter is None:
            self._gone_waiter = self.conn._loop.create_future()
        await asyncio.shield(self._gone_waiter)

    def accept(
        self, subprotocol: str | None = None, headers: list[tuple[str, str]] | None = None
    ) -> WebSocketTransport | None:
        """Opens the WebSocket; None if the client went away meanwhile."""
        if self.decided:
            raise RuntimeError("the WebSocket request was already answered")
        self.decided = True
        if self.gone:
            return None
        return self.conn._ws_do_accept(self, subprotocol, headers or [])

    def reject(self, response: Response) -> None:
        """Refuses the WebSocket with an HTTP response."""
        if self.decided:
            raise RuntimeError("the WebSocket request was already answered")
        self.decided = True
        if not self.gone:
            self.conn._ws_do_reject(self, response)


class ServerConnection(abc.ABC):
    """Base of the per-connection protocols (HTTP/2 and HTTP/1.1)."""

    http_version = "?"
    _loop: asyncio.AbstractEventLoop

    def __init__(self, server: Server) -> None:
        self._server = server
        self._loop = server.loop
        # Made by the first _spawn (an empty set is ~200 bytes, and an
        # HTTP/1.1 WebSocket's connection often never needs one).
        self._tasks: set[asyncio.Task[None]] | None = None

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = self._loop.create_task(coro)  # type: ignore[arg-type]
        tasks = self._tasks
        if tasks is None:
            tasks = self._tasks = set()
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    @abc.abstractmethod
    async def shutdown(self, timeout: float) -> None:
        """Graceful shutdown of the connection, at most `timeout` seconds."""

    @abc.abstractmethod
    def _ws_do_accept(
        self, pending: PendingWebSocket, subprotocol: str | None, headers: list[tuple[str, str]]
    ) -> WebSocketTransport | None:
        """Answers the request with the protocol's success (200 or 101) and
        returns the open transport (None if the client went away)."""

    @abc.abstractmethod
    def _ws_do_reject(self, pending: PendingWebSocket, response: Response) -> None:
        """Answers the request with `response`."""

    # -- what both protocols do with requests -------------------------------------

    def _on_ws_request(self, pending: PendingWebSocket) -> None:
        """A WebSocket request arrived: ASGI app, or serve()'s handler."""
        server = self._server
        if server.asgi_app is not None:
            from .asgi import run_websocket

            # Like serve()'s handlers, the application outlives the
            # connection: it learns of the end from receive() (a disconnect
            # message), not from a cancellation.
            server._spawn_handler(run_websocket(server.asgi_app, pending, self))
        elif server.process_request is None and self._check_origin(pending.request) is None:
            self._accept_for_handler(pending)
        else:
            self._spawn(self._decide_then_accept(pending))

    async def _decide_then_accept(self, pending: PendingWebSocket) -> None:
        response = await self._decide(pending.request)
        if response is not None:
            pending.reject(response)
        else:
            self._accept_for_handler(pending)

    def _accept_for_handler(self, pending: PendingWebSocket) -> None:
        subprotocol = select_subprotocol(pending.request, self._server.subprotocols)
        transport = pending.accept(subprotocol)
        if transport is not None:
            self._start_websocket(transport)

    def _on_http_exchange(self, exchange: HTTPExchange) -> None:
        """A plain request arrived: ASGI app, or process_request / 426."""
        server = self._server
        if server.asgi_app is not None:
            from .asgi import run_http

            server._spawn_handler(run_http(server.asgi_app, exchange, self))
        else:
            self._spawn(self._answer_http(exchange))

    async def _answer_http(self, exchange: HTTPExchange) -> None:
        response = await self._decide(exchange.request)
        if response is None:
            response = Response(426, list(TEXT) + [("upgrade", "websocket")], NOT_A_WEBSOCKET)
        try:
            await exchange.respond(response)
        except ClientDisconnected:
            pass

    def _cancel_tasks(self) -> None:
        for task in self._tasks or ():
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
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "WebSocket over HTTP/%s: stream %s, path %s",
                self.http_version,
                transport.stream_id,
                transport.request.path,
            )
        if isinstance(protocol, WebSocket) and server.handler is not None:
            # Not a connection task: the handler outlives the connection, to
            # see ConnectionClosed from recv() rather than a cancellation.
            # The handler's coroutine is the task's own: the server closes
            # the WebSocket when the task is done (Server._handler_done).
            try:
                handler = server.handler(protocol)
            except Exception:
                logger.exception("WebSocket handler failed")
                transport.close(1011, "internal error")
                return
            if not inspect.iscoroutine(handler):
                handler = _await(handler)
            server._spawn_handler(handler, protocol)


async def _await(awaitable: Awaitable[None]) -> None:
    """A coroutine for a handler that returned another kind of awaitable."""
    await awaitable
