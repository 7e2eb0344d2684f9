"""The METH_FASTCALL entry points (mask, mask_into, build_frame, send_frame,
send): a call served by the fast path (exact bytes/bytearray, exact ints,
positional arguments) gives what the generic path gives for the same values
passed another way (memoryview, keywords, int subclasses), and the same
errors."""

from __future__ import annotations

import pytest

from h2ws import _core
from h2ws.exceptions import InvalidState

pytestmark = pytest.mark.codec

KEY = b"\x37\xfa\x21\x3d"
DATA = bytes(range(200))


class Int(int):
    """An int subclass: never taken by a fast path."""


def test_mask_fast_and_generic_agree() -> None:
    for n in (0, 1, 125, 200):
        data = DATA[:n]
        fast = _core.mask(data, KEY)
        assert fast == _core.mask(memoryview(data), memoryview(KEY))
        assert fast == _core.mask(data=data, key=KEY)
        assert fast == _core.mask(bytearray(data), bytearray(KEY), 0)
        for phase in (1, 3, 1 << 40, -1):
            assert _core.mask(data, KEY, phase) == _core.mask(data, KEY, phase=Int(phase))


def test_mask_into_fast_and_generic_agree() -> None:
    for phase in (0, 2, 7):
        fast = bytearray(DATA)
        _core.mask_into(fast, KEY, phase)
        generic = bytearray(DATA)
        _core.mask_into(memoryview(generic), key=KEY, phase=Int(phase))
        assert fast == generic == bytearray(_core.mask(DATA, KEY, phase))


def test_mask_errors_are_the_generic_ones() -> None:
    with pytest.raises(ValueError, match="4 bytes"):
        _core.mask(DATA, b"abc")
    with pytest.raises(ValueError, match="4 bytes"):
        _core.mask_into(bytearray(DATA), bytearray(b"abcde"))
    with pytest.raises(TypeError):
        _core.mask("text", KEY)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _core.mask_into(DATA, KEY)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _core.mask(DATA, KEY, 1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _core.mask(DATA)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        _core.mask(DATA, KEY, 0, 0)  # type: ignore[call-arg]


def test_build_frame_fast_and_generic_agree() -> None:
    for opcode in (_core.OP_TEXT, _core.OP_BINARY, _core.OP_PING, 0xB):
        fast = _core.build_frame(opcode, DATA[:125])
        assert fast == _core.build_frame(Int(opcode), memoryview(DATA[:125]), fin=True)
        assert fast == _core.build_frame(opcode=opcode, payload=DATA[:125])
    assert _core.build_frame(_core.OP_CLOSE) == _core.build_frame(_core.OP_CLOSE, b"")
    for bad in (-1, 16, 2**31, 2**70):
        with pytest.raises((ValueError, OverflowError)) as fast_exc:
            _core.build_frame(bad, b"")
        with pytest.raises((ValueError, OverflowError)) as generic_exc:
            _core.build_frame(Int(bad), memoryview(b""))
        assert fast_exc.type is generic_exc.type


def test_codec_send_frame_fast_and_generic_agree() -> None:
    fast, generic = _core.WebSocketCodec(), _core.WebSocketCodec()
    n_fast = fast.send_frame(_core.OP_TEXT, b"hel", fin=False)
    n_generic = generic.send_frame(Int(_core.OP_TEXT), memoryview(b"hel"), fin=0)
    assert n_fast == n_generic == 5
    assert fast.send_frame(_core.OP_CONT, b"lo") == generic.send_frame(
        _core.OP_CONT, bytearray(b"lo"), fin=True, rsv=0
    )
    assert fast.data_to_send() == generic.data_to_send()
    with pytest.raises(ValueError):
        fast.send_frame(16, b"")
    with pytest.raises(TypeError):
        fast.send_frame(_core.OP_TEXT, "str")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        fast.send_frame(_core.OP_TEXT, b"", fim=True)  # type: ignore[call-arg]


def test_send_returns_the_bytes_waiting() -> None:
    codec = _core.WebSocketCodec()
    assert codec.send(b"x" * 10) == 12
    assert codec.send("é") == 12 + 4
    assert codec.send(memoryview(b"")) == 16 + 2
    assert len(codec.data_to_send()) == 18
    assert codec.send(b"") == 2
    codec.close(1000)
    with pytest.raises(InvalidState):
        codec.send(b"late")
