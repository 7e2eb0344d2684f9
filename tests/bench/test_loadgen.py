"""The C load generator, ``build/loadgen`` (benchmarks/loadgen, docs/loadgen.md),
against an h2ws server in this process and against small servers of its own.

Each test runs at most a few seconds of load. The binary is built with
``make loadgen`` from the repository root, found by walking up to the
Makefile that has the target (so the tests also run from the sanitizer copy
of the tree in build/asan); ``H2WS_LOADGEN`` names another binary. The
load generator is a program of its own: it runs without the sanitizer
preload (``foreign_env()``).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import json
import os
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
import websockets
from helpers.foreign import foreign_env
from helpers.servers import running_server

import h2ws

pytestmark = pytest.mark.timeout(120)

RESULT_KEYS = {
    "proto",
    "tls",
    "connections",
    "streams",
    "inflight",
    "size",
    "duration",
    "messages",
    "msgs_per_s",
    "bytes_per_s",
    "rtt_us",
    "mismatches",
    "errors",
    "streams_open",
    "streams_failed",
}
SHORT = ["-d", "0.5", "--warmup", "0.1", "--json"]
NO_KEEPALIVE: dict[str, Any] = {"ping_interval": None}


def _repo_root() -> Path:
    for d in Path(__file__).resolve().parents:
        makefile = d / "Makefile"
        if makefile.is_file() and "\nloadgen:" in makefile.read_text():
            return d
    raise AssertionError("no Makefile with a `loadgen` target above " + __file__)


@functools.cache
def loadgen() -> str:
    """Path of build/loadgen, built (or brought up to date) with make;
    ``H2WS_LOADGEN=/path`` runs another build instead (e.g. a sanitizer one)."""
    if os.environ.get("H2WS_LOADGEN"):
        return os.environ["H2WS_LOADGEN"]
    if shutil.which("make") is None or shutil.which("cc") is None:
        pytest.skip("no C compiler or make to build build/loadgen")
    root = _repo_root()
    done = subprocess.run(
        ["make", "-s", "-C", str(root), "loadgen"],
        env=foreign_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    binary = root / "build" / "loadgen"
    assert binary.is_file()
    return str(binary)


async def run_loadgen(*args: str, timeout: float = 60.0) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        loadgen(),
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=foreign_env(),
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def result(out: str) -> dict[str, Any]:
    lines = [line for line in out.splitlines() if line.strip()]
    data: dict[str, Any] = json.loads(lines[-1])
    assert RESULT_KEYS <= data.keys(), data
    return data


def assert_clean(r: dict[str, Any], *, streams: int) -> None:
    """A run that echoed, verified and closed everything."""
    assert r["mismatches"] == 0 and r["errors"] == 0, r
    assert r["streams_open"] == streams and r["streams_failed"] == 0, r
    assert r["messages"] > 0, r
    assert r["duration"] > 0
    assert r["msgs_per_s"] == pytest.approx(r["messages"] / r["duration"], rel=1e-3)
    assert r["bytes_per_s"] == pytest.approx(r["msgs_per_s"] * r["size"], rel=1e-3)
    rtt = r["rtt_us"]
    assert 0 < rtt["p50"] <= rtt["p99"] <= rtt["p999"] <= rtt["max"] * 1.01, rtt
    assert 0 < rtt["mean"] <= rtt["max"], rtt


async def echo(ws: h2ws.WebSocket) -> None:
    async for message in ws:
        await ws.send(message)


@pytest.mark.one_loop
@pytest.mark.parametrize(
    ("proto", "tls", "extra"),
    [
        ("h2", False, []),
        ("h1", False, ["-c", "4", "--text"]),
        ("h2", True, ["-s", "4", "-w", "2", "--text"]),
        ("h1", True, []),
    ],
)
async def test_echo(proto: str, tls: bool, extra: list[str]) -> None:
    """Every echo verified; the JSON line holds the contract's keys and sane figures."""
    async with running_server(echo, tls=tls, **NO_KEEPALIVE) as srv:
        args = ["--proto", proto, "--port", str(srv.port), *SHORT, *extra]
        if tls:
            args.append("--tls")
        code, out, err = await run_loadgen(*args)
    assert code == 0, err
    r = result(out)
    assert r["proto"] == proto and r["tls"] is tls
    n = int(extra[extra.index("-c") + 1]) if "-c" in extra else 1
    s = int(extra[extra.index("-s") + 1]) if "-s" in extra else 1
    assert_clean(r, streams=n * s)


@pytest.mark.one_loop
async def test_100_streams_on_one_connection() -> None:
    async with running_server(echo, **NO_KEEPALIVE) as srv:
        code, out, err = await run_loadgen("--port", str(srv.port), "-s", "100", *SHORT)
    assert code == 0, err
    assert_clean(result(out), streams=100)


@pytest.mark.one_loop
async def test_more_streams_than_the_server_allows() -> None:
    """Above SETTINGS_MAX_CONCURRENT_STREAMS: what fits opens, the rest is
    reported as streams_failed, and the exit status is 1."""
    async with running_server(echo, max_concurrent_streams=10, **NO_KEEPALIVE) as srv:
        code, out, err = await run_loadgen("--port", str(srv.port), "-s", "15", *SHORT)
    assert code == 1
    r = result(out)
    assert r["streams_open"] == 10 and r["streams_failed"] == 5, r
    assert "allows 10 concurrent streams" in err


@pytest.mark.one_loop
async def test_16mib_through_a_64kib_window() -> None:
    """Bulk: 16 MiB messages stream through a 64 KiB HTTP/2 window both ways."""
    async with running_server(echo, max_message_size=32 << 20, **NO_KEEPALIVE) as srv:
        code, out, err = await run_loadgen(
            "--port",
            str(srv.port),
            "-m",
            "16M",
            "--window",
            "64K",
            "--messages",
            "2",
            "--warmup",
            "0",
            "-d",
            "30",
            "--json",
        )
    assert code == 0, err
    r = result(out)
    assert_clean(r, streams=1)
    assert r["messages"] == 2 and r["size"] == 16 << 20 and r["window"] == 64 << 10


@pytest.mark.one_loop
async def test_hold() -> None:
    """--hold: all streams open, one ready line, idle until stdin closes, then
    close frames 1000 (and END_STREAM) and exit 0."""
    opened = 0
    closed: list[int | None] = []

    async def handler(ws: h2ws.WebSocket) -> None:
        nonlocal opened
        opened += 1
        async for _ in ws:
            pass
        closed.append(ws.close_code)

    async with running_server(handler, **NO_KEEPALIVE) as srv:
        proc = await asyncio.create_subprocess_exec(
            loadgen(),
            "--port",
            str(srv.port),
            "-c",
            "3",
            "-s",
            "50",
            "--hold",
            "-d",
            "60",
            "--json",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=foreign_env(),
        )
        assert proc.stdout is not None and proc.stdin is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        assert json.loads(line) == {"ready": True, "streams": 150, "connections": 3}
        assert opened == 150
        await asyncio.sleep(0.3)
        proc.stdin.close()
        out, err = await asyncio.wait_for(proc.communicate(), 20)
        for _ in range(100):
            if len(closed) == 150:
                break
            await asyncio.sleep(0.02)
    assert proc.returncode == 0, err
    r = result(out.decode())
    assert r["errors"] == 0 and r["streams_open"] == 150
    assert closed == [1000] * 150


@pytest.mark.one_loop
async def test_a_corrupting_echo_is_caught() -> None:
    """A server (websockets, HTTP/1.1) that flips one byte of each echo:
    mismatches are counted and the exit status is 1."""

    async def flip(ws: Any) -> None:
        async for message in ws:
            b = bytearray(message)
            b[len(b) // 2] ^= 0x01
            await ws.send(bytes(b))

    async with websockets.serve(flip, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        code, out, err = await run_loadgen("--proto", "h1", "--port", str(port), *SHORT)
    assert code == 1
    r = result(out)
    assert r["mismatches"] > 0 and r["messages"] == 0, r
    assert "mismatch" in err


@pytest.mark.one_loop
async def test_a_corrupting_echo_over_h2_is_caught() -> None:
    """The same over HTTP/2 (an h2ws handler that flips the last byte): the
    stream keeps going, every echo counts as a mismatch, exit status 1."""

    async def flip(ws: h2ws.WebSocket) -> None:
        async for message in ws:
            assert isinstance(message, bytes)
            await ws.send(message[:-1] + bytes([message[-1] ^ 0x80]))

    async with running_server(flip, **NO_KEEPALIVE) as srv:
        code, out, err = await run_loadgen("--port", str(srv.port), "-s", "3", *SHORT)
    assert code == 1
    r = result(out)
    assert r["mismatches"] > 10 and r["messages"] == 0 and r["errors"] == 0, r
    assert "payload differs" in err


@pytest.mark.one_loop
async def test_a_type_changing_echo_is_caught() -> None:
    """Binary sent, text echoed: a mismatch too."""

    async def as_text(ws: Any) -> None:
        async for message in ws:
            await ws.send(bytes(message).hex()[: len(message)])

    async with websockets.serve(as_text, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        code, out, err = await run_loadgen("--proto", "h1", "--port", str(port), *SHORT)
    assert code == 1
    assert result(out)["mismatches"] > 0
    assert "echoed as text" in err


@pytest.mark.one_loop
async def test_empty_messages() -> None:
    """Zero-byte messages: a frame header alone ends a read (regression)."""
    async with running_server(echo, **NO_KEEPALIVE) as srv:
        code, out, err = await run_loadgen("--port", str(srv.port), "-m", "0", "-w", "2", *SHORT)
    assert code == 0, err
    assert_clean(result(out), streams=1)


async def _read_frame(reader: asyncio.StreamReader) -> tuple[int, bool, bytes]:
    """One masked client frame: (opcode, fin, unmasked payload)."""
    b0, b1 = await reader.readexactly(2)
    assert b1 & 0x80, "client frames are masked (RFC 6455 section 5.1)"
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(await reader.readexactly(2), "big")
    elif n == 127:
        n = int.from_bytes(await reader.readexactly(8), "big")
    key = await reader.readexactly(4)
    data = await reader.readexactly(n)
    return b0 & 0x0F, bool(b0 & 0x80), bytes(c ^ key[i % 4] for i, c in enumerate(data))


def _frame(op: int, payload: bytes, fin: bool = True) -> bytes:
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | op])
    if n < 126:
        head += bytes([n])
    elif n < 65536:
        head += bytes([126]) + n.to_bytes(2, "big")
    else:
        head += bytes([127]) + n.to_bytes(8, "big")
    return head + payload


@pytest.mark.one_loop
async def test_fragments_pings_and_byte_by_byte_delivery() -> None:
    """A hand-written HTTP/1.1 server echoes each message as three fragments
    with a ping between them, writing the bytes one at a time: loadgen
    reassembles and verifies them and answers every ping with its payload."""
    pongs: list[bytes] = []
    pings: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        key = next(
            line.split(b":", 1)[1].strip()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        accept = base64.b64encode(
            hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
        )
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        n = 0
        while True:
            op, fin, data = await _read_frame(reader)
            assert fin
            if op == 0xA:
                pongs.append(data)
                continue
            if op == 0x8:
                writer.write(_frame(0x8, data))
                await writer.drain()
                writer.close()
                return
            n += 1
            ping = b"p%d" % n
            pings.append(ping)
            third = len(data) // 3
            out = (
                _frame(op, data[:third], fin=False)
                + _frame(0x9, ping)
                + _frame(0x0, data[third : 2 * third], fin=False)
                + _frame(0x0, data[2 * third :])
            )
            for i in range(len(out)):
                writer.write(out[i : i + 1])
                await writer.drain()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        code, out, err = await run_loadgen(
            "--proto", "h1", "--port", str(port), "-m", "300", "--text", *SHORT
        )
    assert code == 0, err
    assert_clean(result(out), streams=1)
    assert pongs and pongs == pings[: len(pongs)]
    assert len(pings) - len(pongs) <= 1


@pytest.mark.one_loop
async def test_tcp_floor() -> None:
    """--proto tcp against a plain asyncio echo."""

    async def echo_tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo_tcp, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        code, out, err = await run_loadgen(
            "--proto", "tcp", "--port", str(port), "-c", "2", "-m", "4K", *SHORT
        )
    assert code == 0, err
    assert_clean(result(out), streams=2)


@pytest.mark.one_loop
async def test_no_rfc8441_fails_clearly() -> None:
    """An HTTP/2 server without SETTINGS_ENABLE_CONNECT_PROTOCOL: exit 1, said why."""
    async with running_server(echo, ws_over_h2=False, **NO_KEEPALIVE) as srv:
        code, out, err = await run_loadgen("--port", str(srv.port), *SHORT)
    assert code == 1
    assert "SETTINGS_ENABLE_CONNECT_PROTOCOL" in err
    assert result(out)["streams_failed"] == 1


@pytest.mark.parametrize(
    "args",
    [
        [],  # no --port
        ["--port", "1", "--proto", "h3"],
        ["--port", "1", "--proto", "h1", "-s", "2"],
        ["--port", "1", "-m", "12X"],
        ["--port", "1", "--window", "0"],
        ["--port", "1", "--bogus"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    done = subprocess.run(
        [loadgen(), *args], capture_output=True, text=True, env=foreign_env(), timeout=30
    )
    assert done.returncode == 2, done
    assert done.stderr.startswith("loadgen: ")


def test_refused_connection_exits_1() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = subprocess.run(
        [loadgen(), "--port", str(port), *SHORT],
        capture_output=True,
        text=True,
        env=foreign_env(),
        timeout=30,
    )
    assert done.returncode == 1
    assert "Connection refused" in done.stderr
