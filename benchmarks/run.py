"""Side-by-side WebSocket echo benchmarks: h2ws next to its peers, in one run.

    .venv/bin/python benchmarks/run.py                  # everything -> docs/benchmarks.md
    .venv/bin/python benchmarks/run.py --smoke          # a bit of everything -> build/bench-smoke/
    .venv/bin/python benchmarks/run.py --only goal --duration 5 --repeat 3

Each server (benchmarks/servers/) runs in its own process pinned to one core and is
loaded by build/loadgen (benchmarks/loadgen/), which checks every echoed byte. For each
run the harness records the loadgen's msgs/s, bytes/s and round-trip percentiles, the
server's CPU time per message (utime + stime of the server and its children from
/proc/PID/stat, over the measured window) and its peak RSS (VmHWM); the idle scenario
records RSS per open WebSocket. Results go to a Markdown page with tables, ratios to
h2ws, the issue's goals (met or missed) and PNG plots. See docs/benchmarking.md.

Exit status: 0 when every server started and every run completed without a mismatch
(missed goals do not fail), 1 otherwise, 2 for bad options.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import json
import os
import platform
import re
import resource
import selectors
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SERVERS = ROOT / "benchmarks" / "servers"
LOADGEN = ROOT / "build" / "loadgen"
TCP_ECHO = ROOT / "build" / "tcp_echo"
CERT_DIR = ROOT / "build" / "bench-cert"
PY = sys.executable

KIB = 1024
MIB = 1024 * 1024

#: The server runs on this core; the loadgen on LOAD_CPU, or on SERVER_CPU for latency.
SERVER_CPU = 1
LOAD_CPU = 0

#: Messages in flight in all for the throughput runs (spread over the streams).
THROUGHPUT_INFLIGHT = 64

Json = dict[str, Any]


# --------------------------------------------------------------------------- servers


@dataclass(frozen=True)
class Server:
    """One server program and how to start it."""

    key: str  #: short id (also matched by --only)
    label: str  #: the name in the tables
    argv: Callable[[int, bool, int | None], list[str]]  #: (port, tls, window) -> command
    protos: tuple[str, ...]  #: what the loadgen speaks to it: "h2", "h1", "tcp"
    tls: bool = False  #: can serve TLS
    window: bool = False  #: takes --window (the HTTP/2 stream's initial window)
    full: bool = True  #: every shape; False: the key shapes only (a variant)
    note: str = ""


def _py(script: str, *extra: str) -> Callable[[int, bool, int | None], list[str]]:
    def argv(port: int, tls: bool, window: int | None) -> list[str]:
        cmd = [PY, str(SERVERS / script), *extra, "--port", str(port)]
        if tls:
            cmd += ["--tls", "--certfile", str(CERT_DIR / "cert.pem")]
            cmd += ["--keyfile", str(CERT_DIR / "key.pem")]
        if window is not None:
            cmd += ["--window", str(window)]
        return cmd

    return argv


def _node(port: int, tls: bool, window: int | None) -> list[str]:
    cmd = ["node", str(SERVERS / "node_h2_echo.js"), "--port", str(port)]
    if tls:
        cmd += ["--tls", "--certfile", str(CERT_DIR / "cert.pem")]
        cmd += ["--keyfile", str(CERT_DIR / "key.pem")]
    if window is not None:
        cmd += ["--window", str(window)]
    return cmd


def _tcp(port: int, tls: bool, window: int | None) -> list[str]:
    return [str(TCP_ECHO), "--port", str(port)]


SERVER_LIST: tuple[Server, ...] = (
    Server(
        "h2ws",
        "h2ws",
        _py("h2ws_echo.py", "--loop", "uvloop"),
        ("h2", "h1"),
        True,
        True,
        note="uvloop, callback API",
    ),
    Server(
        "h2ws-asyncio",
        "h2ws asyncio",
        _py("h2ws_echo.py", "--loop", "asyncio"),
        ("h2", "h1"),
        True,
        True,
        full=False,
        note="asyncio loop, callback API",
    ),
    Server(
        "h2ws-handler",
        "h2ws handler",
        _py("h2ws_echo.py", "--api", "handler"),
        ("h2", "h1"),
        True,
        True,
        full=False,
        note="uvloop, `async for` handler",
    ),
    Server(
        "node", "Node http2", _node, ("h2",), True, True, note="node:http2 + RFC 6455 framing in JS"
    ),
    Server(
        "hypercorn",
        "Hypercorn",
        _py("asgi_echo.py", "hypercorn"),
        ("h2", "h1"),
        True,
        note="uvloop worker, stock",
    ),
    Server(
        "hypercorn-nodelay",
        "Hypercorn+NODELAY",
        _py("asgi_echo.py", "hypercorn", "--nodelay"),
        ("h2", "h1"),
        True,
        full=False,
        note="uvloop worker, TCP_NODELAY set per socket",
    ),
    Server(
        "uvicorn",
        "uvicorn",
        _py("asgi_echo.py", "uvicorn"),
        ("h1",),
        True,
        note="uvloop, httptools, ws=websockets",
    ),
    Server(
        "websockets",
        "websockets",
        _py("websockets_echo.py"),
        ("h1",),
        True,
        note="asyncio implementation on uvloop",
    ),
    Server("aiohttp", "aiohttp", _py("aiohttp_echo.py"), ("h1",), True, note="uvloop"),
    Server(
        "picows",
        "picows",
        _py("picows_echo.py"),
        ("h1",),
        True,
        note="uvloop; aiofastnet's transports (TLS straight through OpenSSL)",
    ),
    Server("tcp", "TCP echo (C)", _tcp, ("tcp",), note="epoll, no framing: the floor"),
)

PROTO_NAME = {"h2": "HTTP/2", "h1": "HTTP/1.1", "tcp": "TCP"}


def target_name(server: Server, proto: str, tls: bool = False) -> str:
    if proto == "tcp":
        return server.label
    name = f"{server.label} {'h2' if proto == 'h2' else 'h1'}"
    return name + " TLS" if tls else name


# --------------------------------------------------------------------------- runs


@dataclass(frozen=True)
class Shape:
    """One load: what build/loadgen is asked to do."""

    scenario: str  #: latency, throughput, goal, bulk, idle, tls
    streams: int  #: streams (h2) or connections (h1, tcp)
    size: int
    inflight: int = 1
    same_core: bool = False
    window: int | None = None  #: the HTTP/2 stream window of both ends (bulk)
    conns_h2: int = 1  #: HTTP/2 connections (idle: 10)

    def loadgen_args(self, proto: str) -> list[str]:
        if proto == "h2":
            c, s = self.conns_h2, self.streams // self.conns_h2
        else:
            c, s = self.streams, 1
        args = ["-c", str(c), "-s", str(s), "-w", str(self.inflight), "-m", str(self.size)]
        if self.window is not None and proto == "h2":
            args += ["--window", str(self.window)]
        return args


@dataclass
class Result:
    scenario: str
    server: str  #: Server.key
    target: str  #: table name
    proto: str
    tls: bool
    streams: int
    size: int
    inflight: int
    window: int | None
    ok: bool = False
    error: str = ""  #: the run measured nothing valid (or a mismatch)
    warning: str = ""  #: the loadgen complained, but the figures stand (e.g. at teardown)
    msgs_per_s: float = 0.0
    bytes_per_s: float = 0.0
    rtt_us: dict[str, float] = field(default_factory=dict)
    cpu_us_per_msg: float | None = None
    server_cpu_pct: float | None = None
    peak_rss: int = 0  #: VmHWM of the server (and children), bytes
    idle_rss_per_ws: float | None = None
    idle_count: int = 0
    messages: int = 0
    mismatches: int = 0
    errors: int = 0
    repeats: int = 1


def human_size(n: int) -> str:
    if n >= MIB and n % MIB == 0:
        return f"{n // MIB} MiB"
    if n >= KIB and n % KIB == 0:
        return f"{n // KIB} KiB"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000} KB"
    return f"{n} B"


# --------------------------------------------------------------------------- /proc


CLK_TCK = os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (bounded walk over /proc/*/task/*/children)."""
    seen: list[int] = []
    todo = [pid]
    while todo and len(seen) < 256:
        p = todo.pop()
        if p in seen:
            continue
        seen.append(p)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{p}/task"):
                with contextlib.suppress(OSError):
                    todo += [
                        int(c) for c in Path(f"/proc/{p}/task/{task}/children").read_text().split()
                    ]
    return seen


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and its live descendants, in seconds."""
    ticks = 0
    for p in process_tree(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = Path(f"/proc/{p}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return ticks / CLK_TCK


def memory(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of ``pid`` and its descendants, in bytes."""
    rss = hwm = 0
    for p in process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1]) * 1024
                elif line.startswith("VmHWM:"):
                    hwm += int(line.split()[1]) * 1024
    return rss, hwm


# --------------------------------------------------------------------------- processes


def child_env() -> dict[str, str]:
    """The environment of every child: no sanitizer preload (Node and Python peers)."""
    env = dict(os.environ)
    for name in ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "PYTHONMALLOC"):
        env.pop(name, None)
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def raise_nofile() -> None:
    """preexec_fn: as many file descriptors as allowed (the idle run holds 10,000)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kill_group(proc: subprocess.Popen[Any], grace: float = 5.0) -> None:
    """SIGTERM the process group, then SIGKILL what is left after ``grace`` seconds."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


class RunningServer:
    """A server process pinned to SERVER_CPU, listening on a free port."""

    def __init__(self, server: Server, tls: bool, window: int | None, log_dir: Path) -> None:
        self.server = server
        self.port = free_port()
        argv = ["taskset", "-c", str(SERVER_CPU), *server.argv(self.port, tls, window)]
        log_dir.mkdir(parents=True, exist_ok=True)
        suffix = ("-tls" if tls else "") + (f"-w{window}" if window else "")
        self.log_path = log_dir / f"server-{server.key}{suffix}.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=child_env(),
            cwd=ROOT,
            start_new_session=True,
            preexec_fn=raise_nofile,
        )

    def wait_ready(self, timeout: float = 20.0) -> str:
        """'' once the port accepts connections, else why not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return f"exited with status {self.proc.returncode} (log: {self.log_path})"
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    time.sleep(0.2)  # let it settle (the accept above is its first)
                    return ""
            except OSError:
                time.sleep(0.05)
        return f"did not listen within {timeout:.0f} s (log: {self.log_path})"

    def stop(self) -> None:
        kill_group(self.proc)
        self.log.close()


def loadgen_cmd(proto: str, tls: bool, port: int, shape: Shape, cfg: Config) -> list[str]:
    cpu = SERVER_CPU if shape.same_core else LOAD_CPU
    cmd = ["taskset", "-c", str(cpu), str(LOADGEN), "--proto", proto]
    if tls:
        cmd.append("--tls")
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--path", "/"]
    cmd += shape.loadgen_args(proto)
    cmd += ["--binary", "--json"]
    return cmd


def parse_json_line(text: str) -> Json | None:
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                value = json.loads(line)
                if isinstance(value, dict):
                    return value
    return None


def run_load(rs: RunningServer, proto: str, tls: bool, shape: Shape, cfg: Config) -> Result:
    """One loadgen run against a running server, with CPU sampled over its window."""
    server = rs.server
    res = Result(
        shape.scenario,
        server.key,
        target_name(server, proto, tls),
        proto,
        tls,
        shape.streams,
        shape.size,
        shape.inflight,
        shape.window,
    )
    duration, warmup = cfg.duration_for(shape), cfg.warmup
    cmd = loadgen_cmd(proto, tls, rs.port, shape, cfg)
    cmd += ["-d", f"{duration:g}", "--warmup", f"{warmup:g}"]
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(),
        start_new_session=True,
        preexec_fn=raise_nofile,
        text=True,
    )
    # Sample the server's CPU inside the loadgen's measured window (after the warmup).
    margin = min(0.1, duration / 5)
    time.sleep(warmup + margin)
    t0, c0 = time.monotonic(), cpu_seconds(rs.proc.pid)
    time.sleep(max(0.05, duration - 2 * margin))
    t1, c1 = time.monotonic(), cpu_seconds(rs.proc.pid)
    try:
        out, err = proc.communicate(timeout=duration + warmup + cfg.run_timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc, grace=1)
        out, err = proc.communicate()
        res.error = "loadgen timed out"
        return res
    finally:
        if proc.poll() is None:
            kill_group(proc, grace=1)
    data = parse_json_line(out)
    res.peak_rss = memory(rs.proc.pid)[1]
    if data is None:
        tail = (err or out).strip().splitlines()[-3:]
        res.error = f"loadgen exit {proc.returncode}, no JSON: {' | '.join(tail)}"[:300]
        return res
    res.messages = int(data.get("messages", 0))
    res.msgs_per_s = float(data.get("msgs_per_s", 0.0))
    res.bytes_per_s = float(data.get("bytes_per_s", 0.0))
    res.rtt_us = {k: float(v) for k, v in (data.get("rtt_us") or {}).items()}
    res.mismatches = int(data.get("mismatches", 0))
    res.errors = int(data.get("errors", 0)) + int(data.get("streams_failed", 0))
    window = t1 - t0
    if res.msgs_per_s > 0 and window > 0:
        res.cpu_us_per_msg = (c1 - c0) / window / res.msgs_per_s * 1e6
        res.server_cpu_pct = (c1 - c0) / window * 100
    if res.mismatches:
        res.error = f"{res.mismatches} mismatches"
    elif res.messages == 0 and shape.scenario != "bulk":
        last = " | ".join(err.strip().splitlines()[-1:])
        res.error = f"no message echoed{': ' + last if last else ''}"[:300]
    unclean = int(data.get("unclean_ends", 0))
    if unclean:
        res.warning = f"{unclean} unclean end(s): connection closed before END_STREAM"
    if proc.returncode != 0 and not res.error:
        tail = err.strip().splitlines()[-2:]
        res.warning = f"loadgen exit {proc.returncode}: {' | '.join(tail)}"[:300]
        if res.messages == 0:
            res.error, res.warning = res.warning, ""
    res.ok = not res.error
    return res


def run_idle(rs: RunningServer, proto: str, shape: Shape, cfg: Config) -> Result:
    """Opens shape.streams WebSockets, holds them idle, reads the server's RSS."""
    server = rs.server
    res = Result(
        "idle", server.key, target_name(server, proto), proto, False, shape.streams, 0, 0, None
    )
    time.sleep(0.3)
    before = memory(rs.proc.pid)[0]
    cmd = loadgen_cmd(proto, False, rs.port, shape, cfg)
    cmd += ["-d", f"{cfg.idle_timeout:g}", "--warmup", "0", "--hold"]
    if proto != "h2":
        # 10,000 handshakes at once overrun the slower servers' accept loops on a busy
        # machine (the loadgen gives each connection 10 s): open them at a steady pace.
        cmd += ["--connect-rate", "2000"]
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(),
        start_new_session=True,
        preexec_fn=raise_nofile,
        text=True,
    )
    try:
        ready = read_ready(proc, cfg.idle_timeout)
        if ready is None:
            kill_group(proc, grace=2)
            err = proc.stderr.read() if proc.stderr else ""
            tail = " | ".join(err.strip().splitlines()[-2:])
            res.error = f"loadgen never reported ready: {tail}"[:300]
            return res
        count = int(ready.get("streams", 0))
        time.sleep(cfg.idle_settle)
        after, hwm = memory(rs.proc.pid)
        res.idle_count = count
        res.peak_rss = hwm
        if count < shape.streams:
            res.error = f"only {count} of {shape.streams} WebSockets opened"
        if count > 0:
            res.idle_rss_per_ws = (after - before) / count
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=cfg.run_timeout)
        except subprocess.TimeoutExpired:
            res.error = res.error or "loadgen did not exit after stdin EOF"
    finally:
        kill_group(proc, grace=2)
        with contextlib.suppress(Exception):
            proc.communicate(timeout=2)
    res.ok = not res.error
    return res


def read_ready(proc: subprocess.Popen[str], timeout: float) -> Json | None:
    """The loadgen's {"ready": true, ...} line, or None after ``timeout`` or its exit."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    buf = ""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not sel.select(timeout=max(0.0, min(1.0, deadline - time.monotonic()))):
                if proc.poll() is not None:
                    return None
                continue
            chunk = os.read(proc.stdout.fileno(), 65536).decode(errors="replace")
            if not chunk:
                return None
            buf += chunk
            while "\n" in buf:
                line, buf = buf.split("\n", 1)
                data = parse_json_line(line)
                if data and data.get("ready"):
                    return data
    return None


def merge(results: list[Result]) -> Result:
    """The median of repeated runs of one shape (figure by figure)."""
    good = [r for r in results if r.ok] or results
    out = Result(**{**asdict(good[0]), "rtt_us": dict(good[0].rtt_us)})
    out.repeats = len(results)
    out.ok = all(r.ok for r in results)
    out.error = "; ".join(sorted({r.error for r in results if r.error}))
    out.warning = "; ".join(sorted({r.warning for r in results if r.warning}))
    out.mismatches = sum(r.mismatches for r in results)
    out.errors = sum(r.errors for r in results)
    if len(good) > 1:
        out.msgs_per_s = statistics.median(r.msgs_per_s for r in good)
        out.bytes_per_s = statistics.median(r.bytes_per_s for r in good)
        cpu = [r.cpu_us_per_msg for r in good if r.cpu_us_per_msg is not None]
        out.cpu_us_per_msg = statistics.median(cpu) if cpu else None
        out.peak_rss = max(r.peak_rss for r in good)
        for k in out.rtt_us:
            out.rtt_us[k] = statistics.median(r.rtt_us.get(k, 0.0) for r in good)
    return out


# --------------------------------------------------------------------------- plan


@dataclass
class Config:
    smoke: bool
    duration: float
    warmup: float
    repeat: int
    only: re.Pattern[str] | None
    bulk_duration: float
    idle_count_h2: tuple[int, int]  #: (connections, streams per connection)
    idle_count_h1: int
    idle_timeout: float = 120.0
    idle_settle: float = 1.0
    run_timeout: float = 30.0

    def duration_for(self, shape: Shape) -> float:
        return self.bulk_duration if shape.scenario == "bulk" else self.duration


def shapes(cfg: Config, server: Server, proto: str) -> list[Shape]:
    """Every cleartext shape this server and protocol run (idle and bulk windows apart)."""
    out: list[Shape] = []
    full = server.full and not cfg.smoke
    lat_sizes = [16, 256, 8 * KIB, 100_000] if full else [256]
    out += [Shape("latency", 1, s, 1, same_core=True) for s in lat_sizes]
    if cfg.smoke:
        tp = [(10, 1 * KIB)] if server.full else []
    elif server.full:
        tp = [(n, s) for s in (20, 1 * KIB, 16 * KIB) for n in (1, 10, 100, 1000)]
    else:
        tp = [(n, 1 * KIB) for n in (1, 100)]
    out += [Shape("throughput", n, s, max(1, THROUGHPUT_INFLIGHT // n)) for n, s in tp]
    out.append(Shape("goal", 100, 256, 1))
    return out


def bulk_windows(cfg: Config, server: Server, proto: str) -> list[int | None]:
    if not server.full and not (server.key == "h2ws-handler" and not cfg.smoke):
        return []
    if proto == "h2" and server.window:
        return [1 * MIB] if cfg.smoke else [64 * KIB, 1 * MIB, 16 * MIB]
    return [None]


TLS_SERVERS = ("h2ws", "node", "hypercorn", "picows", "websockets")


def tls_shapes(cfg: Config) -> list[Shape]:
    if cfg.smoke:
        return [Shape("tls", 100, 256, 1)]
    return [
        Shape("tls", 1, 256, 1, same_core=True),
        Shape("tls", 100, 256, 1),
        Shape("tls", 1, 16 * KIB, THROUGHPUT_INFLIGHT),
    ]


def idle_shape(cfg: Config, proto: str) -> Shape:
    if proto == "h2":
        c, s = cfg.idle_count_h2
        return Shape("idle", c * s, 16, 1, conns_h2=c)
    return Shape("idle", cfg.idle_count_h1, 16, 1)


@dataclass
class Launch:
    """One server start and the runs done against it."""

    server: Server
    tls: bool
    window: int | None
    runs: list[tuple[str, Shape]]  #: (proto, shape)
    idle: bool = False


def selected(cfg: Config, scenario: str, server: Server, proto: str) -> bool:
    if cfg.only is None:
        return True
    return bool(cfg.only.search(f"{scenario}:{server.key}:{proto}"))


def plan(cfg: Config) -> list[Launch]:
    launches: list[Launch] = []
    for server in SERVER_LIST:
        runs = [
            (p, s)
            for p in server.protos
            for s in shapes(cfg, server, p)
            if selected(cfg, s.scenario, server, p)
        ]
        bulk_default = [
            (p, Shape("bulk", 1, 16 * MIB, 1))
            for p in server.protos
            if None in bulk_windows(cfg, server, p) and selected(cfg, "bulk", server, p)
        ]
        runs += bulk_default
        if runs:
            launches.append(Launch(server, False, None, runs))
        windows = sorted(
            {w for p in server.protos for w in bulk_windows(cfg, server, p) if w is not None}
        )
        for w in windows:
            runs = [
                (p, Shape("bulk", 1, 16 * MIB, 1, window=w))
                for p in server.protos
                if w in bulk_windows(cfg, server, p) and selected(cfg, "bulk", server, p)
            ]
            if runs:
                launches.append(Launch(server, False, w, runs))
        if server.full or server.key == "h2ws-handler":
            runs = [
                (p, idle_shape(cfg, p))
                for p in server.protos
                if p != "tcp" and selected(cfg, "idle", server, p)
            ]
            if runs:
                launches.append(Launch(server, False, None, runs, idle=True))
        if server.key in (("h2ws",) if cfg.smoke else (*TLS_SERVERS, "h2ws-handler")):
            runs = [
                (p, s)
                for p in server.protos
                if p != "tcp"
                for s in tls_shapes(cfg)
                if selected(cfg, "tls", server, p)
            ]
            if runs:
                launches.append(Launch(server, True, None, runs))
    return launches


# --------------------------------------------------------------------------- driver


def ensure_cert() -> None:
    if (CERT_DIR / "cert.pem").exists() and (CERT_DIR / "key.pem").exists():
        return
    CERT_DIR.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "365",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(CERT_DIR / "key.pem"),
            "-out",
            str(CERT_DIR / "cert.pem"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )


def describe(proto: str, shape: Shape) -> str:
    unit = "streams" if proto == "h2" else "conns"
    text = f"{shape.scenario:<10} {PROTO_NAME[proto]:<8} {shape.streams:>5} {unit:<7}"
    if shape.scenario != "idle":
        text += f" {human_size(shape.size):>7} x{shape.inflight:<3}"
    if shape.window:
        text += f" window {human_size(shape.window)}"
    return text


def execute(cfg: Config, launches: list[Launch], log_dir: Path) -> tuple[list[Result], list[str]]:
    results: list[Result] = []
    failures: list[str] = []
    for launch in launches:
        server = launch.server
        what = f"{server.label}{' TLS' if launch.tls else ''}"
        if launch.window:
            what += f" (window {human_size(launch.window)})"
        print(f"== {what}", flush=True)
        rs = RunningServer(server, launch.tls, launch.window, log_dir)
        try:
            why = rs.wait_ready()
            if why:
                failures.append(f"{what}: server did not start: {why}")
                print(f"   FAILED to start: {why}", flush=True)
                for proto, shape in launch.runs:
                    r = Result(
                        shape.scenario,
                        server.key,
                        target_name(server, proto, launch.tls),
                        proto,
                        launch.tls,
                        shape.streams,
                        shape.size,
                        shape.inflight,
                        shape.window,
                        error="server did not start",
                    )
                    results.append(r)
                continue
            for proto, shape in launch.runs:
                if launch.idle:
                    r = run_idle(rs, proto, shape, cfg)
                else:
                    reps = [run_load(rs, proto, launch.tls, shape, cfg) for _ in range(cfg.repeat)]
                    r = merge(reps)
                results.append(r)
                line = f"   {describe(proto, shape)}"
                if shape.scenario == "idle":
                    if r.idle_rss_per_ws is not None:
                        line += f" {r.idle_count} open, {r.idle_rss_per_ws:,.0f} B RSS each"
                else:
                    line += f" {r.msgs_per_s:>10,.0f} msg/s"
                    if r.rtt_us:
                        line += f"  p50 {r.rtt_us.get('p50', 0):8.1f} us"
                    if r.cpu_us_per_msg is not None:
                        line += f"  cpu {r.cpu_us_per_msg:7.2f} us/msg"
                if r.warning:
                    line += f"  warning: {r.warning}"
                if r.error:
                    line += f"  ERROR: {r.error}"
                    if r.mismatches or "no JSON" in r.error or "timed out" in r.error:
                        failures.append(f"{what} {describe(proto, shape)}: {r.error}")
                print(line, flush=True)
            if rs.proc.poll() is not None:
                failures.append(f"{what}: server died (status {rs.proc.returncode})")
        finally:
            rs.stop()
    return results, failures


# --------------------------------------------------------------------------- report


def version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def command_output(argv: Sequence[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, env=child_env())
        return out.stdout.strip() or out.stderr.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"


def machine() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    try:
        from h2ws import _core

        nghttp2 = str(_core.nghttp2_version())
    except Exception:  # noqa: BLE001 - a report, not a check
        nghttp2 = command_output(["pkg-config", "--modversion", "libnghttp2"])
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "h2ws": version("h2ws"),
        "libnghttp2": nghttp2,
        "OpenSSL": ssl.OPENSSL_VERSION,
        "node": command_output(["node", "--version"]),
        "websockets": version("websockets"),
        "aiohttp": version("aiohttp"),
        "picows": version("picows"),
        "hypercorn": version("hypercorn"),
        "h2 (python-hyper)": version("h2"),
        "uvicorn": version("uvicorn"),
        "uvloop": version("uvloop"),
        "httptools": version("httptools"),
    }


def find(
    results: list[Result],
    scenario: str,
    server: str,
    proto: str,
    *,
    tls: bool = False,
    size: int | None = None,
    streams: int | None = None,
    window: int | None | str = "any",
) -> Result | None:
    for r in results:
        if (
            r.scenario == scenario
            and r.server == server
            and r.proto == proto
            and r.tls == tls
            and (size is None or r.size == size)
            and (streams is None or r.streams == streams)
            and (window == "any" or r.window == window)
            and r.ok
        ):
            return r
    return None


@dataclass
class Goal:
    text: str
    figure: str
    met: bool | None  #: None: not measured


def ratio_goal(
    text: str,
    num: float | None,
    den: float | None,
    want: float,
    *,
    at_most: bool = False,
    unit: str = "",
) -> Goal:
    if not num or not den:
        return Goal(text, "not measured", None)
    ratio = num / den
    met = ratio <= want if at_most else ratio >= want
    digits = 1 if unit == " µs" else 0
    return Goal(text, f"{ratio:.2f}× ({num:,.{digits}f}{unit} vs {den:,.{digits}f}{unit})", met)


#: The two ways of writing the echo the goals are checked with: the callback
#: API (as picows and Node's handler are written) and the ``async for`` handler.
GOAL_SERVERS = (("h2ws", "callback API"), ("h2ws-handler", "`async for` handler"))


def goals(results: list[Result], me: str = "h2ws") -> list[Goal]:
    """The issue's goals for the h2ws server variant ``me``."""
    out: list[Goal] = []

    def rate(server: str, proto: str, tls: bool = False, scenario: str = "goal") -> float | None:
        r = find(results, scenario, server, proto, tls=tls, size=256, streams=100)
        return r.msgs_per_s if r else None

    h2ws_h2, h2ws_h1 = rate(me, "h2"), rate(me, "h1")
    hyper = [v for v in (rate("hypercorn", "h2"), rate("hypercorn-nodelay", "h2")) if v]
    out.append(
        ratio_goal(
            "256 B × 100 streams, HTTP/2: ≥ 10× Hypercorn (the faster variant)",
            h2ws_h2,
            max(hyper) if hyper else None,
            10.0,
            unit=" msg/s",
        )
    )
    out.append(
        ratio_goal(
            "256 B × 100 streams, HTTP/2: ≥ 1.0× Node http2",
            h2ws_h2,
            rate("node", "h2"),
            1.0,
            unit=" msg/s",
        )
    )
    out.append(
        ratio_goal(
            "256 B × 100 connections, HTTP/1.1: ≥ 1.0× picows",
            h2ws_h1,
            rate("picows", "h1"),
            1.0,
            unit=" msg/s",
        )
    )
    out.append(
        ratio_goal(
            "256 B × 100 connections, HTTP/1.1: ≥ 3× websockets",
            h2ws_h1,
            rate("websockets", "h1"),
            3.0,
            unit=" msg/s",
        )
    )

    def p50(server: str, proto: str) -> float | None:
        r = find(results, "latency", server, proto, size=256)
        return r.rtt_us.get("p50") if r else None

    out.append(
        ratio_goal(
            "latency 256 B, p50: HTTP/2 ≤ 1.1× h2ws's HTTP/1.1",
            p50(me, "h2"),
            p50(me, "h1"),
            1.1,
            at_most=True,
            unit=" µs",
        )
    )
    out.append(
        ratio_goal(
            "latency 256 B, p50: HTTP/1.1 ≤ 2× the bare TCP echo",
            p50(me, "h1"),
            p50("tcp", "tcp"),
            2.0,
            at_most=True,
            unit=" µs",
        )
    )
    bulk = [
        r
        for r in results
        if r.scenario == "bulk" and r.server == me and r.proto == "h2" and r.ok and r.msgs_per_s > 0
    ]
    if bulk:
        best = max(bulk, key=lambda r: r.msgs_per_s)
        gbps = best.msgs_per_s * best.size / 1e9
        out.append(
            Goal(
                "bulk 16 MiB on one HTTP/2 stream: ≥ 2 GB/s",
                f"{gbps:.2f} GB/s (window {human_size(best.window or 0)})",
                gbps >= 2.0,
            )
        )
    else:
        out.append(Goal("bulk 16 MiB on one HTTP/2 stream: ≥ 2 GB/s", "not measured", None))
    idle = find(results, "idle", me, "h2")
    if idle and idle.idle_rss_per_ws is not None:
        out.append(
            Goal(
                f"idle RSS per HTTP/2 WebSocket with {idle.idle_count:,} held: ≤ 2 KiB",
                f"{idle.idle_rss_per_ws:,.0f} B",
                idle.idle_rss_per_ws <= 2048,
            )
        )
    else:
        out.append(Goal("idle RSS per HTTP/2 WebSocket: ≤ 2 KiB", "not measured", None))
    for proto in ("h2", "h1"):
        tls = find(results, "tls", me, proto, tls=True, size=256, streams=100)
        out.append(
            ratio_goal(
                f"TLS ≥ 0.7× cleartext, {PROTO_NAME[proto]}, 256 B × 100",
                tls.msgs_per_s if tls else None,
                rate(me, proto),
                0.7,
                unit=" msg/s",
            )
        )
    return out


def fmt_rate(v: float) -> str:
    return f"{v:,.0f}" if v else "–"


def fmt_rss(n: float) -> str:
    return f"{n / MIB:,.1f} MiB" if n else "–"


def ratio_to(value: float, ref: float | None, *, lower_better: bool = False) -> str:
    if not value or not ref:
        return "–"
    return f"{(ref / value) if lower_better else (value / ref):.2f}"


def cpu_cell(r: Result) -> str:
    return f"{r.cpu_us_per_msg:.2f}" if r.cpu_us_per_msg is not None else "–"


def err_cell(r: Result) -> str:
    text = r.error or r.warning
    return text.replace("|", "/") if text else ""


def table(head: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines + [""]


def order_key(r: Result) -> tuple[int, int]:
    keys = [s.key for s in SERVER_LIST]
    return (keys.index(r.server) if r.server in keys else 99, ["h2", "h1", "tcp"].index(r.proto))


def ref_for(results: list[Result], r: Result, **kw: Any) -> Result | None:
    """The h2ws run of the same shape and protocol family (h2ws h1 for h1 and tcp)."""
    proto = "h2" if r.proto == "h2" else "h1"
    return find(results, r.scenario, "h2ws", proto, tls=r.tls, size=r.size, streams=r.streams, **kw)


def report(
    cfg: Config,
    results: list[Result],
    failures: list[str],
    mach: dict[str, str],
    out: Path,
    img_dir: Path,
    plots: list[str],
    elapsed: float,
) -> str:
    lines: list[str] = [
        "# Benchmarks: h2ws next to its peers",
        "",
        "Generated by `make bench` (`benchmarks/run.py`) on "
        f"{mach.get('date', '?')}; do not edit by hand. How it works and how to read it: "
        "[benchmarking.md](benchmarking.md).",
        "",
        f"Every server ran in one process pinned to core {SERVER_CPU}; `build/loadgen` ran on "
        f"core {LOAD_CPU} (throughput, goal, bulk) or on the server's core (latency). "
        f"Measured {cfg.duration:g} s per run after {cfg.warmup:g} s of warm-up "
        f"(bulk {cfg.bulk_duration:g} s), {cfg.repeat} repetition(s) per shape "
        f"(medians); the whole run took {elapsed / 60:.1f} min. Every echoed byte was checked "
        f"by the loadgen: {sum(r.mismatches for r in results)} mismatches in "
        f"{sum(1 for r in results if r.msgs_per_s > 0)} runs that echoed. "
        "Ratios are to h2ws on the same protocol (HTTP/1.1 for the TCP floor): "
        "> 1 means faster than h2ws for rates, and for latency how many times h2ws's latency "
        "the server's is.",
        "",
    ]
    if cfg.smoke:
        lines += [
            "**Smoke run** (`--smoke`): a fraction of a second per run, figures indicative only.",
            "",
        ]
    lines += ["## Goals (issue 7)", ""]
    lines += [
        "Each goal is checked twice: with the echo written on the callback API "
        "(`WebSocketProtocol.message_received`, as the picows and Node echoes are "
        "written) and with the `async for message in ws` handler of the README.",
        "",
    ]
    rows = []
    per_api = [goals(results, key) for key, _ in GOAL_SERVERS]
    for row in zip(*per_api, strict=True):
        cells = [row[0].text]
        for g in row:
            state = "not measured" if g.met is None else ("**met**" if g.met else "**missed**")
            cells += [g.figure, state]
        rows.append(cells)
    header = ["goal"]
    for _, label in GOAL_SERVERS:
        header += [f"h2ws, {label}", ""]
    lines += table(header, rows)
    if failures:
        lines += ["## Failures", ""] + [f"- {f}" for f in failures] + [""]

    lines += ["## Machine", ""]
    lines += table(["", ""], [[k, v] for k, v in mach.items()])
    lines += ["Servers:", ""]
    for s in SERVER_LIST:
        lines.append(f"- **{s.label}** ({', '.join(PROTO_NAME[p] for p in s.protos)}): {s.note}")
    lines += [
        "",
        "Hypercorn 0.18 already sets TCP_NODELAY (on its listening socket, and uvloop on each "
        "accepted one), so its two variants differ only by an explicit `setsockopt` per "
        "connection. Hypercorn has no option for the HTTP/2 stream window: it keeps "
        "h2's 64 KiB default in the bulk runs. Over HTTP/2 it ends a WebSocket by closing "
        "the TCP connection rather than the stream (the loadgen counts an unclean end, shown "
        "as a warning), and it cannot hold 1,000 streams on one connection: its priority "
        "tree (the `priority` package) refuses the 1,001st stream (`TooManyStreamsError`) "
        "and Hypercorn drops the connection, so its 1,000-stream and idle HTTP/2 rows are "
        "empty.",
        "",
    ]

    def section(title: str, scenario: str, intro: str, image: str | None) -> None:
        rs = sorted((r for r in results if r.scenario == scenario), key=order_key)
        if not rs:
            return
        lines.extend([f"## {title}", "", intro, ""])
        if image and image in plots:
            lines.extend([f"![{title}]({img_dir.name}/{image})", ""])
        if scenario == "latency":
            head = [
                "server",
                "size",
                "p50 µs",
                "p99 µs",
                "p99.9 µs",
                "max µs",
                "msgs/s",
                "CPU µs/msg",
                "p50 ÷ h2ws",
                "peak RSS",
                "",
            ]
            body = []
            for r in sorted(rs, key=lambda r: (r.size, order_key(r))):
                ref = ref_for(results, r)
                p50 = r.rtt_us.get("p50", 0.0)
                body.append(
                    [
                        r.target,
                        human_size(r.size),
                        f"{p50:.1f}",
                        f"{r.rtt_us.get('p99', 0):.1f}",
                        f"{r.rtt_us.get('p999', 0):.1f}",
                        f"{r.rtt_us.get('max', 0):.0f}",
                        fmt_rate(r.msgs_per_s),
                        cpu_cell(r),
                        ratio_to(p50, ref.rtt_us.get("p50") if ref else None, lower_better=False),
                        fmt_rss(r.peak_rss),
                        err_cell(r),
                    ]
                )
            lines.extend(table(head, body))
        elif scenario in ("throughput", "goal", "tls"):
            head = [
                "server",
                "streams/conns",
                "size",
                "in flight",
                "msgs/s",
                "MB/s",
                "CPU µs/msg",
                "server CPU %",
                "p50 µs",
                "p99 µs",
                "÷ h2ws",
                "peak RSS",
                "",
            ]
            body = []
            for r in sorted(rs, key=lambda r: (r.size, r.streams, r.tls, order_key(r))):
                ref = ref_for(results, r)
                body.append(
                    [
                        r.target,
                        str(r.streams),
                        human_size(r.size),
                        str(r.inflight),
                        fmt_rate(r.msgs_per_s),
                        f"{r.msgs_per_s * r.size / 1e6:,.1f}",
                        cpu_cell(r),
                        f"{r.server_cpu_pct:.0f}" if r.server_cpu_pct is not None else "–",
                        f"{r.rtt_us.get('p50', 0):.0f}",
                        f"{r.rtt_us.get('p99', 0):.0f}",
                        ratio_to(r.msgs_per_s, ref.msgs_per_s if ref else None),
                        fmt_rss(r.peak_rss),
                        err_cell(r),
                    ]
                )
            lines.extend(table(head, body))
            if scenario == "tls":
                body = []
                for r in sorted(rs, key=lambda r: (r.size, r.streams, order_key(r))):
                    clear = [
                        c
                        for c in results
                        if c.server == r.server
                        and c.proto == r.proto
                        and not c.tls
                        and c.size == r.size
                        and c.streams == r.streams
                        and c.scenario in ("latency", "throughput", "goal")
                        and c.ok
                        and c.inflight == r.inflight
                    ]
                    if clear:
                        c = clear[0]
                        body.append(
                            [
                                r.target,
                                str(r.streams),
                                human_size(r.size),
                                fmt_rate(r.msgs_per_s),
                                fmt_rate(c.msgs_per_s),
                                ratio_to(r.msgs_per_s, c.msgs_per_s),
                            ]
                        )
                if body:
                    lines.extend(["TLS against cleartext (same server, same shape):", ""])
                    lines.extend(
                        table(
                            [
                                "server",
                                "streams/conns",
                                "size",
                                "TLS msgs/s",
                                "cleartext msgs/s",
                                "TLS ÷ cleartext",
                            ],
                            body,
                        )
                    )
        elif scenario == "bulk":
            head = [
                "server",
                "stream window",
                "messages",
                "GB/s",
                "CPU µs/MiB",
                "÷ h2ws",
                "peak RSS",
                "",
            ]
            body = []
            for r in sorted(rs, key=lambda r: (order_key(r), r.window or 0)):
                gbps = r.msgs_per_s * r.size / 1e9
                ref = ref_for(results, r, window=r.window)
                per_mib = (
                    f"{r.cpu_us_per_msg / (r.size / MIB):.0f}"
                    if r.cpu_us_per_msg is not None
                    else "–"
                )
                body.append(
                    [
                        r.target,
                        human_size(r.window) if r.window else "default",
                        str(r.messages),
                        f"{gbps:.2f}",
                        per_mib,
                        ratio_to(r.msgs_per_s, ref.msgs_per_s if ref else None),
                        fmt_rss(r.peak_rss),
                        err_cell(r),
                    ]
                )
            lines.extend(table(head, body))
        elif scenario == "idle":
            head = ["server", "WebSockets held", "RSS per WebSocket", "÷ h2ws", "peak RSS", ""]
            body = []
            for r in rs:
                ref = ref_for(results, r)
                per = r.idle_rss_per_ws
                body.append(
                    [
                        r.target,
                        f"{r.idle_count:,}",
                        f"{per:,.0f} B" if per is not None else "–",
                        ratio_to(
                            per or 0.0, ref.idle_rss_per_ws if ref else None, lower_better=False
                        ),
                        fmt_rss(r.peak_rss),
                        err_cell(r),
                    ]
                )
            lines.extend(table(head, body))

    section(
        "Latency: 1 connection × 1 stream × 1 in flight, both ends on one core",
        "latency",
        "Round-trip times as the loadgen sees them (µs). `p50 ÷ h2ws` > 1: slower "
        "than h2ws on the same protocol.",
        "bench-latency.png",
    )
    section(
        "Goal shape: 256 B echo, 1 connection × 100 streams × 1 in flight (HTTP/2) "
        "against 100 connections (HTTP/1.1)",
        "goal",
        "Server and loadgen on different cores.",
        "bench-goal.png",
    )
    section(
        "Throughput: 1 connection × N streams (HTTP/2) against N connections (HTTP/1.1)",
        "throughput",
        f"Server and loadgen on different cores; {THROUGHPUT_INFLIGHT} "
        "messages in flight in all (at least 1 per stream).",
        "bench-throughput.png",
    )
    section(
        "Bulk: 16 MiB messages on one stream",
        "bulk",
        "One message in flight; GB/s counts the payload one way (10⁹ bytes/s). The window "
        "is the HTTP/2 stream window of both ends (`--window` of server and loadgen).",
        "bench-bulk.png",
    )
    section(
        "Idle memory: RSS per open WebSocket",
        "idle",
        "Server RSS (with its children) once every WebSocket is open and idle, minus its "
        "RSS before, divided by their number. HTTP/2: "
        f"{cfg.idle_count_h2[0]} connections × {cfg.idle_count_h2[1]:,} streams; HTTP/1.1: "
        f"{cfg.idle_count_h1:,} connections. `÷ h2ws` > 1: more memory than h2ws.",
        "bench-idle.png",
    )
    section(
        "TLS",
        "tls",
        "The same shapes over TLS (ALPN h2 or http/1.1); the loadgen does "
        "not verify the self-signed certificate.",
        None,
    )
    return "\n".join(lines).rstrip() + "\n"


def make_plots(results: list[Result], img_dir: Path) -> list[str]:
    """PNG plots (matplotlib, Agg); returns the file names written."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no plots", file=sys.stderr)
        return []
    img_dir.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    palette = plt.get_cmap("tab20").colors  # type: ignore[attr-defined]  # pairs: dark for HTTP/2, light for HTTP/1.1
    keys = [s.key for s in SERVER_LIST]

    def style(r: Result) -> dict[str, Any]:
        """One color per server and protocol, the same in every plot."""
        if r.proto == "tcp":
            return {"color": "black", "linestyle": ":"}
        i = keys.index(r.server) if r.server in keys else 0
        color = palette[(2 * i + (r.proto == "h1")) % len(palette)]
        return {"color": color, "linestyle": "-" if r.proto == "h2" else "--"}

    def bars(
        name: str,
        rs: list[Result],
        value: Callable[[Result], float],
        ylabel: str,
        title: str,
        groups: Callable[[Result], str],
        log: bool = False,
    ) -> None:
        rs = [r for r in sorted(rs, key=order_key) if r.ok]
        if not rs:
            return
        group_names = list(dict.fromkeys(groups(r) for r in sorted(rs, key=lambda r: r.size)))
        targets = list(dict.fromkeys(r.target for r in rs))
        bars_n = len(targets) * len(group_names)
        fig, ax = plt.subplots(figsize=(min(14.0, 5.0 + 0.15 * bars_n), 4.5))
        width = 0.8 / max(1, len(targets))
        for i, t in enumerate(targets):
            xs, ys = [], []
            for j, g in enumerate(group_names):
                match = [r for r in rs if r.target == t and groups(r) == g]
                if match:
                    xs.append(j + i * width)
                    ys.append(value(match[0]))
            first = next(r for r in rs if r.target == t)
            ax.bar(xs, ys, width, label=t, color=style(first)["color"])
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(group_names))])
        ax.set_xticklabels(group_names)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        if log:
            ax.set_yscale("log")
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        fig.savefig(img_dir / name, dpi=90)
        plt.close(fig)
        written.append(name)

    bars(
        "bench-latency.png",
        [r for r in results if r.scenario == "latency"],
        lambda r: r.rtt_us.get("p50", 0.0),
        "p50 round trip (µs)",
        "Latency: 1 × 1 × 1, one core",
        lambda r: human_size(r.size),
        log=True,
    )
    bars(
        "bench-goal.png",
        [r for r in results if r.scenario == "goal"],
        lambda r: r.msgs_per_s,
        "messages/s",
        "256 B echo, 100 streams / 100 connections",
        lambda r: "256 B × 100",
    )
    bars(
        "bench-bulk.png",
        [r for r in results if r.scenario == "bulk"],
        lambda r: r.msgs_per_s * r.size / 1e9,
        "GB/s",
        "16 MiB messages, one stream",
        lambda r: human_size(r.window) if r.window else "default window",
    )
    bars(
        "bench-idle.png",
        [r for r in results if r.scenario == "idle"],
        lambda r: r.idle_rss_per_ws or 0.0,
        "bytes of RSS per WebSocket",
        "Idle WebSockets",
        lambda r: "idle",
    )

    full = {s.key for s in SERVER_LIST if s.full}  # the variants run two shapes only
    tp = [r for r in results if r.scenario == "throughput" and r.ok and r.server in full]
    sizes = sorted({r.size for r in tp})
    if tp:
        fig, axes = plt.subplots(1, len(sizes), figsize=(5 * len(sizes) + 2, 4.5), squeeze=False)
        for ax, size in zip(axes[0], sizes, strict=True):
            for t in dict.fromkeys(r.target for r in sorted(tp, key=order_key)):
                pts = sorted(
                    (r.streams, r.msgs_per_s) for r in tp if r.target == t and r.size == size
                )
                if pts:
                    first = next(r for r in tp if r.target == t)
                    ax.plot(
                        [p[0] for p in pts],
                        [p[1] for p in pts],
                        marker="o",
                        label=t,
                        **style(first),
                    )
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("streams (HTTP/2) / connections (HTTP/1.1)")
            ax.set_ylabel("messages/s")
            ax.set_title(f"Throughput, {human_size(size)}")
            ax.grid(alpha=0.3)
        axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
        fig.tight_layout()
        fig.savefig(img_dir / "bench-throughput.png", dpi=90)
        plt.close(fig)
        written.append("bench-throughput.png")
    return written


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--smoke",
        "--quick",
        action="store_true",
        dest="smoke",
        help="a fraction of a second per run, fewer shapes, every scenario and peer "
        "once; writes build/bench-smoke/ unless --out is given",
    )
    p.add_argument(
        "--only",
        metavar="REGEX",
        help="runs whose 'scenario:server:proto' matches, e.g. goal, ':h2ws:', 'latency:.*:h1'",
    )
    p.add_argument("--duration", type=float, help="measured seconds per run (default 2, smoke 0.3)")
    p.add_argument("--warmup", type=float, help="warm-up seconds per run (default 0.5, smoke 0.1)")
    p.add_argument("--repeat", type=int, default=1, help="runs per shape, medians reported")
    p.add_argument("--out", type=Path, help="the Markdown page (default docs/benchmarks.md)")
    p.add_argument("--json", type=Path, help="also write every result as JSON here")
    p.add_argument("--list", action="store_true", help="print the plan and exit")
    p.add_argument(
        "--from-json",
        type=Path,
        metavar="FILE",
        help="run nothing: rewrite the page and plots from a --json file",
    )
    args = p.parse_args(argv)
    if args.repeat < 1 or (args.duration is not None and args.duration <= 0):
        p.error("--repeat must be >= 1 and --duration > 0")
    return args


def config_from(args: argparse.Namespace) -> Config:
    """The run's settings from the command line (smoke mode shrinks everything)."""
    smoke = bool(args.smoke)
    return Config(
        smoke=smoke,
        duration=args.duration or (0.3 if smoke else 2.0),
        warmup=args.warmup if args.warmup is not None else (0.1 if smoke else 0.5),
        repeat=args.repeat,
        only=re.compile(args.only) if args.only else None,
        bulk_duration=args.duration or (0.5 if smoke else 3.0),
        idle_count_h2=(2, 50) if smoke else (10, 1000),
        idle_count_h1=100 if smoke else 10_000,
        idle_timeout=30.0 if smoke else 180.0,
        idle_settle=0.3 if smoke else 1.0,
        run_timeout=20.0 if smoke else 60.0,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    smoke = args.smoke
    cfg = config_from(args)
    out: Path = args.out or (
        ROOT / "build" / "bench-smoke" / "benchmarks.md"
        if smoke
        else ROOT / "docs" / "benchmarks.md"
    )
    img_dir = out.parent / "img"
    launches = plan(cfg)
    if args.list:
        for launch in launches:
            print(f"{launch.server.label} tls={launch.tls} window={launch.window}")
            for proto, shape in launch.runs:
                print(f"   {describe(proto, shape)}")
        return 0
    if not launches:
        print("nothing matches --only", file=sys.stderr)
        return 2
    missing = [str(p) for p in (LOADGEN, TCP_ECHO) if not p.exists()]
    if missing and not args.from_json:
        print(f"missing {', '.join(missing)}: run `make loadgen tcp_echo`", file=sys.stderr)
        return 1
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        fields = Result.__dataclass_fields__
        results = [Result(**{k: v for k, v in r.items() if k in fields}) for r in saved["results"]]
        failures, mach = list(saved.get("failures", [])), dict(saved["machine"])
        elapsed = float(saved.get("elapsed", 0.0))
        for name, value in saved.get("config", {}).items():
            if hasattr(cfg, name) and name != "only":
                setattr(cfg, name, tuple(value) if isinstance(value, list) else value)
    else:
        ensure_cert()
        log_dir = ROOT / "build" / ("bench-smoke" if smoke else "bench") / "logs"
        mach = machine()
        started = time.monotonic()
        results, failures = execute(cfg, launches, log_dir)
        elapsed = time.monotonic() - started
    plots = make_plots(results, img_dir)
    page = report(cfg, results, failures, mach, out, img_dir, plots, elapsed)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page)
    for key, label in GOAL_SERVERS:
        print(f"\ngoals, h2ws {label}:")
        for g in goals(results, key):
            state = "not measured" if g.met is None else ("met" if g.met else "MISSED")
            print(f"  {state:<12} {g.text}: {g.figure}")
    print(f"\nwrote {out} and {len(plots)} plots in {img_dir} ({elapsed:.0f} s)")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": mach,
                    "results": [asdict(r) for r in results],
                    "goals": {k: [asdict(g) for g in goals(results, k)] for k, _ in GOAL_SERVERS},
                    "failures": failures,
                    "elapsed": elapsed,
                    "config": {k: v for k, v in asdict(cfg).items() if k != "only"},
                },
                indent=1,
            )
        )
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
