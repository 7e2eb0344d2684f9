"""Payload masking (RFC 6455 section 5.3) against a pure-Python XOR.

The C masker works in 32-byte, 16-byte and 8-byte steps and a byte-wise
tail, so the lengths, phases and buffer alignments below reach every path.
"""

from __future__ import annotations

import random

import pytest

from h2ws import _core

pytestmark = pytest.mark.codec

KEYS = [b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x01\x02\x03\x04", b"\x37\xfa\x21\x3d"]
PHASES = [0, 1, 2, 3, 4, 5, 7, (1 << 32) + 1, (1 << 63) + 3]


def ref_mask(data: bytes, key: bytes, phase: int = 0) -> bytes:
    """Section 5.3: "octet i of the transformed data is the XOR of octet i of
    the original data with octet at index i modulo 4 of the masking key";
    ``phase`` is the offset of data[0] within the payload."""
    return bytes(b ^ key[(phase + i) % 4] for i, b in enumerate(data))


def ref_mask_fast(data: bytes, key: bytes, phase: int = 0) -> bytes:
    """The same, through big integers, for large buffers."""
    n = len(data)
    if n == 0:
        return b""
    k = key[phase % 4 :] + key[: phase % 4]
    stream = (k * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


@pytest.fixture(scope="module")
def noise() -> bytes:
    return random.Random(5).randbytes(1 << 20 | 13)


def test_every_length_0_to_300_and_several_phases(noise: bytes) -> None:
    """Section 5.3, all lengths through the word and vector paths."""
    for key in KEYS:
        for phase in PHASES:
            for n in range(301):
                data = noise[n : 2 * n]
                assert _core.mask(data, key, phase) == ref_mask(data, key, phase), (key, phase, n)


def test_phase_defaults_to_zero_and_wraps_every_4() -> None:
    data = bytes(range(64))
    key = KEYS[3]
    assert _core.mask(data, key) == _core.mask(data, key, 0) == _core.mask(data, key, 4)
    assert _core.mask(data, key, 1) == _core.mask(data, key, 5)
    assert _core.mask(data, key, 1) == _core.mask(data, key, 1 << 40 | 1)


def test_masking_twice_restores_the_data(noise: bytes) -> None:
    """Section 5.3: "the same algorithm applies regardless of the direction"."""
    for n in (0, 1, 63, 64, 65, 1000, 4099):
        data = noise[:n]
        for phase in (0, 3):
            assert _core.mask(_core.mask(data, KEYS[2], phase), KEYS[2], phase) == data


def test_masking_in_pieces_equals_masking_at_once(noise: bytes) -> None:
    """A payload unmasked as it arrives, piece by piece with the running
    offset as phase, equals the payload unmasked whole."""
    data = noise[:5000]
    whole = _core.mask(data, KEYS[3])
    rng = random.Random(1)
    for _ in range(20):
        cuts = sorted(rng.sample(range(1, len(data)), 9))
        pieces = []
        for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True):
            pieces.append(_core.mask(data[a:b], KEYS[3], a))
        assert b"".join(pieces) == whole


def test_mask_into_in_place(noise: bytes) -> None:
    for key in KEYS:
        for phase in PHASES[:6]:
            for n in (0, 1, 3, 4, 5, 7, 8, 9, 31, 32, 33, 63, 64, 65, 127, 128, 129, 300):
                buf = bytearray(noise[:n])
                assert _core.mask_into(buf, key, phase) is None
                assert bytes(buf) == ref_mask(noise[:n], key, phase)


def test_mask_into_slices_at_every_alignment(noise: bytes) -> None:
    """Unaligned starts and ends, through memoryview slices of one buffer:
    only the slice changes."""
    base = bytearray(noise[:600])
    for offset in range(16):
        for n in (0, 1, 7, 8, 15, 16, 17, 31, 32, 33, 64, 100, 129, 257, 500):
            buf = bytearray(base)
            view = memoryview(buf)[offset : offset + n]
            _core.mask_into(view, KEYS[3], offset)
            view.release()
            assert buf[:offset] == base[:offset]
            assert buf[offset : offset + n] == ref_mask(base[offset : offset + n], KEYS[3], offset)
            assert buf[offset + n :] == base[offset + n :]


def test_mask_reads_unaligned_slices(noise: bytes) -> None:
    """mask() on memoryview slices starting at every offset."""
    view = memoryview(noise)
    for offset in range(16):
        for n in (1, 8, 31, 32, 33, 65, 200):
            piece = view[offset : offset + n]
            assert _core.mask(piece, KEYS[2], 2) == ref_mask(bytes(piece), KEYS[2], 2)


def test_large_buffers(noise: bytes) -> None:
    """1 MiB and more, with every phase and an unaligned start."""
    for phase in range(4):
        assert _core.mask(noise, KEYS[3], phase) == ref_mask_fast(noise, KEYS[3], phase)
    buf = bytearray(noise)
    with memoryview(buf)[3:] as view:
        _core.mask_into(view, KEYS[1], 3)
    assert bytes(buf) == noise[:3] + ref_mask_fast(noise[3:], KEYS[1], 3)


def test_key_must_be_4_octets() -> None:
    """Section 5.3: the masking key is 32 bits."""
    for key in (b"", b"\x01\x02\x03", b"\x01\x02\x03\x04\x05"):
        with pytest.raises(ValueError):
            _core.mask(b"data", key)
        with pytest.raises(ValueError):
            _core.mask_into(bytearray(b"data"), key)


def test_mask_into_needs_a_writable_buffer() -> None:
    with pytest.raises(TypeError):
        _core.mask_into(b"read-only", KEYS[2])
    with pytest.raises(TypeError):
        _core.mask(b"data", KEYS[2], "0")  # type: ignore[arg-type]


def test_implementation_is_reported() -> None:
    impl = _core.build_info()["mask_impl"]
    assert isinstance(impl, str) and impl
