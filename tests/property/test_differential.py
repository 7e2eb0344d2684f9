"""Differential tests: the C codec against the pure-Python reference codec in
tests/helpers/refcodec.py, and against wsproto (an RFC 6455 implementation
nobody here wrote).

The reference must agree event for event, on any input. wsproto must agree on
the verdict: the same messages for valid input and the same close code where
it fails. Where the two may differ legitimately, the comparison stops there,
and a test below pins each difference down so that it stays deliberate:

- we judge a frame on its first two bytes; wsproto waits for the whole header
  or for the payload (only the last, incomplete frame of an input is affected);
- we fail text as soon as it cannot become UTF-8 (section 8.1); Python's
  decoder, which wsproto uses, waits for the third byte of a surrogate
  (ED A0-BF);
- wsproto refuses a length not encoded in the fewest bytes; section 5.2 makes
  that a rule for senders, and we accept such frames;
- wsproto refuses close code 1014 ("Bad Gateway"), which the IANA registry
  RFC 6455 section 11.7 set up lists; we accept it.

wsproto has no message or frame size limit, so it runs against a codec without
limits; the limits are checked against the reference only.
"""

from __future__ import annotations

import pytest
from helpers import refcodec as ref
from helpers import strategies as s
from helpers.refcodec import Config, Event, comparable
from hypothesis import event, example, given
from hypothesis import strategies as st
from wsproto.frame_protocol import FrameProtocol, Opcode, ParseFailed

from h2ws import _core
from h2ws.exceptions import ProtocolError

pytestmark = pytest.mark.codec

KEY = b"\x37\xfa\x21\x3d"


def test_constants_match() -> None:
    """The reference and the binding number events and opcodes alike."""
    for name in ("EV_TEXT", "EV_BINARY", "EV_PING", "EV_PONG", "EV_CLOSE", "EV_ERROR",
                 "OP_CONT", "OP_TEXT", "OP_BINARY", "OP_CLOSE", "OP_PING", "OP_PONG",
                 "RSV1", "RSV2", "RSV3", "DEFAULT_MAX_MESSAGE_SIZE"):  # fmt: skip
        assert getattr(ref, name) == getattr(_core, name), name


# ---------------------------------------------------------------------------
# The RFC's rules, one by one, for both codecs


def cf(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0,
       length: int | None = None) -> bytes:  # fmt: skip
    """A frame as a client sends it (masked)."""
    return _core.build_frame(opcode, payload, fin=fin, rsv=rsv, mask=KEY, length=length)


def sf(opcode: int, payload: bytes = b"", *, fin: bool = True, length: int | None = None) -> bytes:
    """A frame as a server sends it (unmasked)."""
    return _core.build_frame(opcode, payload, fin=fin, length=length)


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return code.to_bytes(2, "big") + reason


ERR_1002: list[Event] = [(ref.EV_ERROR, 1002)]
ERR_1007: list[Event] = [(ref.EV_ERROR, 1007)]
ERR_1009: list[Event] = [(ref.EV_ERROR, 1009)]
T, B, C = ref.OP_TEXT, ref.OP_BINARY, ref.OP_CONT
PING, PONG, CLOSE = ref.OP_PING, ref.OP_PONG, ref.OP_CLOSE

# (id naming the RFC section, receiver config, input, expected events)
RFC_CASES: list[tuple[str, Config, bytes, list[Event]]] = [
    ("5.1 server: unmasked frame", Config(), sf(T, b"hi"), ERR_1002),
    ("5.1 client: masked frame", Config(client=True), cf(T, b"hi"), ERR_1002),
    ("5.1 unmasked, judged on 2 bytes", Config(), sf(B, b"x" * 300)[:2], ERR_1002),
    ("5.2 RSV1 without extension", Config(), cf(T, b"a", rsv=ref.RSV1), ERR_1002),
    ("5.2 RSV3 without extension", Config(rsv_allowed=ref.RSV1), cf(T, rsv=ref.RSV3), ERR_1002),
    (
        "5.2 RSV1 negotiated",
        Config(rsv_allowed=ref.RSV1),
        cf(T, b"a", rsv=ref.RSV1),
        [(ref.EV_TEXT, "a")],
    ),
    ("5.2 reserved data opcode", Config(), cf(3), ERR_1002),
    ("5.2 reserved control opcode", Config(), cf(0xB), ERR_1002),
    ("5.2 reserved opcode, 1st byte", Config(), b"\x87", []),
    ("5.2 reserved opcode, 2 bytes", Config(), b"\x87\x80", ERR_1002),
    ("5.2 64-bit length, top bit", Config(), cf(B, length=2**63), ERR_1002),
    ("5.2 64-bit length, top bit, client", Config(client=True), sf(B, length=2**64 - 1), ERR_1002),
    (
        "5.2 non-minimal length accepted",
        Config(),
        ref.build_frame(B, b"ab", mask_key=KEY, length_bytes=8),
        [(ref.EV_BINARY, b"ab")],
    ),
    (
        "5.2 16/64-bit lengths",
        Config(),
        cf(B, b"x" * 126) + cf(B, b"y" * 65536),
        [(ref.EV_BINARY, b"x" * 126), (ref.EV_BINARY, b"y" * 65536)],
    ),
    (
        "5.4 fragments",
        Config(),
        cf(T, b"he", fin=False) + cf(C, b"l", fin=False) + cf(C, b"lo"),
        [(ref.EV_TEXT, "hello")],
    ),
    (
        "5.4 empty fragments",
        Config(),
        cf(B, fin=False) + cf(C, fin=False) + cf(C),
        [(ref.EV_BINARY, b"")],
    ),
    ("5.4 continuation without message", Config(), cf(C, b"x"), ERR_1002),
    (
        "5.4 continuation after finished message",
        Config(),
        cf(T, b"a") + cf(C, b"b"),
        [(ref.EV_TEXT, "a"), (ref.EV_ERROR, 1002)],
    ),
    (
        "5.4 new message inside a fragmented one",
        Config(),
        cf(T, b"a", fin=False) + cf(B, b"b"),
        ERR_1002,
    ),
    (
        "5.4 control frames between fragments",
        Config(),
        cf(B, b"a", fin=False) + cf(PING, b"p") + cf(PONG) + cf(C, b"b"),
        [(ref.EV_PING, b"p"), (ref.EV_PONG, b""), (ref.EV_BINARY, b"ab")],
    ),
    (
        "5.4 close between fragments",
        Config(),
        cf(B, b"a", fin=False) + cf(CLOSE, close_payload(1001)) + cf(C, b"b"),
        [(ref.EV_CLOSE, 1001, "")],
    ),
    (
        "5.4 RSV on a continuation",
        Config(rsv_allowed=ref.RSV1),
        cf(T, b"a", fin=False, rsv=ref.RSV1) + cf(C, b"b", rsv=ref.RSV1),
        ERR_1002,
    ),
    ("5.5 fragmented ping", Config(), cf(PING, b"p", fin=False), ERR_1002),
    ("5.5 fragmented close", Config(), cf(CLOSE, fin=False), ERR_1002),
    ("5.5 ping of 126 bytes", Config(), cf(PING, b"p" * 126), ERR_1002),
    ("5.5 pong of 126 bytes, on 2 bytes", Config(), cf(PONG, b"p" * 126)[:2], ERR_1002),
    ("5.5 ping of 125 bytes", Config(), cf(PING, b"p" * 125), [(ref.EV_PING, b"p" * 125)]),
    (
        "5.5 RSV on a control frame",
        Config(rsv_allowed=ref.RSV_BITS),
        cf(PING, rsv=ref.RSV1),
        ERR_1002,
    ),
    (
        "5.5 control frames ignore max_frame_size",
        Config(max_frame_size=1),
        cf(PING, b"pp"),
        [(ref.EV_PING, b"pp")],
    ),
    ("5.5.1 close without payload", Config(), cf(CLOSE), [(ref.EV_CLOSE, 1005, "")]),
    ("5.5.1 close with 1 byte", Config(), cf(CLOSE, b"\x03"), ERR_1002),
    (
        "5.5.1 close with code and reason",
        Config(),
        cf(CLOSE, close_payload(1000, "d\u00e9j\u00e0".encode())),
        [(ref.EV_CLOSE, 1000, "d\u00e9j\u00e0")],
    ),
    (
        "5.5.1 nothing after close",
        Config(),
        cf(CLOSE, close_payload(1000)) + cf(T, b"late") + b"\xff\xff",
        [(ref.EV_CLOSE, 1000, "")],
    ),
    (
        "5.5.2 ping payload",
        Config(client=True),
        sf(PING, b"\x00\xff"),
        [(ref.EV_PING, b"\x00\xff")],
    ),
    ("5.6 text must be UTF-8", Config(), cf(T, b"a\xff"), ERR_1007),
    ("5.6 binary may be anything", Config(), cf(B, b"\xff\xfe"), [(ref.EV_BINARY, b"\xff\xfe")]),
    ("7.4.1 code 1005 on the wire", Config(), cf(CLOSE, close_payload(1005)), ERR_1002),
    ("7.4.1 code 1006 on the wire", Config(), cf(CLOSE, close_payload(1006)), ERR_1002),
    ("7.4.1 code 1015 on the wire", Config(), cf(CLOSE, close_payload(1015)), ERR_1002),
    ("7.4.1 reserved code 1004", Config(), cf(CLOSE, close_payload(1004)), ERR_1002),
    ("7.4.2 code 999", Config(), cf(CLOSE, close_payload(999)), ERR_1002),
    ("7.4.2 code 2999", Config(), cf(CLOSE, close_payload(2999)), ERR_1002),
    ("7.4.2 code 5000", Config(), cf(CLOSE, close_payload(5000)), ERR_1002),
    ("7.4.2 code 3000", Config(), cf(CLOSE, close_payload(3000)), [(ref.EV_CLOSE, 3000, "")]),
    ("7.4.2 code 4999", Config(), cf(CLOSE, close_payload(4999)), [(ref.EV_CLOSE, 4999, "")]),
    ("11.7 code 1014 (IANA)", Config(), cf(CLOSE, close_payload(1014)), [(ref.EV_CLOSE, 1014, "")]),
    (
        "5.5.1, 8.1 close reason must be UTF-8",
        Config(),
        cf(CLOSE, close_payload(1000, b"\xc0\xaf")),
        ERR_1007,
    ),
    (
        "7.4.1 invalid code before invalid reason",
        Config(),
        cf(CLOSE, close_payload(1005, b"\xff")),
        ERR_1002,
    ),
    (
        "8.1 UTF-8 split across fragments",
        Config(),
        cf(T, b"\xe2\x82", fin=False) + cf(C, b"\xac"),
        [(ref.EV_TEXT, "\u20ac")],
    ),
    ("8.1 character cut off at the end", Config(), cf(T, b"\xe2\x82"), ERR_1007),
    ("8.1 fail fast inside a frame", Config(), cf(T, b"ok\xc0 and more")[:9], ERR_1007),
    ("8.1 fail fast on a surrogate's 2nd byte", Config(), cf(T, b"\xed\xa0", fin=False), ERR_1007),
    (
        "8.1 fail fast across fragments",
        Config(),
        cf(T, b"\xf4", fin=False) + cf(C, b"\x90")[:7],
        ERR_1007,
    ),
    ("10.4 message over the limit", Config(max_message_size=10), cf(B, b"x" * 11), ERR_1009),
    (
        "10.4 message at the limit",
        Config(max_message_size=10),
        cf(B, b"x" * 10),
        [(ref.EV_BINARY, b"x" * 10)],
    ),
    (
        "10.4 fragments over the limit",
        Config(max_message_size=10),
        cf(B, b"x" * 6, fin=False) + cf(C, b"x" * 5),
        ERR_1009,
    ),
    ("10.4 judged on the header", Config(max_message_size=10), cf(B, b"x" * 300)[:8], ERR_1009),
    ("10.4 frame over the limit", Config(max_frame_size=5), cf(T, b"abcdef"), ERR_1009),
    ("10.4 no limit", Config(max_message_size=None), cf(B, length=2**62)[:14], []),
]


@pytest.mark.parametrize(
    ("config", "data", "expected"),
    [pytest.param(c, d, e, id=name) for name, c, d, e in RFC_CASES],
)
def test_rfc_rules(config: Config, data: bytes, expected: list[Event]) -> None:
    """RFC 6455 sections 5.1-5.6, 7.4, 8.1 and 10.4, one rule per case (the
    case id names the section): both codecs give the expected events, whole
    and byte by byte."""
    assert comparable(ref.parse(data, config)) == expected
    assert comparable(s.codec(config).receive_data(data)) == expected
    assert comparable(s.feed(s.codec(config), data, range(len(data)))) == expected


# ---------------------------------------------------------------------------
# The building blocks


@given(data=st.binary(max_size=16))
@example(data=b"\x82\x7f\x80\x00\x00\x00\x00\x00\x00\x00")
@example(data=b"\x82\xfe\x00\x7d\x01\x02\x03\x04")
def test_header_parse_matches(data: bytes) -> None:
    """RFC 6455 section 5.2: both parsers read the same header fields; a 64-bit
    length with its top bit set is refused."""
    header = ref.parse_header(data)
    if header is not None and header.length >> 63:
        with pytest.raises(ProtocolError):
            _core.parse_frame_header(data)
        return
    got = _core.parse_frame_header(data)
    if header is None:
        assert got is None
    else:
        expected = (header.fin, header.rsv, header.opcode, header.masked, header.key,
                    header.length, header.size)  # fmt: skip
        assert got == expected


@given(
    opcode=st.integers(0, 15),
    payload=st.one_of(st.binary(max_size=300), s.binaries()),
    fin=st.booleans(),
    rsv=st.sampled_from([0, ref.RSV1, ref.RSV2, ref.RSV3, ref.RSV_BITS]),
    key=st.none() | st.binary(min_size=4, max_size=4),
    length=st.none() | st.sampled_from([0, 125, 126, 65535, 65536, 2**63, 2**64 - 1]),
)
def test_build_frame_matches(
    opcode: int, payload: bytes, fin: bool, rsv: int, key: bytes | None, length: int | None
) -> None:
    """RFC 6455 section 5.2: the C serializer writes what the reference does."""
    built = _core.build_frame(opcode, payload, fin=fin, rsv=rsv, mask=key, length=length)
    assert built == ref.build_frame(opcode, payload, fin=fin, rsv=rsv, mask_key=key, length=length)


@given(
    data=s.binaries(max_size=300),
    key=st.binary(min_size=4, max_size=4),
    phase=st.integers(0, 2**64 - 1),
    offset=st.integers(0, 63),
)
def test_mask_matches(data: bytes, key: bytes, phase: int, offset: int) -> None:
    """RFC 6455 section 5.3: octet i is XORed with key octet (i + phase) mod 4,
    whatever the vector width and the alignment of the buffer."""
    expected = ref.mask(data, key, phase)
    assert _core.mask(data, key, phase) == expected
    buf = bytearray(b"!" * offset + data)  # in place, at any start address
    view = memoryview(buf)[offset:]
    _core.mask_into(view, key, phase)
    assert bytes(view) == expected
    assert buf[:offset] == b"!" * offset


@given(data=st.one_of(s.maybe_bad_utf8(), st.binary(max_size=40)), cut=st.integers(0, 200))
@example(data=b"\xed\xa0", cut=1)
@example(data=b"\xf4\x8f\xbf\xbf", cut=2)
def test_utf8_validator_matches(data: bytes, cut: int) -> None:
    """RFC 6455 section 8.1 via RFC 3629: the incremental validator accepts
    exactly valid UTF-8, and rejects a prefix as soon as nothing can complete
    it, across any split."""
    try:
        data.decode("utf-8")
        valid = True
    except UnicodeDecodeError:
        valid = False
    assert _core.utf8_valid(data) == valid
    state = _core.utf8_feed(_core.utf8_feed(0, data[:cut]), data[cut:])
    assert (state == 0) == valid
    assert (state != 1) == ref.utf8_can_continue(data)


def test_close_codes_match() -> None:
    """RFC 6455 sections 7.4.1, 7.4.2 and the IANA registry: the same codes
    are valid in a received close frame."""
    for code in range(0x10000):
        assert _core.close_code_is_valid(code) == ref.close_code_is_valid(code), code


# ---------------------------------------------------------------------------
# The codec against the reference, on any input


@st.composite
def any_streams(draw: st.DrawFn, config: Config) -> bytes:
    """Frames built field by field, and valid conversations with an odd frame
    put in or bytes changed (so that parsing goes deep before it fails)."""
    masked = not config.client
    kind = draw(st.sampled_from([0, 1, 2, 2, 3]))
    if kind == 0:
        return draw(s.frame_streams(masked=masked))
    wire = draw(s.conversations(rsv=config.rsv_allowed & ref.RSV1)).play(
        _core.WebSocketCodec(client=masked, rsv_allowed=config.rsv_allowed & ref.RSV1)
    )
    if kind == 1:
        frames = list(ref.split_frames(wire))
        at = draw(st.integers(0, len(frames)))
        frames.insert(at, draw(s.wire_frames(masked=masked)))
        return b"".join(frames)
    if kind == 2:
        return draw(s.tampered(wire, rsv_allowed=config.rsv_allowed))
    return draw(s.mutated(wire))


@given(config=s.configs(), data=st.data())
def test_codec_matches_reference(config: Config, data: st.DataObject) -> None:
    """RFC 6455 sections 5.1-5.8, 7.4, 8.1 and 10.4: on any input, valid or
    not, complete or cut short, the C codec reports what the reference does:
    the same messages, the same close, the same error code."""
    stream = data.draw(any_streams(config), label="stream")
    if data.draw(st.booleans(), label="limits from the stream"):
        config = data.draw(s.limits_near(config, stream), label="config")
    expected = comparable(ref.parse(stream, config))
    assert comparable(s.codec(config).receive_data(stream)) == expected
    last = expected[-1] if expected else None
    event(f"last event: {last[:2] if last and last[0] == ref.EV_ERROR else last and last[0]}")


@given(config=s.configs(), data=st.data())
def test_header_changes_match_reference(config: Config, data: st.DataObject) -> None:
    """RFC 6455 sections 5.2, 5.4 and 5.5: a valid stream with one header field
    of a few frames changed (RSV bits an extension allows, but on a control or
    continuation frame; FIN; the opcode; the MASK bit; the length): the C codec
    reports what the reference does."""
    rsv = config.rsv_allowed & ref.RSV1
    conv = data.draw(s.conversations(rsv=rsv), label="conversation")
    wire = conv.play(_core.WebSocketCodec(client=not config.client, rsv_allowed=rsv))
    stream = data.draw(s.tampered(wire, rsv_allowed=config.rsv_allowed), label="stream")
    expected = comparable(ref.parse(stream, config))
    assert comparable(s.codec(config).receive_data(stream)) == expected


# ---------------------------------------------------------------------------
# wsproto


class WsprotoReceiver:
    """wsproto's frame-level parser, reporting our event tuples."""

    def __init__(self, *, client: bool) -> None:
        self.protocol = FrameProtocol(client=client, extensions=[])
        self.parts: list[str | bytes] = []

    def receive_data(self, data: bytes) -> list[Event]:
        self.protocol.receive_bytes(data)
        events: list[Event] = []
        try:
            for frame in self.protocol.received_frames():
                if frame.opcode is Opcode.PING:
                    events.append((ref.EV_PING, bytes(frame.payload)))  # type: ignore[arg-type]
                elif frame.opcode is Opcode.PONG:
                    events.append((ref.EV_PONG, bytes(frame.payload)))  # type: ignore[arg-type]
                elif frame.opcode is Opcode.CLOSE:
                    assert isinstance(frame.payload, tuple)
                    code, reason = frame.payload
                    events.append((ref.EV_CLOSE, int(code), reason))
                else:
                    self.parts.append(frame.payload)  # type: ignore[arg-type]
                    if frame.message_finished:
                        if frame.opcode is Opcode.TEXT:
                            events.append((ref.EV_TEXT, "".join(self.parts)))  # type: ignore[arg-type]
                        else:
                            events.append((ref.EV_BINARY, b"".join(self.parts)))  # type: ignore[arg-type]
                        self.parts = []
        except ParseFailed as exc:
            events.append((ref.EV_ERROR, int(exc.code)))
        return events


@pytest.mark.parametrize(
    "sender_is_client", [True, False], ids=["client-to-server", "server-to-client"]
)
@given(conv=s.conversations())
def test_wsproto_reads_what_we_send(sender_is_client: bool, conv: s.Conversation) -> None:
    """RFC 6455 sections 5.1-5.6: wsproto receives our messages, fragments,
    interleaved control frames and close as we meant them."""
    wire = conv.play(_core.WebSocketCodec(client=sender_is_client))
    expected = conv.expected
    if expected and expected[-1][:2] == (ref.EV_CLOSE, 1014):
        expected = [*expected[:-1], *ERR_1002]  # wsproto does not know 1014 (see the top)
    assert WsprotoReceiver(client=not sender_is_client).receive_data(wire) == expected


@pytest.mark.parametrize(
    "sender_is_client", [True, False], ids=["client-to-server", "server-to-client"]
)
@given(conv=s.conversations(), data=st.data())
def test_we_read_what_wsproto_sends(
    sender_is_client: bool, conv: s.Conversation, data: st.DataObject
) -> None:
    """RFC 6455 sections 5.1-5.6: we receive wsproto's frames (its own masking
    keys and fragmentation) as it meant them."""
    sender = FrameProtocol(client=sender_is_client, extensions=[])
    wire = b""
    for step in conv.steps:
        if step.call == "send":
            wire += sender.send_data(step.payload)
        elif step.call == "close":
            wire += sender.close(step.code, step.reason or None)
        else:
            assert isinstance(step.payload, bytes)
            if step.call == "frame":
                # The public send_data() takes text as str, so it cannot cut a
                # character in two as our fragments do: use the frame writer.
                wire += sender._serialize_frame(Opcode(step.opcode), step.payload, step.fin)
            elif step.call == "ping":
                wire += sender.ping(step.payload)
            else:
                wire += sender.pong(step.payload)
    receiver = _core.WebSocketCodec(client=not sender_is_client, max_message_size=None)
    cuts = data.draw(s.cuts_for(wire), label="cuts")
    assert s.feed(receiver, wire, cuts) == conv.expected


def _surrogate_pending(text: bytes) -> bool:
    """Does `text` end with the first two bytes of a UTF-16 surrogate?"""
    return len(text) >= 2 and text[-2] == 0xED and 0xA0 <= text[-1] <= 0xBF


def _close_code(raw: bytes, header: ref.Header) -> int | None:
    payload = raw[header.size :]
    if header.key is not None:
        payload = ref.mask(payload, header.key)
    return int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None


def compare_with_wsproto(stream: bytes, *, client: bool) -> str:
    """Feeds `stream` frame by frame to our codec (without limits) and to
    wsproto. The events must agree until one side stops, except for the
    differences listed at the top of this module, which end the comparison.
    Returns how the comparison ended (for the tests that pin a difference)."""
    ours = _core.WebSocketCodec(client=client, max_message_size=None)
    theirs = WsprotoReceiver(client=client)
    text: bytes | None = None  # the open text message's bytes so far
    for raw in ref.split_frames(stream):
        a = comparable(ours.receive_data(raw))
        b = theirs.receive_data(raw)
        header = ref.parse_header(raw)
        complete = header is not None and len(raw) == header.size + header.length
        if header is not None and complete and not ref.is_control(header.opcode):
            payload = raw[header.size :]
            if header.key is not None:
                payload = ref.mask(payload, header.key)
            if header.opcode == ref.OP_TEXT:
                text = payload
            elif header.opcode == ref.OP_CONT and text is not None:
                text += payload
            else:
                text = None
        if a == b:
            if a and a[-1][0] in (ref.EV_ERROR, ref.EV_CLOSE):
                return "same"
            if header is not None and header.fin and not ref.is_control(header.opcode):
                text = None
            continue
        if not complete and b == [] and len(a) == 1 and a[0][0] == ref.EV_ERROR:
            return "we fail earlier on an incomplete frame"
        if header is not None and not header.minimal and b == ERR_1002:
            # wsproto stops at the header, before what we find in the payload.
            return "wsproto refuses a non-minimal length"
        if (
            complete and header is not None and header.opcode == ref.OP_CLOSE
            and _close_code(raw, header) == 1014 and b == ERR_1002
        ):  # fmt: skip
            # wsproto stops at the code, before what we find in the reason.
            return "wsproto refuses close code 1014"
        if (
            a == ERR_1007 and b == [] and header is not None and not header.fin
            and text is not None and _surrogate_pending(text)
        ):  # fmt: skip
            return "we fail earlier on a surrogate"
        assert a == b, f"frame {raw[:16].hex()}... of {stream.hex()}"
    return "same"


@given(client=st.booleans(), data=st.data())
def test_wsproto_verdicts(client: bool, data: st.DataObject) -> None:
    """RFC 6455 sections 5.1-5.8 and 7.4: on frames built field by field,
    valid or not, wsproto and we report the same messages and fail with the
    same close code (see the module docstring for where and why we may not)."""
    config = Config(client=client, max_message_size=None)
    stream = data.draw(any_streams(config), label="stream")
    event(compare_with_wsproto(stream, client=client))


def test_wsproto_difference_non_minimal_length() -> None:
    """RFC 6455 section 5.2: "the minimal number of bytes MUST be used to
    encode the length" binds the sender; we accept a longer encoding, wsproto
    fails the connection."""
    frame = ref.build_frame(ref.OP_BINARY, b"abc", mask_key=KEY, length_bytes=2)
    assert s.codec(Config()).receive_data(frame) == [(ref.EV_BINARY, b"abc")]
    assert compare_with_wsproto(frame, client=False) == "wsproto refuses a non-minimal length"


def test_wsproto_difference_close_1014() -> None:
    """RFC 6455 section 11.7: 1014 is in the IANA close code registry; we
    accept it in a close frame, wsproto does not know it."""
    frame = cf(ref.OP_CLOSE, close_payload(1014, b"upstream"))
    assert s.codec(Config()).receive_data(frame) == [(ref.EV_CLOSE, 1014, "upstream")]
    assert compare_with_wsproto(frame, client=False) == "wsproto refuses close code 1014"
    # Also when the reason is cut inside a character: we see the reason
    # (1007), wsproto stops at the code (1002).
    frame = cf(ref.OP_CLOSE, close_payload(1014, "\u20ac".encode())[:4])
    assert comparable(s.codec(Config()).receive_data(frame)) == ERR_1007
    assert compare_with_wsproto(frame, client=False) == "wsproto refuses close code 1014"


def test_wsproto_difference_surrogate() -> None:
    """RFC 6455 section 8.1: ED A0 can only start a surrogate, which UTF-8
    forbids; we fail on the second byte, Python's decoder waits for the third."""
    stream = cf(ref.OP_TEXT, b"ok\xed\xa0", fin=False) + cf(ref.OP_CONT, b"\x80")
    assert compare_with_wsproto(stream, client=False) == "we fail earlier on a surrogate"


def test_wsproto_difference_incomplete_header() -> None:
    """RFC 6455 section 5.2: the first two bytes of a header are enough to see
    an RSV bit no extension defined; wsproto waits for the extended length."""
    stream = cf(ref.OP_BINARY, b"x" * 200, rsv=ref.RSV2)[:3]
    assert compare_with_wsproto(stream, client=False) == "we fail earlier on an incomplete frame"
