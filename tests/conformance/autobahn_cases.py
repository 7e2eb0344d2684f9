"""The Autobahn TestSuite's fuzzingclient cases, sections 1 to 7, as data.

Each ``Case`` lists the frames the fuzzer (the peer) sends and the events an
RFC 6455 endpoint must report for them. The numbering follows the Autobahn
case catalogue, so a case id here names the same scenario as in an Autobahn
report. Where Autobahn accepts a lenient ("NON-STRICT") outcome, the
expectation here is the strict one, which is what the h2ws codec promises.

Everything the tests need to play the fuzzer is here too, written in plain
Python so that it does not share code with the codec under test: a frame
encoder and decoder (RFC 6455 section 5.2), masking (section 5.3) and a
UTF-8 prefix checker (RFC 3629, Unicode Table 3-7).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass

from h2ws import _core

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA

Event = tuple[object, ...]


# --------------------------------------------------------------------------
# Expected events. An error is compared by its close code only.


def text(s: str) -> Event:
    return (_core.EV_TEXT, s)


def binary(b: bytes) -> Event:
    return (_core.EV_BINARY, b)


def ping(b: bytes = b"") -> Event:
    return (_core.EV_PING, b)


def pong(b: bytes = b"") -> Event:
    return (_core.EV_PONG, b)


def closed(code: int = 1000, reason: str = "") -> Event:
    return (_core.EV_CLOSE, code, reason)


def fail(code: int) -> Event:
    return (_core.EV_ERROR, code)


def normalize(event: Event) -> Event:
    """Drops the human-readable reason of an error event."""
    return event[:2] if event[0] == _core.EV_ERROR else event


# --------------------------------------------------------------------------
# Frames on the wire, in plain Python.


@dataclass(frozen=True)
class Frame:
    opcode: int
    payload: bytes = b""
    fin: bool = True
    rsv: int = 0  # mask of 0x70


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return code.to_bytes(2, "big") + reason


def xor_mask(data: bytes, key: bytes, phase: int = 0) -> bytes:
    """RFC 6455 section 5.3: octet i is XORed with key[(phase + i) % 4]."""
    if not data:
        return b""
    n = len(data)
    rotated = key[phase % 4 :] + key[: phase % 4]
    stream = (rotated * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


def encode_header(
    opcode: int, length: int, *, fin: bool = True, rsv: int = 0, key: bytes | None = None
) -> bytes:
    """A frame header with the minimal length encoding (section 5.2)."""
    b0 = (0x80 if fin else 0) | rsv | opcode
    mbit = 0x80 if key is not None else 0
    if length <= 125:
        head = bytes([b0, mbit | length])
    elif length <= 0xFFFF:
        head = bytes([b0, mbit | 126]) + length.to_bytes(2, "big")
    else:
        head = bytes([b0, mbit | 127]) + length.to_bytes(8, "big")
    return head + (key or b"")


def encode(frame: Frame, key: bytes | None) -> bytes:
    """The frame on the wire; masked with ``key`` unless it is None."""
    head = encode_header(frame.opcode, len(frame.payload), fin=frame.fin, rsv=frame.rsv, key=key)
    body = xor_mask(frame.payload, key) if key is not None else frame.payload
    return head + body


@dataclass(frozen=True)
class Decoded:
    fin: bool
    rsv: int
    opcode: int
    key: bytes | None
    payload: bytes  # unmasked


def decode_all(data: bytes) -> list[Decoded]:
    """Splits complete frames; raises AssertionError on trailing garbage."""
    out = []
    pos = 0
    while pos < len(data):
        b0, b1 = data[pos], data[pos + 1]
        pos += 2
        length = b1 & 0x7F
        if length == 126:
            length = int.from_bytes(data[pos : pos + 2], "big")
            pos += 2
        elif length == 127:
            length = int.from_bytes(data[pos : pos + 8], "big")
            pos += 8
        key = None
        if b1 & 0x80:
            key = data[pos : pos + 4]
            pos += 4
        body = data[pos : pos + length]
        assert len(body) == length, "truncated frame"
        pos += length
        payload = xor_mask(body, key) if key is not None else body
        out.append(Decoded(bool(b0 & 0x80), b0 & 0x70, b0 & 0x0F, key, payload))
    return out


# --------------------------------------------------------------------------
# UTF-8 (RFC 3629): where does a byte string stop being a prefix of valid text?

# Lead byte -> (continuation bytes, allowed range of the first continuation).
_LEADS: dict[int, tuple[int, int, int]] = {}
for _b in range(0xC2, 0xE0):
    _LEADS[_b] = (1, 0x80, 0xBF)
for _b in range(0xE0, 0xF0):
    _LEADS[_b] = (2, 0x80, 0xBF)
_LEADS[0xE0] = (2, 0xA0, 0xBF)  # no overlongs
_LEADS[0xED] = (2, 0x80, 0x9F)  # no surrogates
for _b in range(0xF0, 0xF5):
    _LEADS[_b] = (3, 0x80, 0xBF)
_LEADS[0xF0] = (3, 0x90, 0xBF)  # no overlongs
_LEADS[0xF4] = (3, 0x80, 0x8F)  # nothing above U+10FFFF


def utf8_error_index(data: bytes) -> int | None:
    """Index of the first byte after which ``data`` cannot begin valid UTF-8.

    None if every prefix is fine (``data`` may still end mid-character).
    """
    i, n = 0, len(data)
    while i < n:
        b = data[i]
        if b < 0x80:
            i += 1
            continue
        if b not in _LEADS:
            return i
        need, lo, hi = _LEADS[b]
        for k in range(1, need + 1):
            if i + k >= n:
                return None
            c = data[i + k]
            if not (lo <= c <= hi if k == 1 else 0x80 <= c <= 0xBF):
                return i + k
        i += need + 1
    return None


def utf8_complete(data: bytes) -> bool:
    """True if ``data`` does not end in the middle of a character."""
    for back in range(1, min(4, len(data)) + 1):
        b = data[-back]
        if b < 0x80:
            return True
        if b >= 0xC0:
            need = _LEADS.get(b, (0, 0, 0))[0]
            return need == back - 1
    return not data


def utf8_ok(data: bytes) -> bool:
    return utf8_error_index(data) is None and utf8_complete(data)


# --------------------------------------------------------------------------
# Cases.


@dataclass(frozen=True)
class Case:
    """One Autobahn case.

    ``chop`` is how Autobahn delivers the octets ("one" write, "frames",
    "octets", an int chunk size, or a tuple of split points counted in the
    payload of the first frame). The tests deliver every case in every mode
    anyway; the case's own mode is guaranteed to be among them.

    ``fail_at`` says which octet must make the endpoint fail, for cases that
    expect an error: ("header", i) the second header octet of frame i (the
    first two octets decide everything checked there), ("end", i) the last
    octet of frame i, ("utf8",) the first octet that makes the text message
    invalid (strict fail-fast, RFC 6455 section 8.1).
    """

    id: str
    description: str
    frames: tuple[Frame, ...]
    expect: tuple[Event, ...]
    chop: object = "frames"
    fail_at: tuple[object, ...] | None = None

    @property
    def section(self) -> int:
        return int(self.id.split(".")[0])


def _case(
    cid: str,
    description: str,
    frames: list[Frame],
    expect: list[Event],
    *,
    chop: object = "frames",
    fail_at: tuple[object, ...] | None = None,
    closing: bool = True,
) -> Case:
    """A case; ``closing`` appends the fuzzer's final close 1000 (echoed if the
    endpoint has not failed by then, ignored if it has)."""
    frames = list(frames)
    expect = list(expect)
    if closing:
        frames.append(Frame(OP_CLOSE, close_payload(1000)))
        if not expect or expect[-1][0] != _core.EV_ERROR:
            expect.append(closed(1000))
    if any(e[0] == _core.EV_ERROR for e in expect):
        assert fail_at is not None, f"{cid}: a failing case says where it fails"
    return Case(cid, description, tuple(frames), tuple(expect), chop, fail_at)


def _section1() -> Iterator[Case]:
    sizes = [0, 125, 126, 127, 128, 65535, 65536]
    for i, n in enumerate(sizes, 1):
        s = "*" * n
        yield _case(
            f"1.1.{i}", f"text message of {n} octets", [Frame(OP_TEXT, s.encode())], [text(s)]
        )
    s = "*" * 65536
    yield _case(
        "1.1.8",
        "text message of 65536 octets, sent in chops of 997 octets",
        [Frame(OP_TEXT, s.encode())],
        [text(s)],
        chop=997,
    )
    for i, n in enumerate(sizes, 1):
        b = b"\xfe" * n
        yield _case(f"1.2.{i}", f"binary message of {n} octets", [Frame(OP_BINARY, b)], [binary(b)])
    b = b"\xfe" * 65536
    yield _case(
        "1.2.8",
        "binary message of 65536 octets, sent in chops of 997 octets",
        [Frame(OP_BINARY, b)],
        [binary(b)],
        chop=997,
    )


def _section2() -> Iterator[Case]:
    hello = b"Hello, world!"
    small_bin = b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff"
    yield _case("2.1", "ping without payload", [Frame(OP_PING)], [ping()])
    yield _case("2.2", "ping with a small text payload", [Frame(OP_PING, hello)], [ping(hello)])
    yield _case(
        "2.3", "ping with a small binary payload", [Frame(OP_PING, small_bin)], [ping(small_bin)]
    )
    yield _case(
        "2.4",
        "ping with a 125-octet payload",
        [Frame(OP_PING, b"\xfe" * 125)],
        [ping(b"\xfe" * 125)],
    )
    yield _case(
        "2.5",
        "ping with a 126-octet payload: control frames carry at most 125",
        [Frame(OP_PING, b"\xfe" * 126)],
        [fail(1002)],
        fail_at=("header", 0),
    )
    yield _case(
        "2.6",
        "ping with a 125-octet payload, sent octet by octet",
        [Frame(OP_PING, b"\xfe" * 125)],
        [ping(b"\xfe" * 125)],
        chop="octets",
    )
    yield _case("2.7", "unsolicited pong without payload", [Frame(OP_PONG)], [pong()])
    unsolicited = b"unsolicited pong payload"
    yield _case(
        "2.8", "unsolicited pong with payload", [Frame(OP_PONG, unsolicited)], [pong(unsolicited)]
    )
    yield _case(
        "2.9",
        "unsolicited pong, then a ping",
        [Frame(OP_PONG, unsolicited), Frame(OP_PING, b"ping payload")],
        [pong(unsolicited), ping(b"ping payload")],
    )
    payloads = [f"payload-{i}".encode() for i in range(10)]
    yield _case(
        "2.10", "10 pings", [Frame(OP_PING, p) for p in payloads], [ping(p) for p in payloads]
    )
    yield _case(
        "2.11",
        "10 pings, sent octet by octet",
        [Frame(OP_PING, p) for p in payloads],
        [ping(p) for p in payloads],
        chop="octets",
    )


def _section3() -> Iterator[Case]:
    hello = b"Hello, world!"
    yield _case(
        "3.1",
        "text message with RSV = 1",
        [Frame(OP_TEXT, hello, rsv=0x10)],
        [fail(1002)],
        fail_at=("header", 0),
    )
    for cid, rsv, chop in (("3.2", 0x20, "one"), ("3.3", 0x30, "frames"), ("3.4", 0x40, "octets")):
        yield _case(
            cid,
            f"text, then text with RSV = {rsv >> 4}, then ping",
            [Frame(OP_TEXT, hello), Frame(OP_TEXT, hello, rsv=rsv), Frame(OP_PING, hello)],
            [text(hello.decode()), fail(1002)],
            chop=chop,
            fail_at=("header", 1),
        )
    yield _case(
        "3.5",
        "binary message with RSV = 5",
        [Frame(OP_BINARY, b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff", rsv=0x50)],
        [fail(1002)],
        fail_at=("header", 0),
    )
    yield _case(
        "3.6",
        "ping with RSV = 6",
        [Frame(OP_PING, hello, rsv=0x60)],
        [fail(1002)],
        fail_at=("header", 0),
    )
    yield _case(
        "3.7",
        "close with RSV = 7",
        [Frame(OP_CLOSE, close_payload(1000), rsv=0x70)],
        [fail(1002)],
        fail_at=("header", 0),
    )


def _section4() -> Iterator[Case]:
    hello = b"Hello, world!"
    for sub, first in ((1, 3), (2, 11)):
        kind = "non-control" if sub == 1 else "control"
        yield _case(
            f"4.{sub}.1",
            f"frame with reserved {kind} opcode {first}",
            [Frame(first)],
            [fail(1002)],
            fail_at=("header", 0),
        )
        yield _case(
            f"4.{sub}.2",
            f"frame with reserved {kind} opcode {first + 1} and payload",
            [Frame(first + 1, b"reserved opcode payload")],
            [fail(1002)],
            fail_at=("header", 0),
        )
        for i, op in enumerate(range(first + 2, first + 5), 3):
            payload = b"" if i == 3 else b"reserved opcode payload"
            yield _case(
                f"4.{sub}.{i}",
                f"text, then reserved opcode {op}, then ping",
                [Frame(OP_TEXT, hello), Frame(op, payload), Frame(OP_PING, hello)],
                [text(hello.decode()), fail(1002)],
                fail_at=("header", 1),
            )


def _section5() -> Iterator[Case]:
    f1, f2 = b"fragment1", b"fragment2"
    yield _case(
        "5.1",
        "ping in 2 fragments",
        [Frame(OP_PING, f1, fin=False), Frame(OP_CONT, f2)],
        [fail(1002)],
        fail_at=("header", 0),
    )
    yield _case(
        "5.2",
        "pong in 2 fragments",
        [Frame(OP_PONG, f1, fin=False), Frame(OP_CONT, f2)],
        [fail(1002)],
        fail_at=("header", 0),
    )
    two = [Frame(OP_TEXT, f1, fin=False), Frame(OP_CONT, f2)]
    for cid, chop in (("5.3", "one"), ("5.4", "frames"), ("5.5", "octets")):
        yield _case(
            cid, "text message in 2 fragments", two, [text("fragment1fragment2")], chop=chop
        )
    with_ping = [Frame(OP_TEXT, f1, fin=False), Frame(OP_PING, b"ping payload"), Frame(OP_CONT, f2)]
    for cid, chop in (("5.6", "one"), ("5.7", "frames"), ("5.8", "octets")):
        yield _case(
            cid,
            "text message in 2 fragments with a ping between them",
            with_ping,
            [ping(b"ping payload"), text("fragment1fragment2")],
            chop=chop,
        )
    for base, fin in ((9, True), (12, False)):
        frames = [
            Frame(OP_CONT, b"non-continuation payload", fin=fin),
            Frame(OP_TEXT, b"Hello, world!"),
        ]
        for k, chop in enumerate(("one", "frames", "octets")):
            yield _case(
                f"5.{base + k}",
                f"continuation (FIN = {fin}) with nothing to continue, then text",
                frames,
                [fail(1002)],
                chop=chop,
                fail_at=("header", 0),
            )
    yield _case(
        "5.15",
        "text in 2 fragments, then a continuation with nothing to continue",
        [
            Frame(OP_TEXT, f1, fin=False),
            Frame(OP_CONT, f2),
            Frame(OP_CONT, b"fragment3", fin=False),
            Frame(OP_TEXT, b"fragment4"),
        ],
        [text("fragment1fragment2"), fail(1002)],
        chop="one",
        fail_at=("header", 2),
    )
    for cid, fin in (("5.16", False), ("5.17", True)):
        frames = [
            Frame(OP_CONT, f1, fin=fin),
            Frame(OP_TEXT, f2, fin=False),
            Frame(OP_CONT, b"fragment3"),
        ] * 2
        yield _case(
            cid,
            f"2x: continuation (FIN = {fin}) with nothing to continue, then text in 2 fragments",
            frames,
            [fail(1002)],
            chop="one",
            fail_at=("header", 0),
        )
    yield _case(
        "5.18",
        "text in 2 fragments, both with the text opcode",
        [Frame(OP_TEXT, f1, fin=False), Frame(OP_TEXT, f2)],
        [fail(1002)],
        chop="one",
        fail_at=("header", 1),
    )
    frags = [f"fragment{i}".encode() for i in range(1, 6)]
    frames = [
        Frame(OP_TEXT, frags[0], fin=False),
        Frame(OP_CONT, frags[1], fin=False),
        Frame(OP_PING, b"pongme 1!"),
        Frame(OP_CONT, frags[2], fin=False),
        Frame(OP_CONT, frags[3], fin=False),
        Frame(OP_PING, b"pongme 2!"),
        Frame(OP_CONT, frags[4]),
    ]
    expect = [ping(b"pongme 1!"), ping(b"pongme 2!"), text(b"".join(frags).decode())]
    yield _case("5.19", "text in 5 fragments with 2 pings between them", frames, expect, chop="one")
    yield _case(
        "5.20",
        "text in 5 fragments with 2 pings between them, frame by frame",
        frames,
        expect,
        chop="frames",
    )


KOSME = bytes.fromhex("cebae1bdb9cf83cebcceb5")  # "κόσμε"
HELLO_UTF8 = "Hello-µ@ßöäüàá-UTF-8!!".encode()
INVALID_UTF8 = bytes.fromhex("cebae1bdb9cf83cebcceb5eda080656469746564")  # has U+D800


def _octet_frames(payload: bytes) -> list[Frame]:
    """A text message in frames of one octet each."""
    n = len(payload)
    return [
        Frame(OP_TEXT if i == 0 else OP_CONT, payload[i : i + 1], fin=i == n - 1) for i in range(n)
    ]


def utf8_sequences() -> list[tuple[str, list[tuple[bool, bytes]]]]:
    """Cases 6.5 to 6.23: the groups of Markus Kuhn's UTF-8 decoder test as
    Autobahn orders them, each a list of (valid, payload)."""
    groups: list[tuple[str, list[tuple[bool, bytes]]]] = []
    groups.append(
        (
            "some valid UTF-8 sequences",
            [
                (True, b"hello$world"),
                (True, b"hello\xc2\xa2world"),
                (True, b"hello\xe2\x82\xacworld"),
                (True, b"hello\xf0\xa4\xad\xa2world"),
                (True, KOSME),
            ],
        )
    )
    groups.append(
        (
            "all prefixes of a valid multi-byte string",
            [(utf8_complete(KOSME[:i]), KOSME[:i]) for i in range(1, len(KOSME) + 1)],
        )
    )
    groups.append(
        (
            "first possible sequence of each length",
            [
                (True, b"\x00"),
                (True, b"\xc2\x80"),
                (True, b"\xe0\xa0\x80"),
                (True, b"\xf0\x90\x80\x80"),
            ],
        )
    )
    groups.append(
        (
            "first possible 5 and 6 octet sequences (no such code points)",
            [(False, b"\xf8\x88\x80\x80\x80"), (False, b"\xfc\x84\x80\x80\x80\x80")],
        )
    )
    groups.append(
        (
            "last possible sequence of each length",
            [
                (True, b"\x7f"),
                (True, b"\xdf\xbf"),
                (True, b"\xef\xbf\xbf"),
                (True, b"\xf4\x8f\xbf\xbf"),
            ],
        )
    )
    groups.append(
        (
            "last possible 4, 5 and 6 octet sequences (no such code points)",
            [
                (False, b"\xf7\xbf\xbf\xbf"),
                (False, b"\xfb\xbf\xbf\xbf\xbf"),
                (False, b"\xfd\xbf\xbf\xbf\xbf\xbf"),
            ],
        )
    )
    groups.append(
        (
            "other boundary conditions",
            [
                (True, b"\xed\x9f\xbf"),
                (True, b"\xee\x80\x80"),
                (True, b"\xef\xbf\xbd"),
                (True, b"\xf4\x8f\xbf\xbf"),
                (False, b"\xf4\x90\x80\x80"),
            ],
        )
    )
    cont = b"\x80\xbf\x80\xbf\x80\xbf"
    groups.append(
        (
            "unexpected continuation octets",
            [(False, b"\x80"), (False, b"\xbf")]
            + [(False, cont[:n]) for n in range(2, 7)]
            + [(False, bytes(range(0x80, 0xBF)))],
        )
    )
    lonely = [(0xC0, 0xDF), (0xE0, 0xEF), (0xF0, 0xF7), (0xF8, 0xFB), (0xFC, 0xFD)]
    groups.append(
        (
            "lonely start octets, each followed by a space",
            [(False, b"".join(bytes([c, 0x20]) for c in range(lo, hi))) for lo, hi in lonely],
        )
    )
    missing = [
        b"\xc0",
        b"\xe0\x80",
        b"\xf0\x80\x80",
        b"\xf8\x80\x80\x80",
        b"\xfc\x80\x80\x80\x80",
        b"\xdf",
        b"\xef\xbf",
        b"\xf7\xbf\xbf",
        b"\xfb\xbf\xbf\xbf",
        b"\xfd\xbf\xbf\xbf\xbf",
    ]
    groups.append(
        ("sequences with the last continuation octet missing", [(False, m) for m in missing])
    )
    groups.append(("concatenation of incomplete sequences", [(False, b"".join(missing))]))
    groups.append(
        ("impossible octets", [(False, b"\xfe"), (False, b"\xff"), (False, b"\xfe\xfe\xff\xff")])
    )
    groups.append(
        (
            "overlong forms of '/'",
            [
                (False, b"\xc0\xaf"),
                (False, b"\xe0\x80\xaf"),
                (False, b"\xf0\x80\x80\xaf"),
                (False, b"\xf8\x80\x80\x80\xaf"),
                (False, b"\xfc\x80\x80\x80\x80\xaf"),
            ],
        )
    )
    groups.append(
        (
            "maximum overlong sequences",
            [
                (False, b"\xc1\xbf"),
                (False, b"\xe0\x9f\xbf"),
                (False, b"\xf0\x8f\xbf\xbf"),
                (False, b"\xf8\x87\xbf\xbf\xbf"),
                (False, b"\xfc\x83\xbf\xbf\xbf\xbf"),
            ],
        )
    )
    groups.append(
        (
            "overlong forms of NUL",
            [
                (False, b"\xc0\x80"),
                (False, b"\xe0\x80\x80"),
                (False, b"\xf0\x80\x80\x80"),
                (False, b"\xf8\x80\x80\x80\x80"),
                (False, b"\xfc\x80\x80\x80\x80\x80"),
            ],
        )
    )
    singles = [0xD800, 0xDB7F, 0xDB80, 0xDBFF, 0xDC00, 0xDF80, 0xDFFF]
    groups.append(
        (
            "single UTF-16 surrogates",
            [(False, chr(c).encode("utf-8", "surrogatepass")) for c in singles],
        )
    )
    highs, lows = [0xD800, 0xDB7F, 0xDB80, 0xDBFF], [0xDC00, 0xDFFF]
    groups.append(
        (
            "paired UTF-16 surrogates",
            [
                (False, (chr(h) + chr(lo)).encode("utf-8", "surrogatepass"))
                for h in highs
                for lo in lows
            ],
        )
    )
    nonchars = [(True, b"\xef\xbf\xbe"), (True, b"\xef\xbf\xbf")]
    for plane in range(1, 17):  # U+nFFFE and U+nFFFF in the supplementary planes
        for last in (0xFFFE, 0xFFFF):
            nonchars.append((True, chr(plane * 0x10000 + last).encode()))
    groups.append(("non-character code points (valid UTF-8)", nonchars))
    groups.append(("Unicode specials", [(True, chr(c).encode()) for c in range(0xFFF9, 0x10000)]))
    return groups


def _section6() -> Iterator[Case]:
    yield _case("6.1.1", "empty text message", [Frame(OP_TEXT)], [text("")])
    yield _case(
        "6.1.2",
        "text message in 3 empty fragments",
        [Frame(OP_TEXT, fin=False), Frame(OP_CONT, fin=False), Frame(OP_CONT)],
        [text("")],
    )
    yield _case(
        "6.1.3",
        "text message in 3 fragments, the first and last empty",
        [
            Frame(OP_TEXT, fin=False),
            Frame(OP_CONT, b"middle frame payload", fin=False),
            Frame(OP_CONT),
        ],
        [text("middle frame payload")],
    )
    hello = HELLO_UTF8.decode()
    yield _case("6.2.1", "valid UTF-8 in one frame", [Frame(OP_TEXT, HELLO_UTF8)], [text(hello)])
    cut = HELLO_UTF8.index("ß".encode())
    yield _case(
        "6.2.2",
        "valid UTF-8 in 2 frames split on a code point boundary",
        [Frame(OP_TEXT, HELLO_UTF8[:cut], fin=False), Frame(OP_CONT, HELLO_UTF8[cut:])],
        [text(hello)],
    )
    yield _case(
        "6.2.3",
        "valid UTF-8 in frames of one octet (splits inside code points)",
        _octet_frames(HELLO_UTF8),
        [text(hello)],
    )
    yield _case(
        "6.2.4", "'κόσμε' in frames of one octet", _octet_frames(KOSME), [text(KOSME.decode())]
    )
    yield _case(
        "6.3.1",
        "invalid UTF-8 (a surrogate) in one frame",
        [Frame(OP_TEXT, INVALID_UTF8)],
        [fail(1007)],
        fail_at=("utf8",),
    )
    yield _case(
        "6.3.2",
        "invalid UTF-8 (a surrogate) in frames of one octet",
        _octet_frames(INVALID_UTF8),
        [fail(1007)],
        fail_at=("utf8",),
    )
    # 6.4: fail fast. Part 2 makes the text invalid; part 3 must not be needed.
    parts_a = (KOSME, b"\xf4\x90\x80\x80", b"edited")
    parts_b = (KOSME + b"\xf4", b"\x90", b"\x80\x80edited")
    for cid, parts in (("6.4.1", parts_a), ("6.4.2", parts_b)):
        yield _case(
            cid,
            "invalid UTF-8 (above U+10FFFF) in 3 frames: fail on the 2nd",
            [
                Frame(OP_TEXT, parts[0], fin=False),
                Frame(OP_CONT, parts[1], fin=False),
                Frame(OP_CONT, parts[2]),
            ],
            [fail(1007)],
            fail_at=("utf8",),
        )
    for cid, parts in (("6.4.3", parts_a), ("6.4.4", parts_b)):
        cuts = (len(parts[0]), len(parts[0]) + len(parts[1]))
        yield _case(
            cid,
            "invalid UTF-8 (above U+10FFFF) in one frame sent in 3 chops: fail on the 2nd chop",
            [Frame(OP_TEXT, b"".join(parts))],
            [fail(1007)],
            chop=cuts,
            fail_at=("utf8",),
        )
    for group, (title, seqs) in enumerate(utf8_sequences(), 5):
        for i, (valid, payload) in enumerate(seqs, 1):
            assert valid == utf8_ok(payload), (group, i, payload)
            if valid:
                yield _case(
                    f"6.{group}.{i}",
                    f"{title}: valid, one frame",
                    [Frame(OP_TEXT, payload)],
                    [text(payload.decode())],
                )
            else:
                yield _case(
                    f"6.{group}.{i}",
                    f"{title}: invalid, one frame",
                    [Frame(OP_TEXT, payload)],
                    [fail(1007)],
                    fail_at=("utf8",),
                )


def _section7() -> Iterator[Case]:
    close1000 = Frame(OP_CLOSE, close_payload(1000))
    hello = b"Hello World!"
    yield _case(
        "7.1.1",
        "text message, then close",
        [Frame(OP_TEXT, hello), close1000],
        [text(hello.decode()), closed(1000)],
        closing=False,
    )
    yield _case(
        "7.1.2",
        "close twice: the second is ignored",
        [close1000, close1000],
        [closed(1000)],
        closing=False,
    )
    yield _case(
        "7.1.3",
        "close, then ping: no pong",
        [close1000, Frame(OP_PING, hello)],
        [closed(1000)],
        closing=False,
    )
    yield _case(
        "7.1.4",
        "close, then text: ignored",
        [close1000, Frame(OP_TEXT, hello)],
        [closed(1000)],
        closing=False,
    )
    yield _case(
        "7.1.5",
        "first fragment of a text message, close, second fragment",
        [Frame(OP_TEXT, b"fragment1", fin=False), close1000, Frame(OP_CONT, b"fragment2")],
        [closed(1000)],
        closing=False,
    )
    big = (b"BAsd7&jh23" * 26215)[: 256 * 1024]  # 256 KiB: a 64-bit length
    yield _case(
        "7.1.6",
        "256 KiB text message, a small one, close, then ping",
        [Frame(OP_TEXT, big), Frame(OP_TEXT, hello), close1000, Frame(OP_PING)],
        [text(big.decode()), text(hello.decode()), closed(1000)],
        closing=False,
    )
    yield _case(
        "7.3.1", "close with an empty payload", [Frame(OP_CLOSE)], [closed(1005)], closing=False
    )
    yield _case(
        "7.3.2",
        "close with a 1-octet payload",
        [Frame(OP_CLOSE, b"a")],
        [fail(1002)],
        fail_at=("end", 0),
        closing=False,
    )
    yield _case(
        "7.3.3", "close with a code and no reason", [close1000], [closed(1000)], closing=False
    )
    yield _case(
        "7.3.4",
        "close with a code and a reason",
        [Frame(OP_CLOSE, close_payload(1000, hello))],
        [closed(1000, hello.decode())],
        closing=False,
    )
    yield _case(
        "7.3.5",
        "close with a 123-octet reason (125-octet payload)",
        [Frame(OP_CLOSE, close_payload(1000, b"*" * 123))],
        [closed(1000, "*" * 123)],
        closing=False,
    )
    yield _case(
        "7.3.6",
        "close with a 124-octet reason (126-octet payload)",
        [Frame(OP_CLOSE, close_payload(1000, b"*" * 124))],
        [fail(1002)],
        fail_at=("header", 0),
        closing=False,
    )
    yield _case(
        "7.5.1",
        "close with a reason that is not valid UTF-8",
        [Frame(OP_CLOSE, close_payload(1000, INVALID_UTF8))],
        [fail(1007)],
        fail_at=("end", 0),
        closing=False,
    )
    valid = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999]
    for i, code in enumerate(valid, 1):
        yield _case(
            f"7.7.{i}",
            f"close with valid code {code}",
            [Frame(OP_CLOSE, close_payload(code))],
            [closed(code)],
            closing=False,
        )
    invalid = [0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999]
    for i, code in enumerate(invalid, 1):
        yield _case(
            f"7.9.{i}",
            f"close with invalid code {code}",
            [Frame(OP_CLOSE, close_payload(code))],
            [fail(1002)],
            fail_at=("end", 0),
            closing=False,
        )
    # Autobahn leaves 7.13 informational; RFC 6455 section 7.4.2 defines no
    # code at or above 5000, so h2ws treats them as invalid.
    for i, code in enumerate((5000, 65535), 1):
        yield _case(
            f"7.13.{i}",
            f"close with undefined code {code}",
            [Frame(OP_CLOSE, close_payload(code))],
            [fail(1002)],
            fail_at=("end", 0),
            closing=False,
        )


CASES: list[Case] = [
    *_section1(),
    *_section2(),
    *_section3(),
    *_section4(),
    *_section5(),
    *_section6(),
    *_section7(),
]

# How many cases Autobahn's catalogue has in each section.
AUTOBAHN_COUNTS = {1: 16, 2: 11, 3: 7, 4: 10, 5: 20, 6: 145, 7: 37}


# --------------------------------------------------------------------------
# Playing the fuzzer.


@dataclass(frozen=True)
class Wire:
    data: bytes
    starts: tuple[int, ...]  # offset of each frame
    header_sizes: tuple[int, ...]


def build_wire(case: Case, *, masked: bool, seed: int = 6455) -> Wire:
    """The case's frames as the peer sends them: masked (the peer is a
    client) with a different random key per frame, or unmasked."""
    rng = random.Random(f"{case.id}/{seed}")
    chunks, starts, sizes = [], [], []
    pos = 0
    for frame in case.frames:
        key = rng.randbytes(4) if masked else None
        raw = encode(frame, key)
        starts.append(pos)
        sizes.append(len(raw) - len(frame.payload))
        chunks.append(raw)
        pos += len(raw)
    return Wire(b"".join(chunks), tuple(starts), tuple(sizes))


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(c for c in cuts if 0 < c < len(data)), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def deliveries(case: Case, wire: Wire) -> dict[str, list[bytes]]:
    """The octets cut the ways a peer may write them."""
    data = wire.data
    modes = {
        "one": [data],
        "frames": split_at(data, list(wire.starts)),
        "octets": [data[i : i + 1] for i in range(len(data))],
    }
    if isinstance(case.chop, int):
        modes[f"chop{case.chop}"] = [
            data[i : i + case.chop] for i in range(0, len(data), case.chop)
        ]
    elif isinstance(case.chop, tuple):
        base = wire.starts[0] + wire.header_sizes[0]
        modes["autobahn"] = split_at(data, [base + c for c in case.chop])
    return modes


def fail_offset(case: Case, wire: Wire) -> int:
    """Wire offset of the octet that must make the endpoint fail."""
    assert case.fail_at is not None
    kind = case.fail_at[0]
    if kind in ("header", "end"):
        i = int(case.fail_at[1])  # type: ignore[call-overload]
        if kind == "header":
            return wire.starts[i] + 1
        return wire.starts[i] + wire.header_sizes[i] + len(case.frames[i].payload) - 1
    assert kind == "utf8"
    positions: list[int] = []
    message = b""
    in_text = False
    for frame, start, hsize in zip(case.frames, wire.starts, wire.header_sizes, strict=True):
        if frame.opcode in (OP_TEXT, OP_BINARY):
            in_text, positions, message = frame.opcode == OP_TEXT, [], b""
        elif frame.opcode != OP_CONT or not in_text:
            continue
        body = start + hsize
        positions += range(body, body + len(frame.payload))
        message += frame.payload
        bad = utf8_error_index(message)
        if bad is not None:
            return positions[bad]
        if frame.fin and not utf8_complete(message):
            return body + len(frame.payload) - 1 if frame.payload else body - 1
    raise AssertionError(f"{case.id}: no invalid text message")
