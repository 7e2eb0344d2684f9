"""docs/server.md: h2ws runs unchanged on a loop patched by aiofastnet (its
own TLS transports over OpenSSL instead of the loop's SSLProtocol), ALPN
included, over HTTP/1.1 and HTTP/2, with both APIs."""

from __future__ import annotations

import asyncio

import pytest
from helpers.certs import client_context
from helpers.servers import running_server

import h2ws


class _Echo(h2ws.WebSocketProtocol):
    """The callback API: sends every message back from message_received."""

    alpns: list[str | None]

    def connection_made(self, transport: h2ws.WebSocketTransport) -> None:
        self.transport = transport
        self.alpns.append(transport.get_extra_info("ssl_object").selected_alpn_protocol())

    def message_received(self, message: str | bytes) -> None:
        self.transport.send(message)


async def test_tls_echo_on_a_loop_patched_by_aiofastnet() -> None:
    aiofastnet = pytest.importorskip("aiofastnet")  # picows' dependency (the bench extra)
    aiofastnet.patch_loop(asyncio.get_running_loop())  # this test's loop only
    alpns: list[str | None] = []

    async def echo(ws: h2ws.WebSocket) -> None:
        alpns.append(ws.transport.get_extra_info("ssl_object").selected_alpn_protocol())
        async for message in ws:
            await ws.send(message)

    class Echo(_Echo):
        pass

    Echo.alpns = alpns
    for handler, options in ((echo, {}), (None, {"protocol_factory": Echo})):
        async with running_server(handler, tls=True, **options) as srv:
            for version, alpn, http2 in (("1.1", "http/1.1", False), ("2", "h2", True)):
                uri = f"wss://127.0.0.1:{srv.port}/"
                async with h2ws.connect(uri, ssl=client_context([alpn]), http2=http2) as ws:
                    assert ws.http_version == version
                    for n in (0, 256, 70_000, 1 << 20):
                        await ws.send(b"x" * n)
                        assert await ws.recv() == b"x" * n
                    await ws.send("text")
                    assert await ws.recv() == "text"
    assert alpns == ["http/1.1", "h2"] * 2
