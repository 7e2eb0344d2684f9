"""The client, ``h2ws.connect()``: connection pooling under the server's
SETTINGS_MAX_CONCURRENT_STREAMS and GOAWAY (against h2ws's own server), and
what the client puts on the wire (against frame-level servers on python-hyper
h2 and a raw HTTP/1.1 server, ``clientpeers.py``): masking, handshake checks,
errors, timeouts, cancellation, keepalive and the closing handshake.
"""

from __future__ import annotations

import asyncio
import random
import socket
from typing import Any

import h2.errors
import h2.events
import pytest
from clientpeers import (
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_TEXT,
    H1Request,
    H2ServerConn,
    H2Stream,
    RawH1Server,
    RawH2Server,
    switching,
)
from helpers.servers import running_server

import h2ws
from h2ws.client import H2ClientConnection

pytestmark = pytest.mark.timeout(120)

CANCEL = int(h2.errors.ErrorCodes.CANCEL)
NO_KEEPALIVE: dict[str, Any] = {"ping_interval": None}


def carrier(ws: h2ws.WebSocket) -> Any:
    """The connection that carries ``ws`` (an H2ClientConnection over HTTP/2)."""
    return ws.transport.get_extra_info("connection")


def pool_connections(pool: h2ws.ConnectionPool) -> list[H2ClientConnection]:
    return [c for conns in pool._conns.values() for c in conns]


async def settle(predicate: Any, timeout: float = 5.0) -> None:
    """Waits until ``predicate()`` holds, checking every few milliseconds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


def free_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Recorder:
    """An echo handler for h2ws.serve that remembers each WebSocket."""

    def __init__(self) -> None:
        self.websockets: list[h2ws.WebSocket] = []
        self.close_codes: list[int | None] = []
        self.peak: dict[Any, int] = {}  # server-side streams per connection, at each open

    async def __call__(self, ws: h2ws.WebSocket) -> None:
        self.websockets.append(ws)
        conn = ws.transport.get_extra_info("connection")
        n = getattr(conn, "open_websockets", 1)
        self.peak[ws.remote_address] = max(self.peak.get(ws.remote_address, 0), n)
        try:
            async for message in ws:
                await ws.send(message)
        finally:
            await ws.wait_closed()
            self.close_codes.append(ws.close_code)

    @property
    def remotes(self) -> set[Any]:
        return {ws.remote_address for ws in self.websockets}


# -- pooling --------------------------------------------------------------------------------


async def open_many(uri: str, n: int, pool: h2ws.ConnectionPool, **kw: Any) -> list[h2ws.WebSocket]:
    return list(
        await asyncio.gather(
            *(h2ws.connect(f"{uri}/{i}", http2=True, pool=pool, **NO_KEEPALIVE, **kw)
              for i in range(n))
        )
    )


async def echo_all(websockets: list[h2ws.WebSocket]) -> None:
    async def one(i: int, ws: h2ws.WebSocket) -> None:
        await ws.send(f"m{i}")
        assert await ws.recv() == f"m{i}"

    await asyncio.gather(*(one(i, ws) for i, ws in enumerate(websockets)))


async def test_thousand_websockets_share_one_connection() -> None:
    """1,000 concurrent connect() calls to one origin whose server allows
    1,000 streams: one TCP connection, as the server and the pool both see."""
    rec = Recorder()
    async with running_server(rec, max_concurrent_streams=1000) as srv:
        pool = h2ws.ConnectionPool(asyncio.get_running_loop())
        websockets = await open_many(f"ws://127.0.0.1:{srv.port}", 1000, pool)
        assert all(ws.http_version == "2" for ws in websockets)
        assert len({id(carrier(ws)) for ws in websockets}) == 1
        assert len(pool_connections(pool)) == 1
        assert pool_connections(pool)[0].max_streams == 1000
        await echo_all(websockets)
        assert len(rec.websockets) == 1000
        assert len(rec.remotes) == 1  # the server counts one connection too
        assert len(srv.server.connections) == 1
        await asyncio.gather(*(ws.close() for ws in websockets))
        assert {ws.close_code for ws in websockets} == {1000}
        await settle(lambda: len(rec.close_codes) == 1000)
        assert set(rec.close_codes) == {1000}
        # Idle now: the pooled connection closes.
        await settle(lambda: not pool_connections(pool) and not srv.server.connections)


async def test_default_stream_limit_gives_the_fewest_connections() -> None:
    """With the server's default limit of 100 streams, 1,000 WebSockets take
    exactly 10 connections (policy "new"), each one full."""
    rec = Recorder()
    async with running_server(rec) as srv:
        pool = h2ws.ConnectionPool(asyncio.get_running_loop())
        websockets = await open_many(f"ws://127.0.0.1:{srv.port}", 1000, pool)
        carriers: dict[int, int] = {}
        for ws in websockets:
            carriers[id(carrier(ws))] = carriers.get(id(carrier(ws)), 0) + 1
        assert sorted(carriers.values()) == [100] * 10
        assert len(pool_connections(pool)) == 10
        assert all(c.max_streams == 100 for c in pool_connections(pool))
        await echo_all(websockets)
        assert len(rec.remotes) == 10
        assert max(rec.peak.values()) <= 100
        await asyncio.gather(*(ws.close() for ws in websockets))
        await settle(lambda: not pool_connections(pool) and not srv.server.connections)


async def test_wait_policy_stays_within_the_limit() -> None:
    """max_streams_policy="wait" with a limit of 5: 20 overlapping
    connect() calls share one connection, never over 5 streams at once."""
    rec = Recorder()
    async with running_server(rec, max_concurrent_streams=5) as srv:
        pool = h2ws.ConnectionPool(asyncio.get_running_loop())
        client_peak = 0
        rng = random.Random(8441)

        async def session(i: int) -> None:
            nonlocal client_peak
            await asyncio.sleep(i * 0.005)  # started one after another
            async with h2ws.connect(
                f"ws://127.0.0.1:{srv.port}/{i}", http2=True, pool=pool,
                max_streams_policy="wait", **NO_KEEPALIVE,
            ) as ws:
                conn = carrier(ws)
                client_peak = max(client_peak, len(conn._streams))
                await ws.send(f"hello {i}")
                assert await ws.recv() == f"hello {i}"
                await asyncio.sleep(rng.uniform(0.01, 0.05))
            assert ws.close_code == 1000

        await asyncio.gather(*(session(i) for i in range(20)))
        assert len(rec.websockets) == 20
        assert len(rec.remotes) == 1  # all on one connection
        assert max(rec.peak.values()) == 5  # full, never over
        assert client_peak == 5
        await settle(lambda: not pool_connections(pool))


async def test_new_policy_opens_more_connections() -> None:
    """The default policy "new" with a limit of 5: 20 concurrent WebSockets
    ride 4 connections."""
    rec = Recorder()
    async with running_server(rec, max_concurrent_streams=5) as srv:
        pool = h2ws.ConnectionPool(asyncio.get_running_loop())
        websockets = await open_many(f"ws://127.0.0.1:{srv.port}", 20, pool)
        assert len({id(carrier(ws)) for ws in websockets}) == 4
        assert len(rec.remotes) == 4
        await echo_all(websockets)
        await asyncio.gather(*(ws.close() for ws in websockets))


async def test_goaway_moves_new_streams_to_a_new_connection() -> None:
    """After the server's GOAWAY (a graceful notice), new WebSockets go to a
    new connection; the old ones keep working until they close, then the old
    connection closes."""
    rec = Recorder()
    async with running_server(rec) as srv:
        pool = h2ws.ConnectionPool(asyncio.get_running_loop())
        uri = f"ws://127.0.0.1:{srv.port}"
        old = await open_many(uri, 2, pool)
        first = carrier(old[0])
        assert carrier(old[1]) is first
        (server_conn,) = srv.server.connections
        server_conn._conn.shutdown_notice()  # type: ignore[attr-defined]
        server_conn._flush()  # type: ignore[attr-defined]
        await settle(lambda: first.goaway)

        new = await h2ws.connect(f"{uri}/new", http2=True, pool=pool, **NO_KEEPALIVE)
        assert carrier(new) is not first
        assert len(rec.remotes) == 2
        await echo_all([*old, new])  # the old streams still work
        await asyncio.gather(*(ws.close() for ws in old))
        await settle(lambda: first._lost)
        assert pool_connections(pool) == [carrier(new)]
        await new.send("still here")
        assert await new.recv() == "still here"
        await new.close()
        assert [ws.close_code for ws in [*old, new]] == [1000] * 3


async def test_goaway_before_the_answer_retries_on_a_new_connection() -> None:
    """A GOAWAY whose last stream id excludes our pending extended CONNECT
    means the server never processed it (RFC 9113 section 6.8): connect()
    opens it on a new connection instead of failing."""
    first_conn: list[H2ServerConn] = []

    def on_request(conn: H2ServerConn, st: H2Stream) -> Any:
        if not first_conn:
            first_conn.append(conn)
            conn.goaway(last_stream_id=0)
            return None
        return (200, [], b"")

    async with RawH2Server(on_request) as server:
        pool = h2ws.ConnectionPool(asyncio.get_running_loop())
        ws = await h2ws.connect(server.uri, http2=True, pool=pool, **NO_KEEPALIVE)
        assert len(server.connections) == 2
        assert carrier(ws).usable
        await ws.send("after the retry")
        assert await ws.recv() == "after the retry"
        await ws.close()
        assert ws.close_code == 1000


# -- what the client sends ------------------------------------------------------------------

VERSIONS = ["2", "1.1"]


def raw_server(version: str, **kw: Any) -> Any:
    return RawH2Server(**kw) if version == "2" else RawH1Server(**kw)


def client_frames(server: Any) -> list[Any]:
    """Every client frame the raw server got, on its only stream or connection."""
    if isinstance(server, RawH2Server):
        (st,) = server.streams()
        return st.frames
    (conn,) = server.connections
    return conn.frames


MESSAGES: list[str | bytes] = [
    "",
    b"",
    "a",
    "x" * 125,
    b"y" * 126,
    b"\x00" * 65535,
    bytes(range(256)) * 300,
    "é" * 1000,
    *(f"message {i}" for i in range(60)),
]


@pytest.mark.parametrize("version", VERSIONS)
async def test_every_client_frame_is_masked_with_a_fresh_key(version: str) -> None:
    """RFC 6455 section 5.3 (and RFC 8441 section 5: still masked over HTTP/2):
    every client frame is masked, each with a new key; unmasked, the payloads
    are what was sent."""
    async with raw_server(version) as server:
        ws = await h2ws.connect(server.uri, http2=version == "2", **NO_KEEPALIVE)
        assert ws.http_version == version
        for message in MESSAGES:
            await ws.send(message)
        for message in MESSAGES:
            assert await ws.recv() == message
        await ws.send(["frag", "ment", "ed"])
        assert await ws.recv() == "fragmented"
        await asyncio.wait_for(await ws.ping(b"ping!"), 5)
        await ws.close()
        assert ws.close_code == 1000
        frames = client_frames(server)
    expected = [m.encode() if isinstance(m, str) else m for m in MESSAGES]
    assert [f.payload for f in frames[: len(MESSAGES)]] == expected
    assert [(f.opcode, f.fin, f.payload) for f in frames[len(MESSAGES) :]] == [
        (OP_TEXT, False, b"frag"),
        (OP_CONT, False, b"ment"),
        (OP_CONT, True, b"ed"),
        (OP_PING, True, b"ping!"),
        (OP_CLOSE, True, b"\x03\xe8"),
    ]
    assert all(f.masked for f in frames)
    keys = [f.key for f in frames]
    assert len(set(keys)) == len(keys) == len(MESSAGES) + 5
    assert b"\x00\x00\x00\x00" not in keys


BAD_UPGRADES = {
    "wrong accept": lambda r: switching(r, accept="s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
    "no accept": lambda r: switching(r).replace(b"Sec-WebSocket-Accept", b"X-Nothing"),
    "no upgrade": lambda r: switching(r).replace(b"Upgrade: websocket\r\n", b""),
    "no connection": lambda r: switching(r).replace(b"Connection: Upgrade\r\n", b""),
}


@pytest.mark.parametrize("answer", list(BAD_UPGRADES), ids=list(BAD_UPGRADES))
async def test_wrong_upgrade_answer_is_refused(answer: str) -> None:
    """RFC 6455 section 4.1: a 101 without the right Sec-WebSocket-Accept,
    Upgrade or Connection fails the handshake (and the connection)."""
    async with RawH1Server(BAD_UPGRADES[answer]) as server:
        with pytest.raises(h2ws.InvalidHandshake) as info:
            await h2ws.connect(server.uri, **NO_KEEPALIVE)
        assert not isinstance(info.value, h2ws.InvalidStatus)
        (conn,) = server.connections
        await server.until(lambda: conn.eof)
        assert conn.frames == []


@pytest.mark.parametrize("version", VERSIONS)
async def test_refusal_with_a_body_is_invalid_status(version: str) -> None:
    """A 403 with headers and a body: InvalidStatus carries all three, over
    either HTTP version; afterwards the pool holds nothing."""

    def refuse(request: h2ws.Request) -> h2ws.Response:
        return h2ws.Response(
            403, [("content-type", "text/plain"), ("x-why", "not you")], b"go away\n"
        )

    async with running_server(Recorder(), process_request=refuse) as srv:
        pool = h2ws.ConnectionPool(asyncio.get_running_loop())
        with pytest.raises(h2ws.InvalidStatus) as info:
            await h2ws.connect(
                f"ws://127.0.0.1:{srv.port}/", http2=version == "2", pool=pool, **NO_KEEPALIVE
            )
        exc = info.value
        assert exc.status == 403
        assert ("x-why", "not you") in exc.headers
        assert ("content-type", "text/plain") in exc.headers
        assert exc.body == b"go away\n"
        await settle(lambda: not pool_connections(pool) and not srv.server.connections)


async def test_refusal_without_a_body_over_h2() -> None:
    """A 404 in HEADERS with END_STREAM: InvalidStatus with an empty body."""
    async with RawH2Server(lambda c, s: (404, [("x-a", "b")], b"")) as server:
        with pytest.raises(h2ws.InvalidStatus) as info:
            await h2ws.connect(server.uri, http2=True, **NO_KEEPALIVE)
        assert (info.value.status, info.value.body) == (404, b"")
        assert ("x-a", "b") in info.value.headers


def h2_choosing(protocol: str) -> Any:
    return lambda conn, st: (200, [("sec-websocket-protocol", protocol)], b"")


def h1_choosing(protocol: str) -> Any:
    return lambda r: switching(r, extra=f"Sec-WebSocket-Protocol: {protocol}\r\n")


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("offered", [None, ["chat", "superchat"]], ids=["none", "two"])
async def test_subprotocol_not_offered_is_refused(version: str, offered: list[str] | None) -> None:
    """RFC 6455 section 4.1: a subprotocol the client did not offer fails
    the handshake; over HTTP/2 the stream is reset."""
    server: Any = (
        RawH2Server(h2_choosing("evil")) if version == "2" else RawH1Server(h1_choosing("evil"))
    )
    async with server:
        with pytest.raises(h2ws.InvalidHandshake, match="subprotocol"):
            await h2ws.connect(
                server.uri, http2=version == "2", subprotocols=offered, **NO_KEEPALIVE
            )
        if version == "2":
            await server.until(lambda: server.streams()[0].reset == CANCEL)
        else:
            await server.until(lambda: server.connections[0].eof)


@pytest.mark.parametrize("version", VERSIONS)
async def test_subprotocol_chosen_by_the_server(version: str) -> None:
    seen: list[str | None] = []

    async def handler(ws: h2ws.WebSocket) -> None:
        seen.append(ws.subprotocol)
        await ws.recv()

    async with running_server(handler, subprotocols=["superchat", "chat"]) as srv:
        async with h2ws.connect(
            f"ws://127.0.0.1:{srv.port}/", http2=version == "2",
            subprotocols=["chat", "superchat"], **NO_KEEPALIVE,
        ) as ws:
            assert ws.subprotocol in ("chat", "superchat")
            assert ws.http_version == version
            await ws.send("done")
        assert seen == [ws.subprotocol]


SILENT = {
    "h2 no answer": (lambda: RawH2Server(lambda c, s: None), True),
    "h2 no settings": (lambda: RawH2Server(send_settings=False), True),
    "h1 no answer": (lambda: RawH1Server(lambda r: None), False),
}


@pytest.mark.parametrize("case", list(SILENT), ids=list(SILENT))
async def test_open_timeout(case: str) -> None:
    """A server that never answers: TimeoutError after open_timeout, and
    nothing is left open (the stream reset, the connection closed)."""
    make, http2 = SILENT[case]
    async with make() as server:
        pool = h2ws.ConnectionPool(asyncio.get_running_loop())
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(TimeoutError):
            await h2ws.connect(server.uri, http2=http2, pool=pool, open_timeout=0.3)
        assert 0.25 < loop.time() - start < 2.0
        await server.until(lambda: all(c.eof for c in server.connections) and server.connections)
        if case == "h2 no answer":
            (st,) = server.streams()
            assert st.reset == CANCEL
        await settle(lambda: not pool_connections(pool))


@pytest.mark.parametrize(
    "scheme,http2", [("ws", "auto"), ("ws", False), ("ws", True), ("wss", "auto")]
)
async def test_connection_refused_is_oserror(scheme: str, http2: Any) -> None:
    pool = h2ws.ConnectionPool(asyncio.get_running_loop())
    with pytest.raises(OSError):
        await h2ws.connect(f"{scheme}://127.0.0.1:{free_port()}/", http2=http2, pool=pool)
    assert not pool_connections(pool)


async def test_cancel_mid_handshake_over_h2() -> None:
    """Cancelling connect() while its extended CONNECT waits for an answer
    resets that stream (CANCEL); a WebSocket already open on the connection
    carries on; once it closes the pool is empty."""

    def on_request(conn: H2ServerConn, st: H2Stream) -> Any:
        return None if st.headers[":path"] == "/hang" else (200, [], b"")

    async with RawH2Server(on_request) as server:
        pool = h2ws.ConnectionPool(asyncio.get_running_loop())
        other = await h2ws.connect(f"{server.uri}/ok", http2=True, pool=pool, **NO_KEEPALIVE)
        task = asyncio.ensure_future(
            h2ws.connect(f"{server.uri}/hang", http2=True, pool=pool, **NO_KEEPALIVE)
        )
        await server.until(lambda: len(server.streams()) == 2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        hang = next(st for st in server.streams() if st.headers[":path"] == "/hang")
        await server.until(lambda: hang.reset == CANCEL)
        (conn,) = pool_connections(pool)
        assert conn.active == 1 and not conn._opening and conn.reserved == 0
        await other.send("still open")
        assert await other.recv() == "still open"
        await other.close()
        await settle(lambda: not pool_connections(pool))
        await server.until(lambda: server.connections[0].eof)
        assert server.connections[0].goaway_received is not None


async def test_cancel_mid_handshake_over_h1() -> None:
    """Cancelling connect() while the Upgrade waits for its answer closes the
    connection."""
    async with RawH1Server(lambda r: None) as server:
        task = asyncio.ensure_future(h2ws.connect(server.uri, **NO_KEEPALIVE))
        await server.until(lambda: bool(server.connections) and server.connections[0].request)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await server.until(lambda: server.connections[0].eof)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("form", ["dict", "list"])
async def test_additional_headers_and_origin_reach_the_server(version: str, form: str) -> None:
    requests: list[h2ws.Request] = []

    async def handler(ws: h2ws.WebSocket) -> None:
        requests.append(ws.request)

    extra = [("X-Trace", "abc 123"), ("Authorization", "Bearer t0ken")]
    additional: Any = dict(extra) if form == "dict" else extra
    async with running_server(handler, origins=["https://app.example"]) as srv:
        async with h2ws.connect(
            f"ws://127.0.0.1:{srv.port}/path?q=1", http2=version == "2",
            additional_headers=additional, origin="https://app.example", **NO_KEEPALIVE,
        ) as ws:
            await ws.wait_closed()
        # A wrong origin is refused by the server: the header really went out.
        with pytest.raises(h2ws.InvalidStatus) as info:
            await h2ws.connect(
                f"ws://127.0.0.1:{srv.port}/", http2=version == "2",
                origin="https://evil.example", **NO_KEEPALIVE,
            )
        assert info.value.status == 403
    (request,) = requests
    assert request.http_version == version
    assert request.path == "/path?q=1"
    assert request.headers["origin"] == "https://app.example"
    assert request.headers["x-trace"] == "abc 123"
    assert request.headers["authorization"] == "Bearer t0ken"


@pytest.mark.parametrize("version", VERSIONS)
async def test_keepalive_pings(version: str) -> None:
    """ping_interval: the client pings on its own; answered, the WebSocket
    stays open."""
    async with raw_server(version) as server:
        ws = await h2ws.connect(
            server.uri, http2=version == "2", ping_interval=0.05, ping_timeout=1.0
        )
        await server.until(
            lambda: sum(f.opcode == OP_PING for f in client_frames(server)) >= 4, timeout=5
        )
        assert not ws.closed
        pings = [f for f in client_frames(server) if f.opcode == OP_PING]
        assert all(f.masked and len(f.payload) == 4 for f in pings)
        assert len({f.payload for f in pings}) == len(pings)
        await ws.close()
        assert ws.close_code == 1000


@pytest.mark.parametrize("version", VERSIONS)
async def test_keepalive_timeout_closes_with_1011(version: str) -> None:
    """A server that never answers the keepalive ping: after ping_timeout the
    client closes with 1011."""
    async with raw_server(version, auto_pong=False) as server:
        ws = await h2ws.connect(
            server.uri, http2=version == "2", ping_interval=0.05, ping_timeout=0.1
        )
        with pytest.raises(h2ws.ConnectionClosedError) as info:
            await asyncio.wait_for(ws.recv(), 5)
        assert info.value.code == 1011
        closes = [f for f in client_frames(server) if f.opcode == OP_CLOSE]
        assert [f.close_code for f in closes] == [1011]


async def test_clean_close_over_h2() -> None:
    """ws.close(): the client's close frame, END_STREAM, no RST_STREAM; the
    server's answer ends the stream; the now idle connection goes away with
    a GOAWAY."""
    async with RawH2Server(end_with_close=False) as server:
        ws = await h2ws.connect(server.uri, http2=True, **NO_KEEPALIVE)
        await ws.send("bye")
        assert await ws.recv() == "bye"
        await asyncio.wait_for(ws.close(), 5)
        assert ws.close_code == 1000
        assert isinstance(ws._closed_exc, h2ws.ConnectionClosedOK)
        (st,) = server.streams()
        assert st.close_code() == 1000
        assert st.ended and st.reset is None
        # The close frame and END_STREAM travel together (as Chromium sends
        # them): a server that forgets a stream once it answered the close
        # never sees a later END_STREAM on it.
        assert st.data_frames[-1] == ([OP_CLOSE], True)
        (conn,) = server.connections
        await server.until(lambda: conn.eof)
        assert conn.goaway_received is not None
        assert conn.goaway_received.error_code == 0
        await asyncio.sleep(0.05)
        assert st.reset is None


async def test_close_when_the_server_never_ends_the_stream() -> None:
    """A server that answers the close frame but never sends END_STREAM
    (Hypercorn, INTEROP.md): close() still returns within close_timeout
    with the code received, and the stream is reset (CANCEL)."""
    async with RawH2Server(end_with_close=False, end_after_client=False) as server:
        ws = await h2ws.connect(server.uri, http2=True, close_timeout=0.3, **NO_KEEPALIVE)
        loop = asyncio.get_running_loop()
        start = loop.time()
        await ws.close(1001, "going")
        assert loop.time() - start < 1.5
        assert ws.close_code == 1001
        (st,) = server.streams()
        assert st.close_code() == 1001
        await server.until(lambda: st.reset == CANCEL)


async def test_server_initiated_close() -> None:
    """The server closes with 4001: recv() raises ConnectionClosedError with
    that code and reason; the client answered, so the server saw 4001 too."""
    rec: list[int | None] = []

    async def handler(ws: h2ws.WebSocket) -> None:
        await ws.close(4001, "bye now")
        rec.append(ws.close_code)

    async with running_server(handler) as srv:
        for http2 in (True, False):
            ws = await h2ws.connect(f"ws://127.0.0.1:{srv.port}/", http2=http2, **NO_KEEPALIVE)
            with pytest.raises(h2ws.ConnectionClosedError) as info:
                await ws.recv()
            assert (info.value.code, info.value.reason) == (4001, "bye now")
            await settle(lambda http2=http2: len(rec) == (1 if http2 else 2))
    assert rec == [4001, 4001]


async def test_clean_close_over_h1() -> None:
    async with RawH1Server() as server:
        ws = await h2ws.connect(server.uri, **NO_KEEPALIVE)
        assert ws.http_version == "1.1"
        await asyncio.wait_for(ws.close(), 5)
        assert ws.close_code == 1000
        (conn,) = server.connections
        assert conn.close_code() == 1000
        assert conn.eof


async def test_idle_pooled_connection_closes_against_h2ws() -> None:
    """Against h2ws's server: the handler sees 1000; once the last WebSocket
    closed, the pooled connection closes and the server has no connection."""
    rec = Recorder()
    async with running_server(rec) as srv:
        pool = h2ws.ConnectionPool(asyncio.get_running_loop())
        async with h2ws.connect(
            f"ws://127.0.0.1:{srv.port}/", http2=True, pool=pool, **NO_KEEPALIVE
        ) as ws:
            await ws.send("x")
            await ws.recv()
            assert len(pool_connections(pool)) == 1
        assert ws.close_code == 1000
        await settle(lambda: rec.close_codes == [1000])
        await settle(lambda: not pool_connections(pool) and not srv.server.connections)


async def test_http2_true_requires_rfc8441() -> None:
    """http2=True against an HTTP/2 server that does not advertise
    SETTINGS_ENABLE_CONNECT_PROTOCOL raises InvalidHandshake, every time;
    "auto" on ws:// never tries HTTP/2."""
    async with RawH2Server(connect_protocol=False) as server:
        pool = h2ws.ConnectionPool(asyncio.get_running_loop())
        for _ in range(2):
            with pytest.raises(h2ws.InvalidHandshake):
                await h2ws.connect(server.uri, http2=True, pool=pool, **NO_KEEPALIVE)
        assert len(server.connections) == 1
        assert server.streams() == []


def test_options_are_checked() -> None:
    with pytest.raises(TypeError):
        h2ws.connect("ws://h/", max_stream_policy="new")
    with pytest.raises(ValueError):
        h2ws.connect("ws://h/", http2="yes")


async def test_uri_is_checked() -> None:
    for uri in ("http://h/", "ws:///path"):
        with pytest.raises(ValueError):
            await h2ws.connect(uri)


async def test_h2c_prior_knowledge_against_an_http1_server() -> None:
    """http2=True on ws:// to a server that answers the HTTP/2 preface in
    HTTP/1.1 (a 400): InvalidHandshake, not a protocol error."""

    def bad_request(request: H1Request) -> bytes:
        return b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

    async with RawH1Server(bad_request) as server:
        pool = h2ws.ConnectionPool(asyncio.get_running_loop())
        with pytest.raises(h2ws.InvalidHandshake):
            await h2ws.connect(server.uri, http2=True, pool=pool, **NO_KEEPALIVE)
        assert server.connections[0].request is not None
        assert server.connections[0].request.line.startswith("PRI * HTTP/2.0")
        assert not pool_connections(pool)


async def test_200_with_end_stream_is_no_tunnel() -> None:
    """RFC 8441 section 5: the tunnel is the stream after a 2xx; a 200 that
    ends the stream at once opens no WebSocket."""
    async with RawH2Server(end_200=True) as server:
        pool = h2ws.ConnectionPool(asyncio.get_running_loop())
        with pytest.raises(h2ws.InvalidHandshake):
            await h2ws.connect(server.uri, http2=True, pool=pool, **NO_KEEPALIVE)
        await settle(lambda: not pool_connections(pool))


@pytest.mark.parametrize("how", ["end_stream", "reset"])
async def test_stream_ending_without_close_frame_is_1006(how: str) -> None:
    """RFC 8441 section 5 with RFC 6455 section 7.1.5: END_STREAM or
    RST_STREAM without a close frame closes the WebSocket with 1006."""
    async with RawH2Server() as server:
        ws = await h2ws.connect(server.uri, http2=True, **NO_KEEPALIVE)
        await ws.send("before")
        assert await ws.recv() == "before"
        (conn,) = server.connections
        (st,) = server.streams()
        if how == "end_stream":
            conn.end(st)
        else:
            conn.h2.reset_stream(st.sid, h2.errors.ErrorCodes.INTERNAL_ERROR)
            conn.flush()
        with pytest.raises(h2ws.ConnectionClosedError) as info:
            await asyncio.wait_for(ws.recv(), 5)
        assert info.value.code == 1006
        if how == "end_stream":
            await server.until(lambda: st.ended)  # our side ends too
            assert st.reset is None
