"""Codec benchmarks: RFC 6455 unmasking and parsing, h2ws next to its peers.

Run by `make bench`, or directly:

    .venv/bin/python benchmarks/bench_codec.py [--quick]

Not a test: it prints the machine, one table per topic and the issue's goals
met or missed, and exits 0 whatever the numbers. Every figure is the median
of several repeats, each long enough for the clock to be precise; `--quick`
shortens everything to a few seconds in total (a smoke run for CI: the
figures are then only indicative).

Unmasking compares, at 125 B, 16 KiB and 1 MiB, two plain copies (the
floor), h2ws (`mask_into` in place, `mask` allocating), `websockets`
(`speedups.apply_mask`, allocating) and aiohttp (its Cython mask, in place).
GB/s are 10**9 bytes per second, through one Python call per buffer.

Parsing feeds a buffer of many masked text frames to
`WebSocketCodec.receive_data` in one call (each message becomes a tuple and
a str), then the same buffer to `_core.bench_parse`, which runs only the C
parser (unmask, UTF-8 validation, message assembly) and makes no Python
objects.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import os
import platform
import random
import statistics
import sys
import timeit
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from h2ws import _core

KIB = 1024
MIB = 1024 * 1024
MASK_SIZES = (125, 16 * KIB, 1 * MIB)

GOAL_GBPS_16K = 20.0
GOAL_NS_SMALL_FRAME = 50.0


@dataclass(frozen=True)
class Budget:
    """How long each measurement runs."""

    seconds: float  # minimum duration of one repeat
    repeats: int  # the median of this many repeats is reported


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="brief runs (CI smoke test, a few seconds)")
    return p.parse_args()


# --------------------------------------------------------------------------
# Timing


class Measurement:
    """Seconds per operation of one thing, sampled in repeats of `number` operations.

    `run(n)` performs n operations and returns the seconds they took. The
    constructor calibrates n so that one repeat lasts at least budget.seconds.
    """

    def __init__(self, run: Callable[[int], float], budget: Budget) -> None:
        self.run = run
        number = 1
        while True:
            t = run(number)
            if t >= budget.seconds:
                break
            number = max(number * 2, int(number * budget.seconds / max(t, 1e-9) * 1.2))
        self.number = number
        self.samples = [t / number]

    def sample(self) -> None:
        self.samples.append(self.run(self.number) / self.number)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


def python_stmt(stmt: str, names: dict[str, Any]) -> Callable[[int], float]:
    """A runner for `stmt`, its names bound as locals of the timing loop."""
    setup = "; ".join(f"{n} = _ns[{n!r}]" for n in names) or "pass"
    return timeit.Timer(stmt, setup=setup, globals={"_ns": names}).timeit


def c_parse(data: bytes) -> Callable[[int], float]:
    """A runner for the C parser alone over `data` (no Python objects)."""
    return lambda n: _core.bench_parse(data, n)


def measure_together(runs: list[Callable[[int], float]], budget: Budget) -> list[float]:
    """Median seconds per operation of each runner.

    The repeats are taken round-robin, so that things compared with each other
    see the same machine even when other work comes and goes.
    """
    ms = [Measurement(run, budget) for run in runs]
    for _ in range(budget.repeats - 1):
        for m in ms:
            m.sample()
    return [m.median for m in ms]


# --------------------------------------------------------------------------
# The machine


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def nproc() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:  # not available on this platform
        return None


def print_machine() -> None:
    info = _core.build_info()
    print(f"date:        {datetime.date.today().isoformat()}")
    print(f"cpu:         {cpu_model()}, nproc {nproc()}")
    print(f"python:      {platform.python_implementation()} {platform.python_version()}")
    print(f"websockets:  {version('websockets')}")
    print(f"aiohttp:     {version('aiohttp')}")
    print(f"h2ws:        mask_impl {info['mask_impl']}, debug build {info['debug']}")
    load = load_average()
    if load is not None:
        busy = load > nproc() / 2
        note = " (busy: other work shares the CPUs, figures are noisy)" if busy else ""
        print(f"load:        {load:.2f} (1-minute average){note}")
    if info["debug"] or info["sanitize"] or info["coverage"]:
        print("WARNING: this _core is not a release build; figures are meaningless.")


# --------------------------------------------------------------------------
# Unmasking


@dataclass
class MaskImpl:
    name: str
    group: str  # "floor", "h2ws" or "peer"
    in_place: bool
    stmt: str  # uses f, buf (bytearray), data (bytes), mv (memoryview), key
    fn: Callable[..., Any] | None


def mask_impls() -> list[MaskImpl]:
    impls = [
        MaskImpl("copy: bytes(bytearray)", "floor", False, "bytes(buf)", None),
        MaskImpl("copy: memoryview[:] = src", "floor", True, "mv[:] = data", None),
        MaskImpl("h2ws mask_into (in place)", "h2ws", True, "f(buf, key)", _core.mask_into),
        MaskImpl("h2ws mask (allocating)", "h2ws", False, "f(data, key)", _core.mask),
    ]
    try:
        from websockets.speedups import apply_mask
    except ImportError:
        print("websockets.speedups not available: websockets row skipped")
    else:
        impls.append(
            MaskImpl("websockets apply_mask (alloc.)", "peer", False, "f(data, key)", apply_mask)
        )
    aio = aiohttp_mask()
    if aio is not None:
        impls.append(MaskImpl("aiohttp mask (in place)", "peer", True, "f(key, buf)", aio))
    return impls


def aiohttp_mask() -> Callable[[bytes, bytearray], None] | None:
    """aiohttp's compiled mask function, wherever this version keeps it."""
    candidates = (
        ("aiohttp._websocket.mask", "_websocket_mask_cython"),  # aiohttp >= 3.11
        ("aiohttp._websocket", "_websocket_mask_cython"),  # aiohttp < 3.11
    )
    for module, attr in candidates:
        try:
            mod = __import__(module, fromlist=[attr])
            fn: Callable[[bytes, bytearray], None] = getattr(mod, attr)
        except (ImportError, AttributeError):
            continue
        return fn
    print("aiohttp's compiled mask not found: aiohttp row skipped")
    return None


def bench_masking(budget: Budget) -> tuple[dict[str, dict[int, float]], list[MaskImpl]]:
    impls = mask_impls()
    rng = random.Random(6455)
    key = rng.randbytes(4)
    results: dict[str, dict[int, float]] = {impl.name: {} for impl in impls}
    for size in MASK_SIZES:
        data = rng.randbytes(size)
        runs = []
        for impl in impls:
            names = {
                "f": impl.fn,
                "buf": bytearray(data),
                "data": data,
                "mv": memoryview(bytearray(size)),
                "key": key,
            }
            runs.append(python_stmt(impl.stmt, names))
        for impl, seconds in zip(impls, measure_together(runs, budget), strict=True):
            results[impl.name][size] = seconds
    return results, impls


def size_label(n: int) -> str:
    if n >= MIB and n % MIB == 0:
        return f"{n // MIB} MiB"
    if n >= KIB and n % KIB == 0:
        return f"{n // KIB} KiB"
    return f"{n} B"


def print_masking(results: dict[str, dict[int, float]], impls: list[MaskImpl]) -> list[str]:
    """Prints the table; returns the goal lines."""
    print()
    print("Unmasking: GB/s (ns per call), median; higher GB/s is better")
    head = f"{'':34}" + "".join(f"{size_label(s):>22}" for s in MASK_SIZES)
    print(head)
    print("-" * len(head))
    for impl in impls:
        cells = []
        for s in MASK_SIZES:
            t = results[impl.name][s]
            cells.append(f"{s / t / 1e9:8.2f} ({fmt_ns(t * 1e9)})")
        print(f"{impl.name:34}" + "".join(f"{c:>22}" for c in cells))

    def best(group: str, in_place: bool | None, s: int) -> tuple[str, float] | None:
        rows = [
            (i.name, results[i.name][s])
            for i in impls
            if i.group == group and (in_place is None or i.in_place == in_place)
        ]
        return min(rows, key=lambda r: r[1]) if rows else None

    print("-" * len(head))
    goals: list[str] = []
    ratio_rows = (
        ("h2ws / peer, in place", True),
        ("h2ws / peer, allocating", False),
        ("best h2ws / best peer", None),
    )
    all_ok = True
    for label, in_place in ratio_rows:
        cells = []
        for s in MASK_SIZES:
            ours, theirs = best("h2ws", in_place, s), best("peer", in_place, s)
            if ours is None or theirs is None:
                cells.append("n/a")
                continue
            ratio = theirs[1] / ours[1]  # time ratio = speed ratio
            all_ok = all_ok and ratio >= 1.0
            cells.append(f"{ratio:.2f}x")
        print(f"{label:34}" + "".join(f"{c:>22}" for c in cells))
    print("(ratios are speed: above 1.00x h2ws is faster; peers: websockets allocates,")
    print(" aiohttp masks a bytearray in place)")

    goals.append(
        f"unmasking at least as fast as the best peer at every size, like for like: "
        f"{'MET' if all_ok else 'MISSED'}"
    )
    t16 = results["h2ws mask_into (in place)"][16 * KIB]
    gbps = 16 * KIB / t16 / 1e9
    goals.append(
        f"unmasking >= {GOAL_GBPS_16K:.0f} GB/s at 16 KiB (mask_into): {gbps:.1f} GB/s, "
        f"{'MET' if gbps >= GOAL_GBPS_16K else 'MISSED'}"
    )
    return goals


def fmt_ns(ns: float) -> str:
    if ns >= 100_000:
        return f"{ns / 1000:.0f} us"
    if ns >= 10_000:
        return f"{ns / 1000:.1f} us"
    return f"{ns:.0f} ns"


# --------------------------------------------------------------------------
# Parsing


@dataclass(frozen=True)
class ParseCase:
    label: str
    payload_size: int
    frames: int
    ascii: bool = True


def parse_cases(quick: bool) -> list[ParseCase]:
    small, big, huge = (1_000, 16, 1) if quick else (10_000, 64, 4)
    return [
        ParseCase("16 B text", 16, small),
        ParseCase("125 B text", 125, small),
        ParseCase("16 KiB text", 16 * KIB, big),
        ParseCase("16 KiB text, non-ASCII", 16 * KIB, big, ascii=False),
        ParseCase("1 MiB text", 1 * MIB, huge),
    ]


NON_ASCII = "Grüße, Καλημέρα, здравствуйте, こんにちは, 你好, 🙂 — "


def text_payload(rng: random.Random, size: int, ascii: bool) -> bytes:
    """Exactly `size` bytes of valid UTF-8 (ASCII letters or a mix of scripts)."""
    if ascii:
        letters = b'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 {}:,"'
        return bytes(rng.choice(letters) for _ in range(size))
    chunk = NON_ASCII.encode()
    out = (chunk * (size // len(chunk) + 1))[:size]
    while True:  # cut back to a character boundary, pad with ASCII
        try:
            out.decode()
            break
        except UnicodeDecodeError:
            out = out[:-1]
    return out + b" " * (size - len(out))


def build_stream(case: ParseCase, seed: int) -> bytes:
    rng = random.Random(seed)
    payload = text_payload(rng, case.payload_size, case.ascii)
    return b"".join(
        _core.build_frame(_core.OP_TEXT, payload, mask=rng.randbytes(4)) for _ in range(case.frames)
    )


@dataclass
class ParseResult:
    case: ParseCase
    wire_bytes: int
    py_seconds: float
    c_seconds: float


def bench_parsing(budget: Budget, quick: bool) -> list[ParseResult]:
    out = []
    for i, case in enumerate(parse_cases(quick)):
        data = build_stream(case, seed=i)
        codec = _core.WebSocketCodec()
        events = codec.receive_data(data)
        if len(events) != case.frames or any(e[0] != _core.EV_TEXT for e in events):
            raise SystemExit(f"{case.label}: unexpected events {events[:3]!r}...")
        del events
        py, c = measure_together(
            [python_stmt("f(data)", {"f": codec.receive_data, "data": data}), c_parse(data)],
            budget,
        )
        out.append(ParseResult(case, len(data), py, c))
    return out


def print_parsing(results: list[ParseResult]) -> list[str]:
    print()
    print("Parsing masked text frames (server role): parse + unmask + UTF-8 + message assembly")
    print("MB/s = 10**6 payload bytes per second; ns per frame; median")
    head = (
        f"{'workload':24}{'frames':>8}{'buffer':>10}"
        f"{'receive_data MB/s':>19}{'ns/frame':>10}{'C only MB/s':>13}{'ns/frame':>10}"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        n = r.case.frames
        payload = r.case.payload_size * n
        print(
            f"{r.case.label:24}{n:>8}{size_label_approx(r.wire_bytes):>10}"
            f"{payload / r.py_seconds / 1e6:>19.0f}{fmt_ns(r.py_seconds / n * 1e9):>10}"
            f"{payload / r.c_seconds / 1e6:>13.0f}{fmt_ns(r.c_seconds / n * 1e9):>10}"
        )
    print("(receive_data builds one (EV_TEXT, str) tuple per frame; C only makes no objects)")
    goals = []
    for r in results:
        if r.case.payload_size <= 125:
            ns = r.c_seconds / r.case.frames * 1e9
            py_ns = r.py_seconds / r.case.frames * 1e9
            goals.append(
                f"parse cost <= {GOAL_NS_SMALL_FRAME:.0f} ns per {r.case.label} frame (C only): "
                f"{ns:.1f} ns, {'MET' if ns <= GOAL_NS_SMALL_FRAME else 'MISSED'} "
                f"(through receive_data: {py_ns:.0f} ns)"
            )
    return goals


def size_label_approx(n: int) -> str:
    if n >= MIB:
        return f"{n / MIB:.1f} MiB"
    if n >= KIB:
        return f"{n / KIB:.0f} KiB"
    return f"{n} B"


# --------------------------------------------------------------------------


def main() -> None:
    args = parse_args()
    budget = Budget(seconds=0.005, repeats=3) if args.quick else Budget(seconds=0.2, repeats=7)
    print("h2ws codec benchmark" + (" (--quick: indicative only)" if args.quick else ""))
    print_machine()
    mask_results, impls = bench_masking(budget)
    goals = print_masking(mask_results, impls)
    goals += print_parsing(bench_parsing(budget, args.quick))
    print()
    print("Goals (Foundation, item 8)")
    for g in goals:
        print(f"  {g}")
    load = load_average()
    if load is not None:
        print(f"(load at the end: {load:.2f})")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
