"""Size limits: max_message_size and max_frame_size.

RFC 6455 section 10.4: "implementations SHOULD impose a limit on frame
sizes and the total message size after reassembly from multiple frames";
the endpoint closes with 1009 (section 7.4.1, "a message that is too big
for it to process"). h2ws decides from the frame header, before it buffers
any of the payload, so a peer cannot make it allocate past the limit.
"""

from __future__ import annotations

import pytest

from h2ws import _core

pytestmark = pytest.mark.codec

KEY = b"\x11\x22\x33\x44"
TOO_BIG = [(_core.EV_ERROR, 1009)]


def frame(opcode: int, payload: bytes = b"", **kw: object) -> bytes:
    return _core.build_frame(opcode, payload, mask=KEY, **kw)  # type: ignore[arg-type]


def header(opcode: int, length: int, *, fin: bool = True) -> bytes:
    """Only the header of a frame announcing `length` payload octets."""
    return _core.build_frame(opcode, fin=fin, length=length, mask=KEY)


def events(codec: _core.WebSocketCodec, data: bytes) -> list[tuple[object, ...]]:
    return [e[:2] if e[0] == _core.EV_ERROR else e for e in codec.receive_data(data)]


def test_default_is_1_mib() -> None:
    """The default limit is 1 MiB, as in websockets and Hypercorn."""
    assert _core.DEFAULT_MAX_MESSAGE_SIZE == 1 << 20
    codec = _core.WebSocketCodec()
    payload = b"\x5a" * (1 << 20)
    assert events(codec, frame(_core.OP_BINARY, payload)) == [(_core.EV_BINARY, payload)]
    codec = _core.WebSocketCodec()
    assert events(codec, header(_core.OP_BINARY, (1 << 20) + 1)) == TOO_BIG


@pytest.mark.parametrize("opcode", [_core.OP_TEXT, _core.OP_BINARY])
def test_message_limit_is_checked_at_the_header(opcode: int) -> None:
    """A frame announcing more than the limit fails with 1009 as soon as its
    header is complete: no payload octet is needed (or buffered)."""
    limit = 100
    codec = _core.WebSocketCodec(max_message_size=limit)
    ok = b"a" * limit
    expected_ok = (_core.EV_TEXT, ok.decode()) if opcode == _core.OP_TEXT else (_core.EV_BINARY, ok)
    assert events(codec, frame(opcode, ok)) == [expected_ok]
    for length in (limit + 1, 65536, (1 << 63) - 1):
        codec = _core.WebSocketCodec(max_message_size=limit)
        live = _core.mem_live_count()  # counts in debug builds only
        head = header(opcode, length)
        assert events(codec, head[:-1]) == []
        assert events(codec, head[-1:]) == TOO_BIG
        assert _core.mem_live_count() == live
        assert codec.failed
        assert codec.receive_data(b"a" * 200) == []


def test_fragments_add_up() -> None:
    """Section 10.4: the limit applies to the reassembled message; the
    fragment that would cross it fails at its header."""
    limit = 100
    codec = _core.WebSocketCodec(max_message_size=limit)
    wire = frame(_core.OP_BINARY, b"a" * 60, fin=False) + frame(_core.OP_CONT, b"b" * 40)
    assert events(codec, wire) == [(_core.EV_BINARY, b"a" * 60 + b"b" * 40)]

    codec = _core.WebSocketCodec(max_message_size=limit)
    assert events(codec, frame(_core.OP_TEXT, b"a" * 60, fin=False)) == []
    assert events(codec, frame(_core.OP_CONT, b"b" * 30, fin=False)) == []
    assert events(codec, header(_core.OP_CONT, 11)) == TOO_BIG

    # Many small fragments summing to exactly the limit, then one octet more.
    codec = _core.WebSocketCodec(max_message_size=limit)
    wire = frame(_core.OP_BINARY, b"x", fin=False)
    wire += b"".join(frame(_core.OP_CONT, b"x", fin=False) for _ in range(limit - 1))
    assert events(codec, wire) == []
    assert events(codec, frame(_core.OP_CONT, b"")) == [(_core.EV_BINARY, b"x" * limit)]
    codec = _core.WebSocketCodec(max_message_size=limit)
    assert events(codec, wire + header(_core.OP_CONT, 1)) == TOO_BIG


def test_limit_is_per_message() -> None:
    """Each message starts from zero: many messages of the limit's size."""
    codec = _core.WebSocketCodec(max_message_size=64)
    wire = b"".join(frame(_core.OP_BINARY, bytes([i]) * 64) for i in range(50))
    assert events(codec, wire) == [(_core.EV_BINARY, bytes([i]) * 64) for i in range(50)]
    wire = frame(_core.OP_TEXT, b"a" * 40, fin=False) + frame(_core.OP_CONT, b"b" * 24)
    assert events(codec, wire * 3) == [(_core.EV_TEXT, "a" * 40 + "b" * 24)] * 3


def test_control_frames_do_not_count() -> None:
    """Pings between fragments are not part of the message (section 5.4)."""
    codec = _core.WebSocketCodec(max_message_size=10, max_frame_size=5)
    wire = (
        frame(_core.OP_BINARY, b"12345", fin=False)
        + frame(_core.OP_PING, b"p" * 125)
        + frame(_core.OP_CONT, b"67890")
    )
    assert events(codec, wire) == [(_core.EV_PING, b"p" * 125), (_core.EV_BINARY, b"1234567890")]


def test_frame_limit() -> None:
    """max_frame_size bounds each data frame; a message of several frames
    may be larger, up to max_message_size."""
    codec = _core.WebSocketCodec(max_frame_size=10, max_message_size=1000)
    wire = (
        frame(_core.OP_BINARY, b"a" * 10, fin=False)
        + frame(_core.OP_CONT, b"b" * 10, fin=False)
        + frame(_core.OP_CONT, b"c" * 10)
    )
    assert events(codec, wire) == [(_core.EV_BINARY, b"a" * 10 + b"b" * 10 + b"c" * 10)]
    for first in (True, False):
        codec = _core.WebSocketCodec(max_frame_size=10, max_message_size=1000)
        if first:
            assert events(codec, header(_core.OP_TEXT, 11)) == TOO_BIG
        else:
            assert events(codec, frame(_core.OP_TEXT, b"a", fin=False)) == []
            assert events(codec, header(_core.OP_CONT, 11)) == TOO_BIG


def test_message_limit_still_applies_with_a_frame_limit() -> None:
    codec = _core.WebSocketCodec(max_frame_size=10, max_message_size=25)
    wire = frame(_core.OP_BINARY, b"a" * 10, fin=False) + frame(_core.OP_CONT, b"b" * 10, fin=False)
    assert events(codec, wire) == []
    assert events(codec, header(_core.OP_CONT, 6)) == TOO_BIG


def test_zero_means_unlimited() -> None:
    """max_message_size=0: no limit; a huge announced length is accepted
    (and nothing is allocated for it up front)."""
    codec = _core.WebSocketCodec(max_message_size=0)
    big = b"\x01" * ((1 << 20) + 4096)
    assert events(codec, frame(_core.OP_BINARY, big)) == [(_core.EV_BINARY, big)]
    codec = _core.WebSocketCodec(max_message_size=0)
    live = _core.mem_live_count()  # counts in debug builds only
    assert events(codec, header(_core.OP_BINARY, (1 << 63) - 1)) == []
    assert not codec.failed
    assert _core.mem_live_count() == live
    codec = _core.WebSocketCodec(max_message_size=0, max_frame_size=0)
    assert events(codec, header(_core.OP_TEXT, 1 << 40, fin=False)) == []
    assert not codec.failed


def test_limit_on_the_client_side() -> None:
    """The limits apply in the client role the same way."""
    codec = _core.WebSocketCodec(client=True, max_message_size=8)
    assert codec.receive_data(_core.build_frame(_core.OP_BINARY, b"12345678")) == [
        (_core.EV_BINARY, b"12345678")
    ]
    got = codec.receive_data(_core.build_frame(_core.OP_BINARY, length=9))
    assert [e[:2] for e in got] == TOO_BIG


def test_limits_are_validated() -> None:
    for bad in (-1, "10", 1.5):
        with pytest.raises(ValueError):
            _core.WebSocketCodec(max_message_size=bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            _core.WebSocketCodec(max_frame_size=bad)  # type: ignore[arg-type]


def test_control_payload_buffer_is_held_only_while_needed() -> None:
    """Section 5.5: a control frame's payload (at most 125 octets) may arrive
    split across reads; the codec keeps a buffer for it only until its event
    is out (counted in debug builds), and a split gives the same events."""
    payload = bytes(range(125))
    wire = frame(_core.OP_PONG, payload) + frame(_core.OP_PING, b"") + frame(_core.OP_PONG, b"x")
    whole = _core.WebSocketCodec().receive_data(wire)
    assert [e[0] for e in whole] == [_core.EV_PONG, _core.EV_PING, _core.EV_PONG]
    assert whole[0][1] == payload
    for cut in (1, 2, 6, 7, 50, 130):
        codec = _core.WebSocketCodec()
        live = _core.mem_live_count()
        first = codec.receive_data(wire[:cut])
        if 6 < cut < 131:  # mid-payload: the buffer is held (counted in debug builds)
            assert first == []
            assert _core.mem_live_count() in (live, live + 1)
        assert first + codec.receive_data(wire[cut:]) == whole
        assert _core.mem_live_count() == live
