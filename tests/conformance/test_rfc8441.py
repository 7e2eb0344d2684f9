"""RFC 8441 (WebSockets over HTTP/2) at the frame level, against a live
``h2ws.serve()`` echo server, with python-hyper ``h2`` as the client.

Covers the SETTINGS parameter (§3), the extended CONNECT handshake (§4, §5;
the cases of cowboy's rfc8441 suite plus the pitfalls of INTEROP.md), masking
(RFC 6455 §5.1 still applies over HTTP/2), bad input on one stream while the
others carry on, MAX_CONCURRENT_STREAMS (RFC 9113 §5.1.2) and plain requests
beside WebSockets. Close choreography and shutdown: test_h2_close.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h2.events
import pytest
from h2peer import (
    ENABLE_CONNECT_PROTOCOL,
    INITIAL_WINDOW_SIZE,
    MAX_CONCURRENT_STREAMS,
    MAX_HEADER_LIST_SIZE,
    PROTOCOL_ERROR,
    REFUSED_STREAM,
    Recorder,
    answer,
    body,
    echo,
    echo_big_ok,
    echo_ok,
    first_server_frame,
    header_names,
    open_ws,
    parse_settings,
    reply_close,
    request,
    response_headers,
    send_over_limit,
    serving,
    settle,
    until_ended,
    wait_close,
    wire_frames,
    ws_headers,
)
from helpers.servers import H2Client, running_server

import h2ws
from h2ws import _core

pytestmark = pytest.mark.timeout(120)

TLS = pytest.mark.parametrize("tls", [False, True], ids=["h2c", "tls"])


def remote_settings_events(client: H2Client) -> list[h2.events.RemoteSettingsChanged]:
    return [e for e in client.events if isinstance(e, h2.events.RemoteSettingsChanged)]


async def refused(client: H2Client, sid: int) -> None:
    """The request on `sid` never became a WebSocket: the stream was reset,
    or answered with an error status and ended."""
    await answer(client, sid)
    if client.reset_code(sid) is None:
        status = client.status(sid)
        assert status is not None and status >= 400, status
        await until_ended(client, sid)
    await settle(client, 0.05)
    assert client.status(sid) != 200


async def still_works(client: H2Client) -> None:
    """The connection carries on: a new WebSocket opens and echoes."""
    sid = await open_ws(client, "/still")
    await echo_ok(client, sid, "still here")


# -- §3: SETTINGS_ENABLE_CONNECT_PROTOCOL ---------------------------------------------


@TLS
async def test_first_settings_frame_advertises_rfc8441(tls: bool) -> None:
    """RFC 8441 §3, INTEROP pitfall 1: the server's first frame is its SETTINGS
    (RFC 9113 §3.4) and carries ENABLE_CONNECT_PROTOCOL = 1, with the
    defaults MAX_CONCURRENT_STREAMS = 100, INITIAL_WINDOW_SIZE and
    MAX_HEADER_LIST_SIZE (RFC 9113 §6.5.2)."""
    async with running_server(echo, tls=tls) as srv:
        ftype, flags, sid, payload = await first_server_frame(srv.host, srv.port, tls)
    assert (ftype, flags, sid) == (0x4, 0, 0)
    settings = dict(parse_settings(payload))
    assert settings[ENABLE_CONNECT_PROTOCOL] == 1
    assert settings[MAX_CONCURRENT_STREAMS] == 100
    assert settings[INITIAL_WINDOW_SIZE] == h2ws.ServerConfig.initial_window_size
    assert settings[MAX_HEADER_LIST_SIZE] == h2ws.ServerConfig.max_header_list_size


async def test_settings_follow_the_configuration() -> None:
    """RFC 9113 §6.5.2: the advertised limits are the configured ones."""
    async with running_server(
        echo, max_concurrent_streams=7, initial_window_size=100_000, max_header_list_size=9000
    ) as srv:
        _, _, _, payload = await first_server_frame(srv.host, srv.port, False)
    settings = dict(parse_settings(payload))
    assert settings[MAX_CONCURRENT_STREAMS] == 7
    assert settings[INITIAL_WINDOW_SIZE] == 100_000
    assert settings[MAX_HEADER_LIST_SIZE] == 9000
    assert settings[ENABLE_CONNECT_PROTOCOL] == 1


@TLS
async def test_disabled_setting_absent_and_extended_connect_rejected(tls: bool) -> None:
    """RFC 8441 §3, INTEROP pitfall 1 (the switch): with ws_over_h2=False the
    setting is not sent, and an extended CONNECT (a :protocol the server did
    not allow, RFC 8441 §4) is reset with PROTOCOL_ERROR (as cowboy's
    reject_handshake_when_disabled); the connection carries on."""
    async with running_server(echo, tls=tls, ws_over_h2=False) as srv:
        _, _, _, payload = await first_server_frame(srv.host, srv.port, tls)
        assert ENABLE_CONNECT_PROTOCOL not in dict(parse_settings(payload))
        client = await H2Client.connect(srv.host, srv.port, tls=tls)
        try:
            await client.wait_settings()
            assert client.remote_settings.enable_connect_protocol == 0
            sid = request(client, ws_headers(client, "/ws"))
            await answer(client, sid)
            assert client.reset_code(sid) == PROTOCOL_ERROR
            assert client.response(sid) is None
            # A plain request on the same connection still gets its answer.
            get = request(
                client,
                [
                    (":method", "GET"),
                    (":scheme", "http"),
                    (":path", "/"),
                    (":authority", "127.0.0.1"),
                ],
                end_stream=True,
            )
            await answer(client, get)
            assert client.status(get) == 426
        finally:
            await client.close()


@pytest.mark.parametrize("value", [None, 0, 1], ids=["unsent", "zero", "one"])
async def test_client_never_needs_to_send_the_setting(value: int | None) -> None:
    """RFC 8441 §3 ("receipt of this parameter by a server does not have any
    impact"), INTEROP pitfall 1: Chromium never sends it; a client sending 0
    or 1 changes nothing."""
    settings = None if value is None else {ENABLE_CONNECT_PROTOCOL: value}
    async with serving(settings=settings) as (_, client):
        sid = await open_ws(client)
        await echo_ok(client, sid)


async def test_setting_never_goes_back_to_zero() -> None:
    """RFC 8441 §3: a sender MUST NOT send ENABLE_CONNECT_PROTOCOL = 0 after 1.
    Through WebSockets, client SETTINGS changes and a ping, the server's
    SETTINGS never take it back."""
    async with serving() as (_, client):
        sid = await open_ws(client)
        await echo_ok(client, sid)
        client.conn.update_settings({INITIAL_WINDOW_SIZE: 1 << 20})
        client.conn.ping(b"12345678")
        client.flush()
        await client.until(
            lambda c: any(isinstance(e, h2.events.PingAckReceived) for e in c.events)
        )
        sid2 = await open_ws(client)
        await echo_ok(client, sid2)
        await settle(client)
        events = remote_settings_events(client)
        assert events, "no SETTINGS from the server"
        first = events[0].changed_settings[ENABLE_CONNECT_PROTOCOL]
        assert first.new_value == 1
        for e in events[1:]:
            change = e.changed_settings.get(ENABLE_CONNECT_PROTOCOL)
            assert change is None or change.new_value == 1
        assert client.remote_settings.enable_connect_protocol == 1


# -- §4, §5: the extended CONNECT handshake ------------------------------------------


@TLS
async def test_accept_handshake_and_echo(tls: bool) -> None:
    """RFC 8441 §5 (and its §5.1 example; cowboy accept_handshake_when_enabled):
    extended CONNECT with :protocol websocket gets :status 200, then the
    stream carries RFC 6455 frames both ways."""
    async with serving(tls=tls) as (_, client):
        sid = await open_ws(client, "/chat?room=1", extra=[("origin", "https://127.0.0.1")])
        await echo_ok(client, sid, "Hello")
        await echo_ok(client, sid, b"\x00\x01binary")


@TLS
async def test_success_response_is_bare_200_without_end_stream(tls: bool) -> None:
    """RFC 8441 §5, INTEROP pitfall 3: success is :status 200 on HEADERS
    without END_STREAM; no content-length, no sec-websocket-accept (an
    HTTP/1.1 artefact, RFC 8441 §5), no connection/upgrade/transfer-encoding
    (connection-specific, RFC 9113 §8.2.2)."""
    async with serving(tls=tls, subprotocols=["chat"]) as (_, client):
        sid = await open_ws(client, extra=[("sec-websocket-protocol", "chat")])
        response = client.response(sid)
        assert response is not None and response.stream_ended is None
        names = header_names(client, sid)
        for bad in (
            "content-length",
            "sec-websocket-accept",
            "connection",
            "upgrade",
            "transfer-encoding",
            "keep-alive",
        ):
            assert bad not in names
        assert dict(response_headers(client, sid))[":status"] == "200"
        await settle(client)
        assert not client.ended(sid) and client.reset_code(sid) is None


@pytest.mark.parametrize("protocol", ["WEBSOCKET", "WebSocket"])
async def test_protocol_is_case_insensitive(protocol: str) -> None:
    """RFC 8441 §4 (the :protocol value is a token compared as in RFC 9110
    §7.8, case-insensitively; cowboy accept_uppercase_pseudo_header_protocol),
    INTEROP pitfall 2."""
    async with serving() as (_, client):
        sid = await open_ws(client, protocol=protocol)
        await echo_ok(client, sid)


@TLS
@pytest.mark.parametrize("protocol", ["mqtt", "websocket mqtt", "websocket, mqtt", "web-socket"])
async def test_unknown_protocol_is_501(tls: bool, protocol: str) -> None:
    """RFC 8441 §4 (and RFC 9220 for the status), INTEROP pitfall 2: a
    :protocol other than websocket is answered 501 (cowboy
    reject_unknown_pseudo_header_protocol / reject_invalid_pseudo_header_protocol);
    the connection carries on."""
    async with serving(tls=tls) as (_, client):
        sid = request(client, ws_headers(client, protocol=protocol))
        await answer(client, sid)
        assert client.status(sid) == 501
        await until_ended(client, sid)
        assert client.ended(sid)
        await still_works(client)


async def test_many_protocol_pseudo_headers_refused() -> None:
    """RFC 9113 §8.3 (pseudo-header fields appear once; a duplicate makes the
    request malformed, §8.1.1) with RFC 8441 §4: two :protocol fields are
    refused (cowboy reject_many_pseudo_header_protocol), the connection
    carries on."""
    async with serving() as (_, client):
        headers = ws_headers(client)
        headers.insert(2, (":protocol", "mqtt"))
        sid = request(client, headers)
        await refused(client, sid)
        await still_works(client)


@pytest.mark.parametrize(
    "bad",
    ["web\rsocket", "web\nsocket", "web\x00socket", "websocket\r\n", " websocket", "websocket "],
)
async def test_protocol_with_invalid_bytes_refused(bad: str) -> None:
    """RFC 9113 §8.2.1 (CR, LF, NUL and edge whitespace make a field value
    malformed) with RFC 8441 §4 (a token): the stream is refused one way or
    another (libnghttp2 resets it, or the core answers 501), never a hang or a
    connection error; another WebSocket on the same connection still works."""
    async with serving() as (_, client):
        sid = request(client, ws_headers(client, protocol=bad))
        await refused(client, sid)
        await still_works(client)


@TLS
@pytest.mark.parametrize("missing", [":scheme", ":path", ":authority"])
async def test_missing_pseudo_header_refused(tls: bool, missing: str) -> None:
    """RFC 8441 §4: an extended CONNECT MUST carry :scheme and :path (and
    :authority, RFC 9113 §8.3.1 via RFC 8441 §4); without one the request is
    malformed (RFC 9113 §8.1.1) and the stream is reset with PROTOCOL_ERROR
    (cowboy reject_missing_pseudo_header_*); the connection carries on."""
    async with serving(tls=tls) as (_, client):
        headers = [h for h in ws_headers(client) if h[0] != missing]
        sid = request(client, headers)
        await answer(client, sid)
        assert client.reset_code(sid) == PROTOCOL_ERROR
        await still_works(client)


async def test_missing_protocol_with_scheme_and_path_refused() -> None:
    """RFC 9113 §8.5 (a plain CONNECT has no :scheme nor :path) and RFC 8441
    §4/§5 (no :protocol, no WebSocket; cowboy
    reject_missing_pseudo_header_protocol): refused with PROTOCOL_ERROR, never a
    WebSocket, unlike Hypercorn (INTEROP)."""
    async with serving() as (_, client):
        sid = request(client, ws_headers(client, protocol=None))
        await answer(client, sid)
        assert client.reset_code(sid) == PROTOCOL_ERROR
        assert client.status(sid) is None
        await still_works(client)


async def test_plain_connect_is_never_a_websocket() -> None:
    """RFC 9113 §8.5 / RFC 8441 §4, INTEROP pitfall 2: a plain CONNECT
    (:method and :authority only) is an ordinary request: answered with
    426 and a body by default, never 200, and the connection carries on
    (Hypercorn kills the connection instead)."""
    rec = Recorder()
    async with serving(rec) as (_, client):
        sid = request(
            client,
            [
                (":method", "CONNECT"),
                (":authority", "127.0.0.1:443"),
                ("sec-websocket-version", "13"),
            ],
        )
        await answer(client, sid)
        assert client.status(sid) == 426
        await until_ended(client, sid)
        assert body(client, sid)
        assert not rec.sockets
        await still_works(client)


@pytest.mark.parametrize(
    "header",
    [
        ("connection", "upgrade"),
        ("upgrade", "websocket"),
        ("connection", "keep-alive"),
        ("transfer-encoding", "chunked"),
    ],
)
async def test_connection_specific_headers_refused(header: tuple[str, str]) -> None:
    """RFC 9113 §8.2.2: connection-specific fields make a request malformed
    (cowboy reject_connection_header / reject_upgrade_header): PROTOCOL_ERROR
    reset, the connection carries on."""
    async with serving() as (_, client):
        sid = request(client, ws_headers(client, extra=[header]))
        await answer(client, sid)
        assert client.reset_code(sid) == PROTOCOL_ERROR
        await still_works(client)


async def test_stray_sec_websocket_key_ignored() -> None:
    """RFC 8441 §5 (no Sec-WebSocket-Key/Accept over HTTP/2), INTEROP (HAProxy
    forwards the client's key): a stray key is tolerated and no accept comes
    back."""
    async with serving() as (_, client):
        sid = await open_ws(client, extra=[("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")])
        assert "sec-websocket-accept" not in header_names(client, sid)
        await echo_ok(client, sid)


async def test_https_scheme_on_cleartext_tolerated() -> None:
    """RFC 8441 §5 (the :scheme is the Target URI's) vs INTEROP (HAProxy 2.6
    sends :scheme https to a cleartext backend): tolerated."""
    async with serving(tls=False) as (_, client):
        sid = await client.open_websocket("/", scheme="https")
        await echo_ok(client, sid)


@TLS
@pytest.mark.parametrize("version", [None, "8", "14", "13, 8", "", "013"])
async def test_bad_websocket_version_is_400(tls: bool, version: str | None) -> None:
    """RFC 6455 §4.2.2 / §4.4 (via RFC 8441 §5), INTEROP pitfall 4: a missing or
    non-13 sec-websocket-version gets 400 carrying sec-websocket-version: 13."""
    async with serving(tls=tls) as (_, client):
        sid = request(client, ws_headers(client, version=version))
        await answer(client, sid)
        assert client.status(sid) == 400
        assert ("sec-websocket-version", "13") in response_headers(client, sid)
        await until_ended(client, sid)
        await still_works(client)


@TLS
async def test_request_with_end_stream_is_400(tls: bool) -> None:
    """RFC 8441 §4/§5 (the stream is the tunnel: a request that ends it has no
    tunnel), INTEROP pitfall 5: HEADERS with END_STREAM gets 400, and the
    stream ends cleanly, never a hang."""
    async with serving(tls=tls) as (_, client):
        sid = request(client, ws_headers(client), end_stream=True)
        await answer(client, sid, timeout=3)
        assert client.status(sid) == 400
        await until_ended(client, sid, timeout=3)
        assert client.ended(sid) and client.reset_code(sid) is None
        await still_works(client)


@pytest.mark.parametrize("length", ["0", "12"])
async def test_content_length_on_extended_connect_is_400(length: str) -> None:
    """RFC 9113 §8.5 (CONNECT has no content) with RFC 8441 §4, INTEROP
    (libnghttp2 enforces a request content-length on the tunnel): a
    content-length is refused with 400 before any tunnel opens."""
    async with serving() as (_, client):
        sid = request(client, ws_headers(client, extra=[("content-length", length)]))
        await answer(client, sid)
        assert client.status(sid) == 400
        await still_works(client)


@TLS
async def test_data_before_200_resets_stream(tls: bool) -> None:
    """RFC 8441 §5 (the tunnel opens with the 2xx), INTEROP pitfall 5: DATA
    sent before the 200 (while an async process_request is still deciding)
    resets the stream; the handler never runs; the connection carries on."""
    rec = Recorder()
    decided = asyncio.Event()

    async def slow(request: h2ws.Request) -> h2ws.Response | None:
        if request.path == "/slow":
            await asyncio.sleep(0.3)
            decided.set()
        return None

    async with serving(rec, tls=tls, process_request=slow) as (_, client):
        sid = request(client, ws_headers(client, "/slow"))
        client.ws_send_raw(sid, _core.build_frame(_core.OP_TEXT, b"early", mask=b"abcd"))
        await answer(client, sid)
        assert client.reset_code(sid) == PROTOCOL_ERROR
        assert client.status(sid) is None
        await asyncio.wait_for(decided.wait(), 5)
        await settle(client, 0.05)
        assert client.status(sid) is None
        assert "/slow" not in rec.sockets
        await still_works(client)


async def test_trailers_mid_tunnel_reset_other_streams_carry_on() -> None:
    """RFC 8441 §5 / RFC 9113 §8.1 (after the 200 the stream only carries DATA
    until it ends; libnghttp2 1.52 lets HEADERS through, INTEROP): HEADERS
    (trailers with END_STREAM) on an open WebSocket get RST_STREAM
    PROTOCOL_ERROR; the handler sees 1006; another WebSocket keeps echoing."""
    rec = Recorder()
    async with serving(rec) as (_, client):
        a = await open_ws(client, "/a")
        b = await open_ws(client, "/b")
        await echo_ok(client, a)
        client.conn.send_headers(a, [("x-trailer", "1")], end_stream=True)
        client.flush()
        await until_ended(client, a)
        assert client.reset_code(a) == PROTOCOL_ERROR
        exc = await rec.raised("/a")
        assert isinstance(exc, h2ws.ConnectionClosedError) and exc.code == 1006
        await echo_ok(client, b, "b goes on")


async def test_headers_without_end_stream_mid_tunnel_reset() -> None:
    """RFC 8441 §5 / RFC 9113 §8.1: a HEADERS frame without END_STREAM in the
    middle of a tunnel (sent raw: python-h2 refuses to) is reset with
    PROTOCOL_ERROR; the connection and the other streams carry on."""
    from hyperframe.frame import HeadersFrame

    async with serving() as (_, client):
        a = await open_ws(client, "/a")
        b = await open_ws(client, "/b")
        frame = HeadersFrame(a)
        frame.data = client.conn.encoder.encode([("x-extra", "1")])
        frame.flags.add("END_HEADERS")
        client.writer.write(frame.serialize())
        await client.until(lambda c: c.reset_code(a) is not None)
        assert client.reset_code(a) == PROTOCOL_ERROR
        await echo_ok(client, b, "b goes on")
        await still_works(client)


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        (["chat", "superchat"], "superchat"),  # server preference wins
        (["chat"], "chat"),
        (["chat, superchat"], "superchat"),  # one comma-separated field
        (["other"], None),
        ([], None),
    ],
)
async def test_subprotocol_negotiation(offered: list[str], chosen: str | None) -> None:
    """RFC 6455 §4.2.2 / §11.3.4 via RFC 8441 §5: sec-websocket-protocol
    answers with one of the offered subprotocols, in the server's order of
    preference; nothing offered (or nothing in common), nothing sent."""
    rec = Recorder()
    async with serving(rec, subprotocols=["superchat", "chat"]) as (_, client):
        extra = [("sec-websocket-protocol", p) for p in offered]
        sid = await open_ws(client, "/p", extra=extra)
        values = [v for k, v in response_headers(client, sid) if k == "sec-websocket-protocol"]
        assert values == ([chosen] if chosen else [])
        await echo_ok(client, sid)
        assert rec.sockets["/p"].subprotocol == chosen


@TLS
@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_process_request_response_reaches_client(tls: bool, kind: str) -> None:
    """RFC 8441 §5 (any non-2xx refuses the tunnel): process_request returning
    h2ws.Response(403, headers, body), sync or async, gives that status,
    headers and body, then END_STREAM; the handler never runs."""
    rec = Recorder()

    def deny(request: h2ws.Request) -> h2ws.Response | None:
        if request.path == "/private":
            return h2ws.Response(
                403, [("x-why", "no entry"), ("content-type", "text/plain")], b"forbidden\n"
            )
        return None

    async def deny_async(request: h2ws.Request) -> h2ws.Response | None:
        await asyncio.sleep(0)
        return deny(request)

    process = deny if kind == "sync" else deny_async
    async with serving(rec, tls=tls, process_request=process) as (_, client):
        sid = request(client, ws_headers(client, "/private"))
        await answer(client, sid)
        assert client.status(sid) == 403
        assert ("x-why", "no entry") in response_headers(client, sid)
        await until_ended(client, sid)
        assert body(client, sid) == b"forbidden\n"
        assert "/private" not in rec.sockets
        ok = await open_ws(client, "/public")
        await echo_ok(client, ok)


async def test_async_process_request_sees_the_request() -> None:
    """RFC 8441 §4: the request reaching process_request is the extended
    CONNECT (method CONNECT, protocol websocket, path, authority, headers);
    returning None opens the WebSocket."""
    seen: list[h2ws.Request] = []

    async def look(request: h2ws.Request) -> None:
        await asyncio.sleep(0.01)
        seen.append(request)
        return None

    async with serving(process_request=look) as (_, client):
        sid = await open_ws(
            client, "/x?y=1", authority="example.test", extra=[("origin", "http://example.test")]
        )
        await echo_ok(client, sid)
    (req,) = seen
    assert (req.method, req.protocol, req.path, req.authority) == (
        "CONNECT",
        "websocket",
        "/x?y=1",
        "example.test",
    )
    assert req.headers["origin"] == "http://example.test"
    assert req.http_version == "2"


# -- RFC 6455 §5.1 over HTTP/2: masking ----------------------------------------------


@TLS
async def test_unmasked_client_frame_closes_1002(tls: bool) -> None:
    """RFC 6455 §5.1 (a server MUST close on an unmasked client frame) still
    holds over HTTP/2 (RFC 8441 §5), INTEROP pitfall 6: close frame 1002,
    then END_STREAM, no RST_STREAM."""
    async with serving(tls=tls) as (_, client):
        sid = await open_ws(client)
        client.ws_send_raw(sid, _core.build_frame(_core.OP_TEXT, b"bare"))
        code, _ = await wait_close(client, sid)
        assert code == 1002
        await until_ended(client, sid)
        assert client.ended(sid)
        reply_close(client, sid, 1002)
        await settle(client)
        assert client.reset_code(sid) is None


@TLS
async def test_server_frames_are_never_masked(tls: bool) -> None:
    """RFC 6455 §5.1 (a server MUST NOT mask), INTEROP pitfall 6: every frame
    on the wire (text, binary, large, pong, close) has the MASK bit clear."""
    async with serving(tls=tls) as (_, client):
        sid = await open_ws(client)
        await echo_ok(client, sid, "text")
        await echo_big_ok(client, sid, b"\xff" * 70_000)  # over the 65,535 initial window
        client.conn.send_data(sid, _core.build_frame(_core.OP_PING, b"p", mask=b"wxyz"))
        client.flush()
        await client.until(lambda c: any(e[0] == _core.EV_PONG for e in c.messages(sid)))
        client.ws_close(sid, 1000)
        await until_ended(client, sid)
        frames = list(wire_frames(client, sid))
        opcodes = [f[2] for f in frames]
        assert _core.OP_PONG in opcodes and _core.OP_CLOSE in opcodes
        assert not any(masked for _, _, _, masked, _ in frames)


# -- bad input on one stream ---------------------------------------------------------

M = b"k3y!"  # a client's masking key

BAD_INPUT: dict[str, tuple[bytes, int, dict[str, Any]]] = {
    # RFC 6455 §5.2: RSV bits without a negotiated extension.
    "rsv1": (_core.build_frame(_core.OP_TEXT, b"x", rsv=_core.RSV1, mask=M), 1002, {}),
    # §5.2: reserved data and control opcodes.
    "opcode-3": (_core.build_frame(3, b"x", mask=M), 1002, {}),
    "opcode-11": (_core.build_frame(11, b"x", mask=M), 1002, {}),
    # §5.6 / §8.1: text that is not UTF-8.
    "bad-utf8": (_core.build_frame(_core.OP_TEXT, b"\xce\xba\xff", mask=M), 1007, {}),
    # §10.4: larger than the server accepts.
    "too-big": (
        _core.build_frame(_core.OP_BINARY, b"z" * 2000, mask=M),
        1009,
        {"max_message_size": 1024},
    ),
    # §5.1: unmasked.
    "unmasked": (_core.build_frame(_core.OP_BINARY, b"x"), 1002, {}),
    # §5.5: control frames are never fragmented and carry <= 125 bytes.
    "fragmented-ping": (_core.build_frame(_core.OP_PING, b"x", fin=False, mask=M), 1002, {}),
    "long-ping": (_core.build_frame(_core.OP_PING, b"x" * 126, mask=M), 1002, {}),
    # §5.4: a continuation with nothing to continue.
    "orphan-cont": (_core.build_frame(_core.OP_CONT, b"x", mask=M), 1002, {}),
    # §5.4: a new data frame in the middle of a fragmented message.
    "interleaved": (
        _core.build_frame(_core.OP_TEXT, b"a", fin=False, mask=M)
        + _core.build_frame(_core.OP_TEXT, b"b", mask=M),
        1002,
        {},
    ),
    # §5.5.1 / §7.4: close payload of one byte, a code never sent on the wire.
    "close-1-byte": (_core.build_frame(_core.OP_CLOSE, b"\x03", mask=M), 1002, {}),
    "close-1005": (_core.build_frame(_core.OP_CLOSE, (1005).to_bytes(2, "big"), mask=M), 1002, {}),
    # §5.5.1: a close reason that is not UTF-8.
    "close-bad-utf8": (
        _core.build_frame(_core.OP_CLOSE, (1000).to_bytes(2, "big") + b"\xff", mask=M),
        1007,
        {},
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
async def test_bad_input_fails_only_its_stream(case: str) -> None:
    """RFC 6455 §7.1.7 / §7.4.1 over RFC 8441 §5: a protocol violation on one
    stream (malformed frame, reserved opcode, bad UTF-8, oversized message,
    unmasked or fragmented control frame...) closes that WebSocket with 1002,
    1007 or 1009 and END_STREAM, no RST; the handler sees that code; another
    WebSocket on the same connection keeps echoing."""
    data, expected, kwargs = BAD_INPUT[case]
    rec = Recorder()
    async with serving(rec, **kwargs) as (_, client):
        bad = await open_ws(client, "/bad")
        good = await open_ws(client, "/good")
        await echo_ok(client, good)
        client.ws_send_raw(bad, data)
        code, _ = await wait_close(client, bad)
        assert code == expected
        await until_ended(client, bad)
        assert client.ended(bad)
        await echo_ok(client, good, "good goes on")
        # The client answers as RFC 6455 §5.5.1 asks; the stream is then done.
        reply_close(client, bad, expected)
        exc = await rec.raised("/bad")
        assert isinstance(exc, h2ws.ConnectionClosedError) and exc.code == expected
        await settle(client)
        assert client.reset_code(bad) is None
        await echo_ok(client, good, "and on")


# -- RFC 9113 §5.1.2: MAX_CONCURRENT_STREAMS -----------------------------------------


@TLS
async def test_stream_over_max_concurrent_is_refused(tls: bool) -> None:
    """RFC 9113 §5.1.2 (a HEADERS over the advertised limit is a stream error
    PROTOCOL_ERROR or REFUSED_STREAM, not a connection error), INTEROP pitfall
    10: with max_concurrent_streams=5 the 6th extended CONNECT is refused with
    REFUSED_STREAM; the five still echo, and once one closes a new one opens."""
    async with serving(tls=tls, max_concurrent_streams=5) as (_, client):
        assert client.remote_settings.max_concurrent_streams == 5
        sids = [await open_ws(client, f"/{i}") for i in range(5)]
        sixth = send_over_limit(client, ws_headers(client, "/6"))
        await answer(client, sixth)
        assert client.reset_code(sixth) == REFUSED_STREAM
        for sid in sids:
            await echo_ok(client, sid)
        client.ws_close(sids[0], 1000)
        await until_ended(client, sids[0])
        assert client.reset_code(sids[0]) is None
        again = await open_ws(client, "/again")
        await echo_ok(client, again)


async def test_refused_streams_do_not_pile_up() -> None:
    """RFC 9113 §5.1.2 / §8.7 (REFUSED_STREAM: nothing was processed, the
    client may retry): many requests over the limit are each refused and the
    connection stays usable."""
    async with serving(max_concurrent_streams=2) as (_, client):
        a = await open_ws(client, "/a")
        b = await open_ws(client, "/b")
        extra = [send_over_limit(client, ws_headers(client, f"/x{i}")) for i in range(20)]
        await client.until(lambda c: all(c.reset_code(s) is not None for s in extra))
        assert {client.reset_code(s) for s in extra} == {REFUSED_STREAM}
        await echo_ok(client, a)
        await echo_ok(client, b)


# -- plain requests beside WebSockets -------------------------------------------------


@TLS
async def test_plain_get_beside_open_websocket_gets_426(tls: bool) -> None:
    """DESIGN (ordinary requests on other streams), RFC 9113 §8.1: a GET on
    another stream of the connection is answered (426 by default) while a
    WebSocket is open on it, and the WebSocket keeps echoing."""
    async with serving(tls=tls) as (_, client):
        ws = await open_ws(client)
        await echo_ok(client, ws)
        get = request(
            client,
            [
                (":method", "GET"),
                (":scheme", "https" if tls else "http"),
                (":path", "/index.html"),
                (":authority", "127.0.0.1"),
            ],
            end_stream=True,
        )
        await answer(client, get)
        assert client.status(get) == 426
        await until_ended(client, get)
        assert body(client, get)
        await echo_ok(client, ws, "still open")


async def test_plain_get_answered_by_process_request() -> None:
    """DESIGN (a browser loads the page and opens the WebSocket on one
    connection): process_request's Response answers a GET while a WebSocket
    is open; a request it passes on (None) gets 426."""

    def page(request: h2ws.Request) -> h2ws.Response | None:
        if request.method == "GET" and request.path == "/":
            return h2ws.Response(200, [("content-type", "text/html")], b"<p>hi</p>")
        return None

    async with serving(process_request=page) as (_, client):
        ws = await open_ws(client, "/ws")
        get_headers = [(":method", "GET"), (":scheme", "http"), (":authority", "127.0.0.1")]
        get = request(client, [*get_headers, (":path", "/")], end_stream=True)
        other = request(client, [*get_headers, (":path", "/other")], end_stream=True)
        await until_ended(client, get)
        await until_ended(client, other)
        assert client.status(get) == 200
        assert ("content-type", "text/html") in response_headers(client, get)
        assert body(client, get) == b"<p>hi</p>"
        assert client.status(other) == 426
        await echo_ok(client, ws)
        assert client.reset_code(ws) is None
