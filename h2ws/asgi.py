"""An ASGI 3 server (HTTP & WebSocket spec 2.4, lifespan) on h2ws.

Requests and WebSockets reach the application over HTTP/1.1 or HTTP/2 alike;
a WebSocket's scope says which (``http_version`` "2" for RFC 8441).

    from h2ws.asgi import serve_asgi
    async with serve_asgi(app, "127.0.0.1", 8000) as server:
        await server.serve_forever()

The command line ``h2ws module:app`` (h2ws/cli.py) runs the same thing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote

from .base import HTTPExchange, PendingWebSocket, ServerConnection
from .exceptions import ClientDisconnected, ConnectionClosed
from .http import Request, Response
from .server import serve
from .websocket import WebSocket

__all__ = ["serve_asgi", "Lifespan", "ASGIApp"]

logger = logging.getLogger("h2ws.asgi")
access_logger = logging.getLogger("h2ws.access")


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "-"


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ASGI = {"version": "3.0", "spec_version": "2.4"}


def _headers(request: Request) -> list[tuple[bytes, bytes]]:
    items = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in request.headers.items()]
    if request.http_version == "2" and "host" not in request.headers and request.authority:
        # RFC 9113 section 8.3.1: :authority plays the part of Host.
        items.insert(0, (b"host", request.authority.encode("latin-1")))
    return items


def _server_address(local: Any) -> tuple[Any, ...] | None:
    """ASGI ``server``: (host, port), or (path, None) for a Unix socket."""
    if isinstance(local, tuple):
        return tuple(local[:2])
    if isinstance(local, str) and local:
        return (local, None)
    return None


def _base_scope(request: Request, conn: ServerConnection) -> dict[str, Any]:
    server = conn._server
    raw, _, query = request.path.partition("?")
    transport = getattr(conn, "_transport", None)
    client = transport.get_extra_info("peername") if transport is not None else None
    local = transport.get_extra_info("sockname") if transport is not None else None
    return {
        "asgi": dict(ASGI),
        "http_version": request.http_version,
        "path": unquote(raw, encoding="utf-8", errors="surrogateescape"),
        "raw_path": raw.encode("latin-1"),
        "query_string": query.encode("latin-1"),
        "root_path": server.config.root_path,
        "headers": _headers(request),
        "client": tuple(client[:2]) if isinstance(client, tuple) else None,
        "server": _server_address(local),
        "state": dict(server.asgi_state),
    }


def _str_headers(raw: Any) -> list[tuple[str, str]]:
    return [(bytes(k).decode("latin-1").lower(), bytes(v).decode("latin-1")) for k, v in raw or ()]


async def run_http(app: ASGIApp, exchange: HTTPExchange, conn: ServerConnection) -> None:
    """Runs `app` for one plain request (the ``http`` scope)."""
    request = exchange.request
    scope = _base_scope(request, conn)
    scope.update(
        type="http",
        method=request.method,
        scheme="https" if request.scheme in ("https", "wss") else "http",
    )
    started = complete = body_done = head_sent = False
    status = 500
    headers: list[tuple[str, str]] = []

    async def receive() -> Message:
        nonlocal body_done
        if not body_done and not complete:
            try:
                data, more = await exchange.receive()
            except ClientDisconnected:
                return {"type": "http.disconnect"}
            body_done = not more
            return {"type": "http.request", "body": data, "more_body": more}
        await exchange.wait_disconnected()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal started, complete, head_sent, status, headers
        kind = message["type"]
        if kind == "http.response.start":
            if started:
                raise RuntimeError("http.response.start sent twice")
            started = True
            status = int(message["status"])
            headers = _str_headers(message.get("headers"))
        elif kind == "http.response.body":
            if not started:
                raise RuntimeError("http.response.body before http.response.start")
            if complete:
                raise RuntimeError("http.response.body after the response ended")
            body = bytes(message.get("body", b""))
            more = bool(message.get("more_body", False))
            if not head_sent:
                head_sent = True
                if (
                    not more
                    and status not in (204, 304)  # RFC 9110 section 8.6
                    and not any(k == "content-length" for k, _ in headers)
                ):
                    headers.append(("content-length", str(len(body))))
                await exchange.send_head(status, headers, not body and not more)
                if body or more:
                    await exchange.send_body(body, not more)
            else:
                await exchange.send_body(body, not more)
            complete = not more
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} in the http scope")

    try:
        await app(scope, receive, send)
    except ClientDisconnected:
        pass
    except Exception:
        status = 500
        logger.exception("ASGI application failed (%s %s)", request.method, request.path)
        if not started or not head_sent:
            await _safe_respond(
                exchange,
                Response(500, [("content-type", "text/plain")], b"Internal Server Error\n"),
            )
        elif not complete:
            exchange.abort()
    else:
        if not head_sent:
            if started:
                await _safe_respond(exchange, Response(status, headers, b""))
            else:
                logger.error("ASGI application returned without a response: %s", request.path)
                await _safe_respond(
                    exchange,
                    Response(500, [("content-type", "text/plain")], b"Internal Server Error\n"),
                )
        elif not complete:
            logger.error("ASGI application returned before its response ended: %s", request.path)
            exchange.abort()
    if conn._server.config.access_log:
        access_logger.info(
            '%s - "%s %s HTTP/%s" %d',
            _client(scope),
            request.method,
            request.path,
            request.http_version,
            status if started else 500,
        )


async def _safe_respond(exchange: HTTPExchange, response: Response) -> None:
    try:
        await exchange.respond(response)
    except (ClientDisconnected, RuntimeError):
        pass


async def run_websocket(app: ASGIApp, pending: PendingWebSocket, conn: ServerConnection) -> None:
    """Runs `app` for one WebSocket (the ``websocket`` scope)."""
    request = pending.request
    scope = _base_scope(request, conn)
    offered = [
        p.strip() for v in request.headers.get_all("sec-websocket-protocol") for p in v.split(",")
    ]
    scope.update(
        type="websocket",
        scheme="wss" if request.scheme in ("https", "wss") else "ws",
        subprotocols=[p for p in offered if p],
        extensions={"websocket.http.response": {}},
    )
    ws: WebSocket | None = None
    connect_sent = False
    closed = False  # the application sent websocket.close (or the socket is gone)
    denial: dict[str, Any] | None = None

    refusal = conn._check_origin(request)
    if refusal is not None:
        pending.reject(refusal)
        return

    async def receive() -> Message:
        nonlocal connect_sent
        if not connect_sent:
            connect_sent = True
            return {"type": "websocket.connect"}
        if ws is None:
            await pending.wait_gone()
            return {"type": "websocket.disconnect", "code": 1006, "reason": ""}
        try:
            message = await ws.recv()
        except ConnectionClosed as exc:
            return {"type": "websocket.disconnect", "code": exc.code, "reason": exc.reason}
        if isinstance(message, str):
            return {"type": "websocket.receive", "text": message}
        return {"type": "websocket.receive", "bytes": message}

    async def send(message: Message) -> None:
        nonlocal ws, closed, denial
        kind = message["type"]
        if kind == "websocket.accept":
            if ws is not None or pending.decided:
                raise RuntimeError("websocket.accept after the WebSocket was answered")
            transport = pending.accept(
                message.get("subprotocol"), _str_headers(message.get("headers"))
            )
            if transport is None:
                raise ClientDisconnected("the client went away before the WebSocket opened")
            ws = WebSocket()
            transport.set_protocol(ws)
            ws.connection_made(transport)
            transport._start_keepalive()
        elif kind == "websocket.send":
            if ws is None:
                raise RuntimeError("websocket.send before websocket.accept")
            if closed or ws.closed:
                raise ClientDisconnected("the WebSocket is closed")
            text = message.get("text")
            data = text if text is not None else message.get("bytes")
            if data is None:
                raise RuntimeError("websocket.send needs text or bytes")
            try:
                await ws.send(data)
            except ConnectionClosed as exc:
                raise ClientDisconnected(str(exc)) from exc
        elif kind == "websocket.close":
            if closed:
                raise ClientDisconnected("the WebSocket is closed")
            closed = True
            if ws is None:
                if not pending.decided:
                    pending.reject(Response(403, [("content-type", "text/plain")], b"Forbidden\n"))
            elif not ws.closed:
                ws.transport.close(int(message.get("code", 1000)), str(message.get("reason") or ""))
        elif kind == "websocket.http.response.start":
            if ws is not None or pending.decided or denial is not None:
                raise RuntimeError("websocket.http.response.start after the WebSocket was answered")
            denial = {
                "status": int(message["status"]),
                "headers": _str_headers(message.get("headers")),
                "body": b"",
            }
        elif kind == "websocket.http.response.body":
            if denial is None or pending.decided:
                raise RuntimeError(
                    "websocket.http.response.body without websocket.http.response.start"
                )
            denial["body"] += bytes(message.get("body", b""))
            if not message.get("more_body", False):
                closed = True
                pending.reject(Response(denial["status"], denial["headers"], denial["body"]))
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} in the websocket scope")

    try:
        await app(scope, receive, send)
    except ClientDisconnected:
        pass
    except Exception:
        logger.exception("ASGI application failed (WebSocket %s)", request.path)
        if ws is None and not pending.decided:
            pending.reject(
                Response(500, [("content-type", "text/plain")], b"Internal Server Error\n")
            )
        elif ws is not None and not ws.closed:
            ws.transport.close(1011, "internal error")
    if ws is None:
        if not pending.decided:
            # Returned without accepting: refused (ASGI spec: 403).
            pending.reject(Response(403, [("content-type", "text/plain")], b"Forbidden\n"))
        return
    if not ws.closed and not ws.transport.is_closing():
        ws.transport.close(1000)
    await ws.wait_closed()
    # The side that started the closing handshake (the server also when it
    # shut down, failed the WebSocket or gave up waiting for the client).
    who_closed = "server" if ws.transport.closed_locally else "client"
    if conn._server.config.access_log:
        access_logger.info(
            '%s - "WEBSOCKET %s" HTTP/%s stream %s closed %s by %s',
            _client(scope),
            request.path,
            request.http_version,
            ws.stream_id,
            ws.close_code,
            who_closed,
        )
    logger.debug(
        "WebSocket closed: HTTP/%s, stream %s, path %s, code %s, closed by %s",
        request.http_version,
        ws.stream_id,
        request.path,
        ws.close_code,
        who_closed,
    )


class Lifespan:
    """Runs the application's ``lifespan`` scope: startup before serving,
    shutdown after. ``mode``: "auto" (an app that does not support lifespan
    is fine), "on" (its failure is fatal) or "off"."""

    def __init__(self, app: ASGIApp, state: dict[str, Any], mode: str = "auto") -> None:
        self.app = app
        self.state = state
        self.mode = mode
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._startup: asyncio.Future[str | None] | None = None
        self._shutdown: asyncio.Future[str | None] | None = None
        self._task: asyncio.Task[None] | None = None
        self.supported = True

    async def startup(self) -> None:
        """Raises RuntimeError when the application's startup failed."""
        if self.mode == "off":
            return
        loop = asyncio.get_running_loop()
        self._startup = loop.create_future()
        self._shutdown = loop.create_future()
        self._task = loop.create_task(self._run())
        await self._inbox.put({"type": "lifespan.startup"})
        error = await self._startup
        if error is not None:
            raise RuntimeError(f"ASGI lifespan startup failed: {error}")

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": dict(ASGI), "state": self.state}
        try:
            await self.app(scope, self._inbox.get, self._send)
        except Exception as exc:
            if self._startup is not None and not self._startup.done():
                if self.mode == "auto":
                    logger.info("the application does not support ASGI lifespan (%r)", exc)
                    self.supported = False
                    self._startup.set_result(None)
                else:
                    logger.exception("ASGI lifespan failed")
                    self._startup.set_result(repr(exc))
            else:
                logger.exception("ASGI lifespan failed")
        finally:
            for fut in (self._startup, self._shutdown):
                if fut is not None and not fut.done():
                    fut.set_result(None)

    async def _send(self, message: Message) -> None:
        kind = message["type"]
        assert self._startup is not None and self._shutdown is not None
        if kind == "lifespan.startup.complete":
            self._startup.set_result(None)
        elif kind == "lifespan.startup.failed":
            self._startup.set_result(str(message.get("message", "")) or "startup failed")
        elif kind == "lifespan.shutdown.complete":
            self._shutdown.set_result(None)
        elif kind == "lifespan.shutdown.failed":
            logger.error("ASGI lifespan shutdown failed: %s", message.get("message", ""))
            self._shutdown.set_result(str(message.get("message", "")))
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} in the lifespan scope")

    async def shutdown(self, timeout: float = 10.0) -> None:
        if self.mode == "off" or self._task is None or not self.supported:
            return
        await self._inbox.put({"type": "lifespan.shutdown"})
        assert self._shutdown is not None
        try:
            await asyncio.wait_for(asyncio.shield(self._shutdown), timeout)
        except asyncio.TimeoutError:
            logger.error("ASGI lifespan shutdown timed out")
            self._task.cancel()


class serve_asgi(serve):  # noqa: N801 - used like a function
    """Serves an ASGI 3 application: ``await serve_asgi(app, host, port)`` or
    ``async with serve_asgi(...)``. Runs lifespan startup before listening and
    shutdown after the graceful close. Takes serve()'s keywords (``ssl``,
    ``sock``, every ``ServerConfig`` field, ``origins``...) and
    ``lifespan="auto"|"on"|"off"``."""

    def __init__(
        self,
        app: ASGIApp,
        host: str | None = None,
        port: int | None = None,
        *,
        lifespan: str = "auto",
        **kwargs: Any,
    ) -> None:
        super().__init__(None, host, port, **kwargs)
        self._app = app
        self._lifespan_mode = lifespan
        self._lifespan: Lifespan | None = None

    async def _open(self) -> Any:
        state: dict[str, Any] = {}
        self._lifespan = Lifespan(self._app, state, self._lifespan_mode)
        await self._lifespan.startup()
        handler, host, port, ssl, sock, subprotocols, process_request, factory = self._args
        from .server import Server

        server = Server(
            None,
            protocol_factory=None,
            subprotocols=subprotocols,
            process_request=process_request,
            config=self._config,
            origins=self._origins,
            asgi_app=self._app,
        )
        server.asgi_state = state
        lifespan = self._lifespan
        server._on_closed.append(lambda: lifespan.shutdown(self._config.shutdown_timeout))
        await server._start(host, port, ssl, sock, **self._kwargs)
        self._server = server
        return server
