"""The pytest plugin ``h2ws.testing`` (entry point ``pytest11``), run with
``pytester`` on generated test files the way another project would use it:
servers for a handler and for a raw ASGI callable, cleartext and TLS, both
HTTP versions, sync tests, tests that run their own event loop and anyio
tests; handler errors surfacing at teardown; and that the plugin stays out
of the way of suites that do not use it."""

from __future__ import annotations

import shutil
import ssl
from pathlib import Path

import pytest

import h2ws
from h2ws.testing import BlockingClient, echo, generate_certificate, start_server

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.timeout(180)

#: The tree whose h2ws this process imported: the inner pytest imports the same.
H2WS_ROOT = Path(h2ws.__file__).resolve().parents[1]


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("PYTHONPATH", str(H2WS_ROOT))
    return pytester


HANDLER_TESTS = """
import asyncio
import ssl

import pytest

import h2ws

CERTS = []


@pytest.mark.parametrize(("http2", "version"), [(True, "2"), (False, "1.1")])
def test_echo_from_a_sync_test(h2ws_server, h2ws_client, http2, version):
    assert h2ws_server.url == f"http://127.0.0.1:{h2ws_server.port}"
    assert h2ws_server.ws_url == f"ws://127.0.0.1:{h2ws_server.port}"
    assert h2ws_server.client_ssl is None
    ws = h2ws_client(h2ws_server, "/echo", http2=http2)
    assert ws.http_version == version
    ws.send("hello")
    assert ws.recv() == "hello"
    ws.send(b"\\x00\\xff")
    assert ws.recv() == b"\\x00\\xff"
    assert ws.ping() >= 0
    ws.close()
    assert ws.close_code == 1000


@pytest.mark.parametrize("h2ws_server", [{"tls": False}, {"tls": True}], indirect=True,
                         ids=["cleartext", "tls"])
@pytest.mark.parametrize(("http2", "version"), [("auto", None), (True, "2"), (False, "1.1")])
def test_cleartext_and_tls(h2ws_server, h2ws_client, http2, version):
    tls = h2ws_server.tls
    assert h2ws_server.ws_url.startswith("wss://" if tls else "ws://")
    ws = h2ws_client(h2ws_server, http2=http2)
    # "auto": HTTP/2 over TLS (ALPN and RFC 8441), HTTP/1.1 in cleartext.
    assert ws.http_version == (version or ("2" if tls else "1.1"))
    ws.send("x")
    assert ws.recv() == "x"


@pytest.mark.h2ws(tls=True, subprotocols=["chat"])
def test_marker_options(h2ws_server, h2ws_client, h2ws_tls_cert):
    assert isinstance(h2ws_server.client_ssl, ssl.SSLContext)
    assert isinstance(h2ws_server.ssl_context, ssl.SSLContext)
    assert h2ws_server.cert == h2ws_tls_cert
    ws = h2ws_client(h2ws_server, subprotocols=["other", "chat"])
    assert ws.subprotocol == "chat"
    assert ws.http_version == "2"


@pytest.mark.h2ws(tls=True)
def test_client_ssl_for_another_client(h2ws_server, h2ws_client):
    # h2ws sets ALPN h2 on the contexts it uses; client_ssl stays pristine
    # for an HTTP/1.1-only client (websockets), before and after.
    sync_client = pytest.importorskip("websockets.sync.client")
    assert h2ws_client(h2ws_server, http2=True).http_version == "2"
    with sync_client.connect(h2ws_server.ws_url + "/", ssl=h2ws_server.client_ssl) as ws:
        ws.send("over HTTP/1.1")
        assert ws.recv() == "over HTTP/1.1"


@pytest.mark.parametrize("http2", [True, False])
@pytest.mark.h2ws(tls=True)
def test_connect_from_the_tests_own_loop(h2ws_server, http2):
    async def main():
        async with h2ws_server.connect("/own-loop", http2=http2) as ws:
            await ws.send("ping")
            return await ws.recv(), ws.http_version

    assert asyncio.run(main()) == ("ping", "2" if http2 else "1.1")


@pytest.mark.anyio
async def test_under_an_async_runner(h2ws_server):
    async with h2ws_server.connect(http2=True) as ws:
        await ws.send("anyio")
        assert await ws.recv() == "anyio"
        assert ws.http_version == "2"


def test_factory_several_servers(h2ws_server_factory, h2ws_client):
    async def shout(ws):
        async for message in ws:
            await ws.send(message.upper())

    plain = h2ws_server_factory(shout)
    secure = h2ws_server_factory(shout, tls=True, loop="uvloop")
    assert plain.port != secure.port
    for server in (plain, secure):
        ws = h2ws_client(server, http2=True)
        ws.send("abc")
        assert ws.recv() == "ABC"
    # A server can be stopped early; its WebSockets see 1001.
    ws = h2ws_client(plain)
    plain.stop()
    with pytest.raises(h2ws.ConnectionClosedOK):
        ws.recv()
    assert ws.close_code == 1001


@pytest.mark.parametrize("n", [1, 2])
def test_certificate_is_per_session(h2ws_tls_cert, n):
    CERTS.append(h2ws_tls_cert)
    assert h2ws_tls_cert.certfile.is_file() and h2ws_tls_cert.keyfile.is_file()
    assert h2ws_tls_cert.cafile == h2ws_tls_cert.certfile
    h2ws_tls_cert.server_context()
    h2ws_tls_cert.client_context()
    assert all(c is CERTS[0] for c in CERTS)
"""

CUSTOM_HANDLER_TESTS = """
import pytest


@pytest.fixture
def h2ws_handler():
    async def greet(ws):
        await ws.send(f"hello {ws.request.path} over HTTP/{ws.http_version}")

    return greet


@pytest.mark.parametrize("http2", [True, False])
def test_my_handler(h2ws_server, h2ws_client, http2):
    ws = h2ws_client(h2ws_server, "/me", http2=http2)
    assert ws.recv() == f"hello /me over HTTP/{ws.http_version}"
    assert list(ws) == []  # the handler returned: a normal closure
    assert ws.close_code == 1000
"""

ASGI_TESTS = """
import json
import urllib.request

import pytest


async def app(scope, receive, send):
    if scope["type"] == "http":
        await receive()
        body = json.dumps({"path": scope["path"], "http_version": scope["http_version"]})
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body.encode()})
    elif scope["type"] == "websocket":
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        while True:
            event = await receive()
            if event["type"] == "websocket.disconnect":
                return
            text = event.get("text")
            await send({"type": "websocket.send",
                        "text": f"{scope['http_version']}:{scope['path']}:{text}"})
    else:
        raise RuntimeError(f"no {scope['type']} here")  # lifespan: h2ws copes


@pytest.fixture
def h2ws_asgi_app():
    return app


@pytest.mark.parametrize("h2ws_asgi_server", [{"tls": False}, {"tls": True}], indirect=True,
                         ids=["cleartext", "tls"])
@pytest.mark.parametrize(("http2", "version"), [(True, "2"), (False, "1.1")])
def test_asgi_websocket(h2ws_asgi_server, h2ws_client, http2, version):
    ws = h2ws_client(h2ws_asgi_server, "/room", http2=http2)
    ws.send("hi")
    assert ws.recv() == f"{version}:/room:hi"


@pytest.mark.parametrize("h2ws_asgi_server", [{"tls": False}, {"tls": True}], indirect=True,
                         ids=["cleartext", "tls"])
def test_asgi_http(h2ws_asgi_server):
    ctx = h2ws_asgi_server.client_ssl
    with urllib.request.urlopen(h2ws_asgi_server.url + "/page", context=ctx, timeout=10) as r:
        assert json.loads(r.read()) == {"path": "/page", "http_version": "1.1"}


@pytest.mark.anyio
@pytest.mark.h2ws(tls=True, lifespan="off")
async def test_asgi_from_an_async_test(h2ws_asgi_server):
    async with h2ws_asgi_server.connect("/a") as ws:
        await ws.send("b")
        assert await ws.recv() == "2:/a:b"
"""

ERROR_TESTS = """
import pytest


@pytest.fixture
def h2ws_handler():
    async def strict(ws):
        message = await ws.recv()
        assert message == "expected", f"the handler got {message!r}"
        await ws.send("ok")

    return strict


def test_handler_assertion_fails_the_test(h2ws_server, h2ws_client):
    ws = h2ws_client(h2ws_server)
    ws.send("unexpected")
    ws.recv()  # raises: the handler failed, the WebSocket closed with 1011


def test_handler_happy(h2ws_server, h2ws_client):
    ws = h2ws_client(h2ws_server)
    ws.send("expected")
    assert ws.recv() == "ok"


def test_client_going_away_is_not_an_error(h2ws_server, h2ws_client):
    ws = h2ws_client(h2ws_server)
    ws.close(1001)


def test_no_asgi_app(h2ws_asgi_server):
    pass
"""


def test_generated_suite_passes(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        test_handler=HANDLER_TESTS, test_custom=CUSTOM_HANDLER_TESTS, test_asgi=ASGI_TESTS
    )
    result = inner.runpytest_subprocess("-v", "-p", "no:cacheprovider", "--timeout=120")
    result.assert_outcomes(passed=25)


def test_handler_errors_and_missing_app(inner: pytest.Pytester) -> None:
    inner.makepyfile(test_errors=ERROR_TESTS)
    result = inner.runpytest_subprocess("-p", "no:cacheprovider", "--timeout=120")
    # The failing handler: the test fails (recv raises) and its teardown
    # reports the handler's assertion.
    result.assert_outcomes(passed=2, failed=1, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_handler_assertion_fails_the_test*",
            "*AssertionError: the handler got 'unexpected'*",
            "*h2ws_asgi_server needs an h2ws_asgi_app fixture*",
        ]
    )


def test_fixtures_are_documented(inner: pytest.Pytester) -> None:
    inner.makepyfile("def test_nothing(): pass")
    result = inner.runpytest_subprocess("--fixtures", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines_random(
        [
            "h2ws_tls_cert ?session scope? -- *",
            "*A self-signed certificate for localhost*",
            "h2ws_server_factory -- *",
            "h2ws_server -- *",
            "h2ws_asgi_server -- *",
            "h2ws_handler -- *",
            "h2ws_asgi_app -- *",
            "h2ws_client -- *",
        ]
    )
    result = inner.runpytest_subprocess("--markers", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["@pytest.mark.h2ws(tls=False*"])


def test_plugin_stays_out_of_the_way(inner: pytest.Pytester) -> None:
    """No autouse fixture: a test that asks for nothing sets up nothing of
    ours; ``-p no:h2ws`` removes the fixtures."""
    inner.makepyfile(
        """
        def test_nothing(request):
            assert not [f for f in request.fixturenames if f.startswith("h2ws")]

        def test_uses(h2ws_server):
            pass
        """
    )
    result = inner.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    result = inner.runpytest_subprocess("--setup-plan", "-k", "nothing", "-p", "no:cacheprovider")
    setups = [line for line in result.stdout.lines if "SETUP" in line]
    assert not any("h2ws" in line for line in setups), setups
    result = inner.runpytest_subprocess("-p", "no:h2ws", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*fixture 'h2ws_server' not found*"])


@pytest.mark.parametrize("backend", ["cryptography", "openssl"])
def test_certificate_backends(tmp_path: Path, backend: str) -> None:
    """Both ways of making the certificate give one that Python's default
    client context accepts for 127.0.0.1 and localhost, over HTTP/2."""
    if backend == "openssl" and shutil.which("openssl") is None:
        pytest.skip("no openssl command")
    cert = generate_certificate(tmp_path, backend=backend)
    ctx = ssl.create_default_context(cafile=str(cert.cafile))
    with start_server(echo, tls=True, cert=cert) as server, BlockingClient() as client:
        for host in ("127.0.0.1", "localhost"):
            ws = client(f"wss://{host}:{server.port}/", ssl=ctx)
            assert ws.http_version == "2"
            ws.send(host)
            assert ws.recv() == host
    with pytest.raises(ValueError):
        generate_certificate(tmp_path, backend="nope")
