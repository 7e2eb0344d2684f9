"""``python -m h2ws.client URI`` (h2ws/client_cli.py) as a subprocess, with
piped stdin, against an h2ws server in the test's process: which protocol
carried the WebSocket, echoes, binary messages, options (TLS trust,
subprotocols, headers, Origin), the server's close, end of input, Ctrl-C,
failures, and exit statuses."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from helpers.certs import cert_files
from helpers.servers import Running, running_server

import h2ws

pytestmark = pytest.mark.timeout(120)

#: The tree whose h2ws this process imported: the subprocess imports the same.
H2WS_ROOT = Path(h2ws.__file__).resolve().parents[1]
TIMEOUT = 20.0


class ClientProcess:
    """The command, its stdin a pipe we write lines to, its stdout read by line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, *args: str) -> ClientProcess:
        env = {**os.environ, "PYTHONPATH": str(H2WS_ROOT)}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "h2ws.client",
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=H2WS_ROOT,
            env=env,
        )
        return cls(proc)

    async def line(self) -> str:
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), TIMEOUT)
        if not raw:
            stderr = await self.stderr()
            raise AssertionError(f"the client's stdout ended; stderr: {stderr}")
        return raw.decode().rstrip("\n")

    async def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode() + b"\n")
        await self.proc.stdin.drain()

    async def stderr(self) -> str:
        assert self.proc.stderr is not None
        return (await asyncio.wait_for(self.proc.stderr.read(), TIMEOUT)).decode()

    async def finish(self, *, close_stdin: bool = True) -> tuple[int, list[str], str]:
        """Ends input (unless told not to) and waits for the exit: (status,
        the remaining stdout lines, stderr)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if close_stdin:
            self.proc.stdin.close()
        out, err = await asyncio.wait_for(self.proc.communicate(), TIMEOUT)
        assert self.proc.returncode is not None
        assert "Traceback" not in err.decode(), err.decode()
        return self.proc.returncode, out.decode().splitlines(), err.decode()

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()


@contextlib.asynccontextmanager
async def client(*args: str) -> AsyncIterator[ClientProcess]:
    proc = await ClientProcess.start(*args)
    try:
        yield proc
    finally:
        proc.kill()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(proc.proc.wait(), TIMEOUT)


class Recorder:
    """An echo handler that remembers each WebSocket's HTTP version,
    request headers and close code; "close:CODE:REASON" makes it close,
    "binary:N" makes it send N bytes 0, 1, 2..."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.done: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def __call__(self, ws: h2ws.WebSocket) -> None:
        info: dict[str, Any] = {
            "http_version": ws.http_version,
            "headers": dict(ws.request.headers.items()),
            "subprotocol": ws.subprotocol,
        }
        self.seen.append(info)
        try:
            async for message in ws:
                if isinstance(message, str) and message.startswith("close:"):
                    _, code, reason = message.split(":", 2)
                    await ws.close(int(code), reason)
                    break
                if isinstance(message, str) and message.startswith("binary:"):
                    await ws.send(bytes(i % 256 for i in range(int(message[7:]))))
                elif message == "headers":
                    await ws.send(json.dumps(info))
                else:
                    await ws.send(message)
        finally:
            await ws.wait_closed()
            info["close_code"] = ws.close_code
            await self.done.put(info)


def uri(server: Running, path: str = "/chat") -> str:
    return f"{'wss' if server.tls else 'ws'}://127.0.0.1:{server.port}{path}"


@pytest.mark.parametrize(
    ("tls", "http2", "version"),
    [(False, "auto", "1.1"), (False, "on", "2"), (False, "off", "1.1"), (True, "auto", "2")],
    ids=["cleartext-auto", "cleartext-on", "cleartext-off", "tls-auto"],
)
async def test_echo_over_the_protocol_it_says(tls: bool, http2: str, version: str) -> None:
    """The first line names the protocol that carried the WebSocket; each
    stdin line comes back; end of input closes with 1000 and exits 0."""
    recorder = Recorder()
    async with running_server(recorder, tls=tls) as server:
        args = [uri(server), "--http2", http2]
        if tls:
            args += ["--cafile", cert_files()[0]]
        async with client(*args) as proc:
            expected = "HTTP/2 (RFC 8441)" if version == "2" else "HTTP/1.1"
            assert await proc.line() == f"Connected to {uri(server)} over {expected}"
            for text in ["hello", "", "héllo ✓ 🙂", "  spaces  "]:
                await proc.send(text)
                assert await proc.line() == f"< {text}"
            status, rest, _ = await proc.finish()
        assert rest == ["Connection closed: 1000 (normal closure)"]
        assert status == 0
        info = await asyncio.wait_for(recorder.done.get(), TIMEOUT)
    assert info["http_version"] == version
    assert info["close_code"] == 1000


@pytest.mark.one_loop
async def test_lines_piped_at_once_are_all_answered() -> None:
    """Input that ends before any answer came: every message is still sent,
    the echoes that arrive during the closing handshake are printed."""
    async with running_server(Recorder()) as server:
        async with client(uri(server), "--http2", "on") as proc:
            assert proc.proc.stdin is not None
            proc.proc.stdin.write(b"one\ntwo\nthree")  # the last line has no newline
            status, lines, _ = await proc.finish()
    assert lines[0].endswith("over HTTP/2 (RFC 8441)")
    assert lines[-1] == "Connection closed: 1000 (normal closure)"
    assert status == 0
    # Echoes racing our close frame may be dropped by the server (RFC 6455
    # section 5.5.1: no data after its close frame), never reordered.
    echoes = lines[1:-1]
    assert echoes == ["< one", "< two", "< three"][: len(echoes)]


@pytest.mark.one_loop
async def test_binary_messages_are_shown_as_size_and_hex() -> None:
    async with running_server(Recorder()) as server:
        async with client(uri(server)) as proc:
            await proc.line()
            await proc.send("binary:3")
            assert await proc.line() == "< [binary, 3 bytes] 00 01 02"
            await proc.send("binary:0")
            assert await proc.line() == "< [binary, 0 bytes]"
            await proc.send("binary:100")
            shown = " ".join(f"{i:02x}" for i in range(32))
            assert await proc.line() == f"< [binary, 100 bytes] {shown} ..."
            status, _, _ = await proc.finish()
    assert status == 0


@pytest.mark.one_loop
@pytest.mark.parametrize("http2", ["on", "off"])
async def test_subprotocol_headers_and_origin(http2: str) -> None:
    """--subprotocol (repeatable, in order), --header (repeatable) and
    --origin reach the server over both HTTP versions; the chosen
    subprotocol (the server's preference) is on the first line."""
    async with running_server(Recorder(), subprotocols=["superchat", "chat"]) as server:
        args = [uri(server), "--http2", http2, "--origin", "https://app.example"]
        args += ["--subprotocol", "chat", "--subprotocol", "superchat"]
        args += ["--header", "X-Token: abc:def", "--header", "x-other:1"]
        async with client(*args) as proc:
            first = await proc.line()
            assert first.endswith(", subprotocol superchat"), first
            await proc.send("headers")
            line = await proc.line()
            status, _, _ = await proc.finish()
    info = json.loads(line.removeprefix("< "))
    assert info["http_version"] == ("2" if http2 == "on" else "1.1")
    assert info["subprotocol"] == "superchat"
    headers = info["headers"]
    assert headers["origin"] == "https://app.example"
    assert headers["x-token"] == "abc:def"
    assert headers["x-other"] == "1"
    assert headers["sec-websocket-protocol"] == "chat, superchat"
    assert status == 0


@pytest.mark.parametrize(
    ("code", "reason", "shown", "status"),
    [
        (1000, "done", 'Connection closed: 1000 (normal closure), reason "done"', 0),
        (1001, "", "Connection closed: 1001 (going away)", 0),
        (1011, "oops", 'Connection closed: 1011 (internal error), reason "oops"', 1),
        (4000, "app", 'Connection closed: 4000 (unknown code), reason "app"', 1),
    ],
)
@pytest.mark.one_loop
async def test_server_close_is_printed_and_ends_the_client(
    code: int, reason: str, shown: str, status: int
) -> None:
    """A close by the server ends the client while stdin stays open; the
    exit status says whether it was a normal closure."""
    async with running_server(Recorder()) as server:
        async with client(uri(server), "--http2", "on") as proc:
            await proc.line()
            await proc.send(f"close:{code}:{reason}")
            assert await proc.line() == shown
            got, rest, _ = await proc.finish(close_stdin=False)
    assert rest == []
    assert got == status


@pytest.mark.one_loop
async def test_ctrl_c_closes_with_1000() -> None:
    recorder = Recorder()
    async with running_server(recorder) as server:
        async with client(uri(server), "--http2", "on") as proc:
            await proc.line()
            await proc.send("x")
            assert await proc.line() == "< x"
            proc.proc.send_signal(signal.SIGINT)
            status, rest, _ = await proc.finish(close_stdin=False)
        info = await asyncio.wait_for(recorder.done.get(), TIMEOUT)
    assert rest == ["Connection closed: 1000 (normal closure)"]
    assert status == 0
    assert info["close_code"] == 1000


@pytest.mark.one_loop
async def test_tls_trust() -> None:
    """Without --cafile the self-signed certificate is refused (exit 1, a
    message, no traceback); --insecure accepts it."""
    async with running_server(Recorder(), tls=True) as server:
        async with client(uri(server)) as proc:
            status, lines, err = await proc.finish()
        assert status == 1
        assert lines == []
        assert f"Failed to connect to {uri(server)}" in err
        assert "CERTIFICATE_VERIFY_FAILED" in err
        async with client(uri(server), "--insecure") as proc:
            assert (await proc.line()).endswith("over HTTP/2 (RFC 8441)")
            status, _, _ = await proc.finish()
        assert status == 0


@pytest.mark.one_loop
async def test_failures_and_usage_errors() -> None:
    # A refused WebSocket: the status is in the message.
    async def refuse(request: h2ws.Request) -> h2ws.Response:
        return h2ws.Response(403, [], b"no")

    async with running_server(Recorder(), process_request=refuse) as server:
        async with client(uri(server), "--http2", "on") as proc:
            status, _, err = await proc.finish()
        assert status == 1 and "HTTP 403" in err
    # --http2 on against a server that does not offer RFC 8441.
    async with running_server(Recorder(), ws_over_h2=False) as server:
        async with client(uri(server), "--http2", "on") as proc:
            status, _, err = await proc.finish()
        assert status == 1 and "no WebSockets over HTTP/2" in err
    # Nobody listening.
    async with running_server(Recorder()) as server:
        port = server.port
    async with client(f"ws://127.0.0.1:{port}/") as proc:
        status, _, err = await proc.finish()
    assert status == 1 and "Failed to connect" in err
    # Usage errors exit 2.
    for args in (
        ["http://127.0.0.1/"],
        ["ws://127.0.0.1/", "--cafile", "x.pem"],
        ["ws://127.0.0.1/", "--header", "no-colon"],
        ["ws://127.0.0.1/", "--http2", "maybe"],
    ):
        async with client(*args) as proc:
            status, _, err = await proc.finish()
        assert status == 2, (args, err)
        assert "usage:" in err
