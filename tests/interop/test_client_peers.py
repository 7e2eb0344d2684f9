"""The client, ``h2ws.connect()``, against servers nobody here wrote.

- Hypercorn (the other Python RFC 8441 server) serving an ASGI echo app
  (``hypercorn_echo.py``) over h2c and TLS;
- Node's ``node:http2`` server with ``enableConnectProtocol``
  (``node/h2_ws_server.js``), which checks masking and reports each stream's
  close choreography;
- nghttpx as an HTTP/2 front end (extended CONNECT) to a ``websockets``
  server (HTTP/1.1 Upgrade behind it);
- a ``websockets`` server alone, and h2ws with ``ws_over_h2=False``: the
  fallback to HTTP/1.1, and ``http2=True`` refusing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.certs import cert_files, client_context, server_context
from helpers.foreign import foreign_env
from helpers.servers import running_server

import h2ws

pytestmark = pytest.mark.timeout(120)

HERE = Path(__file__).resolve().parent
NODE = shutil.which("node")
NGHTTPX = shutil.which("nghttpx")
HYPERCORN = importlib.util.find_spec("hypercorn") is not None
NO_KEEPALIVE: dict[str, Any] = {"ping_interval": None}
BIG = 200_000  # over the 65,535 initial window and the 16 KiB frame size

needs_node = pytest.mark.skipif(NODE is None, reason="`node` (Node.js >= 20) is not on PATH")
needs_nghttpx = pytest.mark.skipif(
    NGHTTPX is None, reason="`nghttpx` (Debian nghttp2-proxy) is not installed"
)
needs_hypercorn = pytest.mark.skipif(
    not HYPERCORN, reason="hypercorn is not installed (pip install hypercorn)"
)


class LineProcess:
    """A child process whose stdout and stderr lines are collected by threads."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        for stream, lines in ((self.proc.stdout, self.stdout), (self.proc.stderr, self.stderr)):
            threading.Thread(target=self._pump, args=(stream, lines), daemon=True).start()

    @staticmethod
    def _pump(stream: Any, lines: list[str]) -> None:
        for line in stream:
            lines.append(line.rstrip("\n"))

    def wait_for(self, lines: list[str], pattern: str, timeout: float = 20.0) -> re.Match[str]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for line in list(lines):
                m = re.search(pattern, line)
                if m:
                    return m
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        raise AssertionError(f"no {pattern!r}; stdout={self.stdout} stderr={self.stderr}")

    def records(self) -> list[dict[str, Any]]:
        """The JSON objects printed on stdout so far."""
        return [json.loads(line) for line in list(self.stdout) if line.startswith("{")]

    async def until(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """Waits until ``predicate(records())`` holds; returns the records."""
        end = time.monotonic() + timeout
        while True:
            records = self.records()
            if predicate(records):
                return records
            if time.monotonic() > end:
                raise AssertionError(f"condition not met; records={records} err={self.stderr}")
            await asyncio.sleep(0.01)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_listening(port: int, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if time.monotonic() > end:
                raise
            await asyncio.sleep(0.02)
        else:
            writer.close()
            return


def client_args(tls: bool) -> dict[str, Any]:
    """wss:// with "auto" (ALPN h2), or ws:// with h2c prior knowledge."""
    if tls:
        return {"ssl": client_context(["h2", "http/1.1"])}
    return {"http2": True}


def uri(tls: bool, port: int, path: str = "/") -> str:
    return f"{'wss' if tls else 'ws'}://127.0.0.1:{port}{path}"


def carrier(ws: h2ws.WebSocket) -> Any:
    return ws.transport.get_extra_info("connection")


async def exchange(ws: h2ws.WebSocket) -> None:
    """Text, binary, a fragmented message, a big one and a ping."""
    await ws.send("hello")
    assert await ws.recv() == "hello"
    await ws.send(b"\x00\x01\xfe\xff")
    assert await ws.recv() == b"\x00\x01\xfe\xff"
    await ws.send(["frag", "men", "ted"])
    assert await ws.recv() == "fragmented"
    big = os.urandom(BIG)
    await ws.send(big)
    assert await ws.recv() == big
    await asyncio.wait_for(await ws.ping(), 5)


TLS_IDS = ["h2c", "tls"]


# -- Hypercorn ----------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=[False, True], ids=TLS_IDS)
def hypercorn(request: pytest.FixtureRequest) -> Iterator[tuple[LineProcess, int, bool]]:
    if not HYPERCORN:
        pytest.skip("hypercorn is not installed (pip install hypercorn)")
    tls = bool(request.param)
    args = [sys.executable, str(HERE / "hypercorn_echo.py")]
    if tls:
        certfile, keyfile = cert_files()
        args += ["--certfile", certfile, "--keyfile", keyfile]
    proc = LineProcess(args, env=foreign_env())
    m = proc.wait_for(proc.stderr, r"Running on https?://127\.0\.0\.1:(\d+)")
    yield proc, int(m.group(1)), tls
    proc.stop()


@needs_hypercorn
async def test_hypercorn_uses_http2_and_survives_our_close(
    hypercorn: tuple[LineProcess, int, bool],
) -> None:
    """Hypercorn advertises RFC 8441: two WebSockets share one HTTP/2
    connection. Hypercorn never sends END_STREAM after a close (INTEROP.md):
    close() still returns within close_timeout with the code received, and
    the other WebSocket on the connection keeps working (our END_STREAM rides
    with the close frame, so Hypercorn never sees DATA on a stream it forgot,
    which would drop the connection)."""
    proc, port, tls = hypercorn
    pool = h2ws.ConnectionPool(asyncio.get_running_loop())
    kw = {**client_args(tls), "pool": pool, "close_timeout": 1.0, **NO_KEEPALIVE}
    first, second = await asyncio.gather(
        h2ws.connect(uri(tls, port, "/one"), subprotocols=["chat"], **kw),
        h2ws.connect(uri(tls, port, "/two"), **kw),
    )
    assert first.http_version == second.http_version == "2"
    assert carrier(first) is carrier(second)
    assert first.subprotocol == "chat" and second.subprotocol is None
    await exchange(first)
    await exchange(second)

    start = time.monotonic()
    await first.close()
    assert time.monotonic() - start < 1.0 + 0.5
    assert first.close_code == 1000
    await exchange(second)  # the connection survived
    await second.close()
    assert second.close_code == 1000

    opens = [r for r in proc.records() if r.get("open") in ("/one", "/two")]
    assert {r["http_version"] for r in opens} == {"2"}
    assert not [line for line in proc.stderr if "Traceback" in line or "KeyError" in line]


@needs_hypercorn
async def test_hypercorn_closes_first(hypercorn: tuple[LineProcess, int, bool]) -> None:
    """The app closes with 4001: recv() raises ConnectionClosedError with
    Hypercorn's code and reason, at once."""
    proc, port, tls = hypercorn
    async with h2ws.connect(
        uri(tls, port, "/close/4001"), close_timeout=1.0, **client_args(tls), **NO_KEEPALIVE
    ) as ws:
        assert ws.http_version == "2"
        start = time.monotonic()
        with pytest.raises(h2ws.ConnectionClosedError) as info:
            await ws.recv()
        assert (info.value.code, info.value.reason) == (4001, "bye")
        assert time.monotonic() - start < 1.0
    await proc.until(lambda rs: any(r.get("disconnect") == "/close/4001" for r in rs))


# -- Node http2 ----------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=[False, True], ids=TLS_IDS)
def node_server(request: pytest.FixtureRequest) -> Iterator[tuple[LineProcess, int, bool]]:
    if NODE is None:
        pytest.skip("`node` (Node.js >= 20) is not on PATH")
    tls = bool(request.param)
    args = [NODE, str(HERE / "node" / "h2_ws_server.js")]
    if tls:
        certfile, keyfile = cert_files()
        args += ["--cert", certfile, "--key", keyfile]
    proc = LineProcess(args, env=foreign_env())
    m = proc.wait_for(proc.stdout, r'^\{"port":(\d+)\}')
    yield proc, int(m.group(1)), tls
    proc.stop()


@needs_node
async def test_node_echo_over_one_connection(node_server: tuple[LineProcess, int, bool]) -> None:
    """Three WebSockets to Node's http2 server share one connection; every
    client frame was masked with its own key; each close is clean: our close
    frame and END_STREAM reached Node, which answered, and no RST_STREAM."""
    proc, port, tls = node_server
    pool = h2ws.ConnectionPool(asyncio.get_running_loop())
    kw = client_args(tls)  # one TLS context: pooled connections are keyed by it
    run = os.urandom(4).hex()
    websockets = await asyncio.gather(
        *(
            h2ws.connect(
                uri(tls, port, f"/echo/{run}/{i}"),
                pool=pool,
                subprotocols=["chat", "other"],
                additional_headers={"x-client": f"h2ws {i}"},
                origin="https://example.test",
                **kw,
                **NO_KEEPALIVE,
            )
            for i in range(3)
        )
    )
    assert len({id(carrier(ws)) for ws in websockets}) == 1
    for ws in websockets:
        assert ws.http_version == "2"
        assert ws.response is not None and ws.response.status == 200
        assert ws.subprotocol == "chat"
    await asyncio.gather(*(exchange(ws) for ws in websockets))
    await asyncio.gather(*(ws.close() for ws in websockets))
    assert {ws.close_code for ws in websockets} == {1000}

    paths = {f"/echo/{run}/{i}" for i in range(3)}
    records = await proc.until(lambda rs: paths <= {r.get("path") for r in rs})
    mine = [r for r in records if r.get("path") in paths]
    assert len({r["sessionId"] for r in mine}) == 1
    for r in mine:
        i = r["path"].rsplit("/", 1)[1]
        assert r["headers"]["x-client"] == f"h2ws {i}"
        assert r["headers"]["origin"] == "https://example.test"
        assert r["headers"]["sec-websocket-version"] == "13"
        assert r["messages"] == 4
        assert r["masked"] is True
        assert r["keys"] == r["frames"]  # a fresh key per frame
        assert r["closeCode"] == 1000
        assert r["clientEnded"] is True
        assert r["rstCode"] == 0


@needs_node
async def test_node_closes_first(node_server: tuple[LineProcess, int, bool]) -> None:
    """Node closes with 4002 right after the 200: the client reports it and
    answers with a close frame and END_STREAM."""
    proc, port, tls = node_server
    path = f"/close/4002?run={os.urandom(4).hex()}"
    ws = await h2ws.connect(uri(tls, port, path), **client_args(tls), **NO_KEEPALIVE)
    with pytest.raises(h2ws.ConnectionClosedError) as info:
        await ws.recv()
    assert (info.value.code, info.value.reason) == (4002, "server closes")
    await ws.wait_closed()
    records = await proc.until(lambda rs: any(r.get("path") == path for r in rs))
    (r,) = [r for r in records if r.get("path") == path]
    assert r["closeCode"] == 4002  # our answer echoed the code
    assert r["clientEnded"] is True and r["rstCode"] == 0


# -- nghttpx in front of websockets --------------------------------------------------------------


class BackendRecorder:
    """A websockets (HTTP/1.1) echo handler that remembers what it saw."""

    def __init__(self) -> None:
        self.requests: list[Any] = []
        self.close_codes: list[int | None] = []

    async def __call__(self, ws: Any) -> None:
        self.requests.append(ws.request)
        try:
            async for message in ws:
                await ws.send(message)
        finally:
            self.close_codes.append(ws.close_code)


@contextlib.asynccontextmanager
async def websockets_server() -> AsyncIterator[tuple[BackendRecorder, int]]:
    """A websockets echo server on a free port (HTTP/1.1 only, cleartext)."""
    from websockets.asyncio.server import serve

    rec = BackendRecorder()
    async with serve(rec, "127.0.0.1", 0, max_size=None) as server:
        yield rec, server.sockets[0].getsockname()[1]


async def start_nghttpx(backend_port: int, tls: bool) -> tuple[asyncio.subprocess.Process, int]:
    assert NGHTTPX is not None
    for _ in range(5):
        port = free_port()
        frontend = f"127.0.0.1,{port}" + ("" if tls else ";no-tls")
        args = [
            NGHTTPX,
            "--conf=/dev/null",
            "-f",
            frontend,
            "-b",
            f"127.0.0.1,{backend_port}",
            "--workers=1",
            "--no-ocsp",
            "--log-level=WARN",
            "--errorlog-file=/dev/stderr",
        ]
        if tls:
            certfile, keyfile = cert_files()
            args += [keyfile, certfile]
        proc = await asyncio.create_subprocess_exec(
            *args,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=foreign_env(),
        )
        try:
            await wait_listening(port, timeout=5)
        except OSError:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
            continue  # the port was taken meanwhile
        return proc, port
    raise AssertionError("nghttpx did not start")


@needs_nghttpx
@pytest.mark.parametrize("tls", [False, True], ids=TLS_IDS)
async def test_nghttpx_in_front_of_websockets(tls: bool) -> None:
    """Client → nghttpx over HTTP/2 extended CONNECT, nghttpx → websockets
    over an HTTP/1.1 Upgrade: two WebSockets on one HTTP/2 connection, the
    headers go through, the backend sees our close code."""
    async with websockets_server() as (rec, backend_port):
        await through_nghttpx(rec, backend_port, tls)


async def through_nghttpx(rec: BackendRecorder, backend_port: int, tls: bool) -> None:
    proc, port = await start_nghttpx(backend_port, tls)
    try:
        pool = h2ws.ConnectionPool(asyncio.get_running_loop())
        kw = client_args(tls)
        websockets = await asyncio.gather(
            *(
                h2ws.connect(
                    uri(tls, port, f"/via/{i}"),
                    pool=pool,
                    additional_headers=[("x-n", str(i))],
                    **kw,
                    **NO_KEEPALIVE,
                )
                for i in range(2)
            )
        )
        assert len({id(carrier(ws)) for ws in websockets}) == 1
        for ws in websockets:
            assert ws.http_version == "2"
            assert ws.response is not None
            assert "nghttpx" in dict(ws.response.headers).get("server", "")
        await asyncio.gather(*(exchange(ws) for ws in websockets))
        await asyncio.gather(*(ws.close() for ws in websockets))
        assert [ws.close_code for ws in websockets] == [1000, 1000]
        end = time.monotonic() + 5
        while len(rec.close_codes) < 2 and time.monotonic() < end:
            await asyncio.sleep(0.01)
        assert rec.close_codes == [1000, 1000]
        paths = sorted(r.path for r in rec.requests)
        assert paths == ["/via/0", "/via/1"]
        for r in rec.requests:
            # nghttpx turned the extended CONNECT into an HTTP/1.1 Upgrade.
            assert r.headers["upgrade"].lower() == "websocket"
            assert r.headers["x-n"] == r.path[-1]
    finally:
        if proc.returncode is None:
            proc.terminate()
        _, err = await proc.communicate()
    assert b"ERROR" not in err, err


# -- HTTP/1.1 fallback ---------------------------------------------------------------------------


async def test_websockets_server_over_ws() -> None:
    """ws:// with "auto" is plain HTTP/1.1 (no h2c without prior knowledge)."""
    async with websockets_server() as (rec, port):
        async with h2ws.connect(f"ws://127.0.0.1:{port}/plain", **NO_KEEPALIVE) as ws:
            assert ws.http_version == "1.1"
            assert ws.response is not None and ws.response.status == 101
            await exchange(ws)
        assert ws.close_code == 1000
        end = time.monotonic() + 5
        while not rec.close_codes and time.monotonic() < end:
            await asyncio.sleep(0.01)
    assert rec.close_codes == [1000]


async def test_websockets_server_refuses_h2c_prior_knowledge() -> None:
    """http2=True on ws:// to an HTTP/1.1-only server: it drops the
    connection at our preface, which the client reports as an OSError."""
    async with websockets_server() as (_, port):
        with pytest.raises(OSError):
            await h2ws.connect(f"ws://127.0.0.1:{port}/", http2=True, **NO_KEEPALIVE)


@pytest.mark.parametrize("alpn", [None, ["http/1.1"]], ids=["no-alpn", "alpn-http1"])
async def test_websockets_server_over_tls_falls_back(alpn: list[str] | None) -> None:
    """wss:// with "auto" to a TLS server that does not pick h2 by ALPN: a
    new HTTP/1.1 connection; http2=True raises InvalidHandshake instead."""
    from websockets.asyncio.server import serve

    ctx = server_context()
    if alpn:
        ctx.set_alpn_protocols(alpn)
    rec = BackendRecorder()
    async with serve(rec, "127.0.0.1", 0, ssl=ctx) as server:
        port = server.sockets[0].getsockname()[1]
        pool = h2ws.ConnectionPool(asyncio.get_running_loop())
        tls = client_context(["h2", "http/1.1"])
        async with h2ws.connect(
            f"wss://127.0.0.1:{port}/tls", ssl=tls, pool=pool, **NO_KEEPALIVE
        ) as ws:
            assert ws.http_version == "1.1"
            assert ws.transport.get_extra_info("ssl_object") is not None
            await exchange(ws)
        assert ws.close_code == 1000
        with pytest.raises(h2ws.InvalidHandshake):
            await h2ws.connect(
                f"wss://127.0.0.1:{port}/tls", ssl=tls, pool=pool, http2=True, **NO_KEEPALIVE
            )
        # A fresh pool learns it again: http2=True never falls back.
        with pytest.raises(h2ws.InvalidHandshake):
            await h2ws.connect(
                f"wss://127.0.0.1:{port}/tls",
                ssl=tls,
                http2=True,
                pool=h2ws.ConnectionPool(asyncio.get_running_loop()),
                **NO_KEEPALIVE,
            )
    assert [r.path for r in rec.requests] == ["/tls"]


async def test_h2ws_without_rfc8441_falls_back() -> None:
    """h2ws with ws_over_h2=False speaks HTTP/2 but does not advertise
    SETTINGS_ENABLE_CONNECT_PROTOCOL: wss:// "auto" falls back to a new
    HTTP/1.1 connection; http2=True raises InvalidHandshake over TLS and
    over h2c, before and after the fallback."""
    versions: list[str] = []

    async def handler(ws: h2ws.WebSocket) -> None:
        versions.append(ws.http_version)
        async for message in ws:
            await ws.send(message)

    tls = client_context(["h2", "http/1.1"])
    async with running_server(handler, tls=True, ws_over_h2=False) as srv:
        pool = h2ws.ConnectionPool(asyncio.get_running_loop())
        with pytest.raises(h2ws.InvalidHandshake):
            await h2ws.connect(
                f"wss://127.0.0.1:{srv.port}/", ssl=tls, http2=True, pool=pool, **NO_KEEPALIVE
            )
        async with h2ws.connect(
            f"wss://127.0.0.1:{srv.port}/", ssl=tls, pool=pool, **NO_KEEPALIVE
        ) as ws:
            assert ws.http_version == "1.1"
            await exchange(ws)
        with pytest.raises(h2ws.InvalidHandshake):
            await h2ws.connect(
                f"wss://127.0.0.1:{srv.port}/", ssl=tls, http2=True, pool=pool, **NO_KEEPALIVE
            )
    assert versions == ["1.1"]
    async with running_server(handler, ws_over_h2=False) as srv:
        with pytest.raises(h2ws.InvalidHandshake):
            await h2ws.connect(f"ws://127.0.0.1:{srv.port}/", http2=True, **NO_KEEPALIVE)


async def test_default_tls_context_verifies_certificates() -> None:
    """Without ssl=, wss:// uses the default context, which does not trust
    our self-signed certificate: an ssl.SSLError (an OSError)."""
    async with running_server(lambda ws: ws.recv(), tls=True) as srv:
        with pytest.raises(ssl.SSLCertVerificationError):
            await h2ws.connect(f"wss://127.0.0.1:{srv.port}/", **NO_KEEPALIVE)
