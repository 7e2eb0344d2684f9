"""WebSockets over HTTP/1.1 after the opening handshake (RFC 6455), with
frame-level peers on raw sockets: the C codec in the client role, and wsproto
(a peer nobody here wrote). The closing handshake (section 7), failing the
connection on bad input (section 7.1.7), backpressure both ways, keepalive,
shutdown with a silent peer, and plain HTTP/1.1 on the same port
(keep-alive, HTTP/1.0, pipelining, request bodies).

The handshake itself is in tests/conformance/test_rfc6455_handshake.py; the
`websockets` and `aiohttp` clients are in tests/interop/test_h1_clients.py.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import struct
from collections.abc import Callable
from typing import Any

import pytest
import wsproto
import wsproto.events as wse
from helpers.certs import client_context
from helpers.servers import running_server

import h2ws
from h2ws import _core
from h2ws._readbuf import READ_BUFFER
from h2ws.websocket import HOLD_LIMIT

pytestmark = pytest.mark.timeout(120)

KiB = 1 << 10
MiB = 1 << 20
MASK = b"\x11\x22\x33\x44"


def result_future() -> asyncio.Future[Any]:
    return asyncio.get_running_loop().create_future()


async def open_socket(
    port: int, *, tls: bool = False, sndbuf: int | None = None, rcvbuf: int | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP (or TLS, ALPN http/1.1) connection to 127.0.0.1:port; buffer
    sizes are set before connect so that the window scale follows them."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if sndbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    if tls:
        return await asyncio.open_connection(
            sock=sock, ssl=client_context(["http/1.1"]), server_hostname="127.0.0.1"
        )
    return await asyncio.open_connection(sock=sock)


def upgrade_request(port: int, path: str = "/", extra: str = "") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        f"Sec-WebSocket-Version: 13\r\n{extra}\r\n"
    ).encode()


class Client:
    """A WebSocket client on a raw socket: the handshake by hand, frames by
    the C codec (client role), so tests can also write any bytes they like."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.codec = _core.WebSocketCodec(client=True, max_message_size=None)
        self.events: list[tuple[Any, ...]] = []
        self.eof = False

    @classmethod
    async def connect(
        cls, port: int, path: str = "/", *, tls: bool = False, first: bytes = b"", **kw: Any
    ) -> Client:
        reader, writer = await open_socket(port, tls=tls, **kw)
        writer.write(upgrade_request(port, path) + first)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 101 "), head
        return cls(reader, writer)

    def flush(self) -> None:
        data = self.codec.data_to_send()
        if data:
            self.writer.write(data)

    def send(self, message: str | bytes) -> None:
        self.codec.send(message)
        self.flush()

    def send_raw(self, data: bytes) -> None:
        self.writer.write(data)

    def close(self, code: int | None = 1000, reason: str = "") -> None:
        self.codec.close(code, reason)
        self.flush()

    async def read(self, timeout: float = 5.0) -> bool:
        """Reads once; False at EOF."""
        data = await asyncio.wait_for(self.reader.read(1 << 20), timeout)
        if not data:
            self.eof = True
            return False
        self.events.extend(self.codec.receive_data(data))
        return True

    async def until(self, predicate: Callable[[Client], bool], timeout: float = 5.0) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while not predicate(self):
            if self.eof:
                raise ConnectionError("EOF before the condition was met")
            await self.read(max(end - loop.time(), 0.001))

    async def until_eof(self, timeout: float = 5.0) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while not self.eof:
            await self.read(max(end - loop.time(), 0.001))

    def messages(self) -> list[Any]:
        return [e[1] for e in self.events if e[0] in (_core.EV_TEXT, _core.EV_BINARY)]

    def close_event(self) -> tuple[Any, ...] | None:
        return next((e for e in self.events if e[0] == _core.EV_CLOSE), None)

    def pings(self) -> list[bytes]:
        return [e[1] for e in self.events if e[0] == _core.EV_PING]

    async def aclose(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


class WsprotoClient:
    """A client on wsproto, for the closing handshake as an independent peer sees it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.conn = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        self.events: list[wse.Event] = []
        self.eof = False

    @classmethod
    async def connect(cls, port: int, path: str = "/", *, tls: bool = False) -> WsprotoClient:
        reader, writer = await open_socket(port, tls=tls)
        client = cls(reader, writer)
        client.send(wse.Request(host=f"127.0.0.1:{port}", target=path))
        await client.until(lambda c: any(isinstance(e, wse.AcceptConnection) for e in c.events))
        return client

    def send(self, event: wse.Event) -> None:
        self.writer.write(self.conn.send(event))

    async def read(self, timeout: float = 5.0) -> bool:
        data = await asyncio.wait_for(self.reader.read(1 << 20), timeout)
        self.conn.receive_data(data or None)
        self.events.extend(self.conn.events())
        if not data:
            self.eof = True
        return bool(data)

    async def until(self, predicate: Callable[[WsprotoClient], bool], timeout: float = 5.0) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while not predicate(self):
            if self.eof:
                raise ConnectionError("EOF before the condition was met")
            await self.read(max(end - loop.time(), 0.001))

    def close_event(self) -> wse.CloseConnection | None:
        return next((e for e in self.events if isinstance(e, wse.CloseConnection)), None)

    def texts(self) -> list[str]:
        return [e.data for e in self.events if isinstance(e, wse.TextMessage)]


def recording_echo(closed: asyncio.Future[Any]) -> Callable[[h2ws.WebSocket], Any]:
    """An echo handler that puts how recv() ended into `closed`."""

    async def handler(ws: h2ws.WebSocket) -> None:
        try:
            while True:
                await ws.send(await ws.recv())
        except h2ws.ConnectionClosed as exc:
            closed.set_result(exc)
            raise

    return handler


async def echo(ws: h2ws.WebSocket) -> None:
    async for message in ws:
        await ws.send(message)


# -- the closing handshake (RFC 6455 section 7) ---------------------------------------


@pytest.mark.parametrize("tls", [False, True], ids=["cleartext", "tls"])
async def test_client_close_is_echoed_then_server_closes_tcp_first(tls: bool) -> None:
    """§5.5.1 and §7.1.1: the server answers the client's close frame with the
    same code, then closes the TCP connection itself (the client sees EOF
    without closing its side); the handler sees ConnectionClosedOK with the
    client's code and reason."""
    closed = result_future()
    async with running_server(recording_echo(closed), tls=tls) as srv:
        c = await WsprotoClient.connect(srv.port, "/close", tls=tls)
        c.send(wse.TextMessage("hi"))
        await c.until(lambda c: c.texts() == ["hi"])
        c.send(wse.CloseConnection(1000, "bye"))
        await c.until(lambda c: c.eof)
        close = c.close_event()
        assert close is not None and close.code == 1000
        assert c.conn.state is wsproto.connection.ConnectionState.CLOSED
        if not tls:  # (a TLS transport closes itself at the peer's close_notify)
            assert not c.writer.is_closing()  # the server closed first
        exc = await asyncio.wait_for(closed, 5)
        assert isinstance(exc, h2ws.ConnectionClosedOK)
        assert (exc.code, exc.reason) == (1000, "bye")
        c.writer.close()


@pytest.mark.parametrize("how, code", [("returns", 1000), ("raises", 1011)])
async def test_server_close_waits_for_the_clients_close_then_closes_tcp(
    how: str, code: int, caplog: pytest.LogCaptureFixture
) -> None:
    """§7.1.2-7.1.3: when the handler returns (1000) or raises (1011), the
    server sends its close frame, keeps the TCP connection open until the
    client's close frame comes, then closes it first."""

    async def handler(ws: h2ws.WebSocket) -> None:
        await ws.recv()
        if how == "raises":
            raise RuntimeError("handler failed on purpose")

    async with running_server(handler) as srv:
        c = await WsprotoClient.connect(srv.port)
        c.send(wse.TextMessage("go"))
        await c.until(lambda c: c.close_event() is not None)
        close = c.close_event()
        assert close is not None and close.code == code
        # The server waits for our close frame: no EOF meanwhile.
        with pytest.raises(asyncio.TimeoutError):
            await c.read(0.3)
        assert not c.eof
        c.send(close.response())
        await c.until(lambda c: c.eof)
        assert c.conn.state is wsproto.connection.ConnectionState.CLOSED
        c.writer.close()
    if how == "raises":
        assert "handler failed on purpose" in caplog.text
        for record in caplog.records:  # their tracebacks hold the connection (and its codec)
            record.exc_info = None


async def test_client_silent_after_servers_close_is_dropped_after_close_timeout() -> None:
    """§7.1.1: a client that never answers the server's close frame is
    disconnected once close_timeout is up; the handler's close() returns then,
    with 1006 (the closing handshake never completed)."""
    result = result_future()

    async def handler(ws: h2ws.WebSocket) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await ws.close(1000)
        result.set_result((loop.time() - start, ws.close_code))

    async with running_server(handler, close_timeout=0.5) as srv:
        loop = asyncio.get_running_loop()
        c = await Client.connect(srv.port)
        await c.until(lambda c: c.close_event() is not None)
        start = loop.time()
        with contextlib.suppress(ConnectionResetError):
            await c.until_eof(5)
        assert 0.3 <= loop.time() - start <= 3.0
        elapsed, close_code = await asyncio.wait_for(result, 5)
        assert 0.4 <= elapsed <= 3.0
        assert close_code == 1006
        await c.aclose()


@pytest.mark.parametrize("how", ["fin", "rst"])
async def test_tcp_drop_without_close_frame_is_1006(how: str) -> None:
    """§7.1.5: the TCP connection closing without a close frame is 1006 for
    the handler, as ConnectionClosedError."""
    closed = result_future()
    async with running_server(recording_echo(closed)) as srv:
        c = await Client.connect(srv.port)
        c.send("one")
        await c.until(lambda c: c.messages() == ["one"])
        if how == "rst":
            sock = c.writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.writer.transport.abort()
        else:
            await c.aclose()
        exc = await asyncio.wait_for(closed, 5)
        assert isinstance(exc, h2ws.ConnectionClosedError)
        assert exc.code == 1006


# -- failing the connection (RFC 6455 section 7.1.7) ---------------------------------

BAD_INPUT = {
    # §8.1: a text message that is not UTF-8.
    "invalid-utf8": (_core.build_frame(_core.OP_TEXT, b"caf\xc3\x28", mask=MASK), 1007),
    # §5.1: a client frame without a mask.
    "unmasked": (_core.build_frame(_core.OP_TEXT, b"hello"), 1002),
    # §5.2: reserved opcodes, data and control.
    "opcode-3": (_core.build_frame(3, b"", mask=MASK), 1002),
    "opcode-0xB": (_core.build_frame(0xB, b"", mask=MASK), 1002),
    # §5.5: control frames are never fragmented.
    "fragmented-ping": (_core.build_frame(_core.OP_PING, b"x", fin=False, mask=MASK), 1002),
    # §7.4.1: 1009 for a message over the limit, in one frame or in fragments.
    "too-big": (_core.build_frame(_core.OP_BINARY, b"x" * 2048, mask=MASK), 1009),
    "too-big-fragmented": (
        _core.build_frame(_core.OP_BINARY, b"x" * 600, fin=False, mask=MASK)
        + _core.build_frame(_core.OP_CONT, b"x" * 600, mask=MASK),
        1009,
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
async def test_bad_input_sends_close_code_then_closes_tcp(case: str) -> None:
    """§7.1.7: bad input fails the WebSocket: the server sends a close frame
    with the code §7.4.1 names, closes the TCP connection, and the handler
    sees ConnectionClosedError with that code. Another connection to the same
    server carries on."""
    data, code = BAD_INPUT[case]
    closed = result_future()
    recording = recording_echo(closed)

    async def handler(ws: h2ws.WebSocket) -> None:
        await (recording if ws.request.path == "/bad" else echo)(ws)

    async with running_server(handler, max_message_size=1024) as srv:
        other = await Client.connect(srv.port, "/other")
        c = await Client.connect(srv.port, "/bad")
        c.send_raw(data)
        await c.until_eof()
        close = c.close_event()
        assert close is not None and close[1] == code, c.events
        assert c.events[-1] == close  # nothing after the close frame
        exc = await asyncio.wait_for(closed, 5)
        assert isinstance(exc, h2ws.ConnectionClosedError) and exc.code == code
        other.send("still here")
        await other.until(lambda o: o.messages() == ["still here"])
        other.close()
        await other.until_eof()
        await c.aclose()
        await other.aclose()


@pytest.mark.parametrize("case", ["invalid-utf8", "too-big"])
async def test_close_frame_survives_a_client_that_keeps_sending(case: str) -> None:
    """§7.1.7 with a client still sending when the server fails the
    connection (the rest of a 4 MiB message over max_message_size, or more
    frames after invalid UTF-8): the close frame must reach the client, then
    EOF, not a TCP reset that would destroy it in flight (lingering close)."""
    if case == "too-big":
        data = _core.build_frame(_core.OP_BINARY, b"x" * (4 * MiB), mask=MASK)
    else:
        more = _core.build_frame(_core.OP_BINARY, b"x" * 1000, mask=MASK)
        data = BAD_INPUT["invalid-utf8"][0] + more * 4000
    code = 1009 if case == "too-big" else 1007
    async with running_server(echo, max_message_size=MiB) as srv:
        c = await Client.connect(srv.port)
        c.send_raw(data)
        await asyncio.sleep(0.2)  # the server has failed it and closed by now
        await c.until_eof()
        close = c.close_event()
        assert close is not None and close[1] == code, c.events
        await c.aclose()


# -- backpressure -----------------------------------------------------------------------


async def test_handler_that_does_not_read_stops_the_socket_reading() -> None:
    """A handler that does not call recv(): the server holds 16 messages
    (HOLD_LIMIT, plus the rest of the read that reached it) and stops reading
    the socket, so the client's writes stall; once the handler reads, every
    message arrives intact, in order."""
    size, count = 64 * KiB, 160  # 10 MiB
    go = asyncio.Event()
    got = result_future()
    transports: list[Any] = []

    async def handler(ws: h2ws.WebSocket) -> None:
        transports.append(ws.transport)
        await go.wait()
        received = [await ws.recv() for _ in range(count)]
        got.set_result(received)

    def payload(i: int) -> bytes:
        return i.to_bytes(4, "big") * (size // 4)

    async with running_server(handler) as srv:
        c = await Client.connect(srv.port, sndbuf=64 * KiB)
        for i in range(count):
            c.codec.send(payload(i))
        c.flush()
        assert c.writer.transport.get_write_buffer_size() > 9 * MiB
        # The server reads until it holds 16 messages, then stops.
        loop = asyncio.get_running_loop()
        held_max = 0
        end = loop.time() + 5
        while not (transports and len(transports[0]._held) >= HOLD_LIMIT):
            assert loop.time() < end, "the server never held 16 messages"
            await asyncio.sleep(0.01)
        # Now the server has stopped reading: once the kernel's buffers are
        # full, nothing moves any more.
        sizes = [c.writer.transport.get_write_buffer_size()]
        while len(sizes) < 10 or sizes[-1] != sizes[-10]:
            assert loop.time() < end, sizes
            await asyncio.sleep(0.02)
            held_max = max(held_max, len(transports[0]._held))
            sizes.append(c.writer.transport.get_write_buffer_size())
        stalled = sizes[-1]
        # 16 messages, plus the rest of the read that reached 16.
        bound = HOLD_LIMIT + READ_BUFFER // size + 1
        assert HOLD_LIMIT <= len(transports[0]._held) <= held_max <= bound, held_max
        # The client's writes are stuck, far from done.
        assert stalled > 2 * MiB, stalled
        go.set()
        received = await asyncio.wait_for(got, 20)
        assert len(received) == count
        for i, message in enumerate(received):
            assert message == payload(i), i
        assert c.writer.transport.get_write_buffer_size() == 0
        c.close()
        await c.until_eof()
        await c.aclose()


async def test_slow_reading_client_makes_send_wait() -> None:
    """A client that does not read: once the kernel's buffers are full, the
    handler's send() waits with about write_limit bytes queued (not the 10 MiB
    it tries to send); when the client reads, every message arrives in order."""
    size, count, limit = 64 * KiB, 160, 256 * KiB  # 10 MiB
    sizes: list[int] = []
    transports: list[Any] = []
    done = result_future()

    def payload(i: int) -> bytes:
        return i.to_bytes(4, "big") * (size // 4)

    async def handler(ws: h2ws.WebSocket) -> None:
        transports.append(ws.transport)
        for i in range(count):
            await ws.send(payload(i))
            sizes.append(ws.transport.get_write_buffer_size())
        done.set_result(None)
        await ws.recv()

    async with running_server(handler, write_limit=limit) as srv:
        c = await Client.connect(srv.port, rcvbuf=64 * KiB)
        await asyncio.sleep(0.5)
        sent = len(sizes)
        await asyncio.sleep(0.2)
        assert len(sizes) == sent < count and not done.done()  # send() is waiting
        queued = transports[0].get_write_buffer_size()
        assert 0 < queued <= limit + size, queued
        assert max(sizes) <= limit + size, max(sizes)
        await c.until(lambda c: len(c.messages()) == count, timeout=20)
        for i, message in enumerate(c.messages()):
            assert message == payload(i), i
        await asyncio.wait_for(done, 5)
        c.close()
        await c.until_eof()
        await c.aclose()


# -- keepalive over HTTP/1.1 --------------------------------------------------------------


async def test_keepalive_pings_answered_keep_the_connection_open() -> None:
    """ping_interval=0.2/ping_timeout=0.2: a client that answers each ping
    (§5.5.2) stays connected, and keeps getting pings."""
    async with running_server(echo, ping_interval=0.2, ping_timeout=0.2) as srv:
        c = await Client.connect(srv.port)
        loop = asyncio.get_running_loop()
        end = loop.time() + 1.0
        answered = 0
        while loop.time() < end:
            with contextlib.suppress(asyncio.TimeoutError):
                await c.read(end - loop.time())
            for payload in c.pings()[answered:]:
                c.codec.pong(payload)
                answered += 1
            c.flush()
        assert answered >= 3
        assert c.close_event() is None and not c.eof
        c.send("alive")
        await c.until(lambda c: c.messages() == ["alive"])
        c.close()
        await c.until_eof()
        await c.aclose()


async def test_keepalive_unanswered_closes_with_1011() -> None:
    """A client that never answers the keepalive ping gets close 1011."""
    closed = result_future()
    async with running_server(recording_echo(closed), ping_interval=0.2, ping_timeout=0.2) as srv:
        c = await Client.connect(srv.port)
        await c.until(lambda c: c.close_event() is not None, timeout=3)
        assert c.pings()
        close = c.close_event()
        assert close is not None and close[1] == 1011
        c.close(1011)
        await c.until_eof()
        exc = await asyncio.wait_for(closed, 5)
        assert isinstance(exc, h2ws.ConnectionClosedError) and exc.code == 1011
        await c.aclose()


# -- shutdown with a silent client ------------------------------------------------------


async def test_shutdown_drops_a_client_that_never_answers_1001() -> None:
    """server.close(): close 1001; a client that never answers is dropped when
    shutdown_timeout is up, and wait_closed() returns."""
    async with running_server(echo, shutdown_timeout=0.5, close_timeout=30) as srv:
        c = await Client.connect(srv.port)
        c.send("x")
        await c.until(lambda c: c.messages() == ["x"])
        loop = asyncio.get_running_loop()
        start = loop.time()
        srv.server.close()
        await c.until(lambda c: c.close_event() is not None)
        close = c.close_event()
        assert close is not None and close[1] == 1001
        await asyncio.wait_for(srv.server.wait_closed(), 5)
        assert 0.4 <= loop.time() - start <= 3.0
        with contextlib.suppress(ConnectionResetError):
            await c.until_eof()
        await c.aclose()


# -- plain HTTP/1.1 on the same port ----------------------------------------------------


async def read_response(
    reader: asyncio.StreamReader, timeout: float = 5.0
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response: status, headers (lower-case names), body
    (content-length, chunked, or up to EOF)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 "), head
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    if status < 200 or status in (204, 304):
        return status, headers, b""
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
    else:
        body = await asyncio.wait_for(reader.read(), timeout)
    return status, headers, body


def path_echo(request: h2ws.Request) -> h2ws.Response:
    return h2ws.Response(200, [("content-type", "text/plain")], request.path.encode())


async def test_idle_keepalive_connection_is_closed_after_open_timeout() -> None:
    """A keep-alive connection that goes idle after its answer is closed once
    open_timeout is up."""
    async with running_server(echo, process_request=path_echo, open_timeout=0.3) as srv:
        reader, writer = await open_socket(srv.port)
        writer.write(b"GET /one HTTP/1.1\r\nHost: a\r\n\r\n")
        status, headers, body = await read_response(reader)
        assert (status, body) == (200, b"/one")
        assert headers.get("connection") != "close"
        loop = asyncio.get_running_loop()
        start = loop.time()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        assert 0.2 <= loop.time() - start <= 3.0
        writer.close()


async def test_silent_connection_is_closed_after_open_timeout() -> None:
    """A connection that never sends a byte is not kept forever."""
    async with running_server(echo, open_timeout=0.3) as srv:
        reader, writer = await open_socket(srv.port)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()


async def test_http10_request_is_answered_then_closed() -> None:
    """HTTP/1.0 without keep-alive: the answer, then the server closes."""
    async with running_server(echo, process_request=path_echo) as srv:
        reader, writer = await open_socket(srv.port)
        writer.write(b"GET /old HTTP/1.0\r\n\r\n")
        status, headers, body = await read_response(reader)
        assert (status, body) == (200, b"/old")
        assert headers["connection"] == "close"
        assert "transfer-encoding" not in headers  # an HTTP/1.0 client knows no chunks
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()


async def test_50_pipelined_requests_are_answered_in_order() -> None:
    """Pipelining (RFC 9112 section 9.3.2): 50 requests in one write, some
    answered by process_request at once and some after a wait, are answered
    in request order on the one connection."""

    async def process(request: h2ws.Request) -> h2ws.Response:
        if int(request.path.strip("/")) % 3 == 0:
            await asyncio.sleep(0.002)
        return path_echo(request)

    async with running_server(echo, process_request=process) as srv:
        reader, writer = await open_socket(srv.port)
        writer.write(
            b"".join(f"GET /{i} HTTP/1.1\r\nHost: a\r\n\r\n".encode() for i in range(49))
            + b"GET /49 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        )
        for i in range(50):
            status, headers, body = await read_response(reader)
            assert (status, body) == (200, f"/{i}".encode())
        assert headers["connection"] == "close"
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()


async def test_request_bodies_are_skipped_and_the_next_request_parses() -> None:
    """Requests with a body (Content-Length, chunked) are answered, and the
    requests pipelined after them still parse (bodies that look like requests
    are not taken for requests)."""
    async with running_server(echo, process_request=path_echo) as srv:
        reader, writer = await open_socket(srv.port)
        writer.write(
            b"POST /length HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nGET /x HTTP"
            b"POST /chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nGET /\r\n6\r\ny HTTP\r\n0\r\n\r\n"
            b"GET /last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        )
        for path in (b"/length", b"/chunked", b"/last"):
            status, _, body = await read_response(reader)
            assert (status, body) == (200, path)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()


async def test_upgrade_after_a_plain_request_with_early_frames() -> None:
    """A plain request, then a WebSocket upgrade on the same connection, with
    the first frames sent right behind the handshake: the answer, the 101,
    then the echo of those frames."""
    async with running_server(echo, process_request=lambda r: None) as srv:
        reader, writer = await open_socket(srv.port)
        frames = _core.WebSocketCodec(client=True)
        frames.send("early one")
        frames.send(b"early two")
        writer.write(
            b"GET /page HTTP/1.1\r\nHost: a\r\n\r\n"
            + upgrade_request(srv.port, "/ws")
            + frames.data_to_send()
        )
        status, _, _ = await read_response(reader)
        assert status == 426
        status, headers, _ = await read_response(reader)
        assert status == 101 and headers["upgrade"].lower() == "websocket"
        c = Client(reader, writer)
        await c.until(lambda c: len(c.messages()) == 2)
        assert c.messages() == ["early one", b"early two"]
        c.close()
        await c.until_eof()
        await c.aclose()
