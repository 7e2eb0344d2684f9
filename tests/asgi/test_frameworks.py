"""Starlette and FastAPI applications, unchanged, on ``serve_asgi`` over
HTTP/1.1 and HTTP/2: routes with JSON, forms and uploads, streaming
responses, WebSocket endpoints (text, JSON, bytes) over RFC 6455 and RFC 8441,
WebSocket routes that refuse, and lifespan state."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

import aiohttp
import pytest
import websockets
import websockets.exceptions
from fastapi import FastAPI, File, Form, Request, UploadFile, WebSocket, WebSocketException
from fastapi.responses import StreamingResponse
from helpers.asgi import WSClosed, WSSession, fetch, h2_response, running_asgi
from helpers.servers import H2Client, ws_request_headers
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request as SRequest
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.responses import StreamingResponse as SStreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket as SWebSocket

pytestmark = pytest.mark.timeout(120)

VERSIONS = pytest.mark.parametrize("version", ["1.1", "2"])
FRAMEWORKS = pytest.mark.parametrize("framework", ["starlette", "fastapi"])

BOUNDARY = "h2ws-test-boundary"


def multipart(fields: dict[str, str], filename: str, data: bytes) -> tuple[bytes, str]:
    """A multipart/form-data body with text fields and one file."""
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
            f"{value}\r\n".encode()
        )
    parts.append(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="upload"; '
        f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
        + data
        + b"\r\n"
    )
    parts.append(f"--{BOUNDARY}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={BOUNDARY}"


# -- the Starlette application ------------------------------------------------------


@contextlib.asynccontextmanager
async def starlette_lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    yield {"greeting": "hello from lifespan"}


async def s_home(request: SRequest) -> Response:
    return PlainTextResponse(f"home over HTTP/{request.scope['http_version']}")


async def s_item(request: SRequest) -> Response:
    return JSONResponse(
        {
            "id": int(request.path_params["item_id"]),
            "q": request.query_params.get("q"),
            "url": str(request.url),
        }
    )


async def s_echo_json(request: SRequest) -> Response:
    payload = await request.json()
    return JSONResponse({"got": payload})


async def s_form(request: SRequest) -> Response:
    async with request.form() as form:
        upload = form["upload"]
        assert not isinstance(upload, str)
        data = await upload.read()
        return JSONResponse(
            {"name": form["name"], "filename": upload.filename, "size": len(data), "sum": sum(data)}
        )


async def s_stream(request: SRequest) -> Response:
    async def parts() -> AsyncIterator[bytes]:
        for i in range(5):
            yield b"part %d;" % i
            await asyncio.sleep(0.01)

    return SStreamingResponse(parts(), media_type="text/plain")


async def s_state(request: SRequest) -> Response:
    return PlainTextResponse(request.state.greeting)


async def s_ws_echo(ws: SWebSocket) -> None:
    await ws.accept(subprotocol="echo" if "echo" in ws.scope["subprotocols"] else None)
    await ws.send_text(f"{ws.state.greeting} over HTTP/{ws.scope['http_version']}")
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            text = message["text"]
            if text.startswith("{"):
                await ws.send_json({"echo": json.loads(text)})
            else:
                await ws.send_text(text)
        else:
            await ws.send_bytes(message["bytes"])


async def s_ws_reject(ws: SWebSocket) -> None:
    await ws.close(code=1008)  # before accept: 403


async def s_ws_deny(ws: SWebSocket) -> None:
    await ws.send_denial_response(PlainTextResponse("members only", status_code=401))


def starlette_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/", s_home),
            Route("/items/{item_id:int}", s_item),
            Route("/echo-json", s_echo_json, methods=["POST"]),
            Route("/form", s_form, methods=["POST"]),
            Route("/stream", s_stream),
            Route("/state", s_state),
            WebSocketRoute("/ws", s_ws_echo),
            WebSocketRoute("/ws-reject", s_ws_reject),
            WebSocketRoute("/ws-deny", s_ws_deny),
        ],
        lifespan=starlette_lifespan,
    )


# -- the FastAPI application ------------------------------------------------------------


class Item(BaseModel):
    name: str
    price: float
    tags: list[str] = []


def fastapi_app() -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        yield {"greeting": "hello from lifespan"}

    app = FastAPI(lifespan=lifespan)

    @app.get("/")
    async def home(request: Request) -> Response:
        return PlainTextResponse(f"home over HTTP/{request.scope['http_version']}")

    @app.get("/items/{item_id}")
    async def item(item_id: int, request: Request, q: str | None = None) -> dict[str, Any]:
        return {"id": item_id, "q": q, "url": str(request.url)}

    @app.post("/echo-json")
    async def echo_json(payload: Item) -> dict[str, Any]:
        return {"got": payload.model_dump()}

    @app.post("/form")
    async def form(
        name: Annotated[str, Form()], upload: Annotated[UploadFile, File()]
    ) -> dict[str, Any]:
        data = await upload.read()
        return {"name": name, "filename": upload.filename, "size": len(data), "sum": sum(data)}

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def parts() -> AsyncIterator[bytes]:
            for i in range(5):
                yield b"part %d;" % i
                await asyncio.sleep(0.01)

        return StreamingResponse(parts(), media_type="text/plain")

    @app.get("/state")
    async def state(request: Request) -> Response:
        return PlainTextResponse(request.state.greeting)

    @app.websocket("/ws")
    async def ws_echo(ws: WebSocket) -> None:
        await s_ws_echo(ws)

    @app.websocket("/ws-reject")
    async def ws_reject(ws: WebSocket) -> None:
        raise WebSocketException(code=1008, reason="not allowed")

    @app.websocket("/ws-deny")
    async def ws_deny(ws: WebSocket) -> None:
        await ws.send_denial_response(PlainTextResponse("members only", status_code=401))

    return app


def make_app(framework: str) -> Any:
    return starlette_app() if framework == "starlette" else fastapi_app()


# -- HTTP ------------------------------------------------------------------------------


@FRAMEWORKS
@VERSIONS
async def test_http_routes_and_json(framework: str, version: str) -> None:
    async with running_asgi(make_app(framework)) as srv:
        r = await fetch(version, srv.port, "GET", "/")
        assert (r.status, r.body) == (200, f"home over HTTP/{version}".encode())
        assert r.header("content-type") == "text/plain; charset=utf-8"

        r = await fetch(version, srv.port, "GET", "/items/42?q=caf%C3%A9")
        assert r.status == 200 and r.header("content-type") == "application/json"
        got = json.loads(r.body)
        assert got["id"] == 42 and got["q"] == "café"
        # The URL is built from the Host header (HTTP/2: :authority) the client sent.
        assert got["url"] == "http://127.0.0.1/items/42?q=caf%C3%A9"

        item = {"name": "widget", "price": 9.5, "tags": ["a", "b"]}
        r = await fetch(
            version,
            srv.port,
            "POST",
            "/echo-json",
            json.dumps(item).encode(),
            [("content-type", "application/json")],
        )
        assert r.status == 200 and json.loads(r.body) == {"got": item}

        r = await fetch(version, srv.port, "GET", "/no-such-route")
        assert r.status == 404


@FRAMEWORKS
@VERSIONS
async def test_form_with_file_upload(framework: str, version: str) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    body, content_type = multipart({"name": "report"}, "data.bin", data)
    async with running_asgi(make_app(framework)) as srv:
        r = await fetch(version, srv.port, "POST", "/form", body, [("content-type", content_type)])
        assert r.status == 200, r.body
        assert json.loads(r.body) == {
            "name": "report",
            "filename": "data.bin",
            "size": len(data),
            "sum": sum(data),
        }


@FRAMEWORKS
async def test_form_upload_from_aiohttp(framework: str) -> None:
    """The same upload, encoded by an independent client (aiohttp's FormData)."""
    data = b"\x00\xff" * 100_000
    async with running_asgi(make_app(framework)) as srv:
        form = aiohttp.FormData()
        form.add_field("name", "from aiohttp")
        form.add_field("upload", data, filename="blob.bin")
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{srv.url}/form", data=form) as resp:
                assert resp.status == 200
                got = await resp.json()
    assert got == {
        "name": "from aiohttp",
        "filename": "blob.bin",
        "size": 200_000,
        "sum": sum(data),
    }


@FRAMEWORKS
@VERSIONS
async def test_streaming_response(framework: str, version: str) -> None:
    """StreamingResponse: chunked over HTTP/1.1, DATA frames over HTTP/2."""
    async with running_asgi(make_app(framework)) as srv:
        r = await fetch(version, srv.port, "GET", "/stream")
    assert r.status == 200
    assert r.body == b"".join(b"part %d;" % i for i in range(5))
    assert r.header("content-length") is None
    if version == "1.1":
        assert r.header("transfer-encoding") == "chunked"


@FRAMEWORKS
@VERSIONS
async def test_lifespan_state_reaches_requests(framework: str, version: str) -> None:
    async with running_asgi(make_app(framework), lifespan="on") as srv:
        r = await fetch(version, srv.port, "GET", "/state")
    assert (r.status, r.body) == (200, b"hello from lifespan")


@VERSIONS
async def test_starlette_under_a_root_path(version: str) -> None:
    """With root_path (--root-path) and the prefix in the request path (as a
    proxy forwards it), Starlette routes on the rest and builds URLs with it."""
    async with running_asgi(starlette_app(), root_path="/api") as srv:
        r = await fetch(version, srv.port, "GET", "/api/items/7")
    assert r.status == 200
    got = json.loads(r.body)
    assert got["id"] == 7 and got["url"].endswith("/api/items/7")


# -- WebSockets -------------------------------------------------------------------------


@FRAMEWORKS
@VERSIONS
async def test_websocket_echo_text_json_bytes(framework: str, version: str) -> None:
    async with running_asgi(make_app(framework)) as srv:
        ws = await WSSession.open(version, srv.port, "/ws", subprotocols=["echo"])
        assert ws.subprotocol == "echo"
        assert await ws.recv() == f"hello from lifespan over HTTP/{version}"
        await ws.send("plain text")
        assert await ws.recv() == "plain text"
        await ws.send(json.dumps({"n": 1, "s": "é"}))
        assert json.loads(await ws.recv()) == {"echo": {"n": 1, "s": "é"}}
        await ws.send(b"\x00\x01\xfe\xff" * 50_000)  # larger than one HTTP/2 window
        assert await ws.recv() == b"\x00\x01\xfe\xff" * 50_000
        await ws.close(1000)


async def refused(version: str, port: int, path: str) -> tuple[int, bytes]:
    """(status, body) of the response refusing a WebSocket request."""
    if version == "1.1":
        with pytest.raises(websockets.exceptions.InvalidStatus) as info:
            async with websockets.connect(f"ws://127.0.0.1:{port}{path}"):
                pass
        return info.value.response.status_code, bytes(info.value.response.body or b"")
    c = await H2Client.connect("127.0.0.1", port)
    await c.wait_settings()
    sid = c.request(ws_request_headers(path))
    await c.until(lambda c: c.ended(sid) or c.reset_code(sid) is not None)
    r = h2_response(c, sid)
    await c.close()
    assert r.status is not None
    return r.status, r.body


@FRAMEWORKS
@VERSIONS
async def test_websocket_route_that_rejects(framework: str, version: str) -> None:
    """Closing before accept (Starlette's close(), FastAPI's
    WebSocketException) is a 403; send_denial_response() sends its own
    response (the websocket.http.response extension)."""
    async with running_asgi(make_app(framework)) as srv:
        assert (await refused(version, srv.port, "/ws-reject"))[0] == 403
        assert await refused(version, srv.port, "/ws-deny") == (401, b"members only")


@FRAMEWORKS
@VERSIONS
async def test_websocket_closed_by_the_client(framework: str, version: str) -> None:
    """The endpoint sees the disconnect and returns; the server answers the
    client's close frame."""
    async with running_asgi(make_app(framework)) as srv:
        ws = await WSSession.open(version, srv.port, "/ws")
        await ws.recv()
        await ws.close(4000, "bye")
        if version == "2":
            assert ws.h2 is not None
            assert ws.h2.ended(ws.sid)
            with pytest.raises(WSClosed) as info:
                await ws.recv()
            assert info.value.code == 4000
