"""h2ws behind real reverse proxies: nghttpx 1.52 and HAProxy 2.6 (Debian), in
both directions, cleartext and TLS front ends (docs/deployment.md explains the
configurations written here).

(A) an HTTP/1.1 WebSocket client (the `websockets` library) -> proxy -> h2ws
    over HTTP/2 extended CONNECT (RFC 8441). The handler records
    ``ws.http_version`` and the stream id: the backend hop really is HTTP/2.
(B) an HTTP/2 extended CONNECT client (python-hyper h2, Node's node:http2) ->
    proxy -> h2ws over an HTTP/1.1 Upgrade (RFC 6455).

h2ws runs in-process on a free port; each proxy runs as a subprocess with a
configuration file written to a temporary directory, on another free port, and
is killed in a ``finally`` block. Every wait is bounded. A proxy's tests are
skipped only when its binary is absent. The main paths run on asyncio and
uvloop; the others (refusals, Node, the CLI) on asyncio only.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import websockets
from helpers.certs import cert_files, client_context
from helpers.foreign import foreign_env
from helpers.servers import H2Client, running_server
from websockets.asyncio.client import connect

import h2ws
from h2ws import _core

SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
NGHTTPX = shutil.which("nghttpx", path=SBIN_PATH)
HAPROXY = shutil.which("haproxy", path=SBIN_PATH)
NODE = shutil.which("node")
ROOT = Path(__file__).resolve().parents[2]
NODE_CLIENT = Path(__file__).resolve().parent / "node" / "h2_ws_client.js"

pytestmark = pytest.mark.timeout(60)

needs_nghttpx = pytest.mark.skipif(
    NGHTTPX is None, reason="nghttpx (Debian package nghttp2-proxy) is not installed"
)
needs_haproxy = pytest.mark.skipif(
    HAPROXY is None, reason="haproxy (Debian package haproxy) is not installed"
)
FRONT = pytest.mark.parametrize("tls", [False, True], ids=["cleartext-front", "tls-front"])

BIG = 300_000  # more than the initial windows of every hop (64 KiB, 256 KiB)


# -- the backend: h2ws with a recording handler --------------------------------------


@dataclass
class Seen:
    """What the handler saw of one WebSocket, and how it ended."""

    path: str
    http_version: str
    stream_id: int
    request: h2ws.Request
    close_code: int | None = None
    close_reason: str | None = None
    ended_at: float = 0.0
    ended: asyncio.Event = field(default_factory=asyncio.Event)


class Backend:
    """The handler: paths under /hello first send ``{"http_version",
    "stream_id"}``; every message is echoed except "close-me", which makes the
    server close with 4001 "server bye"."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []

    async def handler(self, ws: h2ws.WebSocket) -> None:
        s = Seen(ws.request.path, ws.http_version, ws.stream_id, ws.request)
        self.seen.append(s)
        try:
            if s.path.startswith("/hello"):
                await ws.send(
                    json.dumps({"http_version": ws.http_version, "stream_id": s.stream_id})
                )
            async for message in ws:
                if message == "close-me":
                    await ws.close(4001, "server bye")
                    break
                await ws.send(message)
        except h2ws.ConnectionClosed:
            pass
        finally:
            s.close_code, s.close_reason = ws.close_code, ws.close_reason
            s.ended_at = time.monotonic()
            s.ended.set()

    def one(self, path: str) -> Seen:
        (s,) = [s for s in self.seen if s.path == path]
        return s


# -- proxies as subprocesses -----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proxy:
    """A proxy process in its own session (killed as a group: nghttpx forks a
    worker), its output in ``log``."""

    def __init__(self, name: str, argv: list[str], port: int, log: Path) -> None:
        self.name, self.port, self.log = name, port, log
        self._out = log.open("wb")
        self.proc = subprocess.Popen(
            argv,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=foreign_env(),
        )

    def output(self) -> str:
        self._out.flush()
        return self.log.read_text(errors="replace")

    async def wait_listening(self, timeout: float = 10.0) -> None:
        """Until the port accepts a connection (bounded)."""
        end = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited {self.proc.returncode}:\n{self.output()}")
            try:
                _, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.port), 1.0)
            except (OSError, asyncio.TimeoutError):
                if time.monotonic() > end:
                    raise AssertionError(
                        f"{self.name} not listening on {self.port}:\n{self.output()}"
                    ) from None
                await asyncio.sleep(0.05)
                continue
            w.close()
            with contextlib.suppress(Exception):
                await w.wait_closed()
            return

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._out.close()


def nghttpx_config(
    tmp: Path, port: int, backend_port: int, *, h2_backend: bool, tls: bool, tls_backend: bool
) -> Path:
    """The nghttpx configuration file (long option names without "--")."""
    certfile, keyfile = cert_files()
    params = ["proto=h2"] if h2_backend else []
    if tls_backend:
        # nghttpx checks the certificate against the SNI name: give one the
        # certificate holds (it does not match a bare IP address).
        params += ["tls", "sni=localhost"]
    lines = [
        # One front end: HTTP/1.1 and HTTP/2 (h2c prior knowledge, or ALPN with TLS).
        f"frontend=127.0.0.1,{port}" + ("" if tls else ";no-tls"),
        # proto=h2: the backend hop is HTTP/2 (cleartext: prior knowledge; tls:
        # ALPN h2); without it, HTTP/1.1.
        f"backend=127.0.0.1,{backend_port};;" + ";".join(params),
        "workers=1",
        f"errorlog-file={tmp / 'nghttpx-error.log'}",
    ]
    if tls:
        lines += [f"private-key-file={keyfile}", f"certificate-file={certfile}", "no-ocsp=yes"]
    if tls_backend:
        lines.append(f"cacert={certfile}")  # verify h2ws's certificate
    conf = tmp / "nghttpx.conf"
    conf.write_text("\n".join(lines) + "\n")
    return conf


def haproxy_config(
    tmp: Path,
    port: int,
    backend_port: int,
    *,
    h2_backend: bool,
    h2_front: bool,
    tls: bool,
    tls_backend: bool,
) -> Path:
    """The HAProxy configuration file."""
    bind = f"bind 127.0.0.1:{port}"
    if tls:
        pem = tmp / "haproxy.pem"  # HAProxy wants the certificate and its key in one file
        certfile, keyfile = cert_files()
        pem.write_text(Path(certfile).read_text() + Path(keyfile).read_text())
        bind += f" ssl crt {pem} alpn h2,http/1.1"
    elif h2_front:
        bind += " proto h2"
    server = f"server h2ws 127.0.0.1:{backend_port}"
    if tls_backend:
        # TLS to h2ws, its certificate verified, HTTP/2 chosen by ALPN.
        server += f" ssl verify required ca-file {cert_files()[0]}"
        server += " alpn h2" if h2_backend else " alpn http/1.1"
    elif h2_backend:
        server += " proto h2"
    conf = tmp / "haproxy.cfg"
    conf.write_text(
        "\n".join(
            [
                "global",
                "    log stdout format raw local0 info",
                "defaults",
                "    mode http",
                "    log global",
                "    option httplog",
                "    timeout connect 5s",
                "    timeout client 30s",
                "    timeout server 30s",
                "    timeout tunnel 1h",
                "frontend web",
                f"    {bind}",
                "    default_backend app",
                "backend app",
                f"    {server}",
                "",
            ]
        )
    )
    return conf


@contextlib.asynccontextmanager
async def proxy(
    kind: str,
    backend_port: int,
    *,
    h2_backend: bool,
    tls: bool = False,
    h2_front: bool = False,
    tls_backend: bool = False,
) -> AsyncIterator[Proxy]:
    """nghttpx or HAProxy in front of 127.0.0.1:backend_port (a few tries
    should another process take the free port first)."""
    with tempfile.TemporaryDirectory(prefix=f"h2ws-{kind}-") as d:
        tmp = Path(d)
        for attempt in range(3):
            port = free_port()
            if kind == "nghttpx":
                assert NGHTTPX is not None
                conf = nghttpx_config(
                    tmp, port, backend_port, h2_backend=h2_backend, tls=tls, tls_backend=tls_backend
                )
                argv = [NGHTTPX, f"--conf={conf}"]
            else:
                assert HAPROXY is not None
                conf = haproxy_config(
                    tmp,
                    port,
                    backend_port,
                    h2_backend=h2_backend,
                    h2_front=h2_front,
                    tls=tls,
                    tls_backend=tls_backend,
                )
                argv = [HAPROXY, "-f", str(conf), "-db"]
            p = Proxy(kind, argv, port, tmp / f"{kind}-{attempt}.out")
            try:
                try:
                    await p.wait_listening()
                except AssertionError:
                    if attempt < 2 and p.proc.poll() is not None:
                        continue  # port taken meanwhile: another one
                    raise
                yield p
                return
            finally:
                p.stop()


# -- clients -------------------------------------------------------------------------


def ws_url(p: Proxy, path: str, tls: bool) -> str:
    return f"{'wss' if tls else 'ws'}://127.0.0.1:{p.port}{path}"


def h1_client(p: Proxy, path: str, tls: bool) -> connect:
    """The websockets client (HTTP/1.1 Upgrade), ALPN http/1.1 with TLS."""
    return connect(
        ws_url(p, path, tls),
        ssl=client_context(["http/1.1"]) if tls else None,
        proxy=None,
        ping_interval=None,
        open_timeout=5,
        close_timeout=5,
    )


async def h1_round(p: Proxy, path: str, tls: bool) -> dict[str, Any]:
    """Over HTTP/1.1 through the proxy: hello, text and a big binary echoed,
    then the client closes with 4000. Returns the hello, the Sec-WebSocket-Key
    the client sent and when it closed."""
    async with h1_client(p, path, tls) as ws:
        hello = json.loads(await asyncio.wait_for(ws.recv(), 5))
        await ws.send("text through the proxy")
        assert await asyncio.wait_for(ws.recv(), 5) == "text through the proxy"
        big = os.urandom(BIG)
        await ws.send(big)
        assert await asyncio.wait_for(ws.recv(), 5) == big
        key = ws.request.headers["Sec-WebSocket-Key"] if ws.request else None
        await ws.close(4000, "client bye")
        closed_at = time.monotonic()
    # The server's close frame came back through the proxy.
    assert ws.close_code == 4000
    return {"hello": hello, "key": key, "closed_at": closed_at}


async def h1_server_closes(p: Proxy, path: str, tls: bool) -> float:
    """The server closes with 4001 "server bye": the client gets that code and
    reason through the proxy. Returns when the client saw it."""
    async with h1_client(p, path, tls) as ws:
        await ws.send("close-me")
        with pytest.raises(websockets.ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 5)
        seen_at = time.monotonic()
    assert info.value.rcvd is not None
    assert (info.value.rcvd.code, info.value.rcvd.reason) == (4001, "server bye")
    return seen_at


async def h2_client(p: Proxy, tls: bool) -> H2Client:
    c = await H2Client.connect("127.0.0.1", p.port, tls=tls)
    await c.wait_settings()
    # The proxy's own SETTINGS promise RFC 8441 to its clients.
    assert c.remote_settings.get(0x8) == 1
    return c


async def h2_send_big(c: H2Client, sid: int, message: bytes) -> None:
    """One WebSocket message in DATA frames that respect the proxy's flow
    control windows and frame size."""
    codec = c.codecs[sid]
    codec.send(message)
    data = codec.data_to_send()
    while data:
        room = min(c.conn.local_flow_control_window(sid), c.conn.max_outbound_frame_size)
        if room <= 0:
            if not await c.read(5) and c.reader.at_eof():
                raise ConnectionError("the proxy closed the connection")
            continue
        c.conn.send_data(sid, data[:room])
        c.flush()
        data = data[room:]


async def h2_round(p: Proxy, path: str, tls: bool) -> H2Client:
    """Over HTTP/2 through the proxy: extended CONNECT, hello, text and a big
    binary echoed, then close 4002 with END_STREAM; the server's close frame
    and END_STREAM come back, no RST_STREAM."""
    c = await h2_client(p, tls)
    sid = await c.open_websocket(
        path, authority=f"127.0.0.1:{p.port}", scheme="https" if tls else "http"
    )
    c.ws_send(sid, "text through the proxy")
    big = os.urandom(BIG)
    await h2_send_big(c, sid, big)
    await c.until(lambda c: len(c.messages(sid)) >= 3)
    hello, text, echoed = c.messages(sid)[:3]
    assert json.loads(hello[1])["http_version"] == "1.1"
    assert text == (_core.EV_TEXT, "text through the proxy")
    assert echoed == (_core.EV_BINARY, big)
    c.ws_close(sid, 4002, "h2 bye")
    await c.until(lambda c: c.ended(sid) or c.reset_code(sid) is not None)
    assert c.messages(sid)[-1][:2] == (_core.EV_CLOSE, 4002)
    assert c.ended(sid) and c.reset_code(sid) is None
    return c


async def h2_server_closes(p: Proxy, path: str, tls: bool) -> None:
    """The server closes with 4001 "server bye": the h2 client gets that close
    frame, answers with its own and END_STREAM, and the stream ends cleanly."""
    c = await h2_client(p, tls)
    try:
        sid = await c.open_websocket(
            path, authority=f"127.0.0.1:{p.port}", scheme="https" if tls else "http"
        )
        c.ws_send(sid, "close-me")
        await c.until(lambda c: any(m[0] == _core.EV_CLOSE for m in c.messages(sid)))
        assert c.messages(sid)[-1] == (_core.EV_CLOSE, 4001, "server bye")
        c.ws_close(sid, 4001, "", end_stream=True)
        await c.until(lambda c: c.ended(sid) or c.reset_code(sid) is not None)
        assert c.ended(sid) and c.reset_code(sid) is None
    finally:
        await c.close()


async def node_round(p: Proxy, tls: bool, streams: int = 10) -> dict[str, Any]:
    """tests/interop/node/h2_ws_client.js through the proxy: `streams`
    WebSockets on one HTTP/2 connection, each echoing text, binary and a
    fragmented message with a ping, then close 1000 + END_STREAM."""
    assert NODE is not None
    env = foreign_env()
    if tls:
        env["NODE_EXTRA_CA_CERTS"] = cert_files()[0]
    url = f"{'https' if tls else 'http'}://127.0.0.1:{p.port}"
    proc = await asyncio.create_subprocess_exec(
        NODE, str(NODE_CLIENT), url, str(streams), "--timeout", "20",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    lines = [line for line in out.decode().splitlines() if line.startswith("{")]
    assert lines, (out, err)
    result: dict[str, Any] = json.loads(lines[-1])
    assert result.get("ok"), result
    assert result["enableConnectProtocol"] is True  # the proxy's SETTINGS
    for r in result["streams"]:
        assert r["status"] == 200, r
        assert [kind for kind, _ in r["messages"]] == ["text", "binary", "text"], r
        assert r["pong"] is True and r["closeCode"] == 1000, r
        assert r["ended"] is True and r["rst"] == 0, r
    assert len(result["streams"]) == streams
    return result


def assert_key(value: str | None) -> None:
    """A valid Sec-WebSocket-Key: base64 of 16 bytes (RFC 6455 §4.1)."""
    assert value is not None
    assert len(base64.b64decode(value, validate=True)) == 16


# -- nghttpx -------------------------------------------------------------------------


@needs_nghttpx
@FRONT
async def test_nghttpx_h1_client_to_h2_backend(tls: bool) -> None:
    """Path (A): websockets (HTTP/1.1 Upgrade) -> nghttpx -> h2ws over HTTP/2
    (`backend=...;;proto=h2`). The handler runs with http_version "2" on
    streams 1 and 3 of one backend connection: nghttpx turned each Upgrade into
    an extended CONNECT (:protocol websocket), multiplexed on one h2c
    connection, with :scheme from its front end, no Sec-WebSocket-Key (it
    strips it), x-forwarded-proto and via. 300 kB echo both ways; the client's
    close code 4000 reaches the handler and comes back to the client."""
    backend = Backend()
    async with running_server(backend.handler, close_timeout=0.5) as srv:
        async with proxy("nghttpx", srv.port, h2_backend=True, tls=tls) as p:
            first = await h1_round(p, "/hello/1", tls)
            second = await h1_round(p, "/hello/2", tls)
            for s in backend.seen:
                await asyncio.wait_for(s.ended.wait(), 5)
    assert first["hello"] == {"http_version": "2", "stream_id": 1}
    assert second["hello"] == {"http_version": "2", "stream_id": 3}
    scheme = "https" if tls else "http"
    for path in ("/hello/1", "/hello/2"):
        s = backend.one(path)
        r = s.request
        assert (s.http_version, r.method, r.protocol) == ("2", "CONNECT", "websocket")
        assert r.scheme == scheme
        assert r.authority == f"127.0.0.1:{p.port}"
        assert "sec-websocket-key" not in r.headers
        assert r.headers.get("sec-websocket-version") == "13"
        assert r.headers.get("x-forwarded-proto") == scheme
        assert r.headers.get("via") == "1.1 nghttpx"
        assert (s.close_code, s.close_reason) == (4000, "client bye")


@needs_nghttpx
@pytest.mark.one_loop
async def test_nghttpx_never_ends_the_backend_stream_after_close() -> None:
    """Path (A), closing from either end through nghttpx -> h2ws over HTTP/2.
    The close codes cross the proxy both ways (client 4000 -> handler, server
    4001 "server bye" -> client) and the client is done at once. But nghttpx
    1.52 never sends END_STREAM (nor RST_STREAM) on the backend stream once
    h2ws ended its side (it never completes the request body of an upgraded
    request): the handler learns the close only when h2ws gives up waiting,
    after close_timeout (0.5 s here; 10 s by default), and resets the stream
    with CANCEL. docs/deployment.md: lower close_timeout behind nghttpx."""
    close_timeout = 0.5
    backend = Backend()
    async with running_server(backend.handler, close_timeout=close_timeout) as srv:
        async with proxy("nghttpx", srv.port, h2_backend=True) as p:
            client_closed = (await h1_round(p, "/hello/client-closes", False))["closed_at"]
            server_closed = await h1_server_closes(p, "/server-closes", False)
            for s in backend.seen:
                await asyncio.wait_for(s.ended.wait(), 5)
    a, b = backend.one("/hello/client-closes"), backend.one("/server-closes")
    assert (a.http_version, b.http_version) == ("2", "2")
    assert (a.close_code, a.close_reason) == (4000, "client bye")
    assert (b.close_code, b.close_reason) == (4001, "server bye")
    # The streams lingered until close_timeout: nghttpx did not end them.
    assert a.ended_at - client_closed >= 0.8 * close_timeout, a.ended_at - client_closed
    assert b.ended_at - server_closed >= 0.8 * close_timeout, b.ended_at - server_closed


@needs_nghttpx
@pytest.mark.one_loop
async def test_nghttpx_refuses_when_backend_does_not_advertise_rfc8441() -> None:
    """Path (A) with h2ws started with ws_over_h2=False (no
    SETTINGS_ENABLE_CONNECT_PROTOCOL): nghttpx fails the request itself; the
    websockets client gets HTTP 400 from nghttpx and the handler never runs."""
    backend = Backend()
    async with running_server(backend.handler, ws_over_h2=False) as srv:
        async with proxy("nghttpx", srv.port, h2_backend=True) as p:
            with pytest.raises(websockets.InvalidStatus) as info:
                async with h1_client(p, "/hello/refused", False):
                    pass
    assert info.value.response.status_code == 400
    assert info.value.response.headers.get("Server") == "nghttpx"
    assert backend.seen == []


@needs_nghttpx
@FRONT
async def test_nghttpx_h2_client_to_h1_backend(tls: bool) -> None:
    """Path (B): python-hyper h2 (extended CONNECT) -> nghttpx as an HTTP/2
    front end -> h2ws over HTTP/1.1 (plain `backend=`). nghttpx advertises
    SETTINGS_ENABLE_CONNECT_PROTOCOL, sends the handler a GET with Upgrade and
    a Sec-WebSocket-Key of its own, answers the client 200. Echo of 300 kB;
    close 4002 from the client reaches the handler; a server close (4001)
    reaches the client; every stream ends with END_STREAM, no RST_STREAM."""
    backend = Backend()
    async with running_server(backend.handler) as srv:
        async with proxy("nghttpx", srv.port, h2_backend=False, tls=tls) as p:
            c = await h2_round(p, "/hello/h2", tls)
            await c.close()
            await h2_server_closes(p, "/server-closes", tls)
            for s in backend.seen:
                await asyncio.wait_for(s.ended.wait(), 5)
    s = backend.one("/hello/h2")
    r = s.request
    assert (s.http_version, r.method, r.protocol) == ("1.1", "GET", None)
    assert r.headers.get("upgrade", "").lower() == "websocket"
    assert_key(r.headers.get("sec-websocket-key"))  # the client sent none
    assert r.headers.get("host") == f"127.0.0.1:{p.port}"
    assert r.headers.get("via") == "2 nghttpx"
    assert (s.close_code, s.close_reason) == (4002, "h2 bye")
    assert backend.one("/server-closes").close_code == 4001


@needs_nghttpx
@pytest.mark.skipif(NODE is None, reason="`node` (Node.js >= 20) is not on PATH")
@FRONT
@pytest.mark.parametrize("h2_backend", [False, True], ids=["h1-backend", "h2-backend"])
@pytest.mark.one_loop
async def test_nghttpx_node_client(tls: bool, h2_backend: bool) -> None:
    """Path (B) with Node's node:http2 client: 10 WebSockets on one HTTP/2
    connection to nghttpx, each its own HTTP/1.1 connection to h2ws (or, with
    an HTTP/2 backend, extended CONNECT on both hops); echoes, pong, close 1000
    and END_STREAM on every stream, no RST_STREAM."""
    backend = Backend()
    # nghttpx never ends the backend stream on its own (see above): a short
    # close_timeout lets h2ws finish those streams quickly.
    async with running_server(backend.handler, close_timeout=0.5) as srv:
        async with proxy("nghttpx", srv.port, h2_backend=h2_backend, tls=tls) as p:
            await node_round(p, tls)
            for s in backend.seen:
                await asyncio.wait_for(s.ended.wait(), 5)
    assert sorted(s.path for s in backend.seen) == sorted(f"/echo/{i}" for i in range(10))
    version = "2" if h2_backend else "1.1"
    assert {(s.http_version, s.close_code) for s in backend.seen} == {(version, 1000)}


# -- HAProxy ---------------------------------------------------------------------------


@needs_haproxy
@FRONT
async def test_haproxy_h1_client_to_h2_backend(tls: bool) -> None:
    """Path (A): websockets (HTTP/1.1 Upgrade) -> HAProxy -> h2ws over HTTP/2
    (`server ... proto h2`). The handler runs with http_version "2"; HAProxy
    sends :scheme https even on this cleartext backend hop (and on a cleartext
    front end) and forwards the client's own Sec-WebSocket-Key: h2ws accepts
    both. 300 kB echo; closing from either end is clean and prompt: the close
    codes cross both ways and the handler learns them at once (HAProxy ends
    the backend stream with END_STREAM)."""
    backend = Backend()
    async with running_server(backend.handler, close_timeout=5) as srv:
        async with proxy("haproxy", srv.port, h2_backend=True, tls=tls) as p:
            rnd = await h1_round(p, "/hello/ha", tls)
            server_closed = await h1_server_closes(p, "/server-closes", tls)
            for s in backend.seen:
                await asyncio.wait_for(s.ended.wait(), 5)
    assert rnd["hello"]["http_version"] == "2"
    s = backend.one("/hello/ha")
    r = s.request
    assert (s.http_version, r.method, r.protocol) == ("2", "CONNECT", "websocket")
    assert r.scheme == "https"
    assert r.headers.get("sec-websocket-key") == rnd["key"]
    assert (s.close_code, s.close_reason) == (4000, "client bye")
    assert s.ended_at - rnd["closed_at"] < 2.0  # not held until close_timeout (5 s)
    b = backend.one("/server-closes")
    assert (b.close_code, b.close_reason) == (4001, "server bye")
    assert b.ended_at - server_closed < 2.0


@needs_haproxy
@pytest.mark.one_loop
async def test_haproxy_refuses_when_backend_does_not_advertise_rfc8441() -> None:
    """Path (A) with h2ws started with ws_over_h2=False: HAProxy 2.6 does not
    send the extended CONNECT; the websockets client gets 502 from HAProxy and
    the handler never runs. (HAProxy resets the stream it never opened, which
    h2ws, like any HTTP/2 peer, treats as a connection error: the backend
    connection goes away with GOAWAY and HAProxy opens a new one next time.)"""
    backend = Backend()
    async with running_server(backend.handler, ws_over_h2=False) as srv:
        async with proxy("haproxy", srv.port, h2_backend=True) as p:
            for _ in range(2):
                with pytest.raises(websockets.InvalidStatus) as info:
                    async with h1_client(p, "/hello/refused", False):
                        pass
                assert info.value.response.status_code == 502
    assert backend.seen == []


@needs_haproxy
@FRONT
async def test_haproxy_h2_client_to_h1_backend(tls: bool) -> None:
    """Path (B): python-hyper h2 (extended CONNECT) -> HAProxy (`bind ...
    proto h2`, or TLS with ALPN h2) -> h2ws over HTTP/1.1 (plain `server`
    line). HAProxy 2.6 advertises SETTINGS_ENABLE_CONNECT_PROTOCOL, turns the
    extended CONNECT into a GET with Upgrade and a Sec-WebSocket-Key of its
    own, and passes our Sec-WebSocket-Accept to the HTTP/2 client in its 200.
    Echo of 300 kB; close codes cross both ways; END_STREAM, no RST_STREAM."""
    backend = Backend()
    async with running_server(backend.handler) as srv:
        async with proxy("haproxy", srv.port, h2_backend=False, h2_front=True, tls=tls) as p:
            c = await h2_round(p, "/hello/h2", tls)
            response = c.response(1)
            await c.close()
            await h2_server_closes(p, "/server-closes", tls)
            for s in backend.seen:
                await asyncio.wait_for(s.ended.wait(), 5)
    s = backend.one("/hello/h2")
    r = s.request
    assert (s.http_version, r.method, r.protocol) == ("1.1", "GET", None)
    assert r.headers.get("upgrade", "").lower() == "websocket"
    key = r.headers.get("sec-websocket-key")
    assert_key(key)
    assert response is not None
    headers = dict(response.headers)
    assert headers[b":status"] == b"200"
    assert headers.get(b"sec-websocket-accept") == _accept(key).encode()
    assert (s.close_code, s.close_reason) == (4002, "h2 bye")
    assert backend.one("/server-closes").close_code == 4001


def _accept(key: str | None) -> str:
    assert key is not None
    digest = hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
    return base64.b64encode(digest).decode()


@needs_haproxy
@pytest.mark.skipif(NODE is None, reason="`node` (Node.js >= 20) is not on PATH")
@FRONT
@pytest.mark.parametrize("h2_backend", [False, True], ids=["h1-backend", "h2-backend"])
@pytest.mark.one_loop
async def test_haproxy_node_client(tls: bool, h2_backend: bool) -> None:
    """Path (B) with Node's node:http2 client: 10 WebSockets on one HTTP/2
    connection to HAProxy, each its own HTTP/1.1 connection to h2ws (or, with
    an HTTP/2 backend, extended CONNECT on both hops); echoes, pong, close 1000
    and END_STREAM on every stream, no RST_STREAM."""
    backend = Backend()
    async with running_server(backend.handler) as srv:
        async with proxy("haproxy", srv.port, h2_backend=h2_backend, h2_front=True, tls=tls) as p:
            await node_round(p, tls)
            for s in backend.seen:
                await asyncio.wait_for(s.ended.wait(), 5)
    assert sorted(s.path for s in backend.seen) == sorted(f"/echo/{i}" for i in range(10))
    version = "2" if h2_backend else "1.1"
    assert {(s.http_version, s.close_code) for s in backend.seen} == {(version, 1000)}


# -- TLS on both hops -------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("nghttpx", marks=needs_nghttpx),
        pytest.param("haproxy", marks=needs_haproxy),
    ],
)
@pytest.mark.one_loop
async def test_tls_on_both_hops(kind: str) -> None:
    """Path (A) with TLS on both hops: websockets over wss -> proxy (TLS front
    end) -> h2ws over TLS, HTTP/2 chosen by ALPN (nghttpx
    `backend=...;;proto=h2;tls` with `cacert=`; HAProxy `server ... ssl verify
    required ca-file ... alpn h2`), h2ws's certificate verified by the proxy.
    The handler sees http_version "2" and :scheme https."""
    backend = Backend()
    async with running_server(backend.handler, tls=True, close_timeout=0.5) as srv:
        async with proxy(kind, srv.port, h2_backend=True, tls=True, tls_backend=True) as p:
            rnd = await h1_round(p, "/hello/tls", True)
            for s in backend.seen:
                await asyncio.wait_for(s.ended.wait(), 5)
    assert rnd["hello"]["http_version"] == "2"
    s = backend.one("/hello/tls")
    assert (s.http_version, s.request.scheme) == ("2", "https")
    assert (s.close_code, s.close_reason) == (4000, "client bye")


# -- h2ws MODULE:APP --workers N behind both ------------------------------------------

ASGI_APP = """
import json, os

async def app(scope, receive, send):
    if scope["type"] != "websocket":
        return
    await receive()
    await send({"type": "websocket.accept"})
    hello = {
        "http_version": scope["http_version"],
        "scheme": scope["scheme"],
        "pid": os.getpid(),
        "peer_port": scope["client"][1],  # the proxy's end of the backend connection
    }
    await send({"type": "websocket.send", "text": json.dumps(hello)})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", "text": message.get("text") or ""})
"""


@contextlib.contextmanager
def h2ws_cli(app_dir: Path, port: int, workers: int) -> Iterator[subprocess.Popen[str]]:
    """`h2ws proxyapp:app --workers N` as a process; SIGTERM at the end."""
    (app_dir / "proxyapp.py").write_text(ASGI_APP)
    argv = [
        sys.executable, "-m", "h2ws", "proxyapp:app", "--app-dir", str(app_dir),
        "--port", str(port), "--workers", str(workers), "--lifespan", "off",
        "--log-level", "warning",
    ]  # fmt: skip
    proc = subprocess.Popen(argv, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        assert "Traceback" not in (err or ""), err


async def wait_port(port: int, timeout: float = 15.0) -> None:
    end = time.monotonic() + timeout
    while True:
        try:
            _, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1.0)
        except (OSError, asyncio.TimeoutError):
            if time.monotonic() > end:
                raise AssertionError(f"nothing listening on {port}") from None
            await asyncio.sleep(0.05)
            continue
        w.close()
        return


@pytest.mark.skipif(NGHTTPX is None or HAPROXY is None, reason="needs nghttpx and haproxy")
@pytest.mark.one_loop
async def test_cli_workers_behind_both_proxies() -> None:
    """Path (A) to the command line server: `h2ws proxyapp:app --workers 2`
    behind nghttpx and HAProxy at once (both with HTTP/2 backends). Every ASGI
    WebSocket scope has http_version "2" (HAProxy's with scheme "wss": it
    sends :scheme https). nghttpx multiplexes all its clients onto one backend
    connection, so they all land in one worker process; HAProxy (http-reuse
    safe, its default) opened a backend connection per client connection,
    which SO_REUSEPORT spreads over the workers."""
    with tempfile.TemporaryDirectory(prefix="h2ws-cli-") as d:
        port = free_port()
        with h2ws_cli(Path(d), port, workers=2):
            await wait_port(port)
            async with (
                proxy("nghttpx", port, h2_backend=True) as ng,
                proxy("haproxy", port, h2_backend=True) as ha,
            ):
                hellos: dict[str, list[dict[str, Any]]] = {"nghttpx": [], "haproxy": []}
                for p in (ng, ha):
                    for i in range(4):
                        async with h1_client(p, f"/w{i}", False) as ws:
                            hellos[p.name].append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
                            await ws.send("ping?")
                            assert await asyncio.wait_for(ws.recv(), 5) == "ping?"
    for name, hs in hellos.items():
        assert [h["http_version"] for h in hs] == ["2"] * 4, (name, hs)
    assert {h["scheme"] for h in hellos["haproxy"]} == {"wss"}
    assert len({h["peer_port"] for h in hellos["nghttpx"]}) == 1, hellos["nghttpx"]
    assert len({h["pid"] for h in hellos["nghttpx"]}) == 1, hellos["nghttpx"]
    assert len({h["peer_port"] for h in hellos["haproxy"]}) == 4, hellos["haproxy"]
