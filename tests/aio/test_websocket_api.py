"""The user-facing API over HTTP/2 (RFC 8441), with python-hyper h2 as the peer:
``WebSocket`` (recv/send/ping/close/async for, request attributes, keepalive)
and the callback API (``WebSocketProtocol`` through ``protocol_factory``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import h2.events
import pytest
from aiopeer import Peer, connect, frames
from helpers.servers import running_server, ws_request_headers

import h2ws
from h2ws import _core

pytestmark = pytest.mark.timeout(180)

KiB = 1 << 10


def result_future() -> asyncio.Future[Any]:
    return asyncio.get_running_loop().create_future()


async def finish(peer: Peer, sid: int, code: int = 1000) -> None:
    """Closes from the client side (or answers the server's close) and waits
    for END_STREAM; no RST_STREAM on the way."""
    if not peer.codecs[sid].close_sent:
        peer.queue_close(sid, code)
    await peer.until(lambda p: p.ended(sid))
    assert peer.reset_code(sid) is None


async def test_request_attributes_and_subprotocol() -> None:
    """ws.request (path, headers, authority, method, :protocol), ws.subprotocol
    and ws.http_version over HTTP/2."""
    seen = result_future()

    async def handler(ws: h2ws.WebSocket) -> None:
        r = ws.request
        seen.set_result({
            "path": r.path, "authority": r.authority, "method": r.method, "scheme": r.scheme,
            "protocol": r.protocol, "x-token": r.headers.get("X-Token"),
            "origin": r.headers["origin"], "subprotocol": ws.subprotocol,
            "http_version": ws.http_version, "stream_id": ws.stream_id,
        })
        await ws.send("hi")

    async with running_server(handler, subprotocols=["chat", "superchat"]) as srv:
        peer = await connect(srv.port)
        sid = await peer.open_websocket(
            "/room/7?lang=en", authority=f"localhost:{srv.port}",
            extra=[("origin", "http://localhost"), ("x-token", "abc"),
                   ("sec-websocket-protocol", "superchat, chat")],
        )
        got = await asyncio.wait_for(seen, 5)
        assert got == {
            "path": "/room/7?lang=en", "authority": f"localhost:{srv.port}", "method": "CONNECT",
            "scheme": "http", "protocol": "websocket", "x-token": "abc",
            "origin": "http://localhost", "subprotocol": "chat", "http_version": "2",
            "stream_id": sid,
        }
        headers = dict(peer.response(sid).headers)
        assert headers[b"sec-websocket-protocol"] == b"chat"
        await peer.until(lambda p: p.close_event(sid) is not None)
        assert peer.data_messages(sid) == ["hi"]
        await finish(peer, sid)
        await peer.close()


async def test_no_subprotocol_when_none_matches() -> None:
    seen = result_future()

    async def handler(ws: h2ws.WebSocket) -> None:
        seen.set_result(ws.subprotocol)

    async with running_server(handler, subprotocols=["chat"]) as srv:
        peer = await connect(srv.port)
        sid = await peer.open_websocket("/", extra=[("sec-websocket-protocol", "other")])
        assert await asyncio.wait_for(seen, 5) is None
        assert b"sec-websocket-protocol" not in dict(peer.response(sid).headers)
        await peer.until(lambda p: p.close_event(sid) is not None)
        await finish(peer, sid)
        await peer.close()


async def test_recv_returns_str_for_text_and_bytes_for_binary() -> None:
    got = result_future()

    async def handler(ws: h2ws.WebSocket) -> None:
        got.set_result([await ws.recv() for _ in range(4)])

    async with running_server(handler) as srv:
        peer = await connect(srv.port)
        sid = await peer.open_websocket()
        for m in ("héllo ✓", b"\x00\xffbin", "", b""):
            peer.queue_message(sid, m)
        messages = await asyncio.wait_for(got, 5)
        assert messages == ["héllo ✓", b"\x00\xffbin", "", b""]
        assert [type(m) for m in messages] == [str, bytes, str, bytes]
        await peer.until(lambda p: p.close_event(sid) is not None)
        await finish(peer, sid)
        await peer.close()


@pytest.mark.parametrize("code", [1000, 1001, None])
async def test_async_for_ends_on_clean_close(code: int | None) -> None:
    """RFC 6455 section 7.1.5: 1000, 1001 and a close frame without a code
    (1005) are clean closes: ``async for`` just ends."""
    done = result_future()

    async def handler(ws: h2ws.WebSocket) -> None:
        messages = []
        try:
            async for message in ws:
                messages.append(message)
        except Exception as exc:  # reported, not raised: the test checks it
            done.set_result(("raised", exc))
            return
        done.set_result((messages, ws.close_code, ws.close_reason, ws.closed))

    async with running_server(handler) as srv:
        peer = await connect(srv.port)
        sid = await peer.open_websocket()
        for m in ("a", b"b", "c"):
            peer.queue_message(sid, m)
        peer.queue_close(sid, code, "done" if code else "")
        result = await asyncio.wait_for(done, 5)
        assert result == (["a", b"b", "c"], code or 1005, "done" if code else "", True)
        await peer.until(lambda p: p.ended(sid))
        close = peer.close_event(sid)
        assert close is not None and close[1] == (code or 1005)
        assert peer.reset_code(sid) is None
        await peer.close()


@pytest.mark.parametrize("how", ["rst_stream", "end_stream", "close_1011"])
async def test_async_for_raises_on_abnormal_close(how: str) -> None:
    """No close frame (RST_STREAM, or END_STREAM alone) is 1006; a close with
    an error code is that code: both raise ConnectionClosedError."""
    done = result_future()

    async def handler(ws: h2ws.WebSocket) -> None:
        messages = []
        try:
            async for message in ws:
                messages.append(message)
        except h2ws.ConnectionClosedError as exc:
            done.set_result((messages, exc.code, ws.close_code))
        else:
            done.set_result((messages, "ended quietly", ws.close_code))

    async with running_server(handler) as srv:
        peer = await connect(srv.port)
        sid = await peer.open_websocket()
        peer.queue_message(sid, "before")
        if how == "rst_stream":
            peer.conn.reset_stream(sid, 8)  # right behind "before", in order
            peer.flush()
        elif how == "end_stream":
            peer.queue(sid, b"", end_stream=True)
        else:
            peer.queue_close(sid, 1011, "oops")
        expected = 1011 if how == "close_1011" else 1006
        assert await asyncio.wait_for(done, 5) == (["before"], expected, expected)
        if how != "rst_stream":
            await peer.until(lambda p: p.ended(sid))
        await peer.close()


async def test_send_str_bytes_bytearray_memoryview() -> None:
    async def handler(ws: h2ws.WebSocket) -> None:
        await ws.send("text ✓")
        await ws.send(b"bytes")
        await ws.send(bytearray(b"bytearray"))
        await ws.send(memoryview(b"--memoryview--")[2:-2])
        await ws.send(b"x" * (100 * KiB))

    async with running_server(handler) as srv:
        peer = await connect(srv.port)
        sid = await peer.open_websocket()
        await peer.until(lambda p: p.close_event(sid) is not None)
        assert peer.data_messages(sid) == [
            "text ✓", b"bytes", b"bytearray", b"memoryview", b"x" * (100 * KiB)
        ]
        await finish(peer, sid)
        await peer.close()


async def test_send_iterables_as_fragmented_messages() -> None:
    """send(iterable) and send(async iterable) send one message in fragments
    (RFC 6455 section 5.4): first frame with the opcode, then continuations,
    FIN on the last one only."""

    async def parts() -> AsyncIterator[bytes]:
        for p in (b"\x01\x02", b"", b"\x03"):
            await asyncio.sleep(0)
            yield p

    async def handler(ws: h2ws.WebSocket) -> None:
        await ws.send(["frag", "ment", "ed ✓"])
        await ws.send(parts())
        await ws.send(iter([b"single"]))
        await ws.send("after")

    async with running_server(handler) as srv:
        peer = await connect(srv.port)
        sid = await peer.open_websocket()
        peer.record_raw.add(sid)
        await peer.until(lambda p: p.close_event(sid) is not None)
        assert peer.data_messages(sid) == ["fragmented ✓", b"\x01\x02\x03", b"single", "after"]
        seen = [(fin, op, payload) for fin, op, payload in frames(peer.raw[sid])
                if op != _core.OP_CLOSE]
        assert seen == [
            (False, _core.OP_TEXT, b"frag"),
            (False, _core.OP_CONT, b"ment"),
            (True, _core.OP_CONT, "ed ✓".encode()),
            (False, _core.OP_BINARY, b"\x01\x02"),
            (False, _core.OP_CONT, b""),
            (True, _core.OP_CONT, b"\x03"),
            (True, _core.OP_BINARY, b"single"),
            (True, _core.OP_TEXT, b"after"),
        ]
        await finish(peer, sid)
        await peer.close()


async def test_send_fragments_must_not_mix_types() -> None:
    outcome = result_future()

    async def handler(ws: h2ws.WebSocket) -> None:
        try:
            await ws.send(["text", b"bytes"])
        except TypeError as exc:
            outcome.set_result(exc)

    async with running_server(handler) as srv:
        peer = await connect(srv.port)
        sid = await peer.open_websocket()
        assert isinstance(await asyncio.wait_for(outcome, 5), TypeError)
        await peer.close()
        del sid


async def test_ping_resolves_to_latency_when_pong_arrives() -> None:
    result = result_future()

    async def handler(ws: h2ws.WebSocket) -> None:
        waiter = await ws.ping(b"are you there")
        assert not waiter.done()
        latency = await asyncio.wait_for(waiter, 5)
        auto = await asyncio.wait_for(await ws.ping(), 5)
        result.set_result((latency, auto))

    async with running_server(handler) as srv:
        peer = await connect(srv.port)
        peer.auto_pong = True
        sid = await peer.open_websocket()
        await peer.until(lambda p: result.done())  # reading: the pongs go out
        latency, auto = result.result()
        assert isinstance(latency, float) and 0 <= latency < 5
        assert isinstance(auto, float) and 0 <= auto < 5
        pings = [w[1] for w in peer.messages(sid) if w[0] == _core.EV_PING]
        assert pings[0] == b"are you there" and len(pings) == 2 and len(pings[1]) == 4
        await peer.until(lambda p: p.close_event(sid) is not None)
        await finish(peer, sid)
        await peer.close()


async def test_close_code_and_reason_then_send_raises() -> None:
    result = result_future()

    async def handler(ws: h2ws.WebSocket) -> None:
        assert ws.close_code is None and not ws.closed
        await ws.close(4001, "bye now")
        try:
            await ws.send("too late")
        except h2ws.ConnectionClosed as exc:
            raised: Any = exc
        else:
            raised = None
        result.set_result((ws.close_code, ws.close_reason, ws.closed, raised))

    async with running_server(handler) as srv:
        peer = await connect(srv.port)
        sid = await peer.open_websocket()
        await peer.until(lambda p: p.close_event(sid) is not None)
        assert peer.close_event(sid) == (_core.EV_CLOSE, 4001, "bye now")
        assert not peer.ended(sid)  # END_STREAM waits for our close frame
        peer.queue_close(sid, 4001, "ok")
        code, reason, closed, raised = await asyncio.wait_for(result, 5)
        # As in websockets: the code and reason of the peer's close frame.
        assert (code, reason, closed) == (4001, "ok", True)
        assert isinstance(raised, h2ws.ConnectionClosedError) and raised.code == 4001
        await peer.until(lambda p: p.ended(sid))
        assert peer.reset_code(sid) is None
        assert peer.data_messages(sid) == []
        await peer.close()


@pytest.mark.parametrize("end_stream", [True, False], ids=["with_end_stream", "end_stream_later"])
async def test_echo_handler_racing_the_peers_close_ends_quietly(
    caplog: pytest.LogCaptureFixture, end_stream: bool
) -> None:
    """A message and the close frame in one DATA frame: the handler gets the
    message, its send() finds the WebSocket closing (or closed). That is the
    ordinary end of an echo loop, not a handler failure: send() raises
    ConnectionClosed, which the server swallows, as websockets does."""
    done = result_future()
    sending = asyncio.Event()

    async def echo(ws: h2ws.WebSocket) -> None:
        try:
            async for message in ws:
                sending.set()
                await ws.send(message)
        except BaseException as exc:
            done.set_result(exc)
            raise
        done.set_result(None)

    caplog.set_level(logging.ERROR, logger="h2ws")
    async with running_server(echo) as srv:
        peer = await connect(srv.port)
        sid = await peer.open_websocket()
        codec = peer.codecs[sid]
        codec.send("last words")
        codec.close(1000)
        peer.queue(sid, codec.data_to_send(), end_stream=end_stream)
        await peer.until(lambda p: p.ended(sid) and sending.is_set())
        if not end_stream:
            # The handler's send() waits for the end of the closing handshake.
            await asyncio.sleep(0.05)
            assert not done.done()
            peer.queue(sid, b"", end_stream=True)
        await peer.until(lambda p: done.done())
        outcome = done.result()
        assert outcome is None or isinstance(outcome, h2ws.ConnectionClosedOK), repr(outcome)
        assert peer.close_event(sid) == (_core.EV_CLOSE, 1000, "")
        assert peer.reset_code(sid) is None
        await peer.close()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


async def test_keepalive_closes_with_1011_when_pongs_never_come() -> None:
    """ping_interval/ping_timeout: a peer that does not answer the keepalive
    ping gets close 1011 (pitfall 11)."""
    result = result_future()

    async def handler(ws: h2ws.WebSocket) -> None:
        try:
            async for _ in ws:
                pass
        except h2ws.ConnectionClosedError as exc:
            result.set_result(exc.code)

    async with running_server(handler, ping_interval=0.2, ping_timeout=0.2) as srv:
        peer = await connect(srv.port)  # its codec never answers pings
        sid = await peer.open_websocket()
        loop = asyncio.get_running_loop()
        start = loop.time()
        await peer.until(lambda p: p.close_event(sid) is not None, timeout=5)
        elapsed = loop.time() - start
        close = peer.close_event(sid)
        assert close is not None and close[1] == 1011
        assert peer.count(sid, _core.EV_PING) >= 1
        assert 0.2 <= elapsed < 3.0, elapsed
        peer.queue_close(sid, 1011)
        await peer.until(lambda p: p.ended(sid))
        assert peer.reset_code(sid) is None
        assert await asyncio.wait_for(result, 5) == 1011
        await peer.close()


async def test_keepalive_keeps_an_answering_peer_open() -> None:
    async def echo(ws: h2ws.WebSocket) -> None:
        async for message in ws:
            await ws.send(message)

    async with running_server(echo, ping_interval=0.2, ping_timeout=0.2) as srv:
        peer = await connect(srv.port)
        peer.auto_pong = True
        sid = await peer.open_websocket()
        loop = asyncio.get_running_loop()
        end = loop.time() + 1.1  # five intervals and a bit
        while (left := end - loop.time()) > 0:
            try:
                await peer.read(timeout=left)
            except (asyncio.TimeoutError, TimeoutError):
                break
        assert peer.close_event(sid) is None
        assert peer.count(sid, _core.EV_PING) >= 3
        peer.queue_message(sid, "still here")
        await peer.until(lambda p: p.data_messages(sid) == ["still here"])
        await finish(peer, sid)
        assert peer.close_event(sid) is not None and peer.close_event(sid)[1] == 1000
        await peer.close()


# -- the callback API -----------------------------------------------------------


@pytest.fixture(autouse=True)
def _forget_protocols() -> Iterator[None]:
    """The class-level lists below keep connections alive: empty them before
    the allocation check of tests/conftest.py runs."""
    yield
    EchoProtocol.instances = []
    FloodProtocol.instances = []


class EchoProtocol(h2ws.WebSocketProtocol):
    instances: list[EchoProtocol] = []

    def __init__(self) -> None:
        self.transport: h2ws.WebSocketTransport | None = None
        self.lost: h2ws.ConnectionClosed | None = None
        EchoProtocol.instances.append(self)

    def connection_made(self, transport: h2ws.WebSocketTransport) -> None:
        self.transport = transport

    def message_received(self, message: str | bytes) -> None:
        assert self.transport is not None
        self.transport.send(message)

    def connection_lost(self, exc: h2ws.ConnectionClosed) -> None:
        self.lost = exc


async def test_protocol_factory_echo() -> None:
    EchoProtocol.instances = []
    async with running_server(protocol_factory=EchoProtocol) as srv:
        peer = await connect(srv.port)
        sid = await peer.open_websocket("/cb")
        for m in ("one", b"two", "three ✓"):
            peer.queue_message(sid, m)
        await peer.until(lambda p: len(p.data_messages(sid)) == 3)
        assert peer.data_messages(sid) == ["one", b"two", "three ✓"]
        [proto] = EchoProtocol.instances
        assert proto.transport is not None
        assert proto.transport.get_extra_info("http_version") == "2"
        assert proto.transport.request.path == "/cb"
        assert proto.transport.stream_id == sid
        await finish(peer, sid)
        await peer.until(lambda p: proto.lost is not None)
        assert isinstance(proto.lost, h2ws.ConnectionClosedOK) and proto.lost.code == 1000
        await peer.close()


class FloodProtocol(h2ws.WebSocketProtocol):
    """On "flood", sends 8 KiB messages, one per loop iteration, stopping
    while the transport says the send queue is over its limit."""

    instances: list[FloodProtocol] = []
    total = 64

    def __init__(self) -> None:
        self.transport: h2ws.WebSocketTransport | None = None
        self.calls: list[tuple[str, int, int]] = []
        self.paused = False
        self.sent = 0
        FloodProtocol.instances.append(self)

    def connection_made(self, transport: h2ws.WebSocketTransport) -> None:
        self.transport = transport
        self.loop = asyncio.get_running_loop()

    def message_received(self, message: str | bytes) -> None:
        if message == "flood":
            self.loop.call_soon(self.tick)

    def tick(self) -> None:
        assert self.transport is not None
        if self.paused or self.sent == self.total or self.transport.is_closing():
            return
        self.transport.send(bytes([self.sent]) * (8 * KiB))
        self.sent += 1
        if self.sent == self.total:
            self.transport.send("done")
        self.loop.call_soon(self.tick)

    def pause_writing(self) -> None:
        assert self.transport is not None
        self.paused = True
        self.calls.append(("pause", self.sent, self.transport.get_write_buffer_size()))

    def resume_writing(self) -> None:
        assert self.transport is not None
        self.paused = False
        self.calls.append(("resume", self.sent, self.transport.get_write_buffer_size()))
        self.loop.call_soon(self.tick)


async def test_protocol_pause_and_resume_writing_with_a_slow_peer() -> None:
    write_limit = 32 * KiB
    FloodProtocol.instances = []
    async with running_server(protocol_factory=FloodProtocol, write_limit=write_limit) as srv:
        peer = await connect(srv.port)
        sid = await peer.open_websocket()
        peer.slow.add(sid)  # reads nothing: the stream window (65,535) runs out
        peer.queue_message(sid, "flood")
        [proto] = FloodProtocol.instances
        await peer.until(lambda p: bool(proto.calls))
        assert proto.calls[0][0] == "pause"
        assert proto.calls[0][2] > write_limit
        paused_at = proto.sent
        assert paused_at < FloodProtocol.total
        # Stays paused while the peer does not read.
        await peer.until(lambda p: p.received.get(sid, 0) >= 65535)
        await asyncio.sleep(0.05)
        assert proto.paused and proto.sent == paused_at and len(proto.calls) == 1

        peer.release(sid)
        await peer.until(lambda p: "done" in p.data_messages(sid), timeout=10)
        assert peer.data_messages(sid) == [
            bytes([i]) * (8 * KiB) for i in range(FloodProtocol.total)
        ] + ["done"]
        kinds = [c[0] for c in proto.calls]
        assert kinds[:2] == ["pause", "resume"]
        assert kinds == ["pause", "resume"] * (len(kinds) // 2) + ["pause"] * (len(kinds) % 2)
        assert all(buffered <= write_limit // 4 for kind, _, buffered in proto.calls
                   if kind == "resume")
        await finish(peer, sid)
        await peer.close()


@pytest.mark.parametrize("style", ["sync", "async"])
async def test_process_request_returning_none_accepts(style: str) -> None:
    seen: list[str] = []

    def sync_process(request: h2ws.Request) -> None:
        seen.append(request.path)

    async def async_process(request: h2ws.Request) -> None:
        await asyncio.sleep(0)
        seen.append(request.path)

    async def echo(ws: h2ws.WebSocket) -> None:
        async for message in ws:
            await ws.send(message)

    process = sync_process if style == "sync" else async_process
    async with running_server(echo, process_request=process) as srv:
        peer = await connect(srv.port)
        sid = await peer.open_websocket("/checked")
        assert seen == ["/checked"]
        peer.queue_message(sid, "hello")
        await peer.until(lambda p: p.data_messages(sid) == ["hello"])
        await finish(peer, sid)
        await peer.close()


async def test_process_request_returning_a_response_refuses() -> None:
    def process(request: h2ws.Request) -> h2ws.Response | None:
        if request.headers.get("authorization") != "Bearer ok":
            return h2ws.Response(403, [("content-type", "text/plain")], b"forbidden\n")
        return None

    async def handler(ws: h2ws.WebSocket) -> None:
        raise AssertionError("must not run")

    async with running_server(handler, process_request=process) as srv:
        peer = await connect(srv.port)
        await peer.wait_settings()
        sid = peer.request(ws_request_headers("/"))
        await peer.until(lambda p: p.ended(sid) or p.reset_code(sid) is not None)
        assert peer.status(sid) == 403
        body = b"".join(e.data for e in peer.events
                        if isinstance(e, h2.events.DataReceived) and e.stream_id == sid)
        assert body == b"forbidden\n"
        await peer.close()
