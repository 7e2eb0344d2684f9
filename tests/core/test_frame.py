"""Frame headers (RFC 6455 section 5.2) and the framing rules of sections
5.1 to 5.5, through build_frame, parse_frame_header and WebSocketCodec.

A small pure-Python header encoder is the reference.
"""

from __future__ import annotations

import itertools

import pytest

from h2ws import _core
from h2ws.exceptions import InvalidState, ProtocolError

pytestmark = pytest.mark.codec

KEY = b"\x9a\x01\xff\x5c"
CONTROL = (_core.OP_PING, _core.OP_PONG)


def ref_header(
    opcode: int, length: int, *, fin: bool = True, rsv: int = 0, key: bytes | None = None
) -> bytes:
    """Section 5.2, written from the RFC's figure: 7-bit length up to 125,
    then 126 + 16 bits, then 127 + 64 bits; the masking key follows."""
    b0 = (0x80 if fin else 0) | rsv | opcode
    m = 0x80 if key is not None else 0
    if length < 126:
        out = bytes([b0, m | length])
    elif length < 1 << 16:
        out = bytes([b0, m | 126]) + length.to_bytes(2, "big")
    else:
        out = bytes([b0, m | 127]) + length.to_bytes(8, "big")
    return out + (key or b"")


def masked(opcode: int, payload: bytes = b"", **kw: object) -> bytes:
    """A frame as a client sends it."""
    return _core.build_frame(opcode, payload, mask=KEY, **kw)  # type: ignore[arg-type]


def events(codec: _core.WebSocketCodec, data: bytes) -> list[tuple[object, ...]]:
    """Events, with an error's reason text dropped."""
    return [e[:2] if e[0] == _core.EV_ERROR else e for e in codec.receive_data(data)]


ERR_1002 = [(_core.EV_ERROR, 1002)]

LENGTHS = [
    0,
    1,
    124,
    125,
    126,
    127,
    128,
    255,
    256,
    65534,
    65535,
    65536,
    65537,
    (1 << 32) - 1,
    1 << 32,
    (1 << 63) - 1,
]


# --------------------------------------------------------------------------
# Encoding


def test_header_uses_the_minimal_length_encoding() -> None:
    """Section 5.2: "the minimal number of bytes MUST be used to encode the
    length": 7 bits up to 125, 16 bits up to 65535, 64 bits above."""
    for length in LENGTHS:
        for key in (None, KEY):
            frame = _core.build_frame(_core.OP_BINARY, b"", length=length, mask=key)
            assert frame == ref_header(_core.OP_BINARY, length, key=key)
            expected_size = (2 if length <= 125 else 4 if length <= 65535 else 10) + (
                4 if key else 0
            )
            assert len(frame) == expected_size


def test_first_octet_carries_fin_rsv_and_opcode() -> None:
    """Section 5.2: FIN is bit 0, RSV1-3 bits 1-3, the opcode bits 4-7."""
    for opcode, rsv, fin in itertools.product(range(16), range(0, 0x80, 0x10), (True, False)):
        frame = _core.build_frame(opcode, b"x", fin=fin, rsv=rsv)
        assert frame[0] == (0x80 if fin else 0) | rsv | opcode
        assert frame == ref_header(opcode, 1, fin=fin, rsv=rsv) + b"x"


def test_payload_is_masked_after_the_key() -> None:
    """Section 5.3: the MASK bit is set, the 4-octet key follows the length,
    and payload octet i is XORed with key[i % 4]."""
    payload = bytes(range(200))
    frame = _core.build_frame(_core.OP_BINARY, payload, mask=KEY)
    head = ref_header(_core.OP_BINARY, 200, key=KEY)
    assert frame[: len(head)] == head
    body = frame[len(head) :]
    assert bytes(b ^ KEY[i % 4] for i, b in enumerate(body)) == payload


def test_rsv_constants() -> None:
    """Section 5.2: RSV1 = 0x40, RSV2 = 0x20, RSV3 = 0x10 of the first octet;
    section 11.8: the opcodes."""
    assert (_core.RSV1, _core.RSV2, _core.RSV3) == (0x40, 0x20, 0x10)
    assert (_core.OP_CONT, _core.OP_TEXT, _core.OP_BINARY) == (0, 1, 2)
    assert (_core.OP_CLOSE, _core.OP_PING, _core.OP_PONG) == (8, 9, 10)


# --------------------------------------------------------------------------
# parse_frame_header


def test_parse_round_trip_and_every_prefix_is_incomplete() -> None:
    """Section 5.2: a header is parsed whole or not at all; any proper
    prefix asks for more octets (None), whatever follows is not consumed."""
    for length in LENGTHS:
        for key, fin, rsv in itertools.product((None, KEY), (True, False), (0, 0x40, 0x70)):
            head = ref_header(_core.OP_TEXT, length, fin=fin, rsv=rsv, key=key)
            for cut in range(len(head)):
                assert _core.parse_frame_header(head[:cut]) is None
            expected = (fin, rsv, _core.OP_TEXT, key is not None, key, length, len(head))
            assert _core.parse_frame_header(head) == expected
            assert _core.parse_frame_header(head + b"payload") == expected
            assert _core.parse_frame_header(bytearray(head)) == expected


def test_parse_rejects_64_bit_length_with_top_bit_set() -> None:
    """Section 5.2: "the most significant bit MUST be 0" in a 64-bit length."""
    for length in (1 << 63, (1 << 64) - 1):
        head = _core.build_frame(_core.OP_BINARY, length=length)
        with pytest.raises(ProtocolError):
            _core.parse_frame_header(head)
        with pytest.raises(ProtocolError):
            _core.parse_frame_header(_core.build_frame(_core.OP_BINARY, length=length, mask=KEY))
    # Short of the full length field it still just asks for more.
    assert _core.parse_frame_header(b"\x82\x7f\x80\x00") is None


def test_parse_accepts_a_non_minimal_length() -> None:
    """Section 5.2 binds the sender to the minimal encoding; the parser
    still reads a longer encoding correctly."""
    assert _core.parse_frame_header(b"\x82\x7e\x00\x05") == (True, 0, 2, False, None, 5, 4)
    assert _core.parse_frame_header(b"\x82\x7f" + (5).to_bytes(8, "big")) == (
        True,
        0,
        2,
        False,
        None,
        5,
        10,
    )


def test_codec_fails_on_64_bit_length_with_top_bit_set() -> None:
    """Section 5.2: such a frame is a protocol error (1002)."""
    for client in (False, True):
        head = _core.build_frame(_core.OP_BINARY, length=1 << 63, mask=None if client else KEY)
        codec = _core.WebSocketCodec(client=client)
        assert events(codec, head) == ERR_1002
        codec = _core.WebSocketCodec(client=client)
        for i in range(len(head)):  # and split anywhere
            got = events(codec, head[i : i + 1])
        assert got == ERR_1002


# --------------------------------------------------------------------------
# Masking direction (section 5.1)


def test_server_fails_on_an_unmasked_frame() -> None:
    """Section 5.1: "The server MUST close the connection upon receiving a
    frame that is not masked" (status 1002, section 7.4.1)."""
    for opcode in (_core.OP_TEXT, _core.OP_BINARY, _core.OP_PING, _core.OP_CLOSE):
        codec = _core.WebSocketCodec()
        assert events(codec, _core.build_frame(opcode)) == ERR_1002
        assert codec.failed


def test_client_fails_on_a_masked_frame() -> None:
    """Section 5.1: "A client MUST close a connection if it detects a masked
    frame"."""
    for opcode in (_core.OP_TEXT, _core.OP_BINARY, _core.OP_PING, _core.OP_CLOSE):
        codec = _core.WebSocketCodec(client=True)
        assert events(codec, _core.build_frame(opcode, mask=KEY)) == ERR_1002
        assert codec.failed


def test_server_sends_unmasked_and_client_sends_masked() -> None:
    """Section 5.1: a server MUST NOT mask frames; a client MUST mask all."""
    for client in (False, True):
        codec = _core.WebSocketCodec(client=client)
        codec.send("text")
        codec.send(b"binary")
        codec.ping(b"p")
        codec.pong(b"q")
        codec.send_frame(_core.OP_TEXT, b"a", fin=False)
        codec.send_frame(_core.OP_CONT, b"b")
        codec.close(1000, "bye")
        data = codec.data_to_send()
        pos = 0
        while pos < len(data):
            fin, rsv, opcode, is_masked, key, length, size = _core.parse_frame_header(data[pos:])
            assert is_masked == client
            assert (key is not None) == client
            pos += size + length
        assert pos == len(data)


def test_sent_headers_are_minimal() -> None:
    """Section 5.2: our own frames use the minimal length encoding."""
    for length in (0, 1, 125, 126, 65535, 65536, 70000):
        for client in (False, True):
            codec = _core.WebSocketCodec(client=client)
            codec.send(b"\x00" * length)
            data = codec.data_to_send()
            parsed = _core.parse_frame_header(data)
            assert parsed is not None
            fin, rsv, opcode, is_masked, key, got_length, size = parsed
            assert (fin, rsv, opcode, got_length) == (True, 0, _core.OP_BINARY, length)
            assert data[:size] == ref_header(_core.OP_BINARY, length, key=key)
            assert len(data) == size + length


# --------------------------------------------------------------------------
# Receiving: RSV bits, opcodes, control frames, fragmentation


def test_rsv_bits_without_an_extension_fail() -> None:
    """Section 5.2: RSV1-3 "MUST be 0 unless an extension is negotiated";
    otherwise the receiver MUST fail the connection."""
    for rsv in range(0x10, 0x80, 0x10):
        for opcode in (_core.OP_TEXT, _core.OP_BINARY, _core.OP_PING, _core.OP_CLOSE):
            codec = _core.WebSocketCodec()
            assert events(codec, masked(opcode, b"x" if opcode != 8 else b"", rsv=rsv)) == ERR_1002


def test_rsv_allowed_by_an_extension() -> None:
    """Section 5.2 / 9: a negotiated extension may use the bits it defines
    on the first frame of a data message; other bits, control frames and
    continuation frames with those bits still fail (RFC 7692 section 6)."""
    codec = _core.WebSocketCodec(rsv_allowed=_core.RSV1)
    assert events(codec, masked(_core.OP_BINARY, b"abc", rsv=_core.RSV1)) == [
        (_core.EV_BINARY, b"abc")
    ]
    assert (
        events(
            _core.WebSocketCodec(rsv_allowed=_core.RSV1),
            masked(_core.OP_BINARY, b"abc", rsv=_core.RSV2),
        )
        == ERR_1002
    )
    assert (
        events(
            _core.WebSocketCodec(rsv_allowed=_core.RSV1), masked(_core.OP_PING, b"", rsv=_core.RSV1)
        )
        == ERR_1002
    )
    codec = _core.WebSocketCodec(rsv_allowed=_core.RSV1)
    wire = masked(_core.OP_TEXT, b"a", fin=False, rsv=_core.RSV1) + masked(
        _core.OP_CONT, b"b", rsv=_core.RSV1
    )
    assert events(codec, wire) == ERR_1002


def test_reserved_opcodes_fail() -> None:
    """Section 5.2: "If an unknown opcode is received, the receiving endpoint
    MUST _Fail the WebSocket Connection_"."""
    for opcode in (3, 4, 5, 6, 7, 11, 12, 13, 14, 15):
        for client in (False, True):
            codec = _core.WebSocketCodec(client=client)
            frame = _core.build_frame(opcode, b"payload", mask=None if client else KEY)
            assert events(codec, frame) == ERR_1002
            assert codec.receive_data(masked(_core.OP_TEXT, b"later")) == []


def test_control_frame_over_125_octets_fails() -> None:
    """Section 5.5: "All control frames MUST have a payload length of 125
    bytes or less"; a 16- or 64-bit length fails at the second octet."""
    for opcode in (_core.OP_PING, _core.OP_PONG, _core.OP_CLOSE):
        for length in (126, 127, 65536):
            codec = _core.WebSocketCodec()
            head = _core.build_frame(opcode, length=length, mask=KEY)
            assert events(codec, head[:2]) == ERR_1002


def test_fragmented_control_frame_fails() -> None:
    """Section 5.5: control frames "MUST NOT be fragmented"."""
    for opcode in (_core.OP_PING, _core.OP_PONG, _core.OP_CLOSE):
        codec = _core.WebSocketCodec()
        assert events(codec, masked(opcode, b"", fin=False)) == ERR_1002


def test_control_frames_of_125_octets_are_fine() -> None:
    """Section 5.5: 125 octets is the limit, inclusive."""
    codec = _core.WebSocketCodec()
    payload = bytes(range(125))
    assert events(codec, masked(_core.OP_PING, payload) + masked(_core.OP_PONG, payload)) == [
        (_core.EV_PING, payload),
        (_core.EV_PONG, payload),
    ]


def test_control_frames_between_fragments() -> None:
    """Section 5.4: "Control frames MAY be injected in the middle of a
    fragmented message" and the endpoint MUST be able to handle them."""
    wire = (
        masked(_core.OP_TEXT, b"fra", fin=False)
        + masked(_core.OP_PING, b"1")
        + masked(_core.OP_CONT, b"gm", fin=False)
        + masked(_core.OP_PONG, b"2")
        + masked(_core.OP_PING, b"3")
        + masked(_core.OP_CONT, b"ent")
    )
    assert events(_core.WebSocketCodec(), wire) == [
        (_core.EV_PING, b"1"),
        (_core.EV_PONG, b"2"),
        (_core.EV_PING, b"3"),
        (_core.EV_TEXT, "fragment"),
    ]


def test_fragments_are_delivered_in_order_as_one_message() -> None:
    """Section 5.4: fragments are delivered in the order sent, FIN ends the
    message; the opcode of the first fragment gives the message type."""
    parts = [bytes([i]) * i for i in range(1, 20)]
    wire = masked(_core.OP_BINARY, parts[0], fin=False)
    for p in parts[1:-1]:
        wire += masked(_core.OP_CONT, p, fin=False)
    wire += masked(_core.OP_CONT, parts[-1])
    assert events(_core.WebSocketCodec(), wire) == [(_core.EV_BINARY, b"".join(parts))]


def test_continuation_without_a_message_fails() -> None:
    """Section 5.4: a continuation frame must continue a started message."""
    for fin in (True, False):
        assert events(_core.WebSocketCodec(), masked(_core.OP_CONT, b"x", fin=fin)) == ERR_1002
    # Also after a complete message.
    wire = masked(_core.OP_TEXT, b"done") + masked(_core.OP_CONT, b"x")
    assert events(_core.WebSocketCodec(), wire) == [(_core.EV_TEXT, "done"), *ERR_1002]


def test_new_message_inside_a_fragmented_one_fails() -> None:
    """Section 5.4: fragments of one message MUST NOT be interleaved with
    another message's frames (no extension defines interleaving)."""
    for second in (_core.OP_TEXT, _core.OP_BINARY):
        wire = masked(_core.OP_TEXT, b"a", fin=False) + masked(second, b"b")
        assert events(_core.WebSocketCodec(), wire) == ERR_1002


def test_empty_frames() -> None:
    """Section 5.2: a payload length of 0 is valid for every frame type."""
    wire = (
        masked(_core.OP_TEXT)
        + masked(_core.OP_BINARY)
        + masked(_core.OP_PING)
        + masked(_core.OP_PONG)
        + masked(_core.OP_TEXT, fin=False)
        + masked(_core.OP_CONT)
    )
    assert events(_core.WebSocketCodec(), wire) == [
        (_core.EV_TEXT, ""),
        (_core.EV_BINARY, b""),
        (_core.EV_PING, b""),
        (_core.EV_PONG, b""),
        (_core.EV_TEXT, ""),
    ]


# --------------------------------------------------------------------------
# Incremental parsing


def test_any_split_gives_the_same_events() -> None:
    """Section 5.2 leaves the transport free to cut frames anywhere: the
    parser gives the same events for every two-way split of the input,
    including every split inside the 2-, 4- and 10-octet headers and the key."""
    for length in (0, 5, 125, 126, 300, 65535, 65536):
        payload = bytes((i * 7) & 0xFF for i in range(length))
        wire = masked(_core.OP_BINARY, payload) + masked(_core.OP_PING, b"p")
        expected = [(_core.EV_BINARY, payload), (_core.EV_PING, b"p")]
        head = 14 + 4  # every split inside the headers, then a sample of the payload
        cuts = sorted(
            set(range(min(head, len(wire))))
            | set(range(0, len(wire), 997))
            | {len(wire) - 8, len(wire) - 1}
        )
        for cut in cuts:
            codec = _core.WebSocketCodec()
            assert events(codec, wire[:cut]) + events(codec, wire[cut:]) == expected, cut


def test_octet_by_octet_with_many_frames() -> None:
    """Many frames of every header size, fed one octet at a time."""
    frames = [(_core.OP_TEXT, b"a" * n) for n in (0, 1, 125, 126, 65536)] + [
        (_core.OP_PING, b"x" * 125),
        (_core.OP_BINARY, b"\x00\xff" * 40),
    ]
    wire = b"".join(masked(op, p) for op, p in frames)
    codec = _core.WebSocketCodec()
    got = []
    for i in range(len(wire)):
        got += events(codec, wire[i : i + 1])
    expected = [
        (_core.EV_TEXT, p.decode())
        if op == _core.OP_TEXT
        else (_core.EV_PING if op == _core.OP_PING else _core.EV_BINARY, p)
        for op, p in frames
    ]
    assert got == expected


def test_nothing_is_parsed_after_a_failure() -> None:
    """Section 7.1.7: once the connection is failed the endpoint stops
    processing data from the peer."""
    codec = _core.WebSocketCodec()
    assert events(codec, _core.build_frame(_core.OP_TEXT, b"x")) == ERR_1002
    assert codec.receive_data(masked(_core.OP_TEXT, b"more")) == []
    assert codec.receive_data(masked(_core.OP_PING)) == []
    assert codec.failed


# --------------------------------------------------------------------------
# Sending: rules the codec enforces on its own frames


def test_send_frame_enforces_control_frame_rules() -> None:
    """Section 5.5: our control frames are never fragmented and at most
    125 octets."""
    codec = _core.WebSocketCodec()
    for opcode in CONTROL:
        with pytest.raises(ValueError):
            codec.send_frame(opcode, b"x" * 126)
        with pytest.raises(ValueError):
            codec.send_frame(opcode, b"x", fin=False)
        codec.send_frame(opcode, b"x" * 125)
    with pytest.raises(ValueError):
        codec.ping(b"x" * 126)
    with pytest.raises(ValueError):
        codec.pong(b"x" * 126)
    with pytest.raises(ValueError):  # close goes through close()
        codec.send_frame(_core.OP_CLOSE, b"")
    for opcode in (3, 7, 11, 15):
        with pytest.raises(ValueError):
            codec.send_frame(opcode, b"")


def test_send_frame_enforces_fragmentation_rules() -> None:
    """Section 5.4: a continuation continues a started message; a new
    message cannot start before the previous one ends; control frames may
    go between fragments."""
    codec = _core.WebSocketCodec()
    with pytest.raises(InvalidState):
        codec.send_frame(_core.OP_CONT, b"x")
    codec.send_frame(_core.OP_TEXT, b"a", fin=False)
    with pytest.raises(InvalidState):
        codec.send_frame(_core.OP_BINARY, b"b")
    with pytest.raises(InvalidState):
        codec.send("c")
    codec.ping(b"between")
    codec.send_frame(_core.OP_CONT, b"b", fin=False)
    codec.send_frame(_core.OP_CONT, b"c")
    with pytest.raises(InvalidState):
        codec.send_frame(_core.OP_CONT, b"d")
    peer = _core.WebSocketCodec(client=True)
    assert events(peer, codec.data_to_send()) == [
        (_core.EV_PING, b"between"),
        (_core.EV_TEXT, "abc"),
    ]


def test_send_frame_rsv_needs_an_extension() -> None:
    """Section 5.2: we set RSV bits only for a negotiated extension."""
    codec = _core.WebSocketCodec()
    for rsv in (_core.RSV1, _core.RSV2, _core.RSV3):
        with pytest.raises(ValueError):
            codec.send_frame(_core.OP_TEXT, b"x", rsv=rsv)
    ext = _core.WebSocketCodec(rsv_allowed=_core.RSV1)
    ext.send_frame(_core.OP_BINARY, b"x", rsv=_core.RSV1)
    assert ext.data_to_send()[0] == 0x80 | 0x40 | _core.OP_BINARY
    with pytest.raises(ValueError):
        ext.send_frame(_core.OP_BINARY, b"x", rsv=_core.RSV2)
    with pytest.raises(ValueError):
        ext.send_frame(_core.OP_PING, b"x", rsv=_core.RSV1)


def test_failed_send_leaves_nothing_on_the_wire() -> None:
    """A refused frame writes nothing and does not change the state."""
    codec = _core.WebSocketCodec()
    with pytest.raises(ValueError):
        codec.ping(b"x" * 126)
    with pytest.raises(InvalidState):
        codec.send_frame(_core.OP_CONT, b"x")
    assert codec.data_to_send() == b""
    codec.send("ok")
    assert codec.data_to_send() == b"\x81\x02ok"
