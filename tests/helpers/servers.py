"""Test plumbing: an h2ws server on a free loopback port, and a frame-level
HTTP/2 client on python-hyper ``h2`` (a peer nobody here wrote)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings

import h2ws
from h2ws import _core

from .certs import client_context, server_context


@dataclass
class Running:
    server: h2ws.Server
    host: str
    port: int
    tls: bool

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"


@contextlib.asynccontextmanager
async def running_server(
    handler: Any = None, *, tls: bool = False, **kwargs: Any
) -> AsyncIterator[Running]:
    """Starts ``h2ws.serve(handler, **kwargs)`` on 127.0.0.1 and a free port."""
    ctx = server_context() if tls else None
    async with h2ws.serve(handler, "127.0.0.1", 0, ssl=ctx, **kwargs) as server:
        port = server.sockets[0].getsockname()[1]
        yield Running(server, "127.0.0.1", port, tls)


def ws_request_headers(
    path: str = "/",
    *,
    authority: str = "127.0.0.1",
    scheme: str = "http",
    protocol: str | None = "websocket",
    version: str | None = "13",
    extra: Sequence[tuple[str, str]] = (),
) -> list[tuple[str, str]]:
    """Extended CONNECT request headers (RFC 8441 section 4)."""
    h = [(":method", "CONNECT")]
    if protocol is not None:
        h.append((":protocol", protocol))
    h += [(":scheme", scheme), (":path", path), (":authority", authority)]
    if version is not None:
        h.append(("sec-websocket-version", version))
    h += list(extra)
    return h


class H2Client:
    """A frame-level HTTP/2 client for tests, on python-hyper h2.

    Every received event is kept in ``events`` (in order) so tests can check
    frame-level choreography (END_STREAM, RST_STREAM...).
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        conn: h2.connection.H2Connection,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.conn = conn
        self.events: list[h2.events.Event] = []
        self.codecs: dict[int, _core.WebSocketCodec] = {}
        self.ws_events: dict[int, list[tuple[Any, ...]]] = {}
        self.auto_ack = True

    @classmethod
    async def connect(
        cls, host: str, port: int, *, tls: bool = False, settings: dict[int, int] | None = None
    ) -> H2Client:
        ssl = client_context() if tls else None
        reader, writer = await asyncio.open_connection(host, port, ssl=ssl)
        if tls:
            assert writer.get_extra_info("ssl_object").selected_alpn_protocol() == "h2"
        cfg = h2.config.H2Configuration(
            client_side=True,
            header_encoding=None,
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
        )
        conn = h2.connection.H2Connection(cfg)
        conn.initiate_connection()
        if settings:
            conn.update_settings(settings)
        client = cls(reader, writer, conn)
        client.flush()
        return client

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.writer.write(data)

    async def read(self, timeout: float = 5.0) -> list[h2.events.Event]:
        """Reads once; returns (and records) the events: [] at EOF, or when no
        whole frame came."""
        data = await asyncio.wait_for(self.reader.read(1 << 20), timeout)
        if not data:
            return []
        events = self.conn.receive_data(data)
        for ev in events:
            if isinstance(ev, h2.events.DataReceived):
                if self.auto_ack:
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                codec = self.codecs.get(ev.stream_id)
                if codec is not None:
                    self.ws_events.setdefault(ev.stream_id, []).extend(codec.receive_data(ev.data))
        self.events.extend(events)
        self.flush()
        return events

    async def until(self, predicate: Any, timeout: float = 5.0) -> None:
        """Reads until predicate(self) is true."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while not predicate(self):
            left = end - loop.time()
            if left <= 0:
                raise TimeoutError("condition not met")
            # [] also when the bytes read held no whole frame (TLS records
            # split frames): only EOF ends the wait early.
            if not await self.read(left) and self.reader.at_eof():
                if not predicate(self):
                    raise ConnectionError("connection closed")

    @property
    def remote_settings(self) -> h2.settings.Settings:
        return self.conn.remote_settings

    async def wait_settings(self) -> None:
        await self.until(
            lambda c: any(isinstance(e, h2.events.RemoteSettingsChanged) for e in c.events)
        )

    def request(self, headers: list[tuple[str, str]], end_stream: bool = False) -> int:
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, headers, end_stream=end_stream)
        self.flush()
        return sid

    def response(self, sid: int) -> h2.events.ResponseReceived | None:
        for e in self.events:
            if isinstance(e, h2.events.ResponseReceived) and e.stream_id == sid:
                return e
        return None

    def status(self, sid: int) -> int | None:
        r = self.response(sid)
        if r is None:
            return None
        return int(dict(r.headers)[b":status"])

    def reset_code(self, sid: int) -> int | None:
        for e in self.events:
            if isinstance(e, h2.events.StreamReset) and e.stream_id == sid:
                return int(e.error_code)
        return None

    def ended(self, sid: int) -> bool:
        return any(isinstance(e, h2.events.StreamEnded) and e.stream_id == sid for e in self.events)

    async def open_websocket(self, path: str = "/", **kw: Any) -> int:
        """Sends an extended CONNECT and waits for the 200."""
        await self.wait_settings()
        sid = self.conn.get_next_available_stream_id()
        # The codec exists before the request: DATA may come with the 200.
        self.codecs[sid] = _core.WebSocketCodec(client=True)
        assert self.request(ws_request_headers(path, **kw)) == sid
        await self.until(lambda c: c.response(sid) is not None or c.reset_code(sid) is not None)
        assert self.status(sid) == 200, (self.status(sid), self.reset_code(sid))
        return sid

    def ws_send(self, sid: int, message: str | bytes, end_stream: bool = False) -> None:
        codec = self.codecs[sid]
        codec.send(message)
        self.conn.send_data(sid, codec.data_to_send(), end_stream=end_stream)
        self.flush()

    def ws_send_raw(self, sid: int, data: bytes, end_stream: bool = False) -> None:
        self.conn.send_data(sid, data, end_stream=end_stream)
        self.flush()

    def ws_close(
        self, sid: int, code: int | None = 1000, reason: str = "", end_stream: bool = True
    ) -> None:
        codec = self.codecs[sid]
        codec.close(code, reason)
        self.conn.send_data(sid, codec.data_to_send(), end_stream=end_stream)
        self.flush()

    def messages(self, sid: int) -> list[tuple[Any, ...]]:
        return self.ws_events.get(sid, [])

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()
