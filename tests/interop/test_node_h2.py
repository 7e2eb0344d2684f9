"""Interop with Node's built-in ``node:http2`` client (RFC 8441), a peer nobody
here wrote.

``node/h2_ws_client.js`` opens 100 WebSockets on one HTTP/2 connection; each
echoes a text, a binary and a fragmented message (with a ping between the
fragments), then closes with 1000 and END_STREAM. The server under test is
``examples/echo_server.py`` run as a program (cleartext h2c and TLS) and an
in-process ``h2ws.serve``.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers.certs import cert_files
from helpers.foreign import foreign_env
from helpers.processes import EchoServerProcess
from helpers.servers import running_server

import h2ws

NODE = shutil.which("node")
ROOT = Path(__file__).resolve().parents[2]
CLIENT = Path(__file__).resolve().parent / "node" / "h2_ws_client.js"
ECHO_SERVER = ROOT / "examples" / "echo_server.py"
STREAMS = 100
BIG = 100_000

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(NODE is None, reason="`node` (Node.js >= 20, node:http2) is not on PATH"),
]


def node_env(tls: bool) -> dict[str, str]:
    env = foreign_env()
    if tls:
        env["NODE_EXTRA_CA_CERTS"] = cert_files()[0]  # verify our certificate, no --insecure
    return env


def node_args(url: str, *extra: str) -> list[str]:
    assert NODE is not None
    return [NODE, str(CLIENT), url, str(STREAMS), "--timeout", "60", *extra]


def parse_result(stdout: str, stderr: str) -> dict[str, Any]:
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    assert lines, f"no JSON from the Node client; stdout={stdout!r} stderr={stderr!r}"
    result: dict[str, Any] = json.loads(lines[-1])
    assert result.get("ok"), result
    return result


def check_result(
    result: dict[str, Any], *, big: bool = False, subprotocol: str | None = None
) -> None:
    """Every stream: 200, its echoes in order, the pong, close 1000, END_STREAM
    both ways and no RST_STREAM; all of them on one TCP connection."""
    assert result["connections"] == 1
    assert result["enableConnectProtocol"] is True
    streams = result["streams"]
    assert len(streams) == STREAMS
    for r in streams:
        i = r["stream"]
        expected: list[Any] = [
            ["text", f"text {i}"],
            ["binary", bytes([i & 0xFF, 0, 1, 2, 255]).hex()],
            ["text", f"fragmented {i}"],
        ]
        if big:
            expected.append(["big", [BIG, True]])
        assert r["status"] == 200, r
        assert r["subprotocol"] == subprotocol, r
        assert r["messages"] == expected, r
        assert r["pong"] is True, r
        assert r["closeCode"] == 1000, r
        assert r["ended"] is True, r  # the server's END_STREAM
        assert r["finished"] is True, r  # ours went out before the stream closed
        assert r["rst"] == 0, r  # closed by END_STREAMs, not by RST_STREAM


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "tls"])
def test_node_client_against_echo_example(tls: bool) -> None:
    server = EchoServerProcess(tls)
    try:
        run = subprocess.run(
            node_args(server.url, "--big", str(BIG)),
            capture_output=True,
            text=True,
            timeout=90,
            env=node_env(tls),
        )
    finally:
        code, err = server.stop()
    check_result(parse_result(run.stdout, run.stderr), big=True)
    assert code == 0, err
    assert "Traceback" not in err, err


async def test_node_client_against_in_process_server() -> None:
    peers: set[Any] = set()
    seen: list[tuple[str, str | None, str]] = []

    async def echo(ws: h2ws.WebSocket) -> None:
        peers.add(ws.remote_address)
        seen.append((ws.request.path, ws.subprotocol, ws.http_version))
        async for message in ws:
            await ws.send(message)

    async with running_server(echo, subprotocols=["chat"]) as srv:
        proc = await asyncio.create_subprocess_exec(
            *node_args(srv.url, "--big", str(BIG)),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=node_env(False),
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), 90)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    check_result(parse_result(out.decode(), err.decode()), big=True, subprotocol="chat")
    assert len(peers) == 1  # the server saw one TCP connection too
    assert sorted(seen) == sorted((f"/echo/{i}", "chat", "2") for i in range(STREAMS))
