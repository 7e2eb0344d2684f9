"""The asyncio side of one HTTP/2 connection (server role).

``H2ServerProtocol`` is an ``asyncio.BufferedProtocol``: the kernel copies
received bytes into one preallocated buffer, the C core parses them and
returns every event of the read at once, and everything the core has to send
goes out in one ``transport.write`` per read (or per loop tick for sends from
tasks).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import _core
from ._readbuf import read_buffer
from .base import HTTPExchange, PendingWebSocket, ServerConnection
from .exceptions import ClientDisconnected, InvalidState, ProtocolError
from .http import Headers, Request, Response, pack_headers
from .websocket import Data, WakeBatch, WebSocketTransport

if TYPE_CHECKING:
    from .server import Server

__all__ = ["H2ServerProtocol"]

logger = logging.getLogger("h2ws.server")

SEV_REQUEST = _core.SEV_REQUEST
SEV_WEBSOCKET = _core.SEV_WEBSOCKET
SEV_BODY = _core.SEV_BODY
SEV_BODY_END = _core.SEV_BODY_END
SEV_TEXT = _core.SEV_TEXT
SEV_BINARY = _core.SEV_BINARY
SEV_PONG = _core.SEV_PONG
SEV_CLOSE = _core.SEV_CLOSE
SEV_WS_FAILED = _core.SEV_WS_FAILED
SEV_STREAM_END = _core.SEV_STREAM_END
SEV_RESUME_WRITING = _core.SEV_RESUME_WRITING
SEV_GOAWAY = _core.SEV_GOAWAY
SEV_PEER_ENDED = _core.SEV_PEER_ENDED


def _noop() -> None:
    pass


def request_from_h2(raw: list[tuple[bytes, bytes]]) -> Request:
    """Builds a Request from HTTP/2 request headers (pseudo-headers first)."""
    pseudo: dict[str, str] = {}
    regular: list[tuple[bytes, bytes]] = []
    for name, value in raw:
        if name[:1] == b":":
            pseudo[name.decode("latin-1")] = value.decode("latin-1")
        else:
            regular.append((name, value))
    return Request(
        path=pseudo.get(":path", ""),
        headers=Headers.from_raw(regular),
        method=pseudo.get(":method", ""),
        authority=pseudo.get(":authority", ""),
        scheme=pseudo.get(":scheme", ""),
        protocol=pseudo.get(":protocol"),
        http_version="2",
    )


class H2Peer(asyncio.BufferedProtocol):
    """What both ends of an HTTP/2 connection do: feed the C session, route
    WebSocket events to their transports, write once per read or loop tick,
    and carry the transports' commands (the _Carrier interface)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        conn: _core.H2Connection,
    ) -> None:
        self._loop = loop
        self._conn = conn
        self._view = read_buffer(loop)
        self._transport: asyncio.Transport | None = None
        self._streams: dict[int, WebSocketTransport] = {}
        self._flush_handle: asyncio.Handle | None = None
        # Stands in for _flush_handle while a read is being handled: the
        # read ends with a flush anyway, so nothing needs scheduling.
        self._reading_handle = asyncio.Handle(_noop, (), loop)
        self._wake_batch = WakeBatch(loop)
        self._write_paused = False
        self._lost = False

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        # The hot path: parse, dispatch every event of the read, resume the
        # handlers whose recv() got a message, then one write with all of it
        # (WINDOW_UPDATEs and the handlers' answers).
        conn = self._conn
        try:
            events = conn.receive_data(self._view[:nbytes])
        except ProtocolError as exc:
            logger.debug("connection error: %s", exc)
            self._flush()
            self._close_transport()
            return
        if events:
            batch = self._wake_batch
            if self._flush_handle is None:
                self._flush_handle = self._reading_handle
            batch.active = True
            try:
                self._dispatch(events)
            finally:
                batch.active = False
                if batch.waiters:
                    batch.run()
                if self._flush_handle is self._reading_handle:
                    self._flush_handle = None
        handle = self._flush_handle
        if handle is not None:
            self._flush_handle = None
            handle.cancel()  # a flush scheduled before this read: done now
        self._flush()

    def eof_received(self) -> bool | None:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        streams, self._streams = self._streams, {}
        for t in streams.values():
            t._on_ended()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._flush()

    def _dispatch(self, events: Sequence[tuple[Any, ...]]) -> None:
        streams = self._streams
        conn = self._conn
        for ev in events:
            kind = ev[0]
            if kind == SEV_TEXT or kind == SEV_BINARY:
                # The hot path, WebSocketTransport._on_message inlined: a
                # message for a stream that is reading.
                t = streams.get(ev[1])
                if t is None:
                    conn.consume(ev[1], ev[3])
                elif t._reading_paused:
                    t._on_message(ev[2], ev[3])
                else:
                    t._protocol.message_received(ev[2])
                    if t._reading_paused:
                        t._held_credit += ev[3]
                    else:
                        conn.consume(ev[1], ev[3])  # flushed after the dispatch
            elif kind == SEV_STREAM_END:
                t = streams.pop(ev[1], None)
                if t is not None:
                    t._on_ended()
                self._on_stream_end(ev[1], ev[2])
            elif kind == SEV_PONG:
                t = streams.get(ev[1])
                if t is not None:
                    t._on_pong(ev[2])
            elif kind == SEV_CLOSE:
                t = streams.get(ev[1])
                if t is not None:
                    t._on_peer_close(ev[2], ev[3])
            elif kind == SEV_WS_FAILED:
                t = streams.get(ev[1])
                if t is not None:
                    t._on_failed(ev[2], ev[3])
            elif kind == SEV_PEER_ENDED:
                pass  # the stream ends next; no close frame means 1006
            elif kind == SEV_RESUME_WRITING and ev[1] in streams:
                streams[ev[1]]._on_resume_writing()
            else:
                self._dispatch_other(ev)

    def _dispatch_other(self, ev: tuple[Any, ...]) -> None:
        """Events that are not about an open WebSocket (each role's own)."""

    def _on_stream_end(self, sid: int, code: int) -> None:
        """A stream closed (after its WebSocket, if any, was told)."""

    # -- output -------------------------------------------------------------------

    def _schedule_flush(self) -> None:
        if self._flush_handle is None and not self._lost:
            self._flush_handle = self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        if self._lost or self._transport is None:
            return
        conn = self._conn
        rounds = 16
        while not self._write_paused:
            try:
                data = conn.data_to_write()
            except ProtocolError:
                self._close_transport()
                return
            if data:
                if isinstance(data, bytes):
                    self._transport.write(data)
                else:
                    # Large messages by reference between their frame
                    # headers: one writev, no copy of the payload.
                    self._transport.writelines(data)
            if not conn.has_events:
                break
            self._dispatch(conn.events())
            rounds -= 1
            if not rounds:
                self._schedule_flush()
                break
        else:
            return
        if not conn.want_io:
            self._close_transport()

    def _close_transport(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    # -- what WebSocketTransport calls (the _Carrier interface) ------------------

    def _ws_send(self, sid: int, message: Data | bytearray | memoryview) -> bool:
        paused: bool = self._conn.send(sid, message)
        if self._flush_handle is None and not self._lost:
            self._flush_handle = self._loop.call_soon(self._flush)
        return paused

    def _ws_send_frame(self, sid: int, opcode: int, payload: bytes, fin: bool) -> bool:
        paused = bool(self._conn.send_frame(sid, opcode, payload, fin=fin))
        self._schedule_flush()
        return paused

    def _ws_close(self, sid: int, code: int | None, reason: str) -> None:
        try:
            self._conn.close(sid, code, reason)
        except InvalidState:
            pass  # already ending
        self._schedule_flush()

    def _ws_abort(self, sid: int) -> None:
        self._conn.reset(sid, 8)  # CANCEL
        self._schedule_flush()

    def _ws_consume(self, sid: int, credit: int) -> None:
        self._conn.consume(sid, credit)
        if self._flush_handle is None and not self._lost:
            self._flush_handle = self._loop.call_soon(self._flush)

    def _ws_extra_info(self, name: str, default: Any) -> Any:
        if name == "_buffered":
            return self._conn.buffered
        if name == "connection":
            return self
        if self._transport is None:
            return default
        return self._transport.get_extra_info(name, default)

    def _ws_write_paused(self) -> bool:
        return self._write_paused

    def _ws_pause_reading(self, sid: int, paused: bool) -> None:
        pass  # the stream's window does it: its credit is held while paused


class H2ServerProtocol(ServerConnection, H2Peer):
    """One HTTP/2 connection: WebSocket streams and plain requests."""

    http_version = "2"

    def __init__(self, server: Server) -> None:
        ServerConnection.__init__(self, server)
        cfg = server.config
        conn = _core.H2Connection(
            enable_connect_protocol=cfg.ws_over_h2,
            max_concurrent_streams=cfg.max_concurrent_streams,
            initial_window_size=cfg.initial_window_size,
            connection_window_size=cfg.connection_window_size,
            max_header_list_size=cfg.max_header_list_size,
            max_frame_size=cfg.max_frame_size,
            write_high_water=cfg.write_limit,
            max_message_size=cfg.max_message_size,
        )
        H2Peer.__init__(self, self._loop, conn)
        # The last request head, packed: the next one shares it when equal
        # (a client's streams usually send the same headers, as HPACK knows).
        self._last_head = b""
        self._pending: dict[int, PendingWebSocket] = {}  # WebSocket requests not yet answered
        self._http: dict[int, H2Exchange] = {}
        self._idle: asyncio.Future[None] | None = None

    # -- asyncio.BufferedProtocol --------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's are not subclasses
        self._server._register(self)
        if logger.isEnabledFor(logging.DEBUG):
            ssl_object = transport.get_extra_info("ssl_object")
            alpn = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
            logger.debug(
                "connection from %s: HTTP/2 (%s), RFC 8441 setting %s",
                transport.get_extra_info("peername"),
                f"ALPN {alpn}" if ssl_object is not None else "h2c prior knowledge",
                "sent" if self._server.config.ws_over_h2 else "not sent",
            )
        self._flush()  # our SETTINGS

    def connection_lost(self, exc: Exception | None) -> None:
        H2Peer.connection_lost(self, exc)
        for pending in self._pending.values():
            pending._set_gone()
        http_, self._http = self._http, {}
        for ex in http_.values():
            ex._on_closed(None)
        self._cancel_tasks()
        if self._idle is not None and not self._idle.done():
            self._idle.set_result(None)
        self._server._unregister(self)

    # -- events ----------------------------------------------------------------

    def _dispatch_other(self, ev: tuple[Any, ...]) -> None:
        kind = ev[0]
        if kind == SEV_WEBSOCKET:
            self._on_websocket_request(ev[1], ev[2])
        elif kind == SEV_REQUEST:
            self._on_http_request(ev[1], ev[2], ev[3])
        elif kind == SEV_BODY:
            ex = self._http.get(ev[1])
            if ex is not None:
                ex._on_body(ev[2], ev[3])
            else:
                self._conn.consume(ev[1], ev[3])
        elif kind == SEV_BODY_END:
            ex = self._http.get(ev[1])
            if ex is not None:
                ex._on_body_end()
        elif kind == SEV_RESUME_WRITING:
            ex = self._http.get(ev[1])
            if ex is not None:
                ex._wake()
        elif kind == SEV_GOAWAY:
            logger.debug("peer sent GOAWAY (last stream %s, error %s)", ev[1], ev[2])

    def _on_stream_end(self, sid: int, code: int) -> None:
        pending = self._pending.pop(sid, None)
        if pending is not None:
            pending._set_gone()
        ex = self._http.pop(sid, None)
        if ex is not None:
            ex._on_closed(code)
        if (
            not self._streams
            and not self._http
            and self._idle is not None
            and not self._idle.done()
        ):
            self._idle.set_result(None)

    def _request(self, raw: list[tuple[bytes, bytes]]) -> Request:
        """The Request of a stream's head, decoded when first read."""
        packed = pack_headers(raw)
        if packed is None:
            return request_from_h2(raw)
        if packed == self._last_head:
            packed = self._last_head
        else:
            self._last_head = packed
        return Request.from_h2(packed)

    def _on_websocket_request(self, sid: int, raw: list[tuple[bytes, bytes]]) -> None:
        pending = PendingWebSocket(self, sid, self._request(raw))
        self._pending[sid] = pending
        self._on_ws_request(pending)

    def _ws_do_accept(
        self, pending: PendingWebSocket, subprotocol: str | None, headers: list[tuple[str, str]]
    ) -> WebSocketTransport | None:
        sid = pending.key
        self._pending.pop(sid, None)
        if subprotocol:
            headers = [("sec-websocket-protocol", subprotocol), *headers]
        try:
            self._conn.accept(sid, headers)
        except InvalidState:
            return None
        transport = self._new_transport(sid, pending.request, subprotocol)
        transport._wake_batch = self._wake_batch
        self._streams[sid] = transport
        self._schedule_flush()
        return transport

    def _ws_do_reject(self, pending: PendingWebSocket, response: Response) -> None:
        self._pending.pop(pending.key, None)
        self._respond(pending.key, response)

    def _respond(self, sid: int, response: Response) -> None:
        try:
            if response.body:
                self._conn.respond(sid, response.status, response.headers)
                self._conn.send_body(sid, response.body, end_stream=True)
            else:
                self._conn.respond(sid, response.status, response.headers, end_stream=True)
        except InvalidState:
            pass  # the stream is gone
        self._schedule_flush()

    def _on_http_request(self, sid: int, raw: list[tuple[bytes, bytes]], end: bool) -> None:
        exchange = H2Exchange(self, sid, self._request(raw), end)
        self._http[sid] = exchange
        self._on_http_exchange(exchange)

    # -- shutdown ---------------------------------------------------------------

    @property
    def open_websockets(self) -> int:
        return len(self._streams)

    async def shutdown(self, timeout: float) -> None:
        """Graceful shutdown: close 1001 on every WebSocket, a GOAWAY notice,
        then the final GOAWAY once the streams ended (or after `timeout`)."""
        if self._lost:
            return
        for t in list(self._streams.values()):
            t.close(1001, "server shutting down")
        # The close frames go out before the GOAWAY (Firefox drops its
        # WebSockets at any GOAWAY, INTEROP.md); submitted together, nghttp2
        # would send the GOAWAY ahead of the queued DATA.
        self._flush()
        try:
            self._conn.shutdown_notice()
        except InvalidState:
            pass
        self._flush()
        if self._streams or self._pending or self._http:
            self._idle = self._loop.create_future()
            try:
                await asyncio.wait_for(asyncio.shield(self._idle), timeout)
            except asyncio.TimeoutError:
                for t in list(self._streams.values()):
                    t.abort()
        if not self._lost:
            try:
                self._conn.goaway(0)
            except InvalidState:
                pass
            self._flush()
            self._close_transport()


class H2Exchange(HTTPExchange):
    """A plain request on one HTTP/2 stream. The stream's window comes back
    as the application reads the body."""

    _gone_message = "the client reset the request"

    def __init__(self, proto: H2ServerProtocol, sid: int, request: Request, ended: bool) -> None:
        super().__init__(proto._loop, body_done=ended)
        self._proto = proto
        self._sid = sid
        self.request = request
        self._reset_code: int | None = None
        self._paused = False
        # RFC 9110 sections 9.3.2 and 15.3.5: no content after HEAD, 204, 304.
        self._bodiless = request.method == "HEAD"

    def _wake(self) -> None:
        self._paused = False
        super()._wake()

    def _on_body(self, data: bytes, credit: int) -> None:
        self._body.append((data, credit))
        self._wake()

    def _on_closed(self, code: int | None = None) -> None:
        self._reset_code = code
        super()._on_closed()

    def _body_taken(self, credit: int) -> None:
        self._proto._ws_consume(self._sid, credit)

    async def send_head(self, status: int, headers: list[tuple[str, str]], end: bool) -> None:
        if self._closed:
            raise ClientDisconnected("the stream is closed")
        if status in (204, 304):
            self._bodiless = True
        try:
            self._proto._conn.respond(self._sid, status, headers, end_stream=end or self._bodiless)
        except InvalidState as exc:
            raise ClientDisconnected("the stream is closed") from exc
        self._proto._schedule_flush()

    async def send_body(self, data: bytes, end: bool) -> None:
        if self._bodiless:
            return  # the response ended with its head
        if self._closed:
            raise ClientDisconnected("the stream is closed")
        try:
            paused = self._proto._conn.send_body(self._sid, data, end_stream=end)
        except InvalidState as exc:
            raise ClientDisconnected("the stream is closed") from exc
        self._proto._schedule_flush()
        if paused:
            self._paused = True
            while self._paused and not self._closed:
                await self._wait()

    def abort(self) -> None:
        if not self._closed:
            self._proto._conn.reset(self._sid, 2)  # INTERNAL_ERROR
            self._proto._schedule_flush()
