"""Test plumbing for the ASGI server: ``serve_asgi`` on a free port, plain
HTTP/1.1 over raw sockets (to see the framing on the wire) and plain HTTP/2
requests through the frame-level ``H2Client``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import h2.events

from h2ws.asgi import serve_asgi

from .certs import client_context, server_context
from .servers import H2Client, Running


@contextlib.asynccontextmanager
async def running_asgi(app: Any, *, tls: bool = False, **kwargs: Any) -> AsyncIterator[Running]:
    """Starts ``serve_asgi(app, **kwargs)`` on 127.0.0.1 and a free port."""
    ctx = server_context() if tls else None
    async with serve_asgi(app, "127.0.0.1", 0, ssl=ctx, **kwargs) as server:
        port = server.sockets[0].getsockname()[1]
        yield Running(server, "127.0.0.1", port, tls)


# -- HTTP/1.1 on a raw socket ---------------------------------------------------


@dataclass
class H1Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    chunks: list[bytes] = field(default_factory=list)  # as framed, if chunked

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k == name:
                return v
        return None


async def h1_open(
    port: int, *, tls: bool = False
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP connection (TLS with ALPN http/1.1 if `tls`)."""
    ssl = client_context(["http/1.1"]) if tls else None
    return await asyncio.open_connection("127.0.0.1", port, ssl=ssl)


def h1_request_bytes(
    method: str,
    path: str,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes | None = None,
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in headers]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


async def h1_read_head(reader: asyncio.StreamReader) -> tuple[int, list[tuple[str, str]]]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = []
    for line in lines[1:]:
        if line:
            k, _, v = line.partition(":")
            headers.append((k.strip().lower(), v.strip()))
    return status, headers


async def h1_read_chunk(reader: asyncio.StreamReader) -> bytes:
    """One chunk of a chunked body (b"" for the last one)."""
    size_line = await asyncio.wait_for(reader.readuntil(b"\r\n"), 5)
    size = int(size_line.split(b";")[0], 16)
    data = await asyncio.wait_for(reader.readexactly(size + 2), 5)
    assert data[-2:] == b"\r\n", data[-2:]
    return data[:-2]


async def h1_read_response(reader: asyncio.StreamReader, *, head: bool = False) -> H1Response:
    """Reads one response (content-length, chunked, or up to EOF)."""
    status, headers = await h1_read_head(reader)
    resp = H1Response(status, headers, b"")
    if head or status in (204, 304) or 100 <= status < 200:
        return resp
    if (resp.header("transfer-encoding") or "").lower() == "chunked":
        while chunk := await h1_read_chunk(reader):
            resp.chunks.append(chunk)
        resp.body = b"".join(resp.chunks)
    elif resp.header("content-length") is not None:
        length = int(resp.header("content-length") or 0)
        resp.body = await asyncio.wait_for(reader.readexactly(length), 5)
    else:
        resp.body = await asyncio.wait_for(reader.read(), 5)
    return resp


async def h1_fetch(
    port: int,
    method: str,
    path: str,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes | None = None,
    *,
    tls: bool = False,
) -> H1Response:
    """One request on a new connection."""
    reader, writer = await h1_open(port, tls=tls)
    try:
        writer.write(h1_request_bytes(method, path, headers, body))
        return await h1_read_response(reader, head=method == "HEAD")
    finally:
        writer.close()


# -- plain HTTP/2 requests -------------------------------------------------------


@dataclass
class H2Response:
    status: int | None
    headers: list[tuple[bytes, bytes]]
    body: bytes
    data_frames: list[bytes]
    ended: bool
    reset: int | None

    def header(self, name: bytes) -> bytes | None:
        for k, v in self.headers:
            if k == name:
                return v
        return None


def h2_headers(
    method: str,
    path: str,
    *,
    authority: str = "127.0.0.1",
    scheme: str = "http",
    extra: Sequence[tuple[str, str]] = (),
) -> list[tuple[str, str]]:
    return [
        (":method", method),
        (":scheme", scheme),
        (":path", path),
        (":authority", authority),
        *extra,
    ]


async def h2_send_body(c: H2Client, sid: int, data: bytes, *, end: bool = True) -> None:
    """Sends `data` on `sid` as the peer's flow-control windows allow."""
    view = memoryview(data)
    while view:
        n = min(c.conn.local_flow_control_window(sid), c.conn.max_outbound_frame_size, len(view))
        if n <= 0:
            await c.read()  # a WINDOW_UPDATE, hopefully
            continue
        c.conn.send_data(sid, bytes(view[:n]))
        c.flush()
        view = view[n:]
    if end:
        c.conn.end_stream(sid)
        c.flush()


def h2_response(c: H2Client, sid: int) -> H2Response:
    """What arrived so far on `sid`."""
    r = c.response(sid)
    frames = [
        e.data for e in c.events if isinstance(e, h2.events.DataReceived) and e.stream_id == sid
    ]
    return H2Response(
        status=c.status(sid),
        headers=list(r.headers) if r is not None else [],
        body=b"".join(frames),
        data_frames=[f for f in frames if f],
        ended=c.ended(sid),
        reset=c.reset_code(sid),
    )


async def h2_fetch(
    c: H2Client,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    timeout: float = 10.0,
    **kw: Any,
) -> H2Response:
    """One request on the connection; waits for its end (or reset)."""
    sid = c.request(h2_headers(method, path, **kw), end_stream=body is None)
    if body is not None:
        await h2_send_body(c, sid, body)
    await c.until(lambda c: c.ended(sid) or c.reset_code(sid) is not None, timeout)
    return h2_response(c, sid)


# -- either version ----------------------------------------------------------------


@dataclass
class Fetched:
    """A response, whatever the HTTP version: header names lower-cased str."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k == name:
                return v
        return None


async def fetch(
    version: str,
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: Sequence[tuple[str, str]] = (),
    *,
    tls: bool = False,
) -> Fetched:
    """One request over HTTP/`version` ("1.1" or "2") on its own connection."""
    if version == "1.1":
        r1 = await h1_fetch(port, method, path, headers, body, tls=tls)
        return Fetched(r1.status, r1.headers, r1.body)
    c = await H2Client.connect("127.0.0.1", port, tls=tls)
    try:
        extra = [(k.lower(), v) for k, v in headers]
        if body is not None:
            extra.append(("content-length", str(len(body))))
        r2 = await h2_fetch(
            c, method, path, body=body, scheme="https" if tls else "http", extra=extra
        )
        assert r2.ended and r2.status is not None, r2
        hs = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in r2.headers]
        return Fetched(r2.status, [(k, v) for k, v in hs if not k.startswith(":")], r2.body)
    finally:
        await c.close()


class WSClosed(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


class WSSession:
    """A client WebSocket over HTTP/1.1 (the `websockets` library) or HTTP/2
    (extended CONNECT on the frame-level H2Client), with one small API."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.ws: Any = None
        self.h2: H2Client | None = None
        self.sid = 0
        self.seen = 0
        self.subprotocol: str | None = None
        self.response_headers: list[tuple[str, str]] = []

    @classmethod
    async def open(
        cls, version: str, port: int, path: str, *, subprotocols: Sequence[str] = ()
    ) -> WSSession:
        import websockets.asyncio.client

        s = cls(version)
        if version == "1.1":
            s.ws = await websockets.asyncio.client.connect(
                f"ws://127.0.0.1:{port}{path}", subprotocols=list(subprotocols) or None
            )
            s.subprotocol = s.ws.subprotocol
            s.response_headers = [(k.lower(), v) for k, v in s.ws.response.headers.raw_items()]
        else:
            s.h2 = await H2Client.connect("127.0.0.1", port)
            extra = [("sec-websocket-protocol", ", ".join(subprotocols))] if subprotocols else []
            s.sid = await s.h2.open_websocket(path, extra=extra)
            r = h2_response(s.h2, s.sid)
            s.response_headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in r.headers]
            s.subprotocol = dict(s.response_headers).get("sec-websocket-protocol")
        return s

    async def send(self, message: str | bytes) -> None:
        if self.h2 is None:
            await self.ws.send(message)
            return
        codec = self.h2.codecs[self.sid]
        codec.send(message)
        await h2_send_body(self.h2, self.sid, codec.data_to_send(), end=False)

    async def recv(self, timeout: float = 5.0) -> str | bytes:
        """The next message; raises WSClosed at the peer's close frame."""
        if self.h2 is None:
            import websockets.exceptions

            try:
                return await asyncio.wait_for(self.ws.recv(), timeout)  # type: ignore[no-any-return]
            except websockets.exceptions.ConnectionClosed as exc:
                rcvd = exc.rcvd
                raise WSClosed(rcvd.code if rcvd else 1006, rcvd.reason if rcvd else "") from exc
        from h2ws import _core

        h2c, sid = self.h2, self.sid
        await h2c.until(lambda c: len(c.messages(sid)) > self.seen, timeout)
        ev = h2c.messages(sid)[self.seen]
        self.seen += 1
        if ev[0] == _core.EV_CLOSE:
            raise WSClosed(ev[1], ev[2])
        assert ev[0] in (_core.EV_TEXT, _core.EV_BINARY), ev
        return ev[1]  # type: ignore[no-any-return]

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self.h2 is None:
            await self.ws.close(code, reason)
            return
        h2c, sid = self.h2, self.sid
        if not h2c.ended(sid):
            h2c.ws_close(sid, code, reason)
            with contextlib.suppress(TimeoutError, ConnectionError):
                await h2c.until(lambda c: c.ended(sid) or c.reset_code(sid) is not None)
        await h2c.close()
