"""RFC 6455 section 4 opening handshake over HTTP/1.1, with raw sockets.

The same port also serves HTTP/2 (see test_one_port in tests/interop)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re

import pytest

from h2ws import _core
from tests.helpers.certs import client_context
from tests.helpers.servers import running_server

pytestmark = pytest.mark.timeout(60)

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


async def echo(ws):  # type: ignore[no-untyped-def]
    async for message in ws:
        await ws.send(message)


def handshake(
    *,
    method: str = "GET",
    version: str = "HTTP/1.1",
    key: str | None = None,
    ws_version: str | None = "13",
    upgrade: str | None = "websocket",
    connection: str | None = "Upgrade",
    host: str | None = "127.0.0.1",
    extra: str = "",
) -> tuple[bytes, str]:
    key = key if key is not None else base64.b64encode(os.urandom(16)).decode()
    lines = [f"{method} /chat HTTP/{version.split('/')[-1]}"]
    if host is not None:
        lines.append(f"Host: {host}")
    if upgrade is not None:
        lines.append(f"Upgrade: {upgrade}")
    if connection is not None:
        lines.append(f"Connection: {connection}")
    if key:
        lines.append(f"Sec-WebSocket-Key: {key}")
    if ws_version is not None:
        lines.append(f"Sec-WebSocket-Version: {ws_version}")
    head = "\r\n".join(lines) + "\r\n" + extra + "\r\n"
    return head.encode("latin-1"), key


async def exchange(
    port: int, data: bytes, *, tls: bool = False
) -> tuple[int, dict[str, str], bytes, asyncio.StreamReader, asyncio.StreamWriter]:
    ssl = client_context(["http/1.1"]) if tls else None
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ssl)
    writer.write(data)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    body = b""
    if "content-length" in headers:
        body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 5)
    return status, headers, body, reader, writer


@pytest.mark.parametrize("tls", [False, True], ids=["cleartext", "tls"])
async def test_accept_key_and_echo(tls: bool) -> None:
    """§4.2.2: 101 with Sec-WebSocket-Accept = base64(SHA-1(key + GUID)); then frames flow."""
    async with running_server(echo, tls=tls) as srv:
        data, key = handshake()
        status, headers, _, reader, writer = await exchange(srv.port, data, tls=tls)
        assert status == 101
        assert headers["upgrade"].lower() == "websocket"
        assert "upgrade" in headers["connection"].lower()
        expected = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
        assert headers["sec-websocket-accept"] == expected
        client = _core.WebSocketCodec(client=True)
        client.send("hello")
        writer.write(client.data_to_send())
        events = []
        while not events:
            events = client.receive_data(await asyncio.wait_for(reader.read(1024), 5))
        assert events == [(_core.EV_TEXT, "hello")]
        # §7.1.1: after the close handshake the server closes TCP first.
        client.close(1000, "bye")
        writer.write(client.data_to_send())
        rest = await asyncio.wait_for(reader.read(), 5)
        assert client.receive_data(rest) == [(_core.EV_CLOSE, 1000, "")]
        writer.close()


def test_accept_matches_rfc_example() -> None:
    """§1.3: the RFC's own example key and accept value."""
    assert _core.websocket_accept(b"dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize(
    "kwargs, status",
    [
        (dict(key=""), 400),  # §4.2.1 item 5: missing key
        (dict(key="c2hvcnQ="), 400),  # not 16 bytes
        (dict(key="!!!!!!!!!!!!!!!!!!!!!!=="), 400),  # not base64
        (dict(ws_version=None), 400),  # §4.2.1 item 6: missing version
        (dict(ws_version="8"), 426),  # §4.2.2: unsupported version -> 426
        (dict(connection="keep-alive"), 400),  # §4.2.1 item 4: no Connection: Upgrade
        (dict(connection=None), 400),
        (dict(method="POST"), 400),  # §4.2.1 item 1: GET
        (dict(version="HTTP/1.0"), 400),  # §4.2.1 item 1: HTTP/1.1 or higher
        (dict(host=None), 400),  # §4.2.1 item 2: Host
    ],
    ids=[
        "no-key",
        "short-key",
        "bad-base64",
        "no-version",
        "version-8",
        "no-connection-upgrade",
        "no-connection",
        "post",
        "http10",
        "no-host",
    ],
)
async def test_bad_handshakes(kwargs: dict[str, object], status: int) -> None:
    """§4.2.1-4.2.2: a bad opening handshake is refused with a reason, never upgraded."""
    async with running_server(echo) as srv:
        data, _ = handshake(**kwargs)  # type: ignore[arg-type]
        got, headers, body, _, writer = await exchange(srv.port, data)
        assert got == status, body
        assert body.strip(), "the refusal says why"
        if status == 426 or "ws_version" in kwargs:
            assert headers.get("sec-websocket-version") == "13"
        writer.close()


async def test_oversized_head_gets_431() -> None:
    """A request head over max_header_list_size is refused (431), not buffered."""
    async with running_server(echo, max_header_list_size=4096) as srv:
        data, _ = handshake(extra="X-Big: " + "a" * 8000 + "\r\n")
        status, _, _, _, writer = await exchange(srv.port, data)
        assert status == 431
        writer.close()


async def test_too_many_headers_gets_431() -> None:
    async with running_server(echo, max_headers=20) as srv:
        data, _ = handshake(extra="".join(f"X-H{i}: v\r\n" for i in range(30)))
        status, _, _, _, writer = await exchange(srv.port, data)
        assert status == 431
        writer.close()


async def test_malformed_request_gets_400() -> None:
    async with running_server(echo) as srv:
        status, _, body, _, writer = await exchange(srv.port, b"GET / HTTP/1.1\r\nHost x\r\n\r\n")
        assert status == 400
        writer.close()


async def test_plain_requests_pipelined_keep_alive() -> None:
    """Plain requests get 426 (or process_request's answer), in order, on one connection."""

    def process(request):  # type: ignore[no-untyped-def]
        if request.path == "/health":
            from h2ws import Response

            return Response(200, [("content-type", "text/plain")], b"ok\n")
        return None

    async with running_server(echo, process_request=process) as srv:
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        writer.write(
            b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n"
            b"GET /other HTTP/1.1\r\nHost: a\r\n\r\n"
            b"GET /health HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        )
        data = await asyncio.wait_for(reader.read(), 5)
        statuses = [int(m) for m in re.findall(rb"HTTP/1\.1 (\d{3}) [A-Z]", data)]
        assert statuses == [200, 426, 200]
        writer.close()


async def test_upgrade_h2c_is_answered_as_http11() -> None:
    """`Upgrade: h2c` is not honoured: the request is answered over HTTP/1.1."""
    async with running_server(echo) as srv:
        data = (
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n"
        )
        status, headers, _, _, writer = await exchange(srv.port, data)
        assert status == 426
        assert headers["upgrade"] == "websocket"
        writer.close()


async def test_origin_check_over_both_versions() -> None:
    """serve(origins=[...]) answers 403 to other origins over HTTP/1.1 and HTTP/2."""
    from tests.helpers.servers import H2Client

    async with running_server(echo, origins=["https://good.example"]) as srv:
        ok, _ = handshake(extra="Origin: https://good.example\r\n")
        status, _, _, _, w1 = await exchange(srv.port, ok)
        assert status == 101
        w1.close()
        bad, _ = handshake(extra="Origin: https://evil.example\r\n")
        status, _, _, _, w2 = await exchange(srv.port, bad)
        assert status == 403
        w2.close()
        c = await H2Client.connect(srv.host, srv.port)
        await c.wait_settings()
        from tests.helpers.servers import ws_request_headers

        sid_bad = c.request(ws_request_headers("/", extra=[("origin", "https://evil.example")]))
        sid_ok = c.request(ws_request_headers("/", extra=[("origin", "https://good.example")]))
        await c.until(lambda c: c.status(sid_bad) is not None and c.status(sid_ok) is not None)
        assert c.status(sid_bad) == 403
        assert c.status(sid_ok) == 200
        await c.close()
