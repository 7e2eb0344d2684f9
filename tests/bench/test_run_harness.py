"""The benchmark harness, ``benchmarks/run.py``, and the echo server written here in
JavaScript (benchmarks/servers/node_h2_echo.js), without running any load.

The plan must touch every server and every scenario (in smoke mode too, since
``make bench-smoke`` in CI is what keeps the harness alive); the goals and the page
are computed from made-up results. The Node server, whose RFC 6455 framing is ours,
is checked against python-hyper ``h2`` with masked, fragmented and control frames.
benchmarks/run.py is found by walking up from this file (the sanitizer copy of the
tests, in build/asan, finds the main tree's); without it the tests skip.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import h2.config
import h2.connection
import h2.events
import pytest
from helpers.foreign import foreign_env


def _find_run_py() -> Path | None:
    here = Path(__file__).resolve()
    for parent in list(here.parents)[:6]:
        candidate = parent / "benchmarks" / "run.py"
        if candidate.exists():
            return candidate
    return None


RUN_PY = _find_run_py()
pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(RUN_PY is None, reason="benchmarks/ not in this tree"),
]


@pytest.fixture(scope="module")
def run() -> ModuleType:
    assert RUN_PY is not None
    spec = importlib.util.spec_from_file_location("bench_run", RUN_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _plan(run: ModuleType, *argv: str) -> list[Any]:
    return run.plan(run.config_from(run.parse_args(list(argv))))


@pytest.mark.parametrize("argv", [["--smoke"], []])
def test_plan_touches_every_server_and_scenario(run: ModuleType, argv: list[str]) -> None:
    launches = _plan(run, *argv)
    servers = {launch.server.key for launch in launches}
    assert servers == {s.key for s in run.SERVER_LIST}
    scenarios = {shape.scenario for launch in launches for _, shape in launch.runs}
    assert scenarios == {"latency", "throughput", "goal", "bulk", "idle", "tls"}
    # Every server runs the goal shape on each of its protocols.
    for server in run.SERVER_LIST:
        goal = {
            proto
            for launch in launches
            if launch.server is server
            for proto, shape in launch.runs
            if shape.scenario == "goal"
        }
        assert goal == set(server.protos), server.key


def test_full_plan_has_the_issue_shapes(run: ModuleType) -> None:
    launches = _plan(run)
    h2ws = [
        (proto, shape)
        for launch in launches
        if launch.server.key == "h2ws"
        for proto, shape in launch.runs
    ]
    tp = {(s.streams, s.size) for p, s in h2ws if s.scenario == "throughput" and p == "h2"}
    assert tp == {(n, m) for n in (1, 10, 100, 1000) for m in (20, 1024, 16384)}
    lat = {s.size for p, s in h2ws if s.scenario == "latency" and p == "h1"}
    assert lat == {16, 256, 8192, 100_000}
    assert all(s.same_core for _, s in h2ws if s.scenario == "latency")
    windows = {s.window for p, s in h2ws if s.scenario == "bulk" and p == "h2"}
    assert windows == {64 * 1024, 1 << 20, 16 << 20}
    idle = {p: s for p, s in h2ws if s.scenario == "idle"}
    assert idle["h2"].loadgen_args("h2")[:4] == ["-c", "10", "-s", "1000"]
    assert idle["h1"].loadgen_args("h1")[:4] == ["-c", "10000", "-s", "1"]


def test_only_filters_runs(run: ModuleType) -> None:
    launches = _plan(run, "--only", "^goal:picows:")
    assert [(launch.server.key, len(launch.runs)) for launch in launches] == [("picows", 1)]


def _result(run: ModuleType, scenario: str, server: str, proto: str, **kw: Any) -> Any:
    base: dict[str, Any] = dict(
        scenario=scenario,
        server=server,
        target=f"{server} {proto}",
        proto=proto,
        tls=False,
        streams=100,
        size=256,
        inflight=1,
        window=None,
        ok=True,
    )
    base.update(kw)
    return run.Result(**base)


def test_goals_and_page_from_results(run: ModuleType, tmp_path: Path) -> None:
    r = [
        _result(run, "goal", "h2ws", "h2", msgs_per_s=300_000.0),
        _result(run, "goal", "hypercorn", "h2", msgs_per_s=20_000.0),
        _result(run, "goal", "node", "h2", msgs_per_s=250_000.0),
        _result(run, "goal", "h2ws", "h1", msgs_per_s=100_000.0),
        _result(run, "goal", "picows", "h1", msgs_per_s=120_000.0),
        _result(run, "latency", "h2ws", "h2", streams=1, rtt_us={"p50": 20.0}),
        _result(run, "latency", "h2ws", "h1", streams=1, rtt_us={"p50": 19.0}),
        _result(
            run, "bulk", "h2ws", "h2", streams=1, size=16 << 20, window=1 << 20, msgs_per_s=200.0
        ),
        _result(
            run, "idle", "h2ws", "h2", streams=10_000, idle_count=10_000, idle_rss_per_ws=1500.0
        ),
    ]
    goals = run.goals(r)

    def met(*words: str) -> bool | None:
        (goal,) = [g for g in goals if all(w in g.text for w in words)]
        return goal.met  # type: ignore[no-any-return]

    assert met("HTTP/2", "Hypercorn") is True
    assert met("HTTP/2", "Node") is True
    assert met("HTTP/1.1", "picows") is False
    assert met("HTTP/1.1", "websockets") is None  # not measured
    assert met("latency", "HTTP/2 ≤ 1.1×") is True
    assert met("bulk") is True  # 200 × 16 MiB = 3.4 GB/s
    assert met("idle") is True
    cfg = run.config_from(run.parse_args(["--smoke"]))
    page = run.report(cfg, r, [], {"cpu": "test"}, tmp_path / "b.md", tmp_path / "img", [], 1.0)
    assert "**met**" in page and "**missed**" in page and "not measured" in page
    assert "| h2ws h2 |" in page


def test_merge_takes_medians(run: ModuleType) -> None:
    runs = [
        _result(run, "goal", "h2ws", "h2", msgs_per_s=v, rtt_us={"p50": v / 1000})
        for v in (100.0, 300.0, 200.0)
    ]
    merged = run.merge(runs)
    assert merged.msgs_per_s == 200.0 and merged.rtt_us["p50"] == 0.2 and merged.repeats == 3


# --------------------------------------------------------------------------- Node echo


def _mask(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    key = os.urandom(4)
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
    return head + key + bytes(b ^ key[i & 3] for i, b in enumerate(payload))


def _frames(buf: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    out = []
    while len(buf) >= 2:
        assert buf[1] & 0x80 == 0, "server frames are never masked"
        n, i = buf[1] & 0x7F, 2
        if n == 126:
            n, i = int.from_bytes(buf[2:4], "big"), 4
        elif n == 127:
            n, i = int.from_bytes(buf[2:10], "big"), 10
        if len(buf) < i + n:
            break
        out.append((buf[0] & 0x0F, buf[i : i + n]))
        buf = buf[i + n :]
    return out, buf


def _node_exchange(port: int, frames: bytes, want: int) -> tuple[list[tuple[int, bytes]], bool]:
    """Opens one RFC 8441 WebSocket, sends ``frames``, reads until ``want`` frames or
    the end of the stream; returns the frames and whether the stream ended."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    got: list[tuple[int, bytes]] = []
    buf, sid, ended = b"", 1, False
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(conn.data_to_send())
        for _ in range(200):
            data = sock.recv(65536)
            if not data:
                break
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.RemoteSettingsChanged) and not conn.streams:
                    conn.send_headers(
                        sid,
                        [
                            (":method", "CONNECT"),
                            (":protocol", "websocket"),
                            (":scheme", "http"),
                            (":path", "/"),
                            (":authority", "localhost"),
                            ("sec-websocket-version", "13"),
                        ],
                    )
                elif isinstance(ev, h2.events.ResponseReceived):
                    assert dict(ev.headers)[b":status"] == b"200"
                    for i in range(0, len(frames), 16384):
                        conn.send_data(sid, frames[i : i + 16384])
                elif isinstance(ev, h2.events.DataReceived):
                    conn.acknowledge_received_data(ev.flow_controlled_length, sid)
                    more, buf = _frames(buf + ev.data)
                    got += more
                elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                    ended = True
            sock.sendall(conn.data_to_send())
            if ended or len(got) >= want:
                break
    return got, ended


@pytest.fixture(scope="module")
def node_echo() -> Any:
    if shutil.which("node") is None:
        pytest.skip("node not installed")
    assert RUN_PY is not None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = RUN_PY.parent / "servers" / "node_h2_echo.js"
    proc = subprocess.Popen(["node", str(script), "--port", str(port)], env=foreign_env())
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_node_echo_messages_fragments_ping_close(node_echo: int) -> None:
    big = os.urandom(40_000)
    frames = (
        _mask(1, "héllo".encode())
        + _mask(2, big[:10_000], fin=False)
        + _mask(9, b"ping")  # a control frame between fragments (RFC 6455 §5.4)
        + _mask(0, big[10_000:])
        + _mask(8, (1000).to_bytes(2, "big") + b"bye")
    )
    got, ended = _node_exchange(node_echo, frames, 4)
    assert got[0] == (1, "héllo".encode())
    assert (10, b"ping") in got
    assert (2, big) in got
    assert got[-1] == (8, (1000).to_bytes(2, "big"))
    assert ended


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (bytes([0x82, 0x02]) + b"ab", 1002),  # unmasked client frame
        (_mask(1, b"\xff\xfe"), 1007),  # invalid UTF-8
        (_mask(0, b"orphan"), 1002),  # continuation without a message
        (_mask(9, b"x" * 126), 1002),  # control frame over 125 bytes
    ],
)
def test_node_echo_protocol_errors(node_echo: int, frame: bytes, code: int) -> None:
    got, _ = _node_exchange(node_echo, frame, 1)
    assert got and got[0][0] == 8 and int.from_bytes(got[0][1][:2], "big") == code
