"""Real WebSocket clients over HTTP/1.1 (RFC 6455): the `websockets` asyncio
client and aiohttp's ``ws_connect``, cleartext and TLS (ALPN http/1.1):
messages of every kind and size, what the handler sees of the request,
subprotocols, refusals, origins, keepalive and graceful shutdown.

Frame-level cases (bad input, close choreography, backpressure) are in
tests/aio/test_h1_websocket.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import websockets
from helpers.certs import client_context
from helpers.servers import running_server
from websockets.asyncio.client import ClientConnection, connect

import h2ws

pytestmark = pytest.mark.timeout(120)

MiB = 1 << 20
CLIENTS = ["websockets", "aiohttp"]
TLS = pytest.mark.parametrize("tls", [False, True], ids=["cleartext", "tls"])


def ws_url(port: int, path: str, tls: bool) -> str:
    return f"{'wss' if tls else 'ws'}://127.0.0.1:{port}{path}"


def ws_connect(port: int, path: str = "/", *, tls: bool = False, **kw: Any) -> connect:
    """The websockets client, without keepalive or proxies of its own."""
    kw.setdefault("ping_interval", None)
    return connect(
        ws_url(port, path, tls),
        ssl=client_context(["http/1.1"]) if tls else None,
        proxy=None,
        **kw,
    )


def aiohttp_ssl(tls: bool) -> Any:
    return client_context(["http/1.1"]) if tls else False


async def echo_with_fragments(ws: h2ws.WebSocket) -> None:
    async for message in ws:
        if message == "fragments please":
            await ws.send(["frag", "ment", "ed"])
            await ws.send(iter([b"\x00", b"\x01\x02", b"\x03"]))
        else:
            await ws.send(message)


@TLS
async def test_websockets_echo_text_binary_fragmented(tls: bool) -> None:
    """Text, binary and fragmented messages (§5.4) both ways, with the
    `websockets` client; the handler sees http_version "1.1"."""
    versions: list[str] = []

    async def handler(ws: h2ws.WebSocket) -> None:
        versions.append(ws.http_version)
        await echo_with_fragments(ws)

    async with running_server(handler, tls=tls) as srv:
        async with ws_connect(srv.port, "/echo", tls=tls) as ws:
            await ws.send("héllo")
            assert await ws.recv() == "héllo"
            await ws.send(b"\x00\xff" * 1000)
            assert await ws.recv() == b"\x00\xff" * 1000
            await ws.send(["frag", "mented ", "text"])  # one message in three frames
            assert await ws.recv() == "fragmented text"
            await ws.send([b"\x01", b"\x02" * 70000])
            assert await ws.recv() == b"\x01" + b"\x02" * 70000
            await ws.send("fragments please")
            assert await ws.recv() == "fragmented"
            assert await ws.recv() == b"\x00\x01\x02\x03"
            await ws.send("")
            assert await ws.recv() == ""
        assert ws.close_code == 1000
    assert versions == ["1.1"]


@TLS
async def test_aiohttp_echo_text_binary_fragmented(tls: bool) -> None:
    """The same with aiohttp's client (which reassembles our fragments)."""
    async with running_server(echo_with_fragments, tls=tls) as srv:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(
                ws_url(srv.port, "/echo", tls), ssl=aiohttp_ssl(tls), autoping=True
            ) as ws:
                await ws.send_str("héllo")
                assert (await ws.receive(timeout=5)).data == "héllo"
                await ws.send_bytes(b"\x00\xff" * 1000)
                assert (await ws.receive(timeout=5)).data == b"\x00\xff" * 1000
                await ws.send_str("fragments please")
                assert (await ws.receive(timeout=5)).data == "fragmented"
                assert (await ws.receive(timeout=5)).data == b"\x00\x01\x02\x03"
                await ws.close()
            assert ws.close_code == 1000


@pytest.mark.parametrize(
    "client, tls",
    [("websockets", False), ("aiohttp", False), ("websockets", True)],
    ids=["websockets-cleartext", "aiohttp-cleartext", "websockets-tls"],
)
async def test_5_mib_messages_both_ways(client: str, tls: bool) -> None:
    """5 MiB text and binary messages, with max_message_size raised to 8 MiB."""
    text, data = "é" * (5 * MiB // 2), bytes(range(256)) * (5 * MiB // 256)
    async with running_server(echo_with_fragments, tls=tls, max_message_size=8 * MiB) as srv:
        if client == "websockets":
            async with ws_connect(srv.port, tls=tls, max_size=8 * MiB) as ws:
                await ws.send(text)
                assert await ws.recv() == text
                await ws.send(data)
                assert await ws.recv() == data
        else:
            async with aiohttp.ClientSession() as session:
                async with session.ws_connect(
                    ws_url(srv.port, "/", tls), ssl=aiohttp_ssl(tls), max_msg_size=8 * MiB
                ) as aws:
                    await aws.send_str(text)
                    assert (await aws.receive(timeout=10)).data == text
                    await aws.send_bytes(data)
                    assert (await aws.receive(timeout=10)).data == data


async def test_message_over_max_message_size_gets_1009() -> None:
    """§7.4.1: a message over the server's max_message_size closes with 1009,
    as the `websockets` client reports it."""
    async with running_server(echo_with_fragments, max_message_size=64 * 1024) as srv:
        async with ws_connect(srv.port) as ws:
            await ws.send(b"x" * (64 * 1024 + 1))
            with pytest.raises(websockets.ConnectionClosedError) as info:
                await ws.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 1009


@pytest.mark.parametrize("client", CLIENTS)
async def test_request_and_subprotocol_seen_by_the_handler(client: str) -> None:
    """ws.request (path with query, headers), ws.subprotocol (the server's
    first choice among those offered) and http_version, and the client sees
    the same subprotocol in the 101."""
    seen: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    async def handler(ws: h2ws.WebSocket) -> None:
        r = ws.request
        seen.set_result(
            {
                "path": r.path,
                "method": r.method,
                "token": r.headers.get("x-token"),
                "host": r.headers["host"],
                "subprotocol": ws.subprotocol,
                "http_version": ws.http_version,
                "stream_id": ws.stream_id,
            }
        )
        await ws.send("ok")

    async with running_server(handler, subprotocols=["chat", "superchat"]) as srv:
        path = "/room/7?lang=en"
        if client == "websockets":
            async with ws_connect(
                srv.port,
                path,
                subprotocols=["superchat", "chat"],  # type: ignore[list-item]
                additional_headers={"X-Token": "abc"},
            ) as ws:
                assert await ws.recv() == "ok"
                assert ws.subprotocol == "chat"
        else:
            async with aiohttp.ClientSession() as session:
                async with session.ws_connect(
                    ws_url(srv.port, path, False),
                    protocols=("superchat", "chat"),
                    headers={"X-Token": "abc"},
                ) as aws:
                    assert (await aws.receive(timeout=5)).data == "ok"
                    assert aws.protocol == "chat"
        got = await asyncio.wait_for(seen, 5)
    assert got == {
        "path": path,
        "method": "GET",
        "token": "abc",
        "host": f"127.0.0.1:{srv.port}",
        "subprotocol": "chat",
        "http_version": "1.1",
        "stream_id": 0,
    }


@pytest.mark.parametrize("client", CLIENTS)
async def test_process_request_refusal_reaches_the_client(client: str) -> None:
    """A Response from process_request refuses the WebSocket: the client gets
    its status (and, with `websockets`, its headers and body)."""

    def process(request: h2ws.Request) -> h2ws.Response | None:
        if request.headers.get("authorization") != "Bearer good":
            return h2ws.Response(
                401,
                [("content-type", "text/plain"), ("www-authenticate", "Bearer")],
                b"who are you?\n",
            )
        return None

    async with running_server(echo_with_fragments, process_request=process) as srv:
        if client == "websockets":
            with pytest.raises(websockets.InvalidStatus) as info:
                async with ws_connect(srv.port):
                    pass
            response = info.value.response
            assert response.status_code == 401
            assert response.headers["www-authenticate"] == "Bearer"
            assert response.body == b"who are you?\n"
            async with ws_connect(
                srv.port, additional_headers={"Authorization": "Bearer good"}
            ) as ws:
                await ws.send("in")
                assert await ws.recv() == "in"
        else:
            async with aiohttp.ClientSession() as session:
                with pytest.raises(aiohttp.WSServerHandshakeError) as ainfo:
                    await session.ws_connect(ws_url(srv.port, "/", False))
                assert ainfo.value.status == 401
                async with session.ws_connect(
                    ws_url(srv.port, "/", False), headers={"Authorization": "Bearer good"}
                ) as aws:
                    await aws.send_str("in")
                    assert (await aws.receive(timeout=5)).data == "in"


async def test_origins_with_the_websockets_client() -> None:
    """serve(origins=[...]): a listed Origin (or none, when None is listed)
    opens; another gets 403."""
    async with running_server(echo_with_fragments, origins=["https://good.example", None]) as srv:
        for origin in ("https://good.example", None):
            async with ws_connect(srv.port, origin=origin) as ws:  # type: ignore[arg-type]
                await ws.send("hi")
                assert await ws.recv() == "hi"
        with pytest.raises(websockets.InvalidStatus) as info:
            async with ws_connect(srv.port, origin="https://evil.example"):  # type: ignore[arg-type]
                pass
        assert info.value.response.status_code == 403


async def test_keepalive_with_the_websockets_client() -> None:
    """ping_interval=0.2/ping_timeout=0.2 over HTTP/1.1: the `websockets`
    client answers every ping on its own, and the connection stays open."""
    async with running_server(echo_with_fragments, ping_interval=0.2, ping_timeout=0.2) as srv:
        async with ws_connect(srv.port) as ws:
            await asyncio.sleep(1.0)
            await ws.send("still here")
            assert await ws.recv() == "still here"
        assert ws.close_code == 1000


@contextlib.asynccontextmanager
async def many_clients(port: int, n: int) -> AsyncIterator[list[ClientConnection]]:
    clients = [await ws_connect(port, f"/{i}") for i in range(n)]
    try:
        yield clients
    finally:
        for ws in clients:
            await ws.close()


async def test_shutdown_closes_every_websocket_with_1001() -> None:
    """server.close() with 20 `websockets` clients and an idle keep-alive
    HTTP/1.1 connection: every WebSocket gets close 1001, the idle connection
    is closed, wait_closed() returns well within shutdown_timeout, and the
    port refuses new connections."""
    shutdown_timeout = 5.0
    async with running_server(
        echo_with_fragments,
        shutdown_timeout=shutdown_timeout,
        process_request=lambda r: h2ws.Response(200, [], b"ok") if r.path == "/ok" else None,
    ) as srv:
        async with many_clients(srv.port, 20) as clients:
            for ws in clients:
                await ws.send("before")
            assert [await ws.recv() for ws in clients] == ["before"] * 20
            reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
            writer.write(b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\n")
            assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).startswith(
                b"HTTP/1.1 200 "
            )
            loop = asyncio.get_running_loop()
            start = loop.time()
            srv.server.close()
            for ws in clients:
                with pytest.raises(websockets.ConnectionClosedOK):
                    await asyncio.wait_for(ws.recv(), 5)
                assert ws.close_code == 1001
            # The rest of the answer (its body), then EOF.
            assert b"ok" in await asyncio.wait_for(reader.read(), 5)
            writer.close()  # as clients do at EOF (the server lingers until then)
            await asyncio.wait_for(srv.server.wait_closed(), shutdown_timeout)
            assert loop.time() - start < 2.0
            with pytest.raises(OSError):
                await asyncio.open_connection("127.0.0.1", srv.port)
