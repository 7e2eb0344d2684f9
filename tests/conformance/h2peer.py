"""Helpers shared by the frame-level RFC 8441 modules (test_rfc8441.py,
test_h2_close.py): an echo server with an H2Client on it, and readers of
what the client recorded (WebSocket frames as they were on the wire, close
frames, resets, the order of events).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
import struct
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import h2.connection
import h2.errors
import h2.events
import h2.settings
from helpers.certs import client_context
from helpers.servers import H2Client, Running, running_server, ws_request_headers

from h2ws import ConnectionClosed, WebSocket, _core

PROTOCOL_ERROR = int(h2.errors.ErrorCodes.PROTOCOL_ERROR)
REFUSED_STREAM = int(h2.errors.ErrorCodes.REFUSED_STREAM)
CANCEL = int(h2.errors.ErrorCodes.CANCEL)
NO_ERROR = int(h2.errors.ErrorCodes.NO_ERROR)

ENABLE_CONNECT_PROTOCOL = 0x8
MAX_CONCURRENT_STREAMS = 0x3
INITIAL_WINDOW_SIZE = 0x4
MAX_HEADER_LIST_SIZE = 0x6

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


async def echo(ws: WebSocket) -> None:
    async for message in ws:
        await ws.send(message)


@dataclass
class Recorder:
    """An echo handler that keeps, per request path, the WebSocket and the
    ConnectionClosed its recv() raised."""

    sockets: dict[str, WebSocket] = field(default_factory=dict)
    closed: dict[str, ConnectionClosed] = field(default_factory=dict)
    _waiters: dict[str, asyncio.Future[ConnectionClosed]] = field(default_factory=dict)

    def _future(self, path: str) -> asyncio.Future[ConnectionClosed]:
        if path not in self._waiters:
            self._waiters[path] = asyncio.get_running_loop().create_future()
        return self._waiters[path]

    async def __call__(self, ws: WebSocket) -> None:
        path = ws.request.path
        self.sockets[path] = ws
        try:
            while True:
                await ws.send(await ws.recv())
        except ConnectionClosed as exc:
            self.closed[path] = exc
            fut = self._future(path)
            if not fut.done():
                fut.set_result(exc)
            raise

    async def raised(self, path: str, timeout: float = 5.0) -> ConnectionClosed:
        """What recv() raised on the WebSocket opened at `path`."""
        return await asyncio.wait_for(asyncio.shield(self._future(path)), timeout)


@contextlib.asynccontextmanager
async def serving(
    handler: Any = echo, *, tls: bool = False, settings: dict[int, int] | None = None, **kw: Any
) -> AsyncIterator[tuple[Running, H2Client]]:
    """An h2ws server and one H2Client connected to it (server SETTINGS read)."""
    async with running_server(handler, tls=tls, **kw) as srv:
        client = await H2Client.connect(srv.host, srv.port, tls=tls, settings=settings)
        try:
            await client.wait_settings()
            yield srv, client
        finally:
            await client.close()


def scheme(client_or_tls: H2Client | bool) -> str:
    tls = (
        client_or_tls
        if isinstance(client_or_tls, bool)
        else client_or_tls.writer.get_extra_info("ssl_object") is not None
    )
    return "https" if tls else "http"


async def open_ws(client: H2Client, path: str = "/", **kw: Any) -> int:
    """An extended CONNECT with the scheme matching the transport; waits for the 200."""
    kw.setdefault("scheme", scheme(client))
    return await client.open_websocket(path, **kw)


def request(client: H2Client, headers: list[tuple[str, str]], end_stream: bool = False) -> int:
    """Sends request HEADERS as given (h2's outbound checks are off)."""
    return client.request(headers, end_stream=end_stream)


def ws_headers(client: H2Client, path: str = "/", **kw: Any) -> list[tuple[str, str]]:
    kw.setdefault("scheme", scheme(client))
    return ws_request_headers(path, **kw)


async def answer(client: H2Client, sid: int, timeout: float = 5.0) -> None:
    """Waits for the response HEADERS or a RST_STREAM on `sid`."""
    await client.until(
        lambda c: c.response(sid) is not None or c.reset_code(sid) is not None, timeout
    )


async def until_ended(client: H2Client, sid: int, timeout: float = 5.0) -> None:
    """Waits for END_STREAM or RST_STREAM on `sid`."""
    await client.until(lambda c: c.ended(sid) or c.reset_code(sid) is not None, timeout)


async def settle(client: H2Client, delay: float = 0.15) -> None:
    """Keeps reading for `delay` seconds, so that late frames (a stray
    RST_STREAM) get recorded."""
    loop = asyncio.get_running_loop()
    end = loop.time() + delay
    while (left := end - loop.time()) > 0:
        try:
            if not await client.read(left):
                return
        except (TimeoutError, asyncio.TimeoutError):
            return


def response_headers(client: H2Client, sid: int) -> list[tuple[str, str]]:
    r = client.response(sid)
    assert r is not None, f"no response on stream {sid}"
    return [(k.decode(), v.decode()) for k, v in r.headers]


def header_names(client: H2Client, sid: int) -> set[str]:
    return {k for k, _ in response_headers(client, sid)}


def body(client: H2Client, sid: int) -> bytes:
    return b"".join(
        e.data
        for e in client.events
        if isinstance(e, h2.events.DataReceived) and e.stream_id == sid
    )


def ws_messages(client: H2Client, sid: int) -> list[Any]:
    """Text and binary messages received on `sid`."""
    return [e[1] for e in client.messages(sid) if e[0] in (_core.EV_TEXT, _core.EV_BINARY)]


def ws_closes(client: H2Client, sid: int) -> list[tuple[int, str]]:
    """Close frames received on `sid`, as (code, reason)."""
    return [(e[1], e[2]) for e in client.messages(sid) if e[0] == _core.EV_CLOSE]


def ws_errors(client: H2Client, sid: int) -> list[tuple[Any, ...]]:
    return [e for e in client.messages(sid) if e[0] == _core.EV_ERROR]


async def wait_close(client: H2Client, sid: int, timeout: float = 5.0) -> tuple[int, str]:
    await client.until(lambda c: ws_closes(c, sid) or c.reset_code(sid) is not None, timeout)
    assert client.reset_code(sid) is None, f"stream {sid} reset: {client.reset_code(sid)}"
    return ws_closes(client, sid)[0]


async def echo_ok(client: H2Client, sid: int, message: str | bytes = "hello") -> None:
    """Sends a message on `sid` and waits for it to come back."""
    before = len(ws_messages(client, sid))
    client.ws_send(sid, message)
    await client.until(lambda c: len(ws_messages(c, sid)) > before)
    assert ws_messages(client, sid)[before] == message


def ws_send_chunked(client: H2Client, sid: int, message: str | bytes) -> None:
    """Sends a message whose frame may exceed one DATA frame (16,384 bytes)."""
    codec = client.codecs[sid]
    codec.send(message)
    data = codec.data_to_send()
    step = client.conn.max_outbound_frame_size
    for i in range(0, len(data), step):
        client.conn.send_data(sid, data[i : i + step])
    client.flush()


async def echo_big_ok(client: H2Client, sid: int, message: str | bytes) -> None:
    before = len(ws_messages(client, sid))
    ws_send_chunked(client, sid, message)
    await client.until(lambda c: len(ws_messages(c, sid)) > before)
    assert ws_messages(client, sid)[before] == message


def reply_close(client: H2Client, sid: int, code: int | None, end_stream: bool = True) -> None:
    """Answers the server's close frame (echoing its code), as RFC 6455 §5.5.1 asks."""
    client.ws_close(sid, code, end_stream=end_stream)


def wire_frames(client: H2Client, sid: int) -> Iterator[tuple[bool, int, int, bool, bytes]]:
    """The WebSocket frames the server wrote on `sid`, as (fin, rsv, opcode,
    masked, payload), parsed from the raw DATA bytes (not through a codec)."""
    buf = body(client, sid)
    while buf:
        parsed = _core.parse_frame_header(buf)
        assert parsed is not None, "truncated frame"
        fin, rsv, opcode, masked, key, length, size = parsed
        payload = buf[size : size + length]
        assert len(payload) == length, "truncated frame"
        if masked and key is not None:
            payload = _core.mask(payload, key)
        yield fin, rsv, opcode, masked, payload
        buf = buf[size + length :]


def event_index(client: H2Client, predicate: Any) -> int:
    """The index in client.events of the first event matching `predicate`."""
    for i, e in enumerate(client.events):
        if predicate(e):
            return i
    raise AssertionError("no such event")


def close_frame_index(client: H2Client, sid: int) -> int:
    """The index in client.events of the DATA event that completed the
    server's close frame on `sid`."""
    codec = _core.WebSocketCodec(client=True)
    for i, e in enumerate(client.events):
        if isinstance(e, h2.events.DataReceived) and e.stream_id == sid:
            if any(ev[0] == _core.EV_CLOSE for ev in codec.receive_data(e.data)):
                return i
    raise AssertionError(f"no close frame on stream {sid}")


def send_over_limit(client: H2Client, headers: list[tuple[str, str]]) -> int:
    """Sends request HEADERS although the server's MAX_CONCURRENT_STREAMS is
    reached: python-h2 refuses to, a misbehaving or racing client does not."""
    settings = client.conn.remote_settings._settings  # h2 keeps no public override
    code = h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS
    saved = settings[code]
    settings[code] = collections.deque([2**31 - 1])
    try:
        return client.request(headers)
    finally:
        settings[code] = saved


def keep_streams_after_goaway(client: H2Client) -> None:
    """python-h2 stops the whole connection at any GOAWAY; RFC 9113 §6.8
    lets streams up to the last-stream-id finish. Make this client's state
    machine stay open so the test can watch (and take part in) the drain."""
    machine = client.conn.state_machine
    transitions = dict(machine._transitions)
    open_state = h2.connection.ConnectionState.CLIENT_OPEN
    for state in (open_state, h2.connection.ConnectionState.CLOSED):
        transitions[(state, h2.connection.ConnectionInputs.RECV_GOAWAY)] = (None, open_state)
    machine._transitions = transitions


# -- the raw first SETTINGS frame ---------------------------------------------------


async def first_server_frame(host: str, port: int, tls: bool) -> tuple[int, int, int, bytes]:
    """Sends the client preface with an empty SETTINGS; returns the first
    frame the server writes as (type, flags, stream id, payload)."""
    ctx: ssl.SSLContext | None = client_context() if tls else None
    reader, writer = await asyncio.open_connection(host, port, ssl=ctx)
    try:
        writer.write(PREFACE + struct.pack(">I", 0)[1:] + bytes([4, 0]) + struct.pack(">I", 0))
        head = await asyncio.wait_for(reader.readexactly(9), 5)
        length = int.from_bytes(head[:3], "big")
        payload = await asyncio.wait_for(reader.readexactly(length), 5)
        sid = int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
        return head[3], head[4], sid, payload
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


def parse_settings(payload: bytes) -> list[tuple[int, int]]:
    assert len(payload) % 6 == 0
    return [struct.unpack(">HI", payload[i : i + 6]) for i in range(0, len(payload), 6)]
