"""Headless Chromium against the ``h2ws`` command, a peer nobody here wrote.

The server is the CLI run as a process (``python -m h2ws examples.demo:app``
over TLS). Chromium is driven over the DevTools protocol
(helpers/chromium.py) and writes a net-log, which proves the transport:

- the demo page's WebSocket rides the page's own HTTP/2 connection (RFC 8441):
  ``HTTP2_SESSION_SEND_HEADERS`` with ``:protocol: websocket`` on the same
  ``HTTP2_SESSION`` source as the ``GET /``, after ``HTTP2_SESSION_RECV_SETTING``
  ``8 (SETTINGS_ENABLE_CONNECT_PROTOCOL)`` = 1, and no HTTP/1.1 Upgrade;
- without an HTTP/2 connection to the WebSocket's origin (``--no-ws-over-h2``,
  or a page from another origin) the WebSocket still works over HTTP/1.1
  (``HTTP_TRANSACTION_SEND_REQUEST_HEADERS`` with ``Upgrade: websocket``);
- closes started by the page or the server end with a close frame and
  END_STREAM each way and no RST_STREAM (INTEROP.md pitfall 9); a page
  unloaded with its WebSocket open (Chromium then sends only
  RST_STREAM(CANCEL)) leaves the connection usable for the next WebSocket
  over HTTP/2.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import pytest
from helpers.chromium import CHROMIUM, Chromium, NetEvent, NetLog, header_value
from helpers.processes import CLIServerProcess

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="chromium is not on PATH (Debian: `chromium`, installed by scripts/sysdeps.sh)",
    ),
]

ECHOED = "document.getElementById('status').textContent === 'echo ok'"
CLOSED = "document.getElementById('closed').textContent"


@contextlib.contextmanager
def cli_server(app: str, *args: str) -> Iterator[CLIServerProcess]:
    server = CLIServerProcess(app, "--access-log", *args)
    try:
        yield server
    finally:
        code, log = server.stop()
        assert code == 0, log
        assert "Traceback" not in log, log


@pytest.fixture(scope="module")
def demo() -> Iterator[CLIServerProcess]:
    """``h2ws examples.demo:app``: RFC 8441 advertised (the default)."""
    with cli_server("examples.demo:app") as server:
        yield server


@pytest.fixture(scope="module")
def pages() -> Iterator[CLIServerProcess]:
    """The demo plus the test pages of helpers/chromium_pages.py."""
    with cli_server("helpers.chromium_pages:app", "--app-dir", "tests") as server:
        yield server


def websocket_connect(netlog: NetLog, path: str = "/ws") -> NetEvent:
    """The one extended CONNECT Chromium sent for ``path``."""
    found = [
        e
        for e in netlog.with_header("HTTP2_SESSION_SEND_HEADERS", ":protocol: websocket")
        if header_value(e.headers, ":path") == path
    ]
    assert len(found) == 1, [e.headers for e in found]
    return found[0]


def session_events(netlog: NetLog, session: int, stream: int, *types: str) -> list[NetEvent]:
    return [
        e
        for e in netlog.of(*types)
        if e.source_id == session and e.params.get("stream_id") == stream
    ]


def h1_upgrades(netlog: NetLog) -> list[NetEvent]:
    return netlog.with_header("HTTP_TRANSACTION_SEND_REQUEST_HEADERS", "upgrade: websocket")


def assert_clean_close(netlog: NetLog, connect: NetEvent) -> None:
    """Close frames both ways, END_STREAM both ways, no RST_STREAM either way."""
    session, stream = connect.source_id, connect.params["stream_id"]
    resets = session_events(
        netlog, session, stream, "HTTP2_SESSION_SEND_RST_STREAM", "HTTP2_SESSION_RECV_RST_STREAM"
    )
    assert resets == [], [(e.type, e.params) for e in resets]
    sent = session_events(netlog, session, stream, "HTTP2_SESSION_SEND_DATA")
    received = session_events(netlog, session, stream, "HTTP2_SESSION_RECV_DATA")
    assert [e.params["fin"] for e in sent][-1:] == [True]
    assert [e.params["fin"] for e in received][-1:] == [True]
    ws_request = connect.params["source_dependency"]["id"]  # the WebSocket's URL_REQUEST
    opcodes = {
        (e.type, e.params["opcode"])
        for e in netlog.of("WEBSOCKET_SENT_FRAME_HEADER", "WEBSOCKET_RECV_FRAME_HEADER")
        if e.source_id == ws_request
    }
    assert ("WEBSOCKET_SENT_FRAME_HEADER", 8) in opcodes
    assert ("WEBSOCKET_RECV_FRAME_HEADER", 8) in opcodes


def test_demo_websocket_rides_the_pages_http2_connection(demo: CLIServerProcess) -> None:
    """Item 6: Chromium loads the demo over HTTP/2 and opens its WebSocket with
    an extended CONNECT on that same connection (RFC 8441 sections 3-5)."""
    mark = len(demo.log())
    with Chromium() as browser:
        page = browser.open(demo.origin + "/")
        page.wait_for(ECHOED)
        assert page.evaluate("document.title") == "ws over 2"
        assert page.text("version") == "HTTP/2 (RFC 8441)"
        assert page.text("page-version") == "h2"
    netlog = browser.close()

    connect = websocket_connect(netlog)
    session = connect.source_id
    h = connect.headers
    assert header_value(h, ":method") == "CONNECT"
    assert header_value(h, ":scheme") == "https"
    assert header_value(h, ":authority") == f"127.0.0.1:{demo.port}"
    assert header_value(h, "origin") == demo.origin
    assert header_value(h, "sec-websocket-version") == "13"
    assert "permessage-deflate" in (header_value(h, "sec-websocket-extensions") or "")
    for absent in ("sec-websocket-key", "upgrade", "connection"):  # RFC 8441 section 5
        assert header_value(h, absent) is None, absent
    assert connect.params["fin"] is False  # the stream stays open for the tunnel

    # One HTTP/2 session carried the page and the WebSocket.
    page_gets = [
        e
        for e in netlog.with_header("HTTP2_SESSION_SEND_HEADERS", ":path: /")
        if header_value(e.headers, ":method") == "GET"
    ]
    assert [e.source_id for e in page_gets] == [session]
    begin = [
        e for e in netlog.of("HTTP2_SESSION") if e.source_id == session and e.phase == "PHASE_BEGIN"
    ]
    assert begin and begin[0].params["host"] == f"127.0.0.1:{demo.port}"
    settings = [e.params for e in netlog.of("HTTP2_SESSION_RECV_SETTING") if e.source_id == session]
    assert {"id": "8 (SETTINGS_ENABLE_CONNECT_PROTOCOL)", "value": 1} in settings
    # The session reused for the WebSocket was the pooled one (no new connection).
    found = netlog.of("HTTP2_SESSION_POOL_FOUND_EXISTING_SESSION")
    assert any(e.params["source_dependency"]["id"] == session for e in found)
    answer = session_events(
        netlog, session, connect.params["stream_id"], "HTTP2_SESSION_RECV_HEADERS"
    )
    assert answer and answer[0].headers == [":status: 200"]
    assert h1_upgrades(netlog) == []

    demo.wait_log(r'"WEBSOCKET /ws" HTTP/2 stream \d+ closed', since=mark)


def test_close_by_page_is_clean_over_http2(pages: CLIServerProcess) -> None:
    """``ws.close(1000)`` in the page: close frames and END_STREAM each way,
    no RST_STREAM, ``wasClean`` in the page, 1000 at the server."""
    mark = len(pages.log())
    with Chromium() as browser:
        page = browser.open(pages.origin + "/page?close=1")
        assert page.wait_for(CLOSED) == "1000 true"
        assert page.evaluate("document.title") == "ws over 2"
    netlog = browser.close()
    assert_clean_close(netlog, websocket_connect(netlog))
    pages.wait_log(r'"WEBSOCKET /ws" HTTP/2 stream \d+ closed 1000 by client', since=mark)


def test_close_by_server_is_clean_over_http2(pages: CLIServerProcess) -> None:
    """The application closes with 1000: Chromium answers with its close frame
    and END_STREAM, we end ours, nobody resets."""
    mark = len(pages.log())
    with Chromium() as browser:
        page = browser.open(pages.origin + "/page?ws=/ws-bye")
        assert page.wait_for(CLOSED) == "1000 true"
        assert page.text("status") == "echo ok"
    netlog = browser.close()
    assert_clean_close(netlog, websocket_connect(netlog, "/ws-bye"))
    pages.wait_log(r'"WEBSOCKET /ws-bye" HTTP/2 stream \d+ closed 1000 by server', since=mark)


def test_unload_with_open_websocket_keeps_the_connection(demo: CLIServerProcess) -> None:
    """Closing the tab with the WebSocket open: Chromium 156 logs a close frame
    but puts only RST_STREAM(CANCEL) on the wire, so the server sees 1006. We
    answer nothing (no RST back, the connection lives) and the next tab's
    WebSocket still rides HTTP/2 on the same session. (Navigating away instead
    keeps the page, and its WebSocket, open in the back/forward cache.)"""
    mark = len(demo.log())
    with Chromium() as browser:
        page = browser.open(demo.origin + "/")
        page.wait_for(ECHOED)
        page.close()
        demo.wait_log(r'"WEBSOCKET /ws" HTTP/2 stream \d+ closed (1006|1001) by client', since=mark)
        page = browser.open(demo.origin + "/")
        page.wait_for(ECHOED)
        assert page.evaluate("document.title") == "ws over 2"
    netlog = browser.close()
    connects = netlog.with_header("HTTP2_SESSION_SEND_HEADERS", ":protocol: websocket")
    assert len(connects) == 2
    assert connects[0].source_id == connects[1].source_id  # one connection throughout
    assert netlog.of("HTTP2_SESSION_RECV_RST_STREAM") == []  # the server reset nothing
    assert h1_upgrades(netlog) == []


def assert_h1_websocket(
    netlog: NetLog, server: CLIServerProcess, origin: str, since: int = 0
) -> None:
    """One HTTP/1.1 Upgrade to ``server`` with ``origin``, answered 101."""
    assert netlog.with_header("HTTP2_SESSION_SEND_HEADERS", ":protocol: websocket") == []
    upgrades = h1_upgrades(netlog)
    assert len(upgrades) == 1
    up = upgrades[0]
    assert up.params["line"] == "GET /ws HTTP/1.1\r\n"
    assert header_value(up.headers, "host") == f"127.0.0.1:{server.port}"
    assert header_value(up.headers, "origin") == origin
    assert header_value(up.headers, "sec-websocket-version") == "13"
    assert header_value(up.headers, "sec-websocket-key")
    assert "permessage-deflate" in (header_value(up.headers, "sec-websocket-extensions") or "")
    response = [
        e
        for e in netlog.of("HTTP_TRANSACTION_READ_RESPONSE_HEADERS")
        if e.source_id == up.source_id
    ]
    assert response and response[0].headers[0] == "HTTP/1.1 101 Switching Protocols"
    server.wait_log(r'"WEBSOCKET /ws" HTTP/1\.1 stream 0 closed', since=since)


def test_without_the_setting_chromium_falls_back_to_http11() -> None:
    """``--no-ws-over-h2``: the page still loads over HTTP/2, but its SETTINGS
    lack ENABLE_CONNECT_PROTOCOL, so Chromium opens a new HTTP/1.1 connection
    for the WebSocket (RFC 8441 section 3)."""
    with cli_server("examples.demo:app", "--no-ws-over-h2") as server:
        with Chromium() as browser:
            page = browser.open(server.origin + "/")
            page.wait_for(ECHOED)
            assert page.evaluate("document.title") == "ws over 1.1"
            assert page.text("version") == "HTTP/1.1"
            assert page.text("page-version") == "h2"
        netlog = browser.close()
        sessions = {e.source_id for e in netlog.of("HTTP2_SESSION_SEND_HEADERS")}
        assert len(sessions) == 1
        settings = [e.params["id"] for e in netlog.of("HTTP2_SESSION_RECV_SETTING")]
        assert not any(s.startswith("8 ") for s in settings)
        assert_h1_websocket(netlog, server, server.origin)


def test_websocket_to_another_origin_uses_http11(
    demo: CLIServerProcess, pages: CLIServerProcess
) -> None:
    """A page from one origin opens ``wss://`` to the demo's origin, to which
    the browser has no HTTP/2 connection: Chromium does not open one for a
    WebSocket; it connects with ALPN http/1.1 and upgrades, even though the
    demo server advertises RFC 8441."""
    target = f"wss://127.0.0.1:{demo.port}/ws"
    mark = len(demo.log())
    with Chromium() as browser:
        page = browser.open(f"{pages.origin}/page?ws={target}")
        page.wait_for(ECHOED)
        assert page.text("version") == "1.1"
    netlog = browser.close()
    hosts = {e.params["host"] for e in netlog.of("HTTP2_SESSION") if e.phase == "PHASE_BEGIN"}
    assert hosts == {f"127.0.0.1:{pages.port}"}  # no HTTP/2 to the demo's origin
    assert_h1_websocket(netlog, demo, pages.origin, since=mark)
    alpn = [e.params.get("next_proto") for e in netlog.of("SSL_CONNECT") if e.params]
    assert "http/1.1" in alpn


def test_netlog_with_a_missing_tail_is_read() -> None:
    """A browser killed mid-write leaves the file without its closing
    brackets, possibly mid-event: the events before are still read."""
    text = (
        '{"constants":{"logEventTypes":{"A":1},"logSourceType":{"S":2},'
        '"logEventPhase":{"PHASE_NONE":0}},\n"events": [\n'
        '{"phase":0,"source":{"id":7,"type":2},"time":"5","type":1,"params":{"x":1}},\n'
        '{"phase":0,"source":{"id":7,"type":2},"time":"6","ty'
    )
    log = NetLog.parse(text)
    assert [(e.type, e.source_type, e.source_id, e.params) for e in log] == [
        ("A", "S", 7, {"x": 1})
    ]
    assert re.fullmatch(r"\d+", str(log.events[0].time))
