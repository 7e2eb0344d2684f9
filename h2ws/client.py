"""``connect()``: a WebSocket client that opens its WebSockets as HTTP/2
streams (RFC 8441) when the server offers it, and falls back to HTTP/1.1.

    async with h2ws.connect("wss://example.com/chat") as ws:
        await ws.send("hello")
        print(await ws.recv(), ws.http_version)

Concurrent ``connect()`` calls to one origin share one HTTP/2 connection (a
pool keyed by scheme, host, port and TLS context), within the server's
SETTINGS_MAX_CONCURRENT_STREAMS.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import logging
import os
import ssl as ssl_module
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httptools

from . import _core
from ._opener import AsyncOpener
from ._readbuf import read_buffer
from .exceptions import InvalidHandshake, InvalidStatus
from .h1ws import H1WebSocketCarrier
from .http import Headers, Request, Response
from .protocol import H2Peer
from .websocket import WakeBatch, WebSocket, WebSocketTransport

__all__ = ["connect", "ClientConfig", "ConnectionPool"]

logger = logging.getLogger("h2ws.client")

SEV_SETTINGS = _core.SEV_SETTINGS
SEV_RESPONSE = _core.SEV_RESPONSE
SEV_BODY = _core.SEV_BODY
SEV_BODY_END = _core.SEV_BODY_END
SEV_GOAWAY = _core.SEV_GOAWAY
MAX_ERROR_BODY = 64 * 1024
REFUSED_STREAM = 7
#: Attempts at a stream the server refused unprocessed (REFUSED_STREAM).
OPEN_ATTEMPTS = 3
_DROP = {
    "connection",
    "upgrade",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "host",
    "sec-websocket-key",
    "sec-websocket-version",
}


@dataclass
class ClientConfig:
    """Keyword options of ``connect()`` (sizes in bytes, times in seconds)."""

    max_message_size: int | None = 1 << 20
    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    close_timeout: float = 10.0
    open_timeout: float | None = 10.0
    write_limit: int = 64 * 1024
    initial_window_size: int = 256 * 1024
    connection_window_size: int = 8 * 1024 * 1024
    max_header_list_size: int = 16 * 1024
    #: When an HTTP/2 connection has as many streams as the server allows:
    #: "new" opens another connection, "wait" waits for a stream to end.
    max_streams_policy: str = "new"


@dataclass
class _Target:
    secure: bool
    host: str
    port: int
    resource: str
    authority: str


def _parse(uri: str) -> _Target:
    parts = urlsplit(uri)
    if parts.scheme not in ("ws", "wss"):
        raise ValueError(f"not a WebSocket URI (ws:// or wss://): {uri!r}")
    if not parts.hostname:
        raise ValueError(f"no host in {uri!r}")
    secure = parts.scheme == "wss"
    port = parts.port or (443 if secure else 80)
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host = parts.hostname
    shown = f"[{host}]" if ":" in host else host
    default = (secure and port == 443) or (not secure and port == 80)
    return _Target(secure, host, port, resource, shown if default else f"{shown}:{port}")


def _common_headers(
    subprotocols: Sequence[str] | None,
    origin: str | None,
    additional: Sequence[tuple[str, str]] | dict[str, str] | None,
) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    if origin is not None:
        headers.append(("origin", origin))
    if subprotocols:
        headers.append(("sec-websocket-protocol", ", ".join(subprotocols)))
    items = additional.items() if isinstance(additional, dict) else (additional or ())
    for name, value in items:
        if name.lower() not in _DROP:
            headers.append((name.lower(), value))
    return headers


def _check_subprotocol(headers: Headers, offered: Sequence[str] | None) -> str | None:
    chosen = headers.get_all("sec-websocket-protocol")
    if not chosen:
        return None
    if len(chosen) != 1 or chosen[0].strip() not in (offered or ()):
        raise InvalidHandshake(f"the server chose a subprotocol that was not offered: {chosen}")
    return chosen[0].strip()


def _new_transport(
    carrier: H2ClientConnection | H1ClientProtocol,
    sid: int,
    request: Request,
    subprotocol: str | None,
    http_version: str,
    cfg: ClientConfig,
    wake_batch: WakeBatch,
) -> WebSocketTransport:
    """The transport of an accepted WebSocket; its recv() waiters resume
    right after the carrier's read (`wake_batch`)."""
    transport = WebSocketTransport(
        carrier,
        sid,
        request,
        subprotocol,
        http_version,
        loop=carrier._loop,
        close_timeout=cfg.close_timeout,
        ping_interval=cfg.ping_interval,
        ping_timeout=cfg.ping_timeout,
    )
    transport._wake_batch = wake_batch
    return transport


def _start(transport: WebSocketTransport) -> WebSocket:
    ws = WebSocket()
    transport.set_protocol(ws)
    ws.connection_made(transport)
    transport._start_keepalive()
    return ws


# -- HTTP/2 ---------------------------------------------------------------------------


@dataclass
class _Opening:
    request: Request
    offered: Sequence[str] | None
    future: asyncio.Future[WebSocket]
    status: int = 0
    headers: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    body: bytearray = dataclasses.field(default_factory=bytearray)


class H2ClientConnection(H2Peer):
    """One HTTP/2 connection of the client, carrying WebSocket streams."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        cfg: ClientConfig,
        pool: ConnectionPool | None,
        key: Any,
    ) -> None:
        conn = _core.H2Connection(
            client=True,
            initial_window_size=cfg.initial_window_size,
            connection_window_size=cfg.connection_window_size,
            max_header_list_size=cfg.max_header_list_size,
            write_high_water=cfg.write_limit,
            max_message_size=cfg.max_message_size,
        )
        super().__init__(loop, conn)
        self.cfg = cfg
        self.pool = pool
        self.key = key
        self.settings: asyncio.Future[None] = loop.create_future()
        self.enable_connect_protocol = False
        self.max_streams = 100
        self.goaway = False
        self.reserved = 0  # connect() calls that picked this connection
        self._opening: dict[int, _Opening] = {}
        self.closed: asyncio.Future[None] = loop.create_future()

    # -- asyncio ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._flush()  # preface and SETTINGS

    def buffer_updated(self, nbytes: int) -> None:
        if not self.settings.done() and bytes(self._view[:5]) == b"HTTP/":
            # An HTTP/1.x answer to our preface (h2c prior knowledge).
            self.settings.set_exception(_NotH2("the server answered in HTTP/1.x"))
            self._close_transport()
            return
        super().buffer_updated(nbytes)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        error = ConnectionError("the HTTP/2 connection closed")
        if not self.settings.done():
            self.settings.set_exception(error)
            self.settings.exception()
        for opening in self._opening.values():
            if not opening.future.done():
                opening.future.set_exception(error)
        self._opening.clear()
        if not self.closed.done():
            self.closed.set_result(None)
        if self.pool is not None:
            self.pool._discard(self)

    # -- events ---------------------------------------------------------------------

    def _dispatch_other(self, ev: tuple[Any, ...]) -> None:
        kind = ev[0]
        if kind == SEV_RESPONSE:
            self._on_response(ev[1], ev[2], ev[3], bool(ev[4]))
        elif kind == SEV_SETTINGS:
            self.enable_connect_protocol = bool(ev[2])
            self.max_streams = min(int(ev[3]), 1 << 30)
            if not self.settings.done():
                self.settings.set_result(None)
            if self.pool is not None:
                self.pool._changed()
        elif kind == SEV_BODY:
            self._conn.consume(ev[1], ev[3])
            opening = self._opening.get(ev[1])
            if opening is not None and len(opening.body) < MAX_ERROR_BODY:
                opening.body += ev[2][: MAX_ERROR_BODY - len(opening.body)]
        elif kind == SEV_BODY_END:
            self._refused(ev[1])
        elif kind == SEV_GOAWAY:
            self.goaway = True
            if self.pool is not None:
                self.pool._changed()

    def _on_response(
        self, sid: int, status: int, raw: list[tuple[bytes, bytes]], opened: bool
    ) -> None:
        opening = self._opening.get(sid)
        if opening is None:
            return
        headers = Headers.from_raw([(k, v) for k, v in raw if not k.startswith(b":")])
        opening.status = status
        opening.headers = headers.items()
        if not opened and not 200 <= status < 300:
            return  # the body follows, then _refused
        del self._opening[sid]
        try:
            if not opened:
                # RFC 8441 section 5: the tunnel is the rest of the stream.
                raise InvalidHandshake(f"the server's {status} opened no tunnel")
            subprotocol = _check_subprotocol(headers, opening.offered)
        except InvalidHandshake as exc:
            self._conn.reset(sid, 8)
            self._schedule_flush()
            opening.future.set_exception(exc)
            return
        transport = _new_transport(
            self, sid, opening.request, subprotocol, "2", self.cfg, self._wake_batch
        )
        transport.response = Response(status, headers.items())
        # Registered now: DATA may follow the 200 in the same read.
        self._streams[sid] = transport
        opening.future.set_result(_start(transport))

    def _refused(self, sid: int) -> None:
        opening = self._opening.pop(sid, None)
        if opening is not None and not opening.future.done():
            opening.future.set_exception(
                InvalidStatus(opening.status, opening.headers, bytes(opening.body))
            )
            self._conn.reset(sid, 8)
            self._schedule_flush()

    def _on_stream_end(self, sid: int, code: int) -> None:
        opening = self._opening.pop(sid, None)
        if opening is not None and not opening.future.done():
            if opening.status:
                opening.future.set_exception(
                    InvalidStatus(opening.status, opening.headers, bytes(opening.body))
                )
            elif code == REFUSED_STREAM:
                # Above a GOAWAY's last stream id, or over the stream limit:
                # never processed, safe to retry (RFC 9113 section 8.7).
                opening.future.set_exception(_Unprocessed("the server refused the stream"))
            else:
                opening.future.set_exception(
                    ConnectionRefusedError(f"the server reset the stream (HTTP/2 error {code})")
                )
        if self.pool is not None:
            self.pool._changed()

    # -- opening ---------------------------------------------------------------------

    @property
    def active(self) -> int:
        return len(self._streams) + len(self._opening) + self.reserved

    @property
    def usable(self) -> bool:
        return not self.goaway and not self._lost and self.enable_connect_protocol

    async def open(
        self, target: _Target, headers: list[tuple[str, str]], offered: Sequence[str] | None
    ) -> WebSocket:
        request_headers = [
            (":method", "CONNECT"),
            (":protocol", "websocket"),
            (":scheme", "https" if target.secure else "http"),
            (":path", target.resource),
            (":authority", target.authority),
            ("sec-websocket-version", "13"),
            *headers,
        ]
        sid = self._conn.connect_websocket(request_headers)
        future: asyncio.Future[WebSocket] = self._loop.create_future()
        request = Request(
            path=target.resource,
            headers=Headers(headers),
            method="CONNECT",
            authority=target.authority,
            scheme="https" if target.secure else "http",
            protocol="websocket",
            http_version="2",
        )
        self._opening[sid] = _Opening(request, offered, future)
        self._schedule_flush()
        try:
            return await future
        except asyncio.CancelledError:
            if self._opening.pop(sid, None) is not None:
                self._conn.reset(sid, 8)
                self._schedule_flush()
            raise

    def close(self) -> None:
        if not self._lost:
            try:
                self._conn.goaway(0)
            except Exception:  # noqa: BLE001 - closing anyway
                pass
            self._flush()
            self._close_transport()


class ConnectionPool:
    """HTTP/2 connections by origin, shared by ``connect()`` calls."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._conns: dict[Any, list[H2ClientConnection]] = {}
        self._no_h2: set[Any] = set()  # origins that did not offer RFC 8441
        self._change: asyncio.Event = asyncio.Event()
        self._contexts: dict[str, ssl_module.SSLContext] = {}

    def default_context(self, alpn: str) -> ssl_module.SSLContext:
        """The default TLS context for HTTP/2 attempts ("h2") or HTTP/1.1
        ("h1"); one of each per pool, so that connections can be shared."""
        ctx = self._contexts.get(alpn)
        if ctx is None:
            ctx = self._contexts[alpn] = ssl_module.create_default_context()
        return ctx

    def connections(self, key: Any) -> list[H2ClientConnection]:
        return list(self._conns.get(key, ()))

    def _discard(self, conn: H2ClientConnection) -> None:
        conns = self._conns.get(conn.key)
        if conns is not None and conn in conns:
            conns.remove(conn)
            if not conns:
                del self._conns[conn.key]
        self._changed()

    def _changed(self) -> None:
        self._change.set()
        self._change = asyncio.Event()
        self.loop.call_soon(self._close_idle)

    def _close_idle(self) -> None:
        for conns in list(self._conns.values()):
            for conn in list(conns):
                if conn.settings.done() and conn.active == 0:
                    self._discard(conn)
                    conn.close()

    async def acquire(
        self,
        key: Any,
        target: _Target,
        ctx: ssl_module.SSLContext | None,
        cfg: ClientConfig,
        prior_knowledge: bool,
    ) -> H2ClientConnection | None:
        """A connection with room for one more stream (reserved for the
        caller), or None when this origin does not offer RFC 8441."""
        while True:
            if key in self._no_h2:
                if prior_knowledge:
                    raise InvalidHandshake("no WebSockets over HTTP/2 here (seen before)")
                return None
            conns = self._conns.setdefault(key, [])
            waiting_on: H2ClientConnection | None = None
            for conn in conns:
                if not conn.settings.done():
                    waiting_on = conn
                    continue
                if conn.usable and conn.active < conn.max_streams:
                    conn.reserved += 1
                    return conn
            if waiting_on is not None:
                try:
                    await asyncio.shield(waiting_on.settings)
                except (ConnectionError, _NotH2):
                    pass  # its opener decides what the origin offers
                continue
            usable = [c for c in conns if c.usable]
            if usable and cfg.max_streams_policy == "wait":
                await self._change.wait()
                continue
            conn = H2ClientConnection(self.loop, cfg, self, key)
            conns.append(conn)
            try:
                await _open_transport(
                    lambda c=conn: c, target, ctx, ["h2", "http/1.1"] if ctx else None
                )
                if ctx is not None:
                    ssl_object = (
                        conn._transport.get_extra_info("ssl_object") if conn._transport else None
                    )
                    if ssl_object is None or ssl_object.selected_alpn_protocol() != "h2":
                        raise _NotH2("the server chose HTTP/1.1 by ALPN")
                await conn.settings
                if not conn.enable_connect_protocol:
                    raise _NotH2("the server did not advertise SETTINGS_ENABLE_CONNECT_PROTOCOL")
            except _NotH2 as exc:
                logger.debug("%s:%s: no WebSockets over HTTP/2: %s", target.host, target.port, exc)
                self._no_h2.add(key)
                self._discard(conn)
                conn.close()
                if prior_knowledge:
                    raise InvalidHandshake(f"no WebSockets over HTTP/2 here: {exc}") from None
                return None
            except BaseException:
                self._discard(conn)
                conn.close()
                raise
            self._changed()


class _NotH2(Exception):
    pass


class _Unprocessed(ConnectionRefusedError):
    """The server refused the stream without processing it."""


async def _open_transport(
    factory: Any, target: _Target, ctx: ssl_module.SSLContext | None, alpn: list[str] | None
) -> None:
    loop = asyncio.get_running_loop()
    if ctx is not None and alpn is not None:
        ctx.set_alpn_protocols(alpn)
    await loop.create_connection(
        factory,
        target.host,
        target.port,
        ssl=ctx,
        server_hostname=target.host if ctx is not None else None,
    )


_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ConnectionPool] = (
    weakref.WeakKeyDictionary()
)


def default_pool() -> ConnectionPool:
    """The pool of the running event loop."""
    loop = asyncio.get_running_loop()
    pool = _pools.get(loop)
    if pool is None:
        pool = _pools[loop] = ConnectionPool(loop)
    return pool


# -- HTTP/1.1 ----------------------------------------------------------------------------


class H1ClientProtocol(H1WebSocketCarrier, asyncio.BufferedProtocol):
    """An HTTP/1.1 Upgrade (RFC 6455 section 4.1), then the codec."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        cfg: ClientConfig,
        target: _Target,
        headers: list[tuple[str, str]],
        offered: Sequence[str] | None,
    ) -> None:
        self._loop = loop
        self.cfg = cfg
        self._target = target
        self._headers = headers
        self._offered = offered
        self._key = base64.b64encode(os.urandom(16)).decode()
        self._view = read_buffer(loop)
        self._transport: asyncio.Transport | None = None
        self._codec: _core.WebSocketCodec | None = None
        self._ws: WebSocketTransport | None = None
        self._lost = False
        self._write_paused = False
        self._write_limit = cfg.write_limit
        self._closes_first = False  # the server closes TCP first (RFC 6455 §7.1.1)
        self._init_carrier()
        self._parser = httptools.HttpResponseParser(self)
        self._raw: list[tuple[bytes, bytes]] = []
        self._body = bytearray()
        self.opened: asyncio.Future[WebSocket] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        assert self._transport is not None
        self._transport.set_write_buffer_limits(high=self.cfg.write_limit)
        t = self._target
        lines = [
            f"GET {t.resource} HTTP/1.1",
            f"Host: {t.authority}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {self._key}",
            "Sec-WebSocket-Version: 13",
            *(f"{name}: {value}" for name, value in self._headers),
        ]
        self._transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def _http_received(self, nbytes: int) -> None:
        data = bytes(self._view[:nbytes])
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._upgraded(data[int(exc.args[0]) :])
        except httptools.HttpParserError as exc:
            self._fail(InvalidHandshake(f"malformed HTTP response: {exc}"))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._raw.append((name, value))

    def on_body(self, body: bytes) -> None:
        if len(self._body) < MAX_ERROR_BODY:
            self._body += body[: MAX_ERROR_BODY - len(self._body)]

    def on_message_complete(self) -> None:
        if self._parser.should_upgrade():
            return  # HttpParserUpgrade follows
        status = self._parser.get_status_code()
        if status == 101:
            # httptools upgrades only with both Upgrade and Connection: Upgrade.
            self._fail(InvalidHandshake("the 101 lacks Upgrade: websocket or Connection: Upgrade"))
            return
        self._fail(InvalidStatus(status, Headers.from_raw(self._raw).items(), bytes(self._body)))

    def _fail(self, exc: Exception) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc)
        self._close_transport()

    def _upgraded(self, rest: bytes) -> None:
        status = self._parser.get_status_code()
        headers = Headers.from_raw(self._raw)
        try:
            if status != 101:
                raise InvalidStatus(status, headers.items(), b"")
            if "websocket" not in [v.strip().lower() for v in headers.get_all("upgrade")]:
                raise InvalidHandshake("the 101 lacks Upgrade: websocket")
            tokens = [
                t.strip().lower() for v in headers.get_all("connection") for t in v.split(",")
            ]
            if "upgrade" not in tokens:
                raise InvalidHandshake("the 101 lacks Connection: Upgrade")
            expected = _core.websocket_accept(self._key.encode())
            if headers.get_all("sec-websocket-accept") != [expected]:
                raise InvalidHandshake("wrong Sec-WebSocket-Accept")
            subprotocol = _check_subprotocol(headers, self._offered)
        except InvalidHandshake as exc:
            self._fail(exc)
            return
        cfg = self.cfg
        self._codec = _core.WebSocketCodec(client=True, max_message_size=cfg.max_message_size)
        t = self._target
        request = Request(
            path=t.resource,
            headers=Headers(self._headers),
            method="GET",
            authority=t.authority,
            scheme="https" if t.secure else "http",
            http_version="1.1",
        )
        self._ws = transport = _new_transport(
            self, 0, request, subprotocol, "1.1", cfg, self._wake_batch
        )
        transport.response = Response(101, headers.items())
        self.opened.set_result(_start(transport))
        if rest:
            self._ws_data(rest)

    def eof_received(self) -> bool | None:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._carrier_lost()
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("the server closed the connection"))
            self.opened.exception()

    def _pause_reading(self) -> None:
        if self._transport is not None:
            self._transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._transport is not None and not self._lost:
            self._transport.resume_reading()


# -- connect() -----------------------------------------------------------------------------


class connect(AsyncOpener[WebSocket]):  # noqa: N801 - used like a function, as in websockets
    """Opens a WebSocket: ``ws = await connect(uri)`` or ``async with connect(uri) as ws``.

    ``wss://`` offers ALPN ``h2, http/1.1``. With ``http2="auto"`` the
    WebSocket rides an HTTP/2 stream when the server advertises
    SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441 section 3), else a new
    HTTP/1.1 connection; ``http2=True`` requires HTTP/2 and also allows h2c
    with prior knowledge on ``ws://``; ``http2=False`` always uses HTTP/1.1.
    Returns the same ``h2ws.WebSocket`` as the server side
    (``ws.http_version`` tells which carried it; ``ws.response`` has the
    server's answer). Raises ``InvalidStatus`` when the server refuses,
    ``InvalidHandshake`` for a wrong answer, ``TimeoutError`` after
    ``open_timeout``, ``OSError`` when the connection fails.
    """

    def __init__(
        self,
        uri: str,
        *,
        ssl: ssl_module.SSLContext | bool | None = None,
        subprotocols: Sequence[str] | None = None,
        additional_headers: Sequence[tuple[str, str]] | dict[str, str] | None = None,
        origin: str | None = None,
        http2: bool | str = "auto",
        pool: ConnectionPool | None = None,
        config: ClientConfig | None = None,
        **kwargs: Any,
    ) -> None:
        fields = {f.name for f in dataclasses.fields(ClientConfig)}
        unknown = set(kwargs) - fields
        if unknown:
            raise TypeError(f"unknown connect() options: {sorted(unknown)}")
        if http2 not in (True, False, "auto"):
            raise ValueError('http2 must be True, False or "auto"')
        self.uri = uri
        self.cfg = dataclasses.replace(config or ClientConfig(), **kwargs)
        self.ssl = ssl
        self.subprotocols = list(subprotocols) if subprotocols else None
        self.additional_headers = additional_headers
        self.origin = origin
        self.http2 = http2
        self.pool = pool
        self.ws: WebSocket | None = None

    def _context(
        self, target: _Target, pool: ConnectionPool, alpn: str
    ) -> ssl_module.SSLContext | None:
        if not target.secure:
            if self.ssl not in (None, False):
                raise ValueError("ssl= is for wss:// URIs")
            return None
        if isinstance(self.ssl, ssl_module.SSLContext):
            return self.ssl
        return pool.default_context(alpn)

    async def _connect(self) -> WebSocket:
        target = _parse(self.uri)
        pool = self.pool or default_pool()
        headers = _common_headers(self.subprotocols, self.origin, self.additional_headers)
        use_h2 = self.http2 is True or (self.http2 == "auto" and target.secure)
        if use_h2:
            ctx = self._context(target, pool, "h2")
            key = (target.secure, target.host, target.port, id(ctx) if ctx else None)
            for attempt in range(1, OPEN_ATTEMPTS + 1):
                conn = await pool.acquire(
                    key, target, ctx, self.cfg, prior_knowledge=self.http2 is True
                )
                if conn is None:
                    break
                try:
                    return await conn.open(target, headers, self.subprotocols)
                except _Unprocessed:
                    if attempt == OPEN_ATTEMPTS:
                        raise
                    # After a GOAWAY the pool picks another connection.
                finally:
                    conn.reserved -= 1
                    pool._changed()
        ctx = self._context(target, pool, "h1")
        loop = asyncio.get_running_loop()
        protocol = H1ClientProtocol(loop, self.cfg, target, headers, self.subprotocols)
        await _open_transport(lambda: protocol, target, ctx, ["http/1.1"] if ctx else None)
        try:
            return await protocol.opened
        except BaseException:
            # Cancelled or timed out mid-handshake: no connection is left behind.
            protocol._close_transport()
            raise

    async def _open(self) -> WebSocket:
        timeout = self.cfg.open_timeout
        ws = await (asyncio.wait_for(self._connect(), timeout) if timeout else self._connect())
        self.ws = ws
        return ws

    async def _close(self, opened: WebSocket) -> None:
        await opened.close()


if __name__ == "__main__":  # python -m h2ws.client URI (see h2ws/client_cli.py)
    from .client_cli import main

    raise SystemExit(main())
