"""The ``h2ws MODULE:APP`` command, run as ``python -m h2ws`` in a process of
its own: finding the application, TLS with ALPN, Unix sockets, the RFC 8441
switch, root_path, the access log and the debug lines, the event loop
choice, workers sharing a port, and graceful shutdown on SIGTERM and SIGINT.

Each long-running server process covers several options, to keep the number
of processes (and the run under ASan) small.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
import pytest
import websockets
import websockets.exceptions
from helpers.asgi import fetch, h1_read_response, h1_request_bytes, h2_fetch
from helpers.certs import cert_files, client_context
from helpers.servers import H2Client

from h2ws import _core
from h2ws.cli import build_parser

pytestmark = pytest.mark.timeout(120)

#: The tree under test (the suite may run from a copy, e.g. the ASan build's).
ROOT = Path(__file__).resolve().parents[2]
ENABLE_CONNECT_PROTOCOL = 0x8

APP = '''
"""A raw ASGI application that reports what the server gave it."""
import asyncio
import json
import os

import h2ws


def info(scope):
    return {
        "pid": os.getpid(),
        "type": scope["type"],
        "http_version": scope["http_version"],
        "scheme": scope["scheme"],
        "path": scope["path"],
        "root_path": scope["root_path"],
        "server": scope["server"],
        "loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
        "started_by": scope["state"].get("started_by"),
        "h2ws": h2ws.__file__,
    }


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["started_by"] = os.getpid()
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    elif scope["type"] == "http":
        body = json.dumps(info(scope)).encode()
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
    else:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": json.dumps(info(scope))})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": message.get("text") or ""})


async def failing_startup(scope, receive, send):
    assert scope["type"] == "lifespan"
    await receive()
    await send({"type": "lifespan.startup.failed", "message": "database unreachable"})
'''


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    """A directory holding app.py, the current directory of the command."""
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    return tmp_path


def command_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("PYTHONSAFEPATH", None)  # -m puts the current directory first
    return env


class H2wsCommand:
    """``python -m h2ws ARGS`` in `cwd`; the log (stderr) goes to a file."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        self.log_path = cwd / f"h2ws-{len(list(cwd.glob('h2ws-*.log')))}.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "h2ws", *args],
                cwd=cwd,
                env=command_env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def wait_log(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            m = re.search(pattern, self.log())
            if m:
                return m
            if self.proc.poll() is not None:
                raise AssertionError(f"h2ws exited ({self.proc.returncode}):\n{self.log()}")
            if loop.time() > end:
                raise AssertionError(f"no {pattern!r} in the log:\n{self.log()}")
            await asyncio.sleep(0.02)

    async def serving_port(self) -> int:
        m = await self.wait_log(r"serving \S+ on https?://[^:]+:(\d+)")
        return int(m.group(1))

    async def wait_exit(self, timeout: float) -> int:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while self.proc.poll() is None:
            if loop.time() > end:
                raise AssertionError(f"h2ws still running after {timeout} s:\n{self.log()}")
            await asyncio.sleep(0.02)
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def run_command(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "h2ws", *args],
        cwd=cwd,
        env=command_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


# -- starting up ---------------------------------------------------------------------


def test_bad_app_or_failed_startup_exits_with_a_clear_error(app_dir: Path) -> None:
    """A wrong MODULE:APP or a failed lifespan startup (--lifespan on): a
    message saying what is wrong, a non-zero exit, no traceback."""
    cases = [
        (["app"], "MODULE:ATTRIBUTE"),
        (["no_such_module:app"], "cannot import module 'no_such_module'"),
        (["app:missing"], "has no attribute 'missing'"),
        (["app:failing_startup", "--lifespan", "on", "--port", "0"], "database unreachable"),
    ]
    elsewhere = app_dir / "elsewhere"
    elsewhere.mkdir()
    for args, message in cases:
        result = run_command(args, app_dir)
        assert result.returncode != 0, (args, result)
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr, (args, result.stderr)
        assert "serving" not in result.stderr
    # --app-dir: the module is found there, not in the current directory.
    args = ["app:failing_startup", "--app-dir", str(app_dir), "--lifespan", "on", "--port", "0"]
    result = run_command(args, elsewhere)
    assert result.returncode != 0 and "database unreachable" in result.stderr, result.stderr
    result = run_command(args[:1] + args[3:], elsewhere)
    assert result.returncode != 0 and "cannot import module 'app'" in result.stderr


def test_failed_startup_stops_every_worker(app_dir: Path) -> None:
    """With --workers, a worker whose lifespan startup failed is not
    restarted (it would fail again, forever): the command exits with 3."""
    started = time.monotonic()
    result = run_command(
        ["app:failing_startup", "--lifespan", "on", "--port", "0", "--workers", "2"], app_dir
    )
    assert result.returncode == 3, result.stderr
    assert "database unreachable" in result.stderr
    assert "restarting" not in result.stderr
    assert time.monotonic() - started < 20


def test_every_option_is_documented() -> None:
    """docs/cli.md has a row for each option the parser knows, with its default."""
    text = (ROOT / "docs" / "cli.md").read_text()
    for action in build_parser()._actions:
        if "--help" in action.option_strings:
            continue
        for option in action.option_strings:
            if option.startswith("--"):
                assert f"`{option}" in text, option
        default = action.default
        if action.option_strings and default not in (None, False, True, "", "."):
            shown = [f"`{default}`"] + ([f"`{default:g}`"] if isinstance(default, float) else [])
            assert any(s in text for s in shown), (action.option_strings, default)


# -- one TLS server: ALPN, root_path, logs, asyncio, SIGINT -----------------------------


@pytest.mark.one_loop
async def test_tls_root_path_logs_and_sigint(app_dir: Path) -> None:
    """`h2ws app:app` from the directory of app.py (--app-dir defaults to it)
    over TLS: ALPN h2 and http/1.1, wss over both; --root-path reaches the
    scope; --loop asyncio; one access-log line per request and WebSocket;
    --log-level debug: one line per connection (ALPN, RFC 8441 setting) and
    per WebSocket (HTTP version, stream, path, close code, who closed).
    SIGINT closes the open WebSockets with 1001 and exits 0."""
    certfile, keyfile = cert_files()
    cmd = H2wsCommand(
        [
            "app:app",
            *("--port", "0", "--certfile", certfile, "--keyfile", keyfile),
            *("--root-path", "/mnt", "--loop", "asyncio", "--log-level", "debug"),
            *("--graceful-timeout", "5", "--max-concurrent-streams", "7"),
            *("--ws-max-size", "1000", "--ws-ping-interval", "0.2", "--ws-ping-timeout", "5"),
        ],
        app_dir,
    )
    try:
        port = await cmd.serving_port()
        assert "on https://" in cmd.log()

        # HTTP/2 by ALPN h2; the server's SETTINGS advertise RFC 8441.
        c = await H2Client.connect("127.0.0.1", port, tls=True)
        await c.wait_settings()
        assert c.remote_settings.get(ENABLE_CONNECT_PROTOCOL) == 1
        assert c.remote_settings.max_concurrent_streams == 7
        r2 = await h2_fetch(c, "GET", "/mnt/page", scheme="https")
        got = json.loads(r2.body)
        assert got["http_version"] == "2" and got["scheme"] == "https"
        assert got["root_path"] == "/mnt" and got["path"] == "/mnt/page"
        assert got["loop"] == "asyncio"
        assert got["started_by"] == cmd.proc.pid  # lifespan state in the scope
        assert Path(got["h2ws"]).is_relative_to(ROOT)  # the build under test
        # A WebSocket on the same connection (RFC 8441), closed by the client.
        sid = await c.open_websocket("/mnt/ws", scheme="https")
        await c.until(lambda c: bool(c.messages(sid)))
        hello = json.loads(c.messages(sid)[0][1])
        assert hello["http_version"] == "2" and hello["scheme"] == "wss"
        # --ws-ping-interval: keepalive pings come.
        await c.until(lambda c: any(m[0] == _core.EV_PING for m in c.messages(sid)))
        c.ws_close(sid, 1000)
        await c.until(lambda c: c.ended(sid))
        await c.close()

        # HTTP/1.1 by ALPN http/1.1.
        r1 = await fetch("1.1", port, "GET", "/mnt/h1", tls=True)
        got = json.loads(r1.body)
        assert got["http_version"] == "1.1" and got["scheme"] == "https"
        ws = await websockets.connect(
            f"wss://127.0.0.1:{port}/mnt/h1ws", ssl=client_context(["http/1.1"])
        )
        hello = json.loads(await ws.recv())
        assert hello["http_version"] == "1.1" and hello["scheme"] == "wss"
        # --ws-max-size: a larger message closes that WebSocket with 1009.
        big = await websockets.connect(
            f"wss://127.0.0.1:{port}/mnt/big", ssl=client_context(["http/1.1"])
        )
        await big.recv()
        await big.send("x" * 1001)
        with pytest.raises(websockets.exceptions.ConnectionClosedError):
            await asyncio.wait_for(big.recv(), 5)
        assert big.close_code == 1009

        await cmd.wait_log(r"WebSocket closed: HTTP/2, stream \d+, path /mnt/ws")
        log_text = cmd.log()
        # Debug: one line per connection ...
        assert re.search(r"connection from .*: HTTP/2 \(ALPN h2\), RFC 8441 setting sent", log_text)
        assert re.search(r"connection from .*: HTTP/1\.1 \(ALPN http/1\.1\)", log_text)
        # ... and one per WebSocket, when it closes.
        assert re.search(
            rf"WebSocket closed: HTTP/2, stream {sid}, path /mnt/ws, code 1000, closed by client",
            log_text,
        )
        # Access log: requests and WebSockets.
        assert re.search(r'"GET /mnt/page HTTP/2" 200', log_text)
        assert re.search(r'"GET /mnt/h1 HTTP/1\.1" 200', log_text)
        assert re.search(r'"WEBSOCKET /mnt/ws" HTTP/2 stream \d+ closed 1000 by client', log_text)

        # SIGINT: 1001 on the open WebSocket, then exit 0.
        started = time.monotonic()
        cmd.proc.send_signal(signal.SIGINT)
        with pytest.raises(websockets.exceptions.ConnectionClosedOK):
            await asyncio.wait_for(ws.recv(), 10)
        assert ws.close_code == 1001
        assert await cmd.wait_exit(5 + 5) == 0
        assert time.monotonic() - started < 5 + 5
        log_text = cmd.log()
        assert "shutting down" in log_text
        assert re.search(
            r"WebSocket closed: HTTP/1\.1, stream 0, path /mnt/h1ws, code 1001, closed by server",
            log_text,
        )
    finally:
        cmd.kill()


# -- one Unix-socket server: h2c without RFC 8441, uvloop, SIGTERM with 50 WebSockets ----


async def unix_h2_client(path: str) -> H2Client:
    reader, writer = await asyncio.open_unix_connection(path)
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding=None)
    )
    conn.initiate_connection()
    client = H2Client(reader, writer, conn)
    client.flush()
    return client


@pytest.mark.one_loop
async def test_uds_without_ws_over_h2_uvloop_and_sigterm(app_dir: Path) -> None:
    """--uds serves HTTP/1.1 and h2c on a Unix socket; --no-ws-over-h2: the
    SETTINGS lack ENABLE_CONNECT_PROTOCOL (and the debug line says so);
    --loop uvloop; --no-access-log. SIGTERM with 50 open WebSockets: each
    gets close 1001; one client that never answers its close frame does not
    hold the exit past --graceful-timeout."""
    uds = str(app_dir / "h2ws.sock")
    graceful = 2.0
    cmd = H2wsCommand(
        [
            "app:app",
            *("--uds", uds, "--no-ws-over-h2", "--loop", "uvloop", "--no-access-log"),
            *("--log-level", "debug", "--graceful-timeout", str(graceful)),
        ],
        app_dir,
    )
    clients: list[Any] = []
    try:
        await cmd.wait_log(rf"serving app:app on {re.escape(uds)}")

        c = await unix_h2_client(uds)
        await c.wait_settings()
        # Not sent at all (rather than sent as 0).
        first = next(e for e in c.events if isinstance(e, h2.events.RemoteSettingsChanged))
        assert ENABLE_CONNECT_PROTOCOL not in first.changed_settings
        assert c.remote_settings.get(ENABLE_CONNECT_PROTOCOL, 0) == 0
        got = json.loads((await h2_fetch(c, "GET", "/over-h2c")).body)
        assert got["http_version"] == "2" and got["loop"] == "uvloop"
        assert got["server"] == [uds, None]
        await c.close()

        reader, writer = await asyncio.open_unix_connection(uds)
        writer.write(h1_request_bytes("GET", "/over-h1"))
        got = json.loads((await h1_read_response(reader)).body)
        assert got["http_version"] == "1.1" and got["scheme"] == "http"
        writer.close()

        clients = await asyncio.gather(
            *(websockets.unix_connect(uds, f"ws://localhost/ws{i}") for i in range(50))
        )
        for ws in clients:
            assert json.loads(await ws.recv())["http_version"] == "1.1"
        # A client that completes the handshake, then never reads again.
        silent_reader, silent_writer = await asyncio.open_unix_connection(uds)
        silent_writer.write(
            h1_request_bytes(
                "GET",
                "/silent",
                [
                    ("Upgrade", "websocket"),
                    ("Connection", "Upgrade"),
                    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                    ("Sec-WebSocket-Version", "13"),
                ],
            )
        )
        assert b" 101 " in await silent_reader.readuntil(b"\r\n\r\n")

        closes = [asyncio.ensure_future(ws.wait_closed()) for ws in clients]
        started = time.monotonic()
        cmd.proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(asyncio.gather(*closes), 10)
        assert all(ws.close_code == 1001 for ws in clients), [ws.close_code for ws in clients]
        assert await cmd.wait_exit(graceful + 5) == 0
        elapsed = time.monotonic() - started
        assert elapsed < graceful + 5
        silent_writer.close()

        log_text = cmd.log()
        assert re.search(r"HTTP/2 \(h2c prior knowledge\), RFC 8441 setting not sent", log_text)
        assert re.search(r"HTTP/1\.1 \(cleartext\)", log_text)
        assert len(re.findall(r"HTTP/1\.1, .*code 1001, closed by server", log_text)) >= 50
        assert "h2ws.access" not in log_text
    finally:
        cmd.kill()
        for ws in clients:
            ws.transport.abort()


# -- two workers on one port: 200 WebSockets, SIGTERM ------------------------------------


@pytest.mark.one_loop
async def test_two_workers_share_the_port_and_stop_on_sigterm(app_dir: Path) -> None:
    """--workers 2: both processes bind the port (SO_REUSEPORT) and serve
    some of 200 concurrent WebSockets; SIGTERM to the supervisor closes
    every one with 1001, and all processes exit 0 within --graceful-timeout
    (plus a margin)."""
    graceful = 5.0
    cmd = H2wsCommand(
        [
            "app:app",
            *("--port", "0", "--workers", "2", "--no-access-log"),
            *("--graceful-timeout", str(graceful)),
        ],
        app_dir,
    )
    clients: list[Any] = []
    try:
        port = await cmd.serving_port()
        await cmd.wait_log(r"(?s)pid (\d+);.*pid (\d+);")  # both workers are up
        worker_pids = {int(p) for p in re.findall(r"serving app:app .*\(pid (\d+);", cmd.log())}
        assert len(worker_pids) == 2 and cmd.proc.pid not in worker_pids

        async def open_one(i: int) -> Any:
            return await websockets.connect(f"ws://127.0.0.1:{port}/ws{i}", open_timeout=30)

        clients = await asyncio.gather(*(open_one(i) for i in range(200)))
        pids = [json.loads(await ws.recv())["pid"] for ws in clients]
        assert set(pids) == worker_pids, {p: pids.count(p) for p in set(pids)}
        # Every one of them is live.
        for ws in clients[::20]:
            await ws.send("still there?")
            assert await ws.recv() == "still there?"

        closes = [asyncio.ensure_future(ws.wait_closed()) for ws in clients]
        started = time.monotonic()
        cmd.proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(asyncio.gather(*closes), graceful + 5)
        codes = [ws.close_code for ws in clients]
        assert codes == [1001] * 200, {c: codes.count(c) for c in set(codes)}
        assert await cmd.wait_exit(graceful + 5) == 0
        assert time.monotonic() - started < graceful + 5
        for pid in worker_pids:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
    finally:
        cmd.kill()
        for ws in clients:
            ws.transport.abort()
