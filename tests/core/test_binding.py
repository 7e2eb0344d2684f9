"""The CPython binding h2ws._core: exception mapping, argument checks,
buffer handling, reference counts, the linked nghttp2, and masking keys
(RFC 6455 section 5.3) as seen from Python.
"""

from __future__ import annotations

import gc
import re
import shutil
import subprocess
import tracemalloc
from collections.abc import Callable

import pytest

import h2ws
from h2ws import _core, exceptions
from h2ws.exceptions import H2WSError, InvalidState, PayloadTooBig, ProtocolError

pytestmark = pytest.mark.codec

KEY = b"\x01\x02\x03\x04"


def split_frames(data: bytes) -> list[tuple[tuple[object, ...], bytes]]:
    """(header fields, unmasked payload) of each frame in data."""
    out = []
    pos = 0
    while pos < len(data):
        parsed = _core.parse_frame_header(data[pos:])
        assert parsed is not None, "truncated frame"
        fin, rsv, opcode, masked, key, length, size = parsed
        body = data[pos + size : pos + size + length]
        out.append((parsed, _core.mask(body, key) if masked else body))
        pos += size + length
    return out


# --------------------------------------------------------------------------
# Exceptions


def test_exception_hierarchy() -> None:
    for exc in (ProtocolError, InvalidState, PayloadTooBig):
        assert issubclass(exc, H2WSError)
    assert issubclass(PayloadTooBig, ValueError)
    assert h2ws.InvalidState is exceptions.InvalidState


def test_invalid_state_maps_to_invalid_state() -> None:
    codec = _core.WebSocketCodec()
    with pytest.raises(InvalidState):
        codec.send_frame(_core.OP_CONT, b"")
    codec.close()
    with pytest.raises(InvalidState):
        codec.close()
    with pytest.raises(InvalidState):
        codec.send("x")


def test_invalid_argument_maps_to_value_error() -> None:
    codec = _core.WebSocketCodec()
    with pytest.raises(ValueError) as info:
        codec.ping(b"x" * 126)
    assert not isinstance(info.value, H2WSError)
    with pytest.raises(ValueError):
        codec.close(1005)


def test_protocol_error_maps_to_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        _core.parse_frame_header(b"\x82\x7f\x80" + bytes(7))


def test_peer_violations_are_events_not_exceptions() -> None:
    """A peer's protocol violation is an EV_ERROR event with the close code
    to send; receive_data never raises for it."""
    for bad, code in (
        (b"\x81\x02ab", 1002),
        (_core.build_frame(1, b"\xff", mask=KEY), 1007),
        (_core.build_frame(2, length=1 << 40, mask=KEY), 1009),
        (b"\x83\x80" + KEY, 1002),
    ):
        got = _core.WebSocketCodec().receive_data(bad)
        assert len(got) == 1 and got[0][:2] == (_core.EV_ERROR, code)
        assert isinstance(got[0][2], str)


# --------------------------------------------------------------------------
# Argument validation


def test_codec_arguments_are_keyword_only_and_checked() -> None:
    with pytest.raises(TypeError):
        _core.WebSocketCodec(True)  # type: ignore[misc]
    with pytest.raises(TypeError):
        _core.WebSocketCodec(unknown=1)  # type: ignore[call-arg]
    with pytest.raises(ValueError):
        _core.WebSocketCodec(rsv_allowed=0x80)
    with pytest.raises(ValueError):
        _core.WebSocketCodec(rsv_allowed=0x01)
    with pytest.raises(ValueError):
        _core.WebSocketCodec(max_message_size=-1)
    codec = _core.WebSocketCodec(
        client=True,
        max_message_size=10,
        max_frame_size=None,
        rsv_allowed=_core.RSV1 | _core.RSV2 | _core.RSV3,
    )
    assert codec.client is True
    assert _core.WebSocketCodec().client is False


def test_properties_are_read_only() -> None:
    codec = _core.WebSocketCodec()
    for name in ("close_sent", "close_received", "failed", "client"):
        assert getattr(codec, name) is False
        with pytest.raises(AttributeError):
            setattr(codec, name, True)


def test_send_types() -> None:
    """str is sent as a text message, bytes-like objects as binary."""
    codec = _core.WebSocketCodec()
    codec.send("κόσμε")
    codec.send(b"b")
    codec.send(bytearray(b"ba"))
    codec.send(memoryview(b"xmvx")[1:3])
    frames = split_frames(codec.data_to_send())
    assert [(f[2], p) for f, p in frames] == [
        (_core.OP_TEXT, "κόσμε".encode()),
        (_core.OP_BINARY, b"b"),
        (_core.OP_BINARY, b"ba"),
        (_core.OP_BINARY, b"mv"),
    ]
    for bad in (1, None, ["x"]):
        with pytest.raises(TypeError):
            codec.send(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        codec.send_frame(_core.OP_TEXT, "str payload")  # type: ignore[arg-type]
    with pytest.raises(ValueError):  # a str with no UTF-8 form
        codec.send("\udc80")


def test_receive_data_types() -> None:
    frame = _core.build_frame(_core.OP_BINARY, b"abc", mask=KEY)
    for data in (frame, bytearray(frame), memoryview(frame)):
        assert _core.WebSocketCodec().receive_data(data) == [(_core.EV_BINARY, b"abc")]
    with pytest.raises(TypeError):
        _core.WebSocketCodec().receive_data("text")  # type: ignore[arg-type]
    assert _core.WebSocketCodec().receive_data(b"") == []


def test_build_frame_arguments() -> None:
    with pytest.raises(ValueError):
        _core.build_frame(16)
    for rsv in (0x80, 0x0F, 0x01):
        with pytest.raises(ValueError):
            _core.build_frame(_core.OP_TEXT, rsv=rsv)
    for key in (b"", b"abc", b"abcde"):
        with pytest.raises(ValueError):
            _core.build_frame(_core.OP_TEXT, b"x", mask=key)
    with pytest.raises(TypeError):
        _core.build_frame(_core.OP_TEXT, "str")  # type: ignore[arg-type]
    assert _core.build_frame(_core.OP_TEXT) == b"\x81\x00"
    assert _core.build_frame(_core.OP_TEXT, b"ab", length=300)[:4] == b"\x81\x7e\x01\x2c"


def test_event_constants_are_distinct() -> None:
    values = [
        _core.EV_TEXT,
        _core.EV_BINARY,
        _core.EV_PING,
        _core.EV_PONG,
        _core.EV_CLOSE,
        _core.EV_ERROR,
    ]
    assert len(set(values)) == 6


def test_event_shapes() -> None:
    wire = b"".join(
        (
            _core.build_frame(_core.OP_TEXT, "é".encode(), mask=KEY),
            _core.build_frame(_core.OP_BINARY, b"\x00", mask=KEY),
            _core.build_frame(_core.OP_PING, b"pi", mask=KEY),
            _core.build_frame(_core.OP_PONG, b"po", mask=KEY),
            _core.build_frame(_core.OP_CLOSE, b"\x03\xe8ok", mask=KEY),
        )
    )
    got = _core.WebSocketCodec().receive_data(wire)
    assert got == [
        (_core.EV_TEXT, "é"),
        (_core.EV_BINARY, b"\x00"),
        (_core.EV_PING, b"pi"),
        (_core.EV_PONG, b"po"),
        (_core.EV_CLOSE, 1000, "ok"),
    ]
    assert [type(x) for e in got for x in e[1:2]] == [str, bytes, bytes, bytes, int]
    assert all(type(e) is tuple for e in got)


# --------------------------------------------------------------------------
# Buffers and ownership


def test_events_own_their_payloads() -> None:
    """Payloads stay intact after the codec reuses its buffers."""
    codec = _core.WebSocketCodec()
    first = codec.receive_data(_core.build_frame(_core.OP_BINARY, b"A" * 500, mask=KEY))
    ping = codec.receive_data(_core.build_frame(_core.OP_PING, b"P" * 100, mask=KEY))
    for i in range(20):
        codec.receive_data(_core.build_frame(_core.OP_BINARY, bytes([i]) * 500, mask=KEY))
        codec.receive_data(_core.build_frame(_core.OP_PING, bytes([i]) * 100, mask=KEY))
    assert first == [(_core.EV_BINARY, b"A" * 500)]
    assert ping == [(_core.EV_PING, b"P" * 100)]


def test_input_buffers_are_released() -> None:
    """receive_data and send hold the caller's buffer only for the call: a
    bytearray can be resized afterwards, and changing it does not change
    what was queued."""
    data = bytearray(_core.build_frame(_core.OP_BINARY, b"abc", mask=KEY))
    codec = _core.WebSocketCodec()
    assert codec.receive_data(data) == [(_core.EV_BINARY, b"abc")]
    data.extend(b"more")  # BufferError if a view were still held
    out = bytearray(b"payload")
    codec.send(out)
    out[:] = b"changed, longer"
    codec.send_frame(_core.OP_BINARY, out)
    out.clear()
    frames = split_frames(codec.data_to_send())
    assert [p for _, p in frames] == [b"payload", b"changed, longer"]


def test_data_to_send_drains() -> None:
    codec = _core.WebSocketCodec()
    assert codec.data_to_send() == b""
    codec.send(b"x" * 100_000)
    assert len(codec.data_to_send()) == 100_000 + 10
    assert codec.data_to_send() == b""
    codec.ping(b"")
    assert codec.data_to_send() == b"\x89\x00"


def test_h2_has_events_tells_what_events_would_give() -> None:
    """H2Connection.has_events: True exactly while events() has something
    (the carrier's flush reads it instead of calling events() every time)."""
    client = _core.H2Connection(client=True)
    server = _core.H2Connection()
    assert not server.has_events and server.events() == []
    server.receive_data(client.data_to_send())  # preface, SETTINGS: returned at once
    assert not server.has_events
    client.receive_data(server.data_to_send())
    # A plain request (a HEADERS with END_STREAM, hand-encoded with HPACK
    # static-table indexes: :method GET, :scheme http, :path /, and
    # :authority "x"), answered at once: the stream closes as the answer
    # goes out, which raises STREAM_END inside data_to_write().
    block = bytes([0x82, 0x86, 0x84, 0x41, 0x01]) + b"x"
    head = len(block).to_bytes(3, "big") + bytes([1, 0x05]) + (1).to_bytes(4, "big")
    events = server.receive_data(head + block)
    assert [e[0] for e in events] == [_core.SEV_REQUEST]
    server.respond(1, 204, end_stream=True)
    assert not server.has_events
    assert server.data_to_write()
    assert server.has_events
    assert [e[0] for e in server.events()] == [_core.SEV_STREAM_END]
    assert not server.has_events and server.events() == []


def test_no_reference_or_memory_leaks() -> None:
    """Repeating each call must not grow Python's memory: catches a
    returned object or argument whose reference is never dropped."""
    masked_head = _core.build_frame(_core.OP_TEXT, b"abc", mask=KEY)
    plain_head = _core.build_frame(_core.OP_TEXT, b"abc")
    ping = _core.build_frame(_core.OP_PING, b"p", mask=KEY)
    codec = _core.WebSocketCodec()
    client = _core.WebSocketCodec(client=True)

    def cycle() -> None:
        _core.parse_frame_header(masked_head)
        _core.parse_frame_header(plain_head)
        _core.parse_frame_header(b"\x81")
        codec.receive_data(masked_head + ping)
        client.send("text")
        client.send(b"bin")
        client.ping(b"x")
        client.data_to_send()
        _core.build_frame(_core.OP_BINARY, b"abcd", mask=KEY)
        _core.mask(b"abcdefgh", KEY, 3)
        _core.utf8_feed(0, b"abc")
        _core.utf8_valid(b"abc")
        _core.close_code_is_valid(1000)
        _core.WebSocketCodec(client=True).close(1000, "bye")
        _core.WebSocketCodec().receive_data(b"\x81\x00")  # unmasked: error event

    assert_no_growth(cycle)


def assert_no_growth(fn: Callable[[], None], rounds: int = 5000) -> None:
    for _ in range(200):
        fn()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(rounds):
            fn()
        gc.collect()
        growth = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # A leak of even one small object per round would be > 100 KB.
    assert growth < 16 * 1024, f"memory grew by {growth} bytes over {rounds} rounds"


# --------------------------------------------------------------------------
# Masking keys (RFC 6455 section 5.3)


def test_client_frames_are_masked_with_fresh_keys() -> None:
    """Section 5.3: "The masking key is a 32-bit value chosen at random by
    the client"; a fresh, unpredictable key for each frame. Keys differ
    frame to frame and codec to codec, across the key pool's refills."""
    keys = []
    for _ in range(3):
        codec = _core.WebSocketCodec(client=True)
        for i in range(150):  # more than one pool of keys
            if i % 3 == 0:
                codec.send(f"message {i}")
            elif i % 3 == 1:
                codec.send(bytes([i]) * i)
            else:
                codec.ping(b"p")
        codec.close(1000)
        frames = split_frames(codec.data_to_send())
        assert len(frames) == 151
        for (_, _, _, masked, key, _, _), _ in frames:
            assert masked is True
            assert isinstance(key, bytes) and len(key) == 4
            keys.append(key)
        assert frames[0][1] == b"message 0"
        assert frames[1][1] == bytes([1])
    assert len(set(keys)) == len(keys)


def test_client_masks_the_payload_on_the_wire() -> None:
    """The octets on the wire are the payload XOR the key, not the payload."""
    codec = _core.WebSocketCodec(client=True)
    payload = b"a" * 64
    codec.send(payload)
    data = codec.data_to_send()
    (fin, rsv, opcode, masked, key, length, size) = _core.parse_frame_header(data)
    body = data[size:]
    assert body == bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def test_server_frames_are_not_masked() -> None:
    """Section 5.1: "A server MUST NOT mask any frames that it sends"."""
    codec = _core.WebSocketCodec()
    codec.send("t")
    codec.send(b"b" * 70000)
    codec.ping(b"p")
    codec.pong(b"q")
    codec.close(1000, "r")
    data = codec.data_to_send()
    frames = split_frames(data)
    assert len(frames) == 5
    for (_, _, _, masked, key, _, _), _ in frames:
        assert masked is False and key is None
    assert data.startswith(b"\x81\x01t\x82\x7f")


# --------------------------------------------------------------------------
# Build information


def test_nghttp2_version_matches_the_linked_library() -> None:
    version = _core.nghttp2_version()
    assert re.fullmatch(r"\d+\.\d+\.\d+(-DEV)?", version)
    assert h2ws.nghttp2_version() == version
    pkg_config = shutil.which("pkg-config")
    if pkg_config is None:
        pytest.skip("pkg-config is not installed")
    result = subprocess.run(
        [pkg_config, "--modversion", "libnghttp2"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        pytest.skip("pkg-config does not know libnghttp2")
    assert version == result.stdout.strip()


def test_build_info() -> None:
    info = _core.build_info()
    for flag in ("debug", "sanitize", "coverage"):
        assert isinstance(info[flag], bool)
    assert isinstance(info["mask_impl"], str)
    assert re.fullmatch(r"\d+\.\d+\.\d+(-DEV)?", info["nghttp2_headers"])
    assert isinstance(_core.mem_live_count(), int)
    if not info["debug"]:
        assert _core.mem_live_count() == 0
