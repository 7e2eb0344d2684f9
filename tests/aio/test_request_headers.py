"""The request of a WebSocket over HTTP/2 is decoded on first use (the server
keeps the head as received while a stream idles): every field must still reach
``process_request`` and the handler, and streams whose heads are equal (the
server then shares one copy of the head) must each get their own ``Request``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiopeer import connect
from helpers.servers import running_server

import h2ws

pytestmark = pytest.mark.timeout(60)

EXTRA = [
    ("origin", "http://localhost"),
    ("x-multi", "one"),
    ("x-empty", ""),
    ("x-multi", "two"),
    ("cookie", "a=1"),
    ("cookie", "b=2"),
]


def fields(request: h2ws.Request) -> dict[str, Any]:
    return {
        "path": request.path,
        "authority": request.authority,
        "method": request.method,
        "scheme": request.scheme,
        "protocol": request.protocol,
        "http_version": request.http_version,
        "headers": request.headers.items(),
    }


async def test_every_field_reaches_process_request_and_the_handler() -> None:
    """Repeated and empty headers, in order, and the pseudo-headers' fields,
    on three streams of one connection: two with the same head, one not."""
    loop = asyncio.get_running_loop()
    processed: list[dict[str, Any]] = []
    handled: dict[str, asyncio.Future[dict[str, Any]]] = {}

    def process(request: h2ws.Request) -> None:
        processed.append(fields(request))

    async def handler(ws: h2ws.WebSocket) -> None:
        tag = ws.request.headers.get("x-tag", "")
        seen = fields(ws.request)
        # A handler changing its request must not change another stream's.
        ws.request.headers.add("x-added", tag)
        ws.request.path = "/changed"
        handled[f"{tag}:{ws.stream_id}"] = fut = loop.create_future()
        fut.set_result(seen)
        await ws.send("ok")
        async for _ in ws:
            pass

    async with running_server(handler, process_request=process) as srv:
        peer = await connect(srv.port)
        authority = f"localhost:{srv.port}"
        same = [*EXTRA, ("x-tag", "same")]
        other = [*EXTRA, ("x-tag", "other")]
        sids = [
            await peer.open_websocket("/room/1?x=y", authority=authority, extra=same),
            await peer.open_websocket("/room/1?x=y", authority=authority, extra=same),
            await peer.open_websocket("/room/2", authority=authority, extra=other),
        ]
        await peer.until(lambda p: all(p.data_messages(s) == ["ok"] for s in sids))
        await peer.close()

    expected_headers = [("sec-websocket-version", "13"), *EXTRA]
    for i, (sid, path, tag) in enumerate(
        zip(sids, ["/room/1?x=y", "/room/1?x=y", "/room/2"], ["same", "same", "other"], strict=True)
    ):
        want = {
            "path": path,
            "authority": authority,
            "method": "CONNECT",
            "scheme": "http",
            "protocol": "websocket",
            "http_version": "2",
            "headers": [*expected_headers, ("x-tag", tag)],
        }
        assert processed[i] == want
        assert handled[f"{tag}:{sid}"].result() == want
