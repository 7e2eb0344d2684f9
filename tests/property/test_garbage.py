"""Garbage in: random bytes and damaged streams never crash either role, the
events always make sense, and the limits hold.

"Make sense" means: an EV_CLOSE or EV_ERROR can only be the last event, error
codes are the three a receiver may send (1002, 1007, 1009), received close
codes are valid ones, and after the last event the codec reports nothing more.
"""

from __future__ import annotations

import tracemalloc

import pytest
from helpers import refcodec as ref
from helpers import strategies as s
from helpers.refcodec import Config, Event
from hypothesis import given
from hypothesis import strategies as st

from h2ws import _core

pytestmark = pytest.mark.codec


def check_events(events: list[Event], config: Config) -> None:
    """The invariants every event list obeys, whatever the input."""
    for i, ev in enumerate(events):
        kind = ev[0]
        last = i == len(events) - 1
        if kind in (ref.EV_ERROR, ref.EV_CLOSE):
            assert last, f"{ev} is followed by {events[i + 1 :]}"
        if kind == ref.EV_ERROR:
            assert ev[1] in (1002, 1007, 1009)
            assert isinstance(ev[2], str) and ev[2]
        elif kind == ref.EV_CLOSE:
            code, reason = ev[1], ev[2]
            assert code == ref.NO_STATUS or ref.close_code_is_valid(code)  # type: ignore[arg-type]
            assert isinstance(reason, str) and len(reason.encode("utf-8")) <= 123
        elif kind in (ref.EV_PING, ref.EV_PONG):
            assert isinstance(ev[1], bytes) and len(ev[1]) <= 125
        else:
            assert kind in (ref.EV_TEXT, ref.EV_BINARY)
            payload = ev[1]
            if kind == ref.EV_TEXT:
                assert isinstance(payload, str)
                payload = payload.encode("utf-8")
            assert isinstance(payload, bytes)
            if config.max_message_size:
                assert len(payload) <= config.max_message_size


def run(config: Config, data: bytes, cuts: list[int]) -> list[Event]:
    """Feeds `data` in pieces and checks the codec's state after the last event."""
    codec = s.codec(config)
    events = s.feed(codec, data, cuts)
    check_events(events, config)
    stopped = bool(events) and events[-1][0] in (ref.EV_ERROR, ref.EV_CLOSE)
    assert codec.failed == (bool(events) and events[-1][0] == ref.EV_ERROR)
    assert codec.close_received == (bool(events) and events[-1][0] == ref.EV_CLOSE)
    if stopped:
        # Nothing more, whatever comes: valid frames of either role or junk.
        more = _core.build_frame(ref.OP_TEXT, b"x", mask=b"abcd") + _core.build_frame(ref.OP_PING)
        assert codec.receive_data(more + data) == []
    return events


@given(config=s.configs(), data=st.data())
def test_random_bytes(config: Config, data: st.DataObject) -> None:
    """RFC 6455 sections 5.2 and 7.1.7: any bytes either parse or fail the
    connection with a close code; nothing is reported after an error or a close."""
    stream = data.draw(st.binary(max_size=400), label="stream")
    run(config, stream, data.draw(s.cuts_for(stream), label="cuts"))


@st.composite
def plausible_bytes(draw: st.DrawFn, masked: bool) -> bytes:
    """Random bytes whose frames start with a plausible first byte (a known
    opcode, no RSV) and the right MASK bit, so that parsing goes on longer."""
    out = b""
    for _ in range(draw(st.integers(1, 6))):
        b0 = draw(st.sampled_from([0x81, 0x82, 0x01, 0x02, 0x00, 0x80, 0x88, 0x89, 0x8A]))
        len7 = draw(st.integers(0, 127))
        out += bytes([b0, len7 | (0x80 if masked else 0)])
        out += draw(st.binary(max_size=140))
    return out


@given(config=s.configs(), data=st.data())
def test_plausible_garbage(config: Config, data: st.DataObject) -> None:
    """RFC 6455 sections 5.2-5.5: headers that look right over random payloads
    and lengths: no crash, events make sense, limits hold."""
    stream = data.draw(plausible_bytes(masked=not config.client), label="stream")
    run(config, stream, data.draw(s.cuts_for(stream), label="cuts"))


@given(config=s.configs(), data=st.data())
def test_mutated_conversations(config: Config, data: st.DataObject) -> None:
    """RFC 6455 sections 5.2-5.8: a valid stream with bytes flipped, inserted,
    deleted or repeated, or header fields changed: no crash, events make
    sense, limits hold."""
    masked = not config.client
    rsv = config.rsv_allowed & ref.RSV1
    conv = data.draw(s.conversations(rsv=rsv), label="conversation")
    wire = conv.play(_core.WebSocketCodec(client=masked, rsv_allowed=rsv))
    stream = data.draw(
        st.one_of(s.mutated(wire), s.tampered(wire, rsv_allowed=config.rsv_allowed)),
        label="stream",
    )
    run(config, stream, data.draw(s.cuts_for(stream), label="cuts"))


@given(config=s.configs(), data=st.data())
def test_frames_field_by_field(config: Config, data: st.DataObject) -> None:
    """RFC 6455 sections 5.1-5.5: frames with odd header fields (reserved
    opcodes, RSV bits, lying lengths, wrong masking) never crash the codec."""
    stream = data.draw(s.frame_streams(masked=not config.client), label="stream")
    run(config, stream, data.draw(s.cuts_for(stream), label="cuts"))


@given(
    client=st.booleans(),
    limit=st.integers(1, 2000),
    sizes=st.lists(st.integers(0, 3000), min_size=1, max_size=5),
)
def test_message_limit(client: bool, limit: int, sizes: list[int]) -> None:
    """RFC 6455 section 10.4: a message over max_message_size fails with 1009
    as soon as the header of the frame that crosses the limit is complete;
    messages within the limit arrive whole."""
    sender = _core.WebSocketCodec(client=not client)
    for i, size in enumerate(sizes):
        sender.send_frame(ref.OP_BINARY if i == 0 else ref.OP_CONT, b"z" * size,
                          fin=i == len(sizes) - 1)  # fmt: skip
    wire = sender.data_to_send()
    config = Config(client=client, max_message_size=limit)
    events = run(config, wire, [])
    if sum(sizes) <= limit:
        assert events == [(ref.EV_BINARY, b"z" * sum(sizes))]
    else:
        assert [e[:2] for e in events] == [(ref.EV_ERROR, 1009)]
        # The headers up to the one that crosses the limit are enough.
        crossing = next(i for i in range(len(sizes)) if sum(sizes[: i + 1]) > limit)
        frames = list(ref.split_frames(wire))
        head = b"".join(frames[:crossing])
        header = ref.parse_header(frames[crossing])
        assert header is not None
        head += frames[crossing][: header.size]
        assert [e[:2] for e in s.codec(config).receive_data(head)] == [(ref.EV_ERROR, 1009)]


def test_huge_claimed_length_is_not_allocated() -> None:
    """RFC 6455 section 10.4: a header claiming 2**62 bytes, with no limit
    set, is not trusted: memory grows with the bytes that arrive only (the
    core allocates through PyMem_Raw*, which tracemalloc sees)."""
    codec = _core.WebSocketCodec(max_message_size=None)
    frame = _core.build_frame(ref.OP_BINARY, b"", mask=b"\x01\x02\x03\x04", length=2**62)
    chunk = b"\x00" * 4096
    tracemalloc.start()
    try:
        assert codec.receive_data(frame) == []
        for _ in range(64):
            assert codec.receive_data(chunk) == []
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    received = 64 * len(chunk)
    assert peak <= 2 * received + (64 << 10)  # the buffer at most doubles past the data
    assert not codec.failed
