"""One port for every client: examples/echo_server.py serves python-hyper h2
(HTTP/2, RFC 8441), the `websockets` and `aiohttp` clients (HTTP/1.1
Upgrade) and Node's http2 client, all at once, cleartext and TLS."""

from __future__ import annotations

import asyncio
import shutil

import aiohttp
import h2.events
import pytest
import websockets
from helpers.certs import client_context
from helpers.foreign import foreign_env
from helpers.processes import EchoServerProcess
from helpers.servers import H2Client, running_server

import h2ws
from h2ws import _core

pytestmark = pytest.mark.timeout(120)

NODE = shutil.which("node")


async def h2_client_round(port: int, tls: bool) -> None:
    """Extended CONNECT, echo, clean close: close frame + END_STREAM each way, no RST."""
    c = await H2Client.connect("127.0.0.1", port, tls=tls)
    sid = await c.open_websocket("/h2")
    assert c.remote_settings.get(0x8) == 1
    c.ws_send(sid, "over h2")
    c.ws_send(sid, b"\x00\xff" * 1000)
    await c.until(lambda c: len(c.messages(sid)) == 2)
    assert c.messages(sid) == [(_core.EV_TEXT, "over h2"), (_core.EV_BINARY, b"\x00\xff" * 1000)]
    c.ws_close(sid, 1000, "bye")
    await c.until(lambda c: c.ended(sid))
    assert c.messages(sid)[-1] == (_core.EV_CLOSE, 1000, "")
    with pytest.raises(TimeoutError):  # nothing more comes: in particular no RST_STREAM
        await c.read(0.2)
    assert c.reset_code(sid) is None
    assert not any(isinstance(e, h2.events.StreamReset) for e in c.events)
    await c.close()


async def websockets_round(port: int, tls: bool) -> None:
    scheme = "wss" if tls else "ws"
    ssl = client_context(["http/1.1"]) if tls else None
    async with websockets.connect(f"{scheme}://127.0.0.1:{port}/ws", ssl=ssl) as ws:
        await ws.send("over h1")
        assert await ws.recv() == "over h1"
        await ws.send(b"\x01" * 70000)
        assert await ws.recv() == b"\x01" * 70000
    assert ws.close_code == 1000


async def aiohttp_round(port: int, tls: bool) -> None:
    scheme = "wss" if tls else "ws"
    ssl = client_context(["http/1.1"]) if tls else False
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"{scheme}://127.0.0.1:{port}/aio", ssl=ssl) as ws:
            await ws.send_str("aiohttp")
            msg = await ws.receive(timeout=5)
            assert msg.data == "aiohttp"
            await ws.close()
        assert ws.close_code == 1000


async def node_round(port: int, tls: bool) -> None:
    from helpers.certs import cert_files

    assert NODE is not None
    from pathlib import Path

    client = Path(__file__).resolve().parent / "node" / "h2_ws_client.js"
    env = foreign_env()
    if tls:
        env["NODE_EXTRA_CA_CERTS"] = cert_files()[0]
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    proc = await asyncio.create_subprocess_exec(
        NODE,
        str(client),
        url,
        "10",
        "--timeout",
        "60",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert b'"ok":true' in out, (out, err)


@pytest.mark.one_loop
@pytest.mark.parametrize("tls", [False, True], ids=["cleartext", "tls"])
async def test_echo_example_serves_every_client_on_one_port(tls: bool) -> None:
    server = EchoServerProcess(tls)
    try:
        rounds = [h2_client_round, websockets_round, aiohttp_round]
        if NODE is not None:
            rounds.append(node_round)
        # All at the same time, on the same port.
        await asyncio.gather(*(r(server.port, tls) for r in rounds))
    finally:
        code, err = server.stop()
    assert code == 0, err
    assert "Traceback" not in err, err


@pytest.mark.parametrize("tls", [False, True], ids=["cleartext", "tls"])
async def test_same_websocket_object_over_both_versions(tls: bool) -> None:
    """The handler gets the same WebSocket class over HTTP/1.1 and HTTP/2,
    with http_version telling them apart."""
    seen: list[tuple[str, str, type]] = []

    async def handler(ws):  # type: ignore[no-untyped-def]
        seen.append((ws.request.path, ws.http_version, type(ws)))
        async for m in ws:
            await ws.send(m)

    async with running_server(handler, tls=tls) as srv:
        await asyncio.gather(h2_client_round(srv.port, tls), websockets_round(srv.port, tls))
    assert sorted((path, version) for path, version, _ in seen) == [("/h2", "2"), ("/ws", "1.1")]
    assert {t for _, _, t in seen} == {h2ws.WebSocket}
