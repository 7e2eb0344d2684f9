"""Incremental UTF-8 validation (RFC 3629) as RFC 6455 section 8.1 needs it:
text arrives in pieces, and invalid text must fail the connection.

The validator is strict and fails fast: it rejects on the first octet that
cannot continue valid UTF-8 (Unicode Table 3-7), not at the end of the
character or message. A small pure-Python oracle built from Table 3-7 and
CPython's decoder are the references.
"""

from __future__ import annotations

import itertools
import random

import pytest

from h2ws import _core

pytestmark = pytest.mark.codec

ACCEPT, REJECT = 0, 1
KEY = b"\x0f\xf0\x55\xaa"

# Unicode Table 3-7: lead octet -> (continuation octets, range of the first).
LEADS: dict[int, tuple[int, int, int]] = {}
for _b in range(0xC2, 0xE0):
    LEADS[_b] = (1, 0x80, 0xBF)
for _b in range(0xE1, 0xF0):
    LEADS[_b] = (2, 0x80, 0xBF)
LEADS[0xE0] = (2, 0xA0, 0xBF)
LEADS[0xED] = (2, 0x80, 0x9F)
for _b in range(0xF1, 0xF4):
    LEADS[_b] = (3, 0x80, 0xBF)
LEADS[0xF0] = (3, 0x90, 0xBF)
LEADS[0xF4] = (3, 0x80, 0x8F)


def oracle(data: bytes) -> str:
    """ "accept" (complete and valid), "reject" (cannot be valid whatever
    follows) or "partial" (valid so far, ends inside a character)."""
    i = 0
    while i < len(data):
        b = data[i]
        if b < 0x80:
            i += 1
            continue
        if b not in LEADS:
            return "reject"
        need, lo, hi = LEADS[b]
        for k in range(1, need + 1):
            if i + k == len(data):
                return "partial"
            c = data[i + k]
            if not (lo <= c <= hi if k == 1 else 0x80 <= c <= 0xBF):
                return "reject"
        i += need + 1
    return "accept"


def classify(state: int) -> str:
    return "accept" if state == ACCEPT else "reject" if state == REJECT else "partial"


def feed(data: bytes, state: int = ACCEPT) -> str:
    return classify(_core.utf8_feed(state, data))


def python_ok(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


BOUNDARY_CODE_POINTS = [
    0x0000,
    0x007F,  # 1 octet
    0x0080,
    0x07FF,  # 2 octets
    0x0800,
    0x0FFF,
    0x1000,
    0xCFFF,
    0xD000,
    0xD7FF,  # 3 octets, around E0 and ED
    0xE000,
    0xFFFD,
    0xFFFE,
    0xFFFF,
    0x10000,
    0x3FFFF,
    0x40000,
    0xFFFFF,
    0x100000,
    0x10FFFF,  # 4 octets, around F0 and F4
]


def test_oracle_agrees_with_python() -> None:
    """The oracle and CPython agree on every 1- and 2-octet string."""
    for a in range(256):
        assert (oracle(bytes([a])) == "accept") == python_ok(bytes([a]))
        for b in range(256):
            s = bytes([a, b])
            assert (oracle(s) == "accept") == python_ok(s), s


def test_boundary_code_points_are_valid() -> None:
    """RFC 3629 section 3: the first and last code point of each encoding
    length and around the gaps are valid; every proper prefix is partial."""
    for cp in BOUNDARY_CODE_POINTS:
        data = chr(cp).encode()
        assert _core.utf8_valid(data)
        assert feed(data) == "accept"
        for cut in range(1, len(data)):
            assert feed(data[:cut]) == "partial"
            assert _core.utf8_feed(_core.utf8_feed(ACCEPT, data[:cut]), data[cut:]) == ACCEPT
        assert _core.utf8_valid(b"x" + data + b"y")


def test_all_code_points_in_pieces() -> None:
    """Every scalar value U+0000..U+10FFFF, validated at once and fed in
    pieces that cut characters at every offset."""
    text = "".join(map(chr, itertools.chain(range(0xD800), range(0xE000, 0x110000))))
    data = text.encode()
    assert _core.utf8_valid(data)
    state, pos, size = ACCEPT, 0, 1
    while pos < len(data):
        state = _core.utf8_feed(state, data[pos : pos + size])
        assert state != REJECT, pos
        pos += size
        size = size % 97 + 1
    assert state == ACCEPT


def test_surrogates_are_rejected_on_the_second_octet() -> None:
    """RFC 3629 section 3: U+D800..U+DFFF "are invalid in UTF-8"; 0xED
    followed by 0xA0..0xBF can only encode one, so it fails right there."""
    for cp in range(0xD800, 0xE000):
        data = chr(cp).encode("utf-8", "surrogatepass")
        assert not _core.utf8_valid(data)
        assert feed(data[:1]) == "partial"
        assert feed(data[:2]) == "reject"


ABOVE_U10FFFF = [
    (b"\xf4\x90\x80\x80", 1),  # U+110000
    (b"\xf4\xbf\xbf\xbf", 1),
    (b"\xf5\x80\x80\x80", 0),
    (b"\xf7\xbf\xbf\xbf", 0),  # U+1FFFFF in the old scheme
    (b"\xf8\x88\x80\x80\x80", 0),  # 5-octet form
    (b"\xfc\x84\x80\x80\x80\x80", 0),  # 6-octet form
    (b"\xfe", 0),
    (b"\xff", 0),
]


def test_above_u10ffff_is_rejected() -> None:
    """RFC 3629 section 3: UTF-8 stops at U+10FFFF; 0xF5..0xFF never occur.
    Each string fails on the octet at index ``fails_at``."""
    for data, fails_at in ABOVE_U10FFFF:
        assert not _core.utf8_valid(data)
        for cut in range(len(data) + 1):
            expected = "reject" if cut > fails_at else "accept" if cut == 0 else "partial"
            assert feed(data[:cut]) == expected, (data, cut)


OVERLONGS = [
    (b"\xc0\x80", 0),  # 2-octet overlongs
    (b"\xc0\xaf", 0),
    (b"\xc1\xbf", 0),
    (b"\xe0\x80\x80", 1),  # 3-octet
    (b"\xe0\x80\xaf", 1),
    (b"\xe0\x9f\xbf", 1),
    (b"\xf0\x80\x80\x80", 1),  # 4-octet
    (b"\xf0\x80\x80\xaf", 1),
    (b"\xf0\x8f\xbf\xbf", 1),
]


def test_overlongs_are_rejected() -> None:
    """RFC 3629 section 3: "Implementations of the decoding algorithm above
    MUST protect against decoding invalid sequences" such as overlong forms
    (section 10); each fails on the first octet that makes it overlong."""
    for data, fails_at in OVERLONGS:
        assert not _core.utf8_valid(data)
        for cut in range(1, len(data) + 1):
            assert feed(data[:cut]) == ("reject" if cut > fails_at else "partial"), (data, cut)


def test_every_one_and_two_octet_string() -> None:
    """Exhaustive against the oracle: accept, partial or reject."""
    for a in range(256):
        assert feed(bytes([a])) == oracle(bytes([a])), a
        for b in range(256):
            s = bytes([a, b])
            assert feed(s) == oracle(s), s
            assert _core.utf8_valid(s) == (oracle(s) == "accept")


def test_three_and_four_octet_strings() -> None:
    """Every lead octet with every second octet and a spread of third and
    fourth octets, against the oracle."""
    edges = [0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC2, 0xE0, 0xF0, 0xFF]
    for a in range(0xC0, 0x100):
        for b in range(256):
            for c in edges:
                s = bytes([a, b, c])
                assert feed(s) == oracle(s), s
                if a >= 0xF0 and 0x80 <= b <= 0xBF and 0x80 <= c <= 0xBF:
                    for d in edges:
                        s4 = s + bytes([d])
                        assert feed(s4) == oracle(s4), s4


def test_random_strings_agree_with_python() -> None:
    """Random mixes of interesting octets: utf8_valid equals CPython's
    strict decoder."""
    pool = [
        0x00,
        0x24,
        0x7F,
        0x80,
        0x8F,
        0x90,
        0x9F,
        0xA0,
        0xBF,
        0xC0,
        0xC1,
        0xC2,
        0xDF,
        0xE0,
        0xE1,
        0xEC,
        0xED,
        0xEE,
        0xEF,
        0xF0,
        0xF1,
        0xF3,
        0xF4,
        0xF5,
        0xFF,
    ]
    rng = random.Random(3629)
    for _ in range(20000):
        s = bytes(rng.choice(pool) for _ in range(rng.randrange(1, 9)))
        assert _core.utf8_valid(s) == python_ok(s), s


def test_every_split_of_multi_octet_characters() -> None:
    """Section 8.1 of RFC 6455 validates text as it arrives, so a character
    may be cut anywhere: the state is ACCEPT exactly at character boundaries
    and partial inside a character, for every octet of the input."""
    text = "a\u00e9\u0800\u20ac\ud7ff\ue000\uffff\U00010000\U0001d11e\U0010ffffz"
    data = text.encode()
    boundaries = {0}
    pos = 0
    for ch in text:
        pos += len(ch.encode())
        boundaries.add(pos)
    state = ACCEPT
    for i in range(len(data)):
        state = _core.utf8_feed(state, data[i : i + 1])
        assert classify(state) == ("accept" if i + 1 in boundaries else "partial"), i
    for cut in range(len(data) + 1):
        first = _core.utf8_feed(ACCEPT, data[:cut])
        assert classify(first) == ("accept" if cut in boundaries else "partial")
        assert _core.utf8_feed(first, data[cut:]) == ACCEPT
    for a, b in itertools.combinations(range(1, len(data)), 2):
        state = _core.utf8_feed(ACCEPT, data[:a])
        state = _core.utf8_feed(state, data[a:b])
        assert _core.utf8_feed(state, data[b:]) == ACCEPT


def test_reject_is_sticky() -> None:
    """Once rejected, no later input makes the text valid again."""
    state = _core.utf8_feed(ACCEPT, b"ok\xff")
    assert state == REJECT
    for more in (b"", b"a", b"\xc3\xa9", b"plain ascii text, long enough for the fast path"):
        assert _core.utf8_feed(state, more) == REJECT


def test_fail_fast_inside_a_character() -> None:
    """The octet that makes the text invalid rejects at once, before the
    character (or message) ends: 0xED 0xA0, 0xF4 0x90, 0xE0 0x80, 0xF0 0x80,
    a lead followed by ASCII, a lead followed by another lead."""
    for bad in (
        b"\xed\xa0",
        b"\xf4\x90",
        b"\xe0\x80",
        b"\xf0\x80",
        b"\xe1\x41",
        b"\xc3\xc3",
        b"\xf1\x80\x80\x41",
    ):
        state = _core.utf8_feed(ACCEPT, bad[:-1])
        assert classify(state) == "partial"
        assert _core.utf8_feed(state, bad[-1:]) == REJECT


def test_ascii_fast_path_positions() -> None:
    """The ASCII run is scanned 16 and 8 octets at a time: a non-ASCII octet
    at every position is still seen."""
    for length in (1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 40, 100):
        for i in range(length):
            base = bytearray(b"A" * length)
            base[i] = 0x80
            assert _core.utf8_feed(ACCEPT, bytes(base)) == REJECT, i
            ok = bytes(base[:i]) + "é".encode() + bytes(base[i + 1 :])
            assert _core.utf8_feed(ACCEPT, ok) == ACCEPT, i
            assert classify(_core.utf8_feed(ACCEPT, bytes(base[:i]) + b"\xe2\x82")) == "partial"


def test_utf8_valid_accepts_buffers() -> None:
    assert _core.utf8_valid(b"")
    assert _core.utf8_valid(bytearray("κόσμε".encode()))
    assert _core.utf8_valid(memoryview("κόσμε".encode())[2:])
    assert not _core.utf8_valid(memoryview("κόσμε".encode())[1:])


def test_utf8_feed_rejects_a_state_it_never_returns() -> None:
    with pytest.raises(ValueError):
        _core.utf8_feed(1 << 20, b"")
    with pytest.raises((ValueError, OverflowError)):
        _core.utf8_feed(-1, b"")
    with pytest.raises(TypeError):
        _core.utf8_feed(0, "text")  # type: ignore[arg-type]


# --------------------------------------------------------------------------
# Through the codec (RFC 6455 section 8.1)


def test_codec_text_split_inside_characters() -> None:
    """Section 5.6 / 8.1: a text message may be fragmented inside a
    character; only the whole message must be valid UTF-8."""
    data = "a\u00e9\u20ac\U0001d11e".encode()
    for cut in range(len(data) + 1):
        wire = _core.build_frame(
            _core.OP_TEXT, data[:cut], fin=False, mask=KEY
        ) + _core.build_frame(_core.OP_CONT, data[cut:], mask=KEY)
        assert _core.WebSocketCodec().receive_data(wire) == [(_core.EV_TEXT, data.decode())]


def test_codec_invalid_text_fails_with_1007() -> None:
    """Section 8.1: "When an endpoint is to interpret a byte stream as UTF-8
    but finds that the byte stream is not, in fact, a valid UTF-8 stream,
    that endpoint MUST _Fail the WebSocket Connection_" (1007, section 7.4.1)."""
    for bad in (b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\x80", b"ok\xe2\x82"):
        codec = _core.WebSocketCodec()
        got = codec.receive_data(_core.build_frame(_core.OP_TEXT, bad, mask=KEY))
        assert [e[:2] for e in got] == [(_core.EV_ERROR, 1007)], bad
        assert codec.failed


def test_codec_message_ending_inside_a_character_fails() -> None:
    """A message whose last fragment ends mid-character is invalid, even
    though each octet so far could have been continued."""
    wire = _core.build_frame(_core.OP_TEXT, b"ok\xe2", fin=False, mask=KEY) + _core.build_frame(
        _core.OP_CONT, b"\x82", mask=KEY
    )
    got = _core.WebSocketCodec().receive_data(wire)
    assert [e[:2] for e in got] == [(_core.EV_ERROR, 1007)]
    # Also when the final fragment is empty: the check is at the message end.
    wire = _core.build_frame(_core.OP_TEXT, b"ok\xe2\x82", fin=False, mask=KEY)
    codec = _core.WebSocketCodec()
    assert codec.receive_data(wire) == []
    got = codec.receive_data(_core.build_frame(_core.OP_CONT, b"", mask=KEY))
    assert [e[:2] for e in got] == [(_core.EV_ERROR, 1007)]


def test_codec_binary_is_not_validated() -> None:
    """Only text is UTF-8 (section 5.6): binary payloads are opaque."""
    data = b"\xff\xfe\xed\xa0\x80\xc0"
    got = _core.WebSocketCodec().receive_data(_core.build_frame(_core.OP_BINARY, data, mask=KEY))
    assert got == [(_core.EV_BINARY, data)]


def test_codec_ping_payload_is_not_validated() -> None:
    """Control frame application data is opaque too, also in the middle of
    a text message whose UTF-8 state must survive the ping."""
    wire = (
        _core.build_frame(_core.OP_TEXT, b"\xe2", fin=False, mask=KEY)
        + _core.build_frame(_core.OP_PING, b"\xff\x80", mask=KEY)
        + _core.build_frame(_core.OP_CONT, b"\x82\xac", mask=KEY)
    )
    assert _core.WebSocketCodec().receive_data(wire) == [
        (_core.EV_PING, b"\xff\x80"),
        (_core.EV_TEXT, "€"),
    ]
