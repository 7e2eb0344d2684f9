"""The asyncio side of one HTTP/1.1 connection (server role).

Request heads are parsed by llhttp (through ``httptools``); a WebSocket
Upgrade (RFC 6455 section 4) switches the connection to the same C codec the
HTTP/2 streams use, and the application gets the same ``WebSocket`` object,
with ``http_version == "1.1"``. Plain requests are answered in order
(keep-alive and pipelining) by ``process_request`` or with 426.
"""

from __future__ import annotations

import asyncio
import http
import logging
from typing import TYPE_CHECKING

import httptools

from . import _core
from ._readbuf import read_buffer
from .base import TEXT, HTTPExchange, PendingWebSocket, ServerConnection
from .exceptions import ClientDisconnected
from .h1ws import H1WebSocketCarrier
from .http import Headers, Request, Response
from .websocket import WebSocketTransport

if TYPE_CHECKING:
    from .server import Server

__all__ = ["H1ServerProtocol"]

logger = logging.getLogger("h2ws.server")

#: Request body bytes buffered ahead of the application before reading pauses.
BODY_BUFFER = 256 * 1024


class _HeadTooLarge(Exception):
    pass


def _tokens(headers: Headers, name: str) -> list[str]:
    """Comma-separated tokens of every `name` header, lower-cased."""
    return [t.strip().lower() for v in headers.get_all(name) for t in v.split(",") if t.strip()]


def _bad(status: int, reason: str, extra: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, list(TEXT) + (extra or []), (reason + "\n").encode())


def check_handshake(request: Request) -> Response | None:
    """RFC 6455 section 4.2.1: None if `request` is a valid opening handshake,
    else the response that refuses it (400, or 426 for another version)."""
    h = request.headers
    if request.method != "GET":
        return _bad(400, f"a WebSocket handshake uses GET, not {request.method}")
    if request.http_version != "1.1":
        return _bad(400, f"a WebSocket handshake needs HTTP/1.1, not HTTP/{request.http_version}")
    if "host" not in h:
        return _bad(400, "missing Host header")
    if "websocket" not in _tokens(h, "upgrade"):
        return _bad(400, "missing Upgrade: websocket")
    if "upgrade" not in _tokens(h, "connection"):
        return _bad(400, "missing Connection: Upgrade")
    keys = h.get_all("sec-websocket-key")
    if len(keys) != 1 or not _core.websocket_key_valid(keys[0].strip().encode("latin-1")):
        return _bad(400, "Sec-WebSocket-Key must be the base64 of 16 bytes")
    versions = h.get_all("sec-websocket-version")
    if not versions:
        return _bad(400, "missing Sec-WebSocket-Version", [("sec-websocket-version", "13")])
    if [v.strip() for v in versions] != ["13"]:
        return _bad(426, "unsupported Sec-WebSocket-Version", [("sec-websocket-version", "13")])
    return None


def _no_body(status: int) -> bool:
    return 100 <= status < 200 or status in (204, 304)


def serialize_head(
    status: int, headers: list[tuple[str, str]], *, length: int | None, chunked: bool, close: bool
) -> bytes:
    """An HTTP/1.1 response head. `length` (if not None and no content-length
    is given) becomes content-length; `chunked` adds transfer-encoding."""
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    lines = [f"HTTP/1.1 {status} {phrase}"]
    has_length = False
    for name, value in headers:
        lname = name.lower()
        if lname in ("connection", "transfer-encoding", "keep-alive"):
            continue
        has_length = has_length or lname == "content-length"
        lines.append(f"{name}: {value}")
    if not _no_body(status):
        if chunked:
            lines.append("transfer-encoding: chunked")
        elif not has_length and length is not None:
            lines.append(f"content-length: {length}")
    if close:
        lines.append("connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def serialize_response(response: Response, *, close: bool) -> bytes:
    """A whole HTTP/1.1 response."""
    head = serialize_head(
        response.status, response.headers, length=len(response.body), chunked=False, close=close
    )
    return head + response.body


class H1Exchange(HTTPExchange):
    """One plain request on an HTTP/1.1 connection. Responses go out in
    request order: an exchange runs when the ones before it are done."""

    _gone_message = "the client closed the connection"

    def __init__(self, proto: H1ServerProtocol, request: Request, keep_alive: bool) -> None:
        super().__init__(proto._loop, body_done=False)
        self._proto = proto
        self.request = request
        self.keep_alive = keep_alive
        self.buffered = 0  # body bytes read ahead of the application
        self._chunked = False
        self._head_sent = False
        self.complete = False
        self._head_only = request.method == "HEAD"

    def _on_body(self, data: bytes) -> None:
        self._body.append((data, len(data)))
        self.buffered += len(data)
        self._wake()

    def _body_taken(self, credit: int) -> None:
        self.buffered -= credit
        self._proto._body_taken()

    def _write(self, data: bytes) -> None:
        if self._closed or self._proto._transport is None:
            raise ClientDisconnected("the client closed the connection")
        self._proto._transport.write(data)

    async def send_head(self, status: int, headers: list[tuple[str, str]], end: bool) -> None:
        if self._head_sent:
            raise RuntimeError("the response head was already sent")
        self._head_sent = True
        if _no_body(status):
            self._head_only = True  # RFC 9110 section 15.3.5: no content
        has_length = any(n.lower() == "content-length" for n, _ in headers)
        # Without a length, stream with chunked encoding (HTTP/1.1 clients)
        # or end the body by closing (HTTP/1.0).
        self._chunked = (
            not end
            and not has_length
            and not _no_body(status)
            and (self.request.http_version == "1.1")
        )
        if not end and not has_length and not self._chunked and not _no_body(status):
            self.keep_alive = False
        # The last answer before the connection closes says so.
        close = not self.keep_alive or (self._proto._closing and len(self._proto._queue) <= 1)
        self.keep_alive = not close
        self._write(
            serialize_head(
                status, headers, length=0 if end else None, chunked=self._chunked, close=close
            )
        )
        if end:
            self._done()

    async def send_body(self, data: bytes, end: bool) -> None:
        if not self._head_sent:
            raise RuntimeError("send_head() first")
        if self.complete:
            raise RuntimeError("the response is complete")
        if data and not self._head_only:
            if self._chunked:
                self._write(b"%x\r\n" % len(data) + data + b"\r\n")
            else:
                self._write(data)
        if end:
            if self._chunked and not self._head_only:
                self._write(b"0\r\n\r\n")
            self._done()
        elif self._proto._write_paused:
            await self._proto._drain()
            if self._closed:
                raise ClientDisconnected("the client closed the connection")

    def _done(self) -> None:
        self.complete = True
        if not self._disconnected.done():
            self._disconnected.set_result(None)
        self._proto._exchange_done(self)

    def abort(self) -> None:
        self._proto._ws_abort(0)  # HTTP/1.1 cannot end one response alone


class H1ServerProtocol(ServerConnection, H1WebSocketCarrier, asyncio.BufferedProtocol):
    """One HTTP/1.1 connection: requests in order, then maybe one WebSocket."""

    http_version = "1.1"

    # Its own attributes in slots: with those of the bases, more than the 30
    # a shared-key instance dict holds, and the dict alone took ~1.6 KB per
    # connection. (The carrier's hot attributes are _core.H1Carrier's.)
    __slots__ = (
        "_closed",
        "_closing",
        "_drain_waiter",
        "_early",
        "_head_size",
        "_idle_timer",
        "_is_ws",
        "_parser",
        "_parsing",
        "_queue",
        "_raw",
        "_reading_paused",
        "_request",
        "_upgrading",
        "_url",
    )

    def __init__(self, server: Server) -> None:
        super().__init__(server)
        self._view = read_buffer(self._loop)
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._url = bytearray()
        self._raw: list[tuple[bytes, bytes]] = []
        self._head_size = 0
        self._request: Request | None = None
        self._is_ws = False
        # Requests in order; the first one is answered now. A list: at most
        # a few entries (reading pauses beyond 8), and an empty deque costs
        # ~600 bytes, kept by every upgraded connection.
        self._queue: list[H1Exchange | PendingWebSocket | Response] = []
        self._parsing: H1Exchange | None = None  # receives the body being parsed
        self._closing = False  # no more requests: close once the answers are out
        self._codec: _core.WebSocketCodec | None = None
        self._ws: WebSocketTransport | None = None
        self._early = b""  # bytes after an Upgrade request, before our 101
        self._upgrading = False  # a WebSocket handshake is being decided
        self._write_paused = False
        self._write_limit = server.config.write_limit
        self._closes_first = True  # RFC 6455 section 7.1.1, and a lingering close
        self._init_carrier()
        self._drain_waiter: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._lost = False
        self._idle_timer: asyncio.TimerHandle | None = None
        self._closed: asyncio.Future[None] = self._loop.create_future()

    # -- asyncio.BufferedProtocol -----------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        assert self._transport is not None
        self._transport.set_write_buffer_limits(high=self._server.config.write_limit)
        self._server._register(self)
        self._arm_idle_timer()
        ssl_object = transport.get_extra_info("ssl_object")
        logger.debug(
            "connection from %s: HTTP/1.1 (%s)",
            transport.get_extra_info("peername"),
            f"ALPN {ssl_object.selected_alpn_protocol()}" if ssl_object else "cleartext",
        )

    def _http_received(self, nbytes: int) -> None:
        if self._closing or self._lingering:
            return  # after a request that ends the connection: ignore the rest
        data = bytes(self._view[:nbytes])
        if self._upgrading:
            self._early += data  # the 101 has not gone out yet
            return
        self._feed(data)

    def eof_received(self) -> bool | None:
        if self._lingering:
            return False
        if self._parsing is not None:
            # EOF in the middle of a request body: that request can never
            # complete; close, so that its application sees the disconnect.
            return False
        if self._codec is None and self._queue:
            # The client finished sending; let the answers go out, then close.
            self._closing = True
            return True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._carrier_lost()
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        for item in self._queue:
            if isinstance(item, H1Exchange):
                item._on_closed()
            elif isinstance(item, PendingWebSocket):
                item._set_gone()
        if self._parsing is not None:
            self._parsing._on_closed()
        self._cancel_tasks()
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if not self._closed.done():
            self._closed.set_result(None)
        self._server._unregister(self)

    def resume_writing(self) -> None:
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        super().resume_writing()

    async def _drain(self) -> None:
        while self._write_paused and not self._lost:
            waiter = self._loop.create_future()
            self._drain_waiter = waiter
            try:
                await waiter
            finally:
                self._drain_waiter = None

    # -- HTTP/1.1 requests --------------------------------------------------------

    def _arm_idle_timer(self) -> None:
        timeout = self._server.config.open_timeout
        if timeout and self._idle_timer is None and not self._lost:
            self._idle_timer = self._loop.call_later(timeout, self._on_idle)

    def _on_idle(self) -> None:
        self._idle_timer = None
        if self._codec is None and not self._queue and self._transport is not None:
            self._transport.close()

    def _feed(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._on_upgrade(data[int(exc.args[0]) :])
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _HeadTooLarge) or isinstance(
                exc.__cause__, _HeadTooLarge
            ):
                self._fail(_bad(431, "request head too large"))
            else:
                logger.exception("HTTP/1.1 request handling failed")
                self._fail(_bad(500, "internal error"))
        except httptools.HttpParserError as exc:
            self._fail(_bad(400, f"malformed HTTP/1.1 request: {exc}"))

    def _fail(self, response: Response) -> None:
        """Answers `response` after the pending answers, then closes."""
        self._closing = True
        if self._parsing is not None:
            self._parsing._on_closed()  # its body will never complete
            self._parsing = None
        self._enqueue(response)

    # httptools callbacks
    def on_message_begin(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        self._url.clear()
        self._raw = []
        self._head_size = 0
        self._request = None
        self._is_ws = False

    def _count(self, n: int) -> None:
        self._head_size += n
        if self._head_size > self._server.config.max_header_list_size:
            raise _HeadTooLarge

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        if len(self._raw) >= self._server.config.max_headers:
            raise _HeadTooLarge
        self._raw.append((name, value))

    def on_headers_complete(self) -> None:
        headers = Headers.from_raw(self._raw)
        self._raw = []  # an upgraded connection keeps its request, not this
        tls = (
            self._transport is not None and self._transport.get_extra_info("ssl_object") is not None
        )
        self._request = request = Request(
            path=self._url.decode("latin-1"),
            headers=headers,
            method=self._parser.get_method().decode("latin-1"),
            authority=headers.get("host", "") or "",
            scheme="https" if tls else "http",
            http_version=self._parser.get_http_version(),
        )
        self._is_ws = "websocket" in _tokens(headers, "upgrade")
        if self._is_ws:
            return  # decided at the end of the message (or at the upgrade)
        exchange = H1Exchange(self, request, self._parser.should_keep_alive())
        self._parsing = exchange
        self._enqueue(exchange)

    def on_body(self, body: bytes) -> None:
        exchange = self._parsing
        if exchange is not None:
            exchange._on_body(body)
            if exchange.buffered > BODY_BUFFER:
                self._pause_reading()

    def on_message_complete(self) -> None:
        if self._parser.should_upgrade():
            return  # feed_data raises HttpParserUpgrade next: see _on_upgrade
        if not self._parser.should_keep_alive():
            self._closing = True
        if self._is_ws:
            # A WebSocket request that llhttp did not treat as an upgrade
            # (e.g. no Connection: Upgrade): refuse it with the reason.
            request = self._request
            assert request is not None
            self._fail(check_handshake(request) or _bad(400, "not a valid WebSocket handshake"))
            return
        if self._parsing is not None:
            self._parsing._on_body_end()
            self._parsing = None

    def _on_upgrade(self, rest: bytes) -> None:
        request = self._request
        assert request is not None
        if not self._is_ws:
            # Upgrade: h2c (or anything else) is answered as plain HTTP/1.1.
            if self._parsing is not None:
                self._parsing._on_body_end()
                self._parsing = None
            self._parser = httptools.HttpRequestParser(self)
            if rest and not self._closing:
                self._feed(rest)
            return
        refusal = check_handshake(request)
        if refusal is not None:
            self._fail(refusal)
            return
        self._early = rest
        self._upgrading = True
        self._pause_reading()
        self._enqueue(PendingWebSocket(self, 0, request))

    # -- answers in request order ----------------------------------------------------

    def _enqueue(self, item: H1Exchange | PendingWebSocket | Response) -> None:
        self._queue.append(item)
        if len(self._queue) == 1:
            self._start_head()
        elif len(self._queue) > 8:
            self._pause_reading()  # pipelining: bounded read-ahead

    def _start_head(self) -> None:
        """Runs the first queued request."""
        while self._queue and not self._lost:
            item = self._queue[0]
            if isinstance(item, H1Exchange):
                self._on_http_exchange(item)
                return
            if isinstance(item, PendingWebSocket):
                self._on_ws_request(item)
                return
            # A refusal decided by the parser: write it and close.
            self._queue.pop(0)
            if self._transport is not None:
                self._transport.write(serialize_response(item, close=True))
            self._closing = True
        self._after_answers()

    def _exchange_done(self, exchange: H1Exchange) -> None:
        if self._queue and self._queue[0] is exchange:
            self._queue.pop(0)
        if not exchange.keep_alive:
            self._closing = True
            self._queue.clear()
        self._start_head()

    def _after_answers(self) -> None:
        if self._queue or self._codec is not None or self._lost:
            return
        if self._closing:
            self._close_transport()
        else:
            self._resume_reading()
            self._arm_idle_timer()

    def _body_taken(self) -> None:
        if self._reading_paused and not self._upgrading and len(self._queue) <= 8:
            parsing = self._parsing
            if parsing is None or parsing.buffered <= BODY_BUFFER:
                self._resume_reading()

    def _pause_reading(self) -> None:
        if self._transport is not None and not self._reading_paused:
            self._reading_paused = True
            self._transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._transport is not None and not self._lost and self._reading_paused:
            self._reading_paused = False
            self._transport.resume_reading()

    # -- the WebSocket ---------------------------------------------------------------

    def _ws_do_reject(self, pending: PendingWebSocket, response: Response) -> None:
        self._upgrading = False
        self._early = b""
        if self._queue and self._queue[0] is pending:
            self._queue.pop(0)
        if self._transport is not None and not self._lost:
            self._transport.write(serialize_response(response, close=True))
        self._closing = True
        self._queue.clear()
        self._after_answers()

    def _ws_do_accept(
        self, pending: PendingWebSocket, subprotocol: str | None, headers: list[tuple[str, str]]
    ) -> WebSocketTransport | None:
        """Sends the 101 and runs the codec on the connection (section 4.2.2)."""
        if self._transport is None or self._lost:
            return None
        if self._queue and self._queue[0] is pending:
            self._queue.pop(0)
        request = pending.request
        key = request.headers["sec-websocket-key"].strip()
        lines = [
            "HTTP/1.1 101 Switching Protocols",
            "upgrade: websocket",
            "connection: Upgrade",
            f"sec-websocket-accept: {_core.websocket_accept(key.encode('latin-1'))}",
        ]
        if subprotocol:
            lines.append(f"sec-websocket-protocol: {subprotocol}")
        for name, value in headers:
            if name.lower() not in (
                "upgrade",
                "connection",
                "sec-websocket-accept",
                "content-length",
            ):
                lines.append(f"{name}: {value}")
        self._transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        cfg = self._server.config
        self._codec = _core.WebSocketCodec(client=False, max_message_size=cfg.max_message_size)
        self._ws = transport = self._new_transport(0, request, subprotocol)
        transport._wake_batch = self._wake_batch
        early, self._early = self._early, b""
        self._upgrading = False
        self._queue.clear()
        # The connection is a WebSocket for good: no more HTTP to parse (the
        # parser took ~900 bytes per connection).
        del self._parser
        self._resume_reading()
        if early:
            # Frames that came with the handshake: after the protocol is set.
            self._loop.call_soon(self._ws_data, early)
        return transport

    # -- shutdown ---------------------------------------------------------------------

    @property
    def open_websockets(self) -> int:
        return 1 if self._ws is not None and not self._lost else 0

    async def shutdown(self, timeout: float) -> None:
        """Graceful shutdown: close 1001 on the WebSocket, or let the pending
        answers go out; close the connection; abort it after `timeout`."""
        if self._lost:
            return
        if self._ws is not None:
            self._ws.close(1001, "server shutting down")
        else:
            self._closing = True
            if not self._queue:
                self._close_transport()
        try:
            await asyncio.wait_for(asyncio.shield(self._closed), timeout)
        except asyncio.TimeoutError:
            if self._transport is not None:
                self._transport.abort()
