"""The ASGI HTTP & WebSocket spec (2.4) and the lifespan spec, against
``serve_asgi`` with raw ASGI applications, over HTTP/1.1 and HTTP/2.

Clients: raw sockets (to see HTTP/1.1 framing), aiohttp and the `websockets`
library (peers nobody here wrote) for HTTP/1.1, the frame-level ``H2Client``
on python-hyper h2 for HTTP/2 (RFC 8441 extended CONNECT for WebSockets).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import h2.events
import helpers.asgi
import pytest
import websockets
import websockets.exceptions
from helpers.asgi import (
    h1_fetch,
    h1_open,
    h1_read_chunk,
    h1_read_head,
    h1_read_response,
    h1_request_bytes,
    h2_fetch,
    h2_headers,
    h2_response,
    h2_send_body,
    running_asgi,
)
from helpers.certs import client_context
from helpers.servers import H2Client, ws_request_headers

from h2ws import _core
from h2ws.asgi import serve_asgi

pytestmark = pytest.mark.timeout(120)

KiB = 1 << 10
MiB = 1 << 20

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

VERSIONS = pytest.mark.parametrize("version", ["1.1", "2"])


@pytest.fixture(autouse=True)
def _forget_logged_tracebacks(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """The server logs application errors with their traceback; pytest keeps
    those records (and, through the frames, the connections) until after the
    leak check of debug builds. Drop them first."""
    yield
    caplog.get_records("call").clear()


def future() -> asyncio.Future[Any]:
    return asyncio.get_running_loop().create_future()


async def respond(send: Send, status: int, body: bytes, headers: Any = ()) -> None:
    await send({"type": "http.response.start", "status": status, "headers": list(headers)})
    await send({"type": "http.response.body", "body": body})


async def read_body(receive: Receive) -> tuple[bytes, list[Message]]:
    """The whole request body, and the messages it came in."""
    messages = []
    while True:
        m = await receive()
        messages.append(m)
        assert m["type"] == "http.request", m
        if not m.get("more_body", False):
            return b"".join(x.get("body", b"") for x in messages), messages


async def fetch(
    version: str, port: int, method: str, path: str, body: bytes | None = None
) -> tuple[int, bytes]:
    """One request over HTTP/`version` on its own connection: (status, body)."""
    r = await helpers.asgi.fetch(version, port, method, path, body)
    return r.status, r.body


# -- the http scope --------------------------------------------------------------


def scope_recorder(scopes: list[Scope]) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """An app that keeps each http scope and answers 200 "ok"."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await read_body(receive)
            scopes.append(scope)
            await respond(send, 200, b"ok")

    return app


@pytest.mark.parametrize("tls", [False, True], ids=["cleartext", "tls"])
async def test_http_scope_over_http1(tls: bool) -> None:
    """ASGI HTTP connection scope: every key, over HTTP/1.1 (scheme https over TLS)."""
    scopes: list[Scope] = []
    async with running_asgi(scope_recorder(scopes), tls=tls) as srv:
        reader, writer = await h1_open(srv.port, tls=tls)
        client_port = writer.get_extra_info("sockname")[1]
        writer.write(
            h1_request_bytes(
                "PUT",
                "/caf%C3%A9/a%20b%2Fc?x=1&y=%2F%20",
                [("X-Custom-Header", "Value With Case"), ("x-twice", "1"), ("X-Twice", "2")],
                b"hello",
            )
        )
        resp = await h1_read_response(reader)
        writer.close()
    assert resp.status == 200 and resp.body == b"ok"
    (scope,) = scopes
    assert scope["type"] == "http"
    assert scope["asgi"]["version"] == "3.0"
    assert scope["asgi"]["spec_version"] == "2.4"
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "PUT"
    assert scope["scheme"] == ("https" if tls else "http")
    # path: percent-decoded as UTF-8 (%2F too); raw_path: as sent, without the query.
    assert scope["path"] == "/café/a b/c"
    assert scope["raw_path"] == b"/caf%C3%A9/a%20b%2Fc"
    assert scope["query_string"] == b"x=1&y=%2F%20"
    assert scope["root_path"] == ""
    headers = scope["headers"]
    assert all(isinstance(k, bytes) and isinstance(v, bytes) for k, v in headers)
    assert all(k == k.lower() for k, _ in headers)
    assert (b"host", b"127.0.0.1") in headers
    assert (b"x-custom-header", b"Value With Case") in headers
    # Repeated headers stay separate, in order.
    assert [v for k, v in headers if k == b"x-twice"] == [b"1", b"2"]
    assert tuple(scope["client"]) == ("127.0.0.1", client_port)
    assert tuple(scope["server"]) == ("127.0.0.1", srv.port)


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
async def test_http_scope_over_http2(tls: bool) -> None:
    """Over HTTP/2: http_version "2", :authority becomes the host header
    (RFC 9113 section 8.3.1), no pseudo-header leaks into headers."""
    scopes: list[Scope] = []
    async with running_asgi(scope_recorder(scopes), tls=tls) as srv:
        c = await H2Client.connect("127.0.0.1", srv.port, tls=tls)
        client_port = c.writer.get_extra_info("sockname")[1]
        r = await h2_fetch(
            c,
            "POST",
            "/caf%C3%A9/a%20b?q=%41",
            body=b"hello",
            authority="example.test:8443",
            scheme="https" if tls else "http",
            extra=[("x-custom-header", "Value With Case")],
        )
        await c.close()
    assert r.status == 200 and r.body == b"ok"
    (scope,) = scopes
    assert scope["type"] == "http"
    assert scope["asgi"]["version"] == "3.0"
    assert scope["http_version"] == "2"
    assert scope["method"] == "POST"
    assert scope["scheme"] == ("https" if tls else "http")
    assert scope["path"] == "/café/a b"
    assert scope["raw_path"] == b"/caf%C3%A9/a%20b"
    assert scope["query_string"] == b"q=%41"
    assert scope["root_path"] == ""
    headers = scope["headers"]
    assert [v for k, v in headers if k == b"host"] == [b"example.test:8443"]
    assert (b"x-custom-header", b"Value With Case") in headers
    assert not any(k.startswith(b":") for k, _ in headers)
    assert tuple(scope["client"]) == ("127.0.0.1", client_port)
    assert tuple(scope["server"]) == ("127.0.0.1", srv.port)


@VERSIONS
async def test_root_path_reaches_the_scope(version: str) -> None:
    """``root_path`` (the CLI's --root-path) is in every scope; ``path`` is the
    request's path as received."""
    scopes: list[Scope] = []
    async with running_asgi(scope_recorder(scopes), root_path="/mnt") as srv:
        status, _ = await fetch(version, srv.port, "GET", "/mnt/items")
    assert status == 200
    assert scopes[0]["root_path"] == "/mnt"
    assert scopes[0]["path"] == "/mnt/items"


# -- request bodies -----------------------------------------------------------------


@VERSIONS
async def test_large_upload_is_read_in_chunks(version: str) -> None:
    """A 4 MiB body reaches the app as several http.request messages
    (more_body on all but the last), never all at once."""
    seen: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body, messages = await read_body(receive)
        seen.extend(messages)
        await respond(send, 200, b"%d" % len(body))

    payload = bytes(range(256)) * (4 * MiB // 256)
    async with running_asgi(app) as srv:
        status, body = await fetch(version, srv.port, "POST", "/upload", payload)
    assert status == 200 and body == b"%d" % len(payload)
    assert len(seen) > 2
    assert all(m["more_body"] for m in seen[:-1]) and not seen[-1].get("more_body", False)
    assert b"".join(m["body"] for m in seen) == payload
    assert max(len(m["body"]) for m in seen) < len(payload) // 2


@pytest.mark.one_loop
async def test_h2_stream_window_returns_as_the_app_reads() -> None:
    """HTTP/2 flow control follows the application: until it reads, the
    stream's window stays closed; each read returns credit (WINDOW_UPDATE)."""
    go = asyncio.Event()
    received = future()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await go.wait()
        body, _ = await read_body(receive)
        received.set_result(len(body))
        await respond(send, 200, b"done")

    async with running_asgi(app, initial_window_size=64 * KiB) as srv:
        c = await H2Client.connect("127.0.0.1", srv.port)
        await c.wait_settings()
        sid = c.request(h2_headers("POST", "/slow"))
        sender = asyncio.ensure_future(h2_send_body(c, sid, b"x" * (1 * MiB)))
        # The client sends the initial window, then stalls.
        loop = asyncio.get_running_loop()
        end = loop.time() + 5
        while c.conn.local_flow_control_window(sid) > 0 and loop.time() < end:
            await asyncio.sleep(0.01)
        assert c.conn.local_flow_control_window(sid) == 0
        await asyncio.sleep(0.3)
        assert not sender.done()
        assert c.conn.local_flow_control_window(sid) == 0, "credit came back before any read"
        updates_before = [
            e for e in c.events if isinstance(e, h2.events.WindowUpdated) and e.stream_id == sid
        ]
        assert not updates_before
        go.set()
        await asyncio.wait_for(sender, 10)
        assert await asyncio.wait_for(received, 10) == 1 * MiB
        await c.until(lambda c: c.ended(sid))
        assert h2_response(c, sid).body == b"done"
        await c.close()


# -- response bodies ------------------------------------------------------------------


def streaming_app(gate: asyncio.Event) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """Three parts; the second waits until the test saw the first (`gate`)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = [(b"x-stream", b"1")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        await gate.wait()
        await send({"type": "http.response.body", "body": b"second", "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": True})  # no chunk
        await send({"type": "http.response.body", "body": b"third"})

    return app


async def test_streaming_response_is_chunked_over_http1() -> None:
    """more_body without content-length: chunked transfer coding, each part
    sent as it comes; the connection stays usable afterwards."""
    gate = asyncio.Event()
    async with running_asgi(streaming_app(gate)) as srv:
        reader, writer = await h1_open(srv.port)
        writer.write(h1_request_bytes("GET", "/stream"))
        status, headers = await h1_read_head(reader)
        assert status == 200
        assert ("transfer-encoding", "chunked") in headers
        assert not any(k == "content-length" for k, _ in headers)
        assert ("x-stream", "1") in headers
        assert await h1_read_chunk(reader) == b"first"  # before the app sends more
        gate.set()
        assert await h1_read_chunk(reader) == b"second"
        assert await h1_read_chunk(reader) == b"third"
        assert await h1_read_chunk(reader) == b""
        # Keep-alive: a second request on the same connection.
        gate.set()
        writer.write(h1_request_bytes("GET", "/again"))
        again = await h1_read_response(reader)
        assert again.status == 200 and again.body == b"firstsecondthird"
        writer.close()


async def test_http1_pipelined_requests_are_answered_in_order() -> None:
    """Requests sent back to back on one connection get their answers in
    request order, the slow first one included; an HTTP/1.0 request gets a
    streamed body delimited by the connection's end."""
    started: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        started.append(scope["path"])
        await read_body(receive)
        if scope["path"] == "/slow":
            await asyncio.sleep(0.2)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"<", "more_body": True})
        await send({"type": "http.response.body", "body": scope["path"].encode() + b">"})

    async with running_asgi(app) as srv:
        reader, writer = await h1_open(srv.port)
        writer.write(
            h1_request_bytes("GET", "/slow")
            + h1_request_bytes("POST", "/upload", body=b"x" * 1000)
            + h1_request_bytes("GET", "/fast")
        )
        bodies = [(await h1_read_response(reader)).body for _ in range(3)]
        assert bodies == [b"</slow>", b"</upload>", b"</fast>"]
        assert started == ["/slow", "/upload", "/fast"]
        writer.close()

        reader, writer = await h1_open(srv.port)
        writer.write(b"GET /old HTTP/1.0\r\nHost: a\r\n\r\n")
        r = await h1_read_response(reader)
        assert (r.status, r.body) == (200, b"</old>")
        assert r.header("transfer-encoding") is None and r.header("content-length") is None
        assert r.header("connection") == "close"
        writer.close()


async def test_streaming_response_over_http2() -> None:
    """Over HTTP/2 each part is DATA as it comes; END_STREAM on the last; no
    content-length."""
    gate = asyncio.Event()
    async with running_asgi(streaming_app(gate)) as srv:
        c = await H2Client.connect("127.0.0.1", srv.port)
        sid = c.request(h2_headers("GET", "/stream"), end_stream=True)
        await c.until(lambda c: h2_response(c, sid).body == b"first")
        r = h2_response(c, sid)
        assert r.status == 200 and not r.ended
        assert r.header(b"content-length") is None
        gate.set()
        await c.until(lambda c: c.ended(sid))
        r = h2_response(c, sid)
        assert r.body == b"firstsecondthird" and r.reset is None
        await c.close()


@VERSIONS
async def test_response_lengths(version: str) -> None:
    """A one-message body gets a content-length; the app's own content-length
    is kept; HEAD gets no body."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/own":
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-length", b"4")],
                }
            )
            await send({"type": "http.response.body", "body": b"ab", "more_body": True})
            await send({"type": "http.response.body", "body": b"cd"})
        else:
            await respond(send, 200, b"hello")

    async with running_asgi(app) as srv:
        if version == "1.1":
            r = await h1_fetch(srv.port, "GET", "/one")
            assert (r.header("content-length"), r.body) == ("5", b"hello")
            assert r.header("transfer-encoding") is None
            r = await h1_fetch(srv.port, "GET", "/own")
            assert (r.header("content-length"), r.body) == ("4", b"abcd")
            assert r.header("transfer-encoding") is None
        else:
            c = await H2Client.connect("127.0.0.1", srv.port)
            r2 = await h2_fetch(c, "GET", "/one")
            assert (r2.header(b"content-length"), r2.body) == (b"5", b"hello")
            r2 = await h2_fetch(c, "GET", "/own")
            assert (r2.header(b"content-length"), r2.body) == (b"4", b"abcd")
            await c.close()


@VERSIONS
async def test_no_content_after_head_204_and_304(version: str) -> None:
    """RFC 9110 sections 9.3.2, 15.3.5, 15.4.5: a body the application sends
    for HEAD, 204 or 304 never reaches the wire (HEAD keeps its
    content-length), and the connection goes on with the next request."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        status = int(scope["path"][1:]) if scope["path"] != "/" else 200
        await respond(send, status, b"" if status != 200 else b"hello")

    async with running_asgi(app) as srv:
        if version == "1.1":
            reader, writer = await h1_open(srv.port)
            for method, path in (("HEAD", "/"), ("GET", "/204"), ("GET", "/304"), ("GET", "/")):
                writer.write(h1_request_bytes(method, path))
                r = await h1_read_response(reader, head=method == "HEAD")
                if method == "HEAD":
                    assert (r.status, r.header("content-length")) == (200, "5")
                elif path != "/":
                    assert r.status == int(path[1:]) and r.header("content-length") is None
                    assert r.header("transfer-encoding") is None
                else:
                    assert (r.status, r.body) == (200, b"hello")  # nothing stray before it
            writer.close()
        else:
            c = await H2Client.connect("127.0.0.1", srv.port)
            r2 = await h2_fetch(c, "HEAD", "/")
            assert (r2.status, r2.header(b"content-length"), r2.data_frames) == (200, b"5", [])
            for status in (204, 304):
                r2 = await h2_fetch(c, "GET", f"/{status}")
                assert r2.status == status and r2.ended and r2.data_frames == []
                assert r2.header(b"content-length") is None
            assert (await h2_fetch(c, "GET", "/")).body == b"hello"
            await c.close()


# -- http.disconnect ---------------------------------------------------------------


@VERSIONS
async def test_disconnect_after_the_response(version: str) -> None:
    """receive() after the response is complete returns http.disconnect."""
    after = future()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await read_body(receive)
        await respond(send, 200, b"ok")
        after.set_result(await asyncio.wait_for(receive(), 5))

    async with running_asgi(app) as srv:
        if version == "1.1":
            # Keep the connection open: the exchange, not the socket, ended.
            reader, writer = await h1_open(srv.port)
            writer.write(h1_request_bytes("GET", "/"))
            assert (await h1_read_response(reader)).status == 200
            assert (await asyncio.wait_for(after, 5))["type"] == "http.disconnect"
            writer.close()
        else:
            c = await H2Client.connect("127.0.0.1", srv.port)
            assert (await h2_fetch(c, "GET", "/")).status == 200
            assert (await asyncio.wait_for(after, 5))["type"] == "http.disconnect"
            await c.close()


@pytest.mark.parametrize("how", ["h1-close", "h2-reset", "h2-close"])
async def test_disconnect_when_the_client_goes_away_mid_request(how: str) -> None:
    """A client gone mid-body: the app gets the bytes that came, then
    http.disconnect (not a cancellation); send() then raises an OSError."""
    first = future()
    outcome = future()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        try:
            m = await receive()
            first.set_result(m)
            m = await receive()
            assert m["type"] == "http.disconnect", m
            try:
                await respond(send, 200, b"too late")
            except OSError as exc:
                outcome.set_result(("disconnect", type(exc)))
            else:
                outcome.set_result(("disconnect", None))
        except BaseException as exc:  # noqa: B036 - what we test is that it does not happen
            outcome.set_result(("failed", repr(exc)))
            raise

    async with running_asgi(app) as srv:
        if how == "h1-close":
            reader, writer = await h1_open(srv.port)
            writer.write(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
            m = await asyncio.wait_for(first, 5)
            writer.close()
        else:
            c = await H2Client.connect("127.0.0.1", srv.port)
            sid = c.request(h2_headers("POST", "/"))
            c.conn.send_data(sid, b"x" * 10)
            c.flush()
            m = await asyncio.wait_for(first, 5)
            if how == "h2-reset":
                c.conn.reset_stream(sid, 8)  # CANCEL
                c.flush()
            else:
                await c.close()
        assert m == {"type": "http.request", "body": b"x" * 10, "more_body": True}
        kind, exc = await asyncio.wait_for(outcome, 5)
        assert kind == "disconnect", exc
        assert exc is not None and issubclass(exc, OSError)
        if how == "h2-reset":
            await c.close()


@VERSIONS
async def test_streaming_to_a_client_that_left_raises_oserror(version: str) -> None:
    """An endless response: once the client is gone, send() raises an OSError
    subclass (ASGI spec 2.4) and the app can stop."""
    raised = future()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            while True:
                await send({"type": "http.response.body", "body": b"x" * 4096, "more_body": True})
                await asyncio.sleep(0.001)
        except OSError as exc:
            raised.set_result(exc)

    async with running_asgi(app) as srv:
        if version == "1.1":
            reader, writer = await h1_open(srv.port)
            writer.write(h1_request_bytes("GET", "/"))
            await h1_read_head(reader)
            await h1_read_chunk(reader)
            writer.close()
        else:
            c = await H2Client.connect("127.0.0.1", srv.port)
            sid = c.request(h2_headers("GET", "/"), end_stream=True)
            await c.until(lambda c: len(h2_response(c, sid).body) > 0)
            c.conn.reset_stream(sid, 8)
            c.flush()
        assert isinstance(await asyncio.wait_for(raised, 5), OSError)
        if version == "2":
            await c.close()


# -- application errors --------------------------------------------------------------


@VERSIONS
async def test_app_error_before_the_response_is_500(version: str) -> None:
    """An exception before any body was sent (even after response.start, which
    is not on the wire yet) becomes a 500; so does returning without a
    response."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/started":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            raise RuntimeError("boom after start")
        if scope["path"] == "/nothing":
            return
        raise RuntimeError("boom")

    async with running_asgi(app) as srv:
        for path in ("/boom", "/started", "/nothing"):
            status, body = await fetch(version, srv.port, "GET", path)
            assert status == 500, path
            assert b"Internal Server Error" in body
        # The server is unharmed.
        assert (await fetch(version, srv.port, "GET", "/started"))[0] == 500


async def test_app_error_mid_response_aborts_it_over_http1() -> None:
    """After body bytes went out, an error breaks the response: no final
    chunk, the connection closes (clients see a truncated body)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise RuntimeError("boom mid-response")

    async with running_asgi(app) as srv:
        reader, writer = await h1_open(srv.port)
        writer.write(h1_request_bytes("GET", "/"))
        status, _ = await h1_read_head(reader)
        assert status == 200
        assert await h1_read_chunk(reader) == b"partial"
        assert await asyncio.wait_for(reader.read(), 5) == b""  # EOF, no "0\r\n\r\n"
        writer.close()
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ClientPayloadError):
                async with session.get(f"{srv.url}/") as resp:
                    await resp.read()


async def test_app_error_mid_response_resets_the_stream_over_http2() -> None:
    """Over HTTP/2 the broken response is RST_STREAM (INTERNAL_ERROR) after
    the DATA that went out; other streams of the connection go on."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/fine":
            await respond(send, 200, b"fine")
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        await asyncio.sleep(0.05)
        raise RuntimeError("boom mid-response")

    async with running_asgi(app) as srv:
        c = await H2Client.connect("127.0.0.1", srv.port)
        r = await h2_fetch(c, "GET", "/")
        assert r.status == 200 and r.body == b"partial"
        assert not r.ended and r.reset == 2  # INTERNAL_ERROR
        r = await h2_fetch(c, "GET", "/fine")
        assert (r.status, r.body) == (200, b"fine")
        await c.close()


# -- the websocket scope ----------------------------------------------------------


def ws_app_factory(
    record: list[Any], *, subprotocol: str | None = None, headers: Any = ()
) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """Accepts (with `subprotocol` and `headers`), echoes text and bytes,
    records the scope and every message received."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            return
        record.append(scope)
        m = await receive()
        assert m == {"type": "websocket.connect"}
        await send(
            {"type": "websocket.accept", "subprotocol": subprotocol, "headers": list(headers)}
        )
        while True:
            m = await receive()
            record.append(m)
            if m["type"] == "websocket.disconnect":
                return
            if m.get("text") is not None:
                await send({"type": "websocket.send", "text": m["text"]})
            else:
                await send({"type": "websocket.send", "bytes": m["bytes"]})

    return app


@pytest.mark.parametrize("tls", [False, True], ids=["cleartext", "tls"])
async def test_websocket_scope_over_http2(tls: bool) -> None:
    """RFC 8441 WebSocket: http_version "2", scheme ws/wss, subprotocols,
    :authority as host; accept with a subprotocol and extra headers reaches
    the client in the 200."""
    record: list[Any] = []
    app = ws_app_factory(record, subprotocol="superchat", headers=[(b"x-extra", b"yes")])
    async with running_asgi(app, tls=tls) as srv:
        c = await H2Client.connect("127.0.0.1", srv.port, tls=tls)
        sid = await c.open_websocket(
            "/chat/r%C3%A9m?room=1",
            authority="example.test",
            scheme="https" if tls else "http",
            extra=[("sec-websocket-protocol", "chat, superchat"), ("x-client", "Yes")],
        )
        r = h2_response(c, sid)
        assert r.status == 200
        assert r.header(b"sec-websocket-protocol") == b"superchat"
        assert r.header(b"x-extra") == b"yes"
        c.ws_send(sid, "hello")
        c.ws_send(sid, b"\x00\x01")
        await c.until(lambda c: len(c.messages(sid)) == 2)
        assert c.messages(sid) == [(_core.EV_TEXT, "hello"), (_core.EV_BINARY, b"\x00\x01")]
        c.ws_close(sid, 1000)
        await c.until(lambda c: c.ended(sid))
        await c.close()
    scope = record[0]
    assert scope["type"] == "websocket"
    assert scope["asgi"]["version"] == "3.0"
    assert scope["http_version"] == "2"
    assert scope["scheme"] == ("wss" if tls else "ws")
    assert scope["path"] == "/chat/rém"
    assert scope["raw_path"] == b"/chat/r%C3%A9m"
    assert scope["query_string"] == b"room=1"
    assert scope["root_path"] == ""
    assert scope["subprotocols"] == ["chat", "superchat"]
    assert (b"host", b"example.test") in scope["headers"]
    assert (b"x-client", b"Yes") in scope["headers"]
    assert not any(k.startswith(b":") for k, _ in scope["headers"])
    assert "websocket.http.response" in scope["extensions"]
    assert tuple(scope["server"]) == ("127.0.0.1", srv.port)
    assert scope["client"][0] == "127.0.0.1"
    assert record[1:] == [
        {"type": "websocket.receive", "text": "hello"},
        {"type": "websocket.receive", "bytes": b"\x00\x01"},
        {"type": "websocket.disconnect", "code": 1000, "reason": ""},
    ]


@pytest.mark.parametrize("tls", [False, True], ids=["cleartext", "tls"])
async def test_websocket_scope_over_http1(tls: bool) -> None:
    """RFC 6455 WebSocket (the `websockets` library): http_version "1.1",
    scheme ws/wss; the subprotocol and extra headers reach the client in the 101."""
    record: list[Any] = []
    app = ws_app_factory(record, subprotocol="superchat", headers=[(b"x-extra", b"yes")])
    async with running_asgi(app, tls=tls) as srv:
        url = f"{'wss' if tls else 'ws'}://127.0.0.1:{srv.port}/chat/r%C3%A9m?room=1"
        ssl = client_context(["http/1.1"]) if tls else None
        async with websockets.connect(
            url, ssl=ssl, subprotocols=["chat", "superchat"], additional_headers={"X-Client": "Yes"}
        ) as ws:
            assert ws.subprotocol == "superchat"
            assert ws.response.headers["x-extra"] == "yes"
            await ws.send("hello")
            assert await ws.recv() == "hello"
            await ws.send(b"\x00\x01")
            assert await ws.recv() == b"\x00\x01"
    scope = record[0]
    assert scope["type"] == "websocket"
    assert scope["http_version"] == "1.1"
    assert scope["scheme"] == ("wss" if tls else "ws")
    assert scope["path"] == "/chat/rém"
    assert scope["raw_path"] == b"/chat/r%C3%A9m"
    assert scope["query_string"] == b"room=1"
    assert scope["subprotocols"] == ["chat", "superchat"]
    assert (b"host", f"127.0.0.1:{srv.port}".encode()) in scope["headers"]
    assert (b"x-client", b"Yes") in scope["headers"]
    assert all(k == k.lower() for k, _ in scope["headers"])
    assert tuple(scope["server"]) == ("127.0.0.1", srv.port)
    await asyncio.sleep(0)
    assert record[-1] == {"type": "websocket.disconnect", "code": 1000, "reason": ""}


async def h2_ws_request(c: H2Client, path: str) -> int:
    await c.wait_settings()
    sid = c.conn.get_next_available_stream_id()
    c.request(ws_request_headers(path))
    await c.until(lambda c: c.ended(sid) or c.reset_code(sid) is not None)
    return sid


async def h1_ws_request(port: int, path: str) -> Any:
    """The response to an Upgrade request, as the `websockets` client saw it."""
    with pytest.raises(websockets.exceptions.InvalidStatus) as info:
        async with websockets.connect(f"ws://127.0.0.1:{port}{path}"):
            pass
    return info.value.response


@VERSIONS
async def test_close_before_accept_is_403(version: str) -> None:
    """websocket.close before websocket.accept refuses with 403 (as does
    returning without accepting)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            return
        assert (await receive())["type"] == "websocket.connect"
        if scope["path"] == "/close":
            await send({"type": "websocket.close", "code": 1000})

    async with running_asgi(app) as srv:
        for path in ("/close", "/return"):
            if version == "1.1":
                assert (await h1_ws_request(srv.port, path)).status_code == 403
            else:
                c = await H2Client.connect("127.0.0.1", srv.port)
                sid = await h2_ws_request(c, path)
                r = h2_response(c, sid)
                assert r.status == 403 and r.ended
                await c.close()


async def denying_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "websocket":
        return
    assert (await receive())["type"] == "websocket.connect"
    await send(
        {
            "type": "websocket.http.response.start",
            "status": 451,
            "headers": [(b"content-type", b"text/plain"), (b"x-reason", b"legal")],
        }
    )
    await send({"type": "websocket.http.response.body", "body": b"not ", "more_body": True})
    await send({"type": "websocket.http.response.body", "body": b"", "more_body": True})
    await send({"type": "websocket.http.response.body", "body": b"here"})


async def test_denial_response_over_http1() -> None:
    """The websocket.http.response extension: status, headers and a body in
    several messages, instead of the 101."""
    async with running_asgi(denying_app) as srv:
        resp = await h1_ws_request(srv.port, "/")
        assert resp.status_code == 451
        assert resp.headers["x-reason"] == "legal"
        assert resp.headers["content-type"] == "text/plain"
        assert bytes(resp.body) == b"not here"
        # Raw: a well-formed response with a length.
        reader, writer = await h1_open(srv.port)
        writer.write(
            h1_request_bytes(
                "GET",
                "/",
                [
                    ("Upgrade", "websocket"),
                    ("Connection", "Upgrade"),
                    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                    ("Sec-WebSocket-Version", "13"),
                ],
            )
        )
        r = await h1_read_response(reader)
        assert (r.status, r.header("content-length"), r.body) == (451, "8", b"not here")
        writer.close()


async def test_denial_response_over_http2() -> None:
    """The same denial over HTTP/2: the extended CONNECT gets the status,
    headers and body, then END_STREAM (no reset)."""
    async with running_asgi(denying_app) as srv:
        c = await H2Client.connect("127.0.0.1", srv.port)
        sid = await h2_ws_request(c, "/")
        r = h2_response(c, sid)
        assert r.status == 451
        assert r.header(b"x-reason") == b"legal"
        assert r.body == b"not here"
        # END_STREAM ends the response; the client's side of the stream may
        # then be reset with NO_ERROR (RFC 9113 section 8.1), never an error.
        assert r.ended and r.reset in (None, 0)
        # The connection carries on.
        assert (await h2_fetch(c, "GET", "/")).status == 500  # the app has no http route
        await c.close()


# -- websocket.disconnect and send after close ---------------------------------------


@VERSIONS
async def test_disconnect_code_and_reason_from_the_client(version: str) -> None:
    """The client closes with 4000 "bye": the app's receive() says so."""
    record: list[Any] = []
    async with running_asgi(ws_app_factory(record)) as srv:
        if version == "1.1":
            async with websockets.connect(f"ws://127.0.0.1:{srv.port}/") as ws:
                await ws.send("hi")
                assert await ws.recv() == "hi"
                await ws.close(4000, "bye")
        else:
            c = await H2Client.connect("127.0.0.1", srv.port)
            sid = await c.open_websocket("/")
            c.ws_send(sid, "hi")
            await c.until(lambda c: len(c.messages(sid)) == 1)
            c.ws_close(sid, 4000, "bye")
            await c.until(lambda c: c.ended(sid))
            await c.close()
        for _ in range(500):
            if record[-1]["type"] == "websocket.disconnect":
                break
            await asyncio.sleep(0.01)
    assert record[-1] == {"type": "websocket.disconnect", "code": 4000, "reason": "bye"}


@pytest.mark.parametrize("how", ["h1-drop", "h2-reset", "h2-drop"])
async def test_disconnect_is_1006_when_the_client_drops(how: str) -> None:
    """No close frame (TCP closed, or the stream reset): code 1006; a
    send() afterwards raises an OSError subclass."""
    ended = future()
    opened = future()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        opened.set_result(None)
        m = await receive()
        try:
            await send({"type": "websocket.send", "text": "after"})
        except OSError as exc:
            ended.set_result((m, exc))
        else:
            ended.set_result((m, None))

    async with running_asgi(app) as srv:
        if how == "h1-drop":
            ws = await websockets.connect(f"ws://127.0.0.1:{srv.port}/")
            await asyncio.wait_for(opened, 5)
            ws.transport.abort()
        else:
            c = await H2Client.connect("127.0.0.1", srv.port)
            sid = await c.open_websocket("/")
            await asyncio.wait_for(opened, 5)
            if how == "h2-reset":
                c.conn.reset_stream(sid, 8)
                c.flush()
            else:
                c.writer.transport.abort()
        m, exc = await asyncio.wait_for(ended, 5)
        assert m["type"] == "websocket.disconnect" and m["code"] == 1006
        assert isinstance(exc, OSError)
        if how == "h2-reset":
            await c.close()


@VERSIONS
async def test_send_after_the_app_closed_raises(version: str) -> None:
    """After the app's websocket.close, send() raises an OSError subclass;
    the client sees the app's close code and reason."""
    result = future()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 4001, "reason": "done here"})
        try:
            await send({"type": "websocket.send", "text": "late"})
        except OSError as exc:
            result.set_result(exc)
        else:
            result.set_result(None)
        # receive() then reports the end of the closing handshake.
        m = await asyncio.wait_for(receive(), 5)
        assert m["type"] == "websocket.disconnect"

    async with running_asgi(app) as srv:
        if version == "1.1":
            async with websockets.connect(f"ws://127.0.0.1:{srv.port}/") as ws:
                with pytest.raises(websockets.exceptions.ConnectionClosed):
                    await ws.recv()
            assert (ws.close_code, ws.close_reason) == (4001, "done here")
        else:
            c = await H2Client.connect("127.0.0.1", srv.port)
            sid = await c.open_websocket("/")
            await c.until(lambda c: bool(c.messages(sid)))
            assert c.messages(sid)[0] == (_core.EV_CLOSE, 4001, "done here")
            c.ws_close(sid, 4001)
            await c.until(lambda c: c.ended(sid))
            await c.close()
        assert isinstance(await asyncio.wait_for(result, 5), OSError)


@VERSIONS
async def test_websocket_app_errors(version: str) -> None:
    """An exception before accept refuses with 500; after accept it closes
    the WebSocket with 1011."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        if scope["path"] == "/after":
            await send({"type": "websocket.accept"})
        raise RuntimeError("boom")

    async with running_asgi(app) as srv:
        if version == "1.1":
            assert (await h1_ws_request(srv.port, "/before")).status_code == 500
            async with websockets.connect(f"ws://127.0.0.1:{srv.port}/after") as ws:
                with pytest.raises(websockets.exceptions.ConnectionClosedError):
                    await ws.recv()
            assert ws.close_code == 1011
        else:
            c = await H2Client.connect("127.0.0.1", srv.port)
            sid = await h2_ws_request(c, "/before")
            assert h2_response(c, sid).status == 500
            sid = await c.open_websocket("/after")
            await c.until(lambda c: bool(c.messages(sid)))
            assert c.messages(sid)[0][:2] == (_core.EV_CLOSE, 1011)
            await c.close()


async def test_log_lines_say_who_closed_each_websocket(caplog: pytest.LogCaptureFixture) -> None:
    """One access line and one debug line per WebSocket: HTTP version, stream,
    path, close code, and who started the closing handshake (the server also
    when it refused an oversized message or shut down)."""
    caplog.set_level(logging.DEBUG, logger="h2ws")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        m = await receive()
        if m.get("text") == "close please":
            await send({"type": "websocket.close", "code": 4002})
            await receive()

    async with running_asgi(app, access_log=True, max_message_size=100) as srv:
        c = await H2Client.connect("127.0.0.1", srv.port)
        sid = await c.open_websocket("/by-client")
        c.ws_close(sid, 4000, "bye")
        await c.until(lambda c: c.ended(sid))
        sid = await c.open_websocket("/by-app")
        c.ws_send(sid, "close please")
        await c.until(lambda c: bool(c.messages(sid)))
        c.ws_close(sid, 4002)
        await c.until(lambda c: c.ended(sid))
        await c.close()
        async with websockets.connect(f"ws://127.0.0.1:{srv.port}/too-big") as ws:
            await ws.send("x" * 101)
            with pytest.raises(websockets.exceptions.ConnectionClosedError):
                await ws.recv()
        ws = await websockets.connect(f"ws://127.0.0.1:{srv.port}/shutdown")
        await asyncio.sleep(0.05)
        srv.server.close()
        await ws.wait_closed()
        await srv.server.wait_closed()
    access = [r.getMessage() for r in caplog.records if r.name == "h2ws.access"]
    debug = [r.getMessage() for r in caplog.records if r.name == "h2ws.asgi"]
    for path, version, code, who in (
        ("/by-client", "2", 4000, "client"),
        ("/by-app", "2", 4002, "server"),
        ("/too-big", "1.1", 1009, "server"),
        ("/shutdown", "1.1", 1001, "server"),
    ):
        stream = r"\d+" if version == "2" else "0"
        v = re.escape(version)
        pattern = rf'"WEBSOCKET {path}" HTTP/{v} stream {stream} closed {code} by {who}$'
        assert any(re.search(pattern, line) for line in access), (pattern, access)
        pattern = (
            rf"^WebSocket closed: HTTP/{v}, stream {stream}, path {path}, "
            rf"code {code}, closed by {who}$"
        )
        assert any(re.search(pattern, line) for line in debug), (pattern, debug)


# -- lifespan -----------------------------------------------------------------------


class LifespanApp:
    """Lifespan support with state; an http route that reports what it sees."""

    def __init__(self, fail: str | None = None) -> None:
        self.events: list[str] = []
        self.fail = fail

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                m = await receive()
                self.events.append(m["type"])
                if m["type"] == "lifespan.startup":
                    if self.fail == "message":
                        await send({"type": "lifespan.startup.failed", "message": "no database"})
                        return
                    if self.fail == "raise":
                        raise RuntimeError("startup exploded")
                    scope["state"]["db"] = {"shared": True}
                    scope["state"]["counter"] = 0
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        elif scope["type"] == "http":
            state = scope["state"]
            self.events.append(f"request {state['counter']} {state['db']}")
            state["counter"] += 1  # a copy per request: the next one sees 0
            state["db"]["seen"] = True  # a shallow copy: the objects are shared
            await respond(send, 200, b"ok")


@VERSIONS
async def test_lifespan_startup_shutdown_and_state(version: str) -> None:
    """Startup before the first request, shutdown after the server closed;
    the state dict is copied into each request's scope."""
    app = LifespanApp()
    async with running_asgi(app) as srv:
        assert app.events == ["lifespan.startup"]
        for _ in range(2):
            assert (await fetch(version, srv.port, "GET", "/"))[0] == 200
        assert app.events[1:] == [
            "request 0 {'shared': True}",
            "request 0 {'shared': True, 'seen': True}",
        ]
    assert app.events[-1] == "lifespan.shutdown"


@pytest.mark.parametrize("fail", ["message", "raise"])
async def test_lifespan_startup_failure_with_lifespan_on(fail: str) -> None:
    """lifespan="on" (CLI --lifespan on): lifespan.startup.failed, or an
    exception, and the server does not start."""
    app = LifespanApp(fail=fail)
    with pytest.raises(RuntimeError, match="startup failed"):
        async with serve_asgi(app, "127.0.0.1", 0, lifespan="on"):
            pytest.fail("the server started")
    assert app.events == ["lifespan.startup"]


async def test_lifespan_startup_failed_message_is_fatal_in_auto_mode() -> None:
    """lifespan.startup.failed is fatal in "auto" mode too: the app does
    support lifespan, and it said no."""
    app = LifespanApp(fail="message")
    with pytest.raises(RuntimeError, match="no database"):
        async with serve_asgi(app, "127.0.0.1", 0):
            pytest.fail("the server started")


@pytest.mark.parametrize("mode", ["auto", "off"])
async def test_app_without_lifespan_support(mode: str) -> None:
    """An app that raises on the lifespan scope works in "auto" mode; "off"
    never calls it with that scope."""
    calls: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        calls.append(scope["type"])
        if scope["type"] != "http":
            raise ValueError(f"unsupported scope {scope['type']}")
        assert scope.get("state", {}) == {}
        await respond(send, 200, b"no lifespan here")

    async with running_asgi(app, lifespan=mode) as srv:
        assert (await fetch("1.1", srv.port, "GET", "/")) == (200, b"no lifespan here")
        assert (await fetch("2", srv.port, "GET", "/")) == (200, b"no lifespan here")
    assert calls == (["lifespan", "http", "http"] if mode == "auto" else ["http", "http"])


async def test_lifespan_shutdown_waits_for_open_websockets() -> None:
    """Shutdown closes WebSockets with 1001 before lifespan.shutdown runs."""
    order: list[str] = []
    opened = future()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                m = await receive()
                order.append(m["type"])
                await send({"type": m["type"] + ".complete"})
                if m["type"] == "lifespan.shutdown":
                    return
        elif scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            opened.set_result(None)
            m = await receive()
            order.append(f"disconnect {m['code']}")

    async with running_asgi(app) as srv:
        ws = await websockets.connect(f"ws://127.0.0.1:{srv.port}/")
        await asyncio.wait_for(opened, 5)
        srv.server.close()
        with pytest.raises(websockets.exceptions.ConnectionClosedOK):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 1001
        await asyncio.wait_for(srv.server.wait_closed(), 5)
    assert order == ["lifespan.startup", "disconnect 1001", "lifespan.shutdown"]


@pytest.mark.parametrize("scope_type", ["http", "websocket"])
async def test_the_app_is_not_cancelled_when_the_client_drops(scope_type: str) -> None:
    """An app busy elsewhere when the connection drops is not cancelled: it
    finds out from send() (an OSError) or receive() (a disconnect message),
    and can clean up as usual."""
    busy = future()
    outcome = future()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != scope_type:
            return
        try:
            if scope_type == "websocket":
                await receive()
                await send({"type": "websocket.accept"})
            else:
                await read_body(receive)
            busy.set_result(None)
            await asyncio.sleep(0.3)  # working on something, not reading
            if scope_type == "websocket":
                await send({"type": "websocket.send", "text": "result"})
            else:
                await respond(send, 200, b"result")
        except OSError:
            m = await receive()
            outcome.set_result(m["type"])
        except BaseException as exc:
            outcome.set_result(repr(exc))
            raise
        else:
            outcome.set_result("sent")

    async with running_asgi(app) as srv:
        c = await H2Client.connect("127.0.0.1", srv.port)
        if scope_type == "websocket":
            await c.open_websocket("/")
        else:
            c.request(h2_headers("GET", "/"), end_stream=True)
        await asyncio.wait_for(busy, 5)
        c.writer.transport.abort()
        assert await asyncio.wait_for(outcome, 5) == f"{scope_type}.disconnect"
