"""Round trips through the C codec: what one role sends, the other receives.

Messages are fragmented at random byte offsets, control frames go between the
fragments, and the receiver gets the bytes cut at random offsets. Both
directions run: client to server (masked) and server to client (unmasked).
"""

from __future__ import annotations

import pytest
from helpers import refcodec as ref
from helpers import strategies as s
from hypothesis import given
from hypothesis import strategies as st

from h2ws import _core

pytestmark = pytest.mark.codec

ROLES = pytest.mark.parametrize(
    "sender_is_client", [True, False], ids=["client-to-server", "server-to-client"]
)


def _check_wire(wire: bytes, masked: bool) -> None:
    """Each frame masked by role (sections 5.1, 5.3), minimal length encoding
    (section 5.2), and byte for byte what the reference serializer writes."""
    rebuilt = b""
    for raw in ref.split_frames(wire):
        header = ref.parse_header(raw)
        assert header is not None and header.size + header.length == len(raw)
        assert header.masked == masked
        assert header.minimal
        payload = raw[header.size :]
        if header.key is not None:
            payload = ref.mask(payload, header.key)
        rebuilt += ref.build_frame(
            header.opcode, payload, fin=header.fin, rsv=header.rsv, mask_key=header.key
        )
    assert rebuilt == wire


@ROLES
@given(data=st.data())
def test_roundtrip_any_split(sender_is_client: bool, data: st.DataObject) -> None:
    """RFC 6455 sections 5.4-5.6: fragmented messages, with control frames
    between the fragments, reach the peer intact however the bytes are split.
    Sections 5.1-5.3: a client MUST mask every frame, a server MUST NOT, with
    the minimal length encoding. Section 5.2: RSV bits an extension negotiated
    may mark a message's first frame."""
    rsv = data.draw(st.sampled_from([0, 0, ref.RSV1, ref.RSV1 | ref.RSV3]), label="rsv")
    conv = data.draw(s.conversations(rsv=rsv), label="conversation")
    sender = _core.WebSocketCodec(client=sender_is_client, rsv_allowed=rsv)
    wire = conv.play(sender)
    _check_wire(wire, masked=sender_is_client)
    receiver = _core.WebSocketCodec(
        client=not sender_is_client, max_message_size=None, rsv_allowed=rsv
    )
    cuts = data.draw(s.cuts_for(wire), label="cuts")
    assert s.feed(receiver, wire, cuts) == conv.expected
    assert not receiver.failed
    assert receiver.close_received == sender.close_sent


def test_client_masking_keys_are_fresh() -> None:
    """RFC 6455 section 5.3: the client MUST pick a fresh masking key for each
    frame (we can only check that keys do not repeat in a short run)."""
    sender = _core.WebSocketCodec(client=True)
    for _ in range(64):
        sender.ping(b"x")
    wire = sender.data_to_send()
    keys = [ref.parse_header(raw).key for raw in ref.split_frames(wire)]  # type: ignore[union-attr]
    assert len(set(keys)) == len(keys) == 64


@ROLES
@given(conv=s.conversations(), data=st.data())
def test_nothing_after_close_is_reported(
    sender_is_client: bool, conv: s.Conversation, data: st.DataObject
) -> None:
    """RFC 6455 section 5.5.1: after the close frame the peer sends nothing;
    whatever arrives after it is not reported."""
    sender = _core.WebSocketCodec(client=sender_is_client)
    wire = conv.play(sender)
    if not sender.close_sent:
        sender.close(1000, "bye")
        wire += sender.data_to_send()
    # Bytes after the close frame: another endpoint's valid frames, or junk.
    tail = data.draw(
        st.one_of(st.binary(max_size=40), s.frame_streams(masked=sender_is_client)), label="tail"
    )
    receiver = _core.WebSocketCodec(client=not sender_is_client, max_message_size=None)
    cuts = data.draw(s.cuts_for(wire + tail), label="cuts")
    events = s.feed(receiver, wire + tail, cuts)
    assert events[-1][0] == ref.EV_CLOSE
    assert [e[0] for e in events].count(ref.EV_CLOSE) == 1
    assert receiver.receive_data(b"\x81\x00" * 3) == []


# ---------------------------------------------------------------------------
# Any split gives the same events as the whole input, valid or not.


def _streams(masked: bool) -> st.SearchStrategy[bytes]:
    """Valid conversations, field-by-field frames (often invalid), random
    bytes, and valid conversations with bytes changed."""
    sender = st.builds(
        lambda conv: conv.play(_core.WebSocketCodec(client=masked)), s.conversations()
    )
    return st.one_of(
        sender,
        s.frame_streams(masked=masked),
        st.binary(max_size=300),
        sender.flatmap(s.mutated),
        sender.flatmap(lambda wire: s.tampered(wire, rsv_allowed=ref.RSV1)),
    )


@given(config=s.configs(), data=st.data())
def test_any_split_same_events(config: ref.Config, data: st.DataObject) -> None:
    """Input may be split at any byte (RFC 6455 section 5.2 frames are a byte
    stream): feeding it in pieces gives exactly the events of feeding it whole,
    errors included."""
    stream = data.draw(_streams(masked=not config.client), label="stream")
    cuts = data.draw(s.cuts_for(stream), label="cuts")
    whole = s.codec(config).receive_data(stream)
    assert s.feed(s.codec(config), stream, cuts) == whole
    # One byte at a time, the finest split of all.
    if len(stream) <= 2000:
        assert s.feed(s.codec(config), stream, range(len(stream))) == whole


def test_split_inside_header_and_character() -> None:
    """RFC 6455 sections 5.2 and 5.6: a split inside the 2-byte header, the
    extended length and a UTF-8 character changes nothing."""
    stream = _core.build_frame(ref.OP_TEXT, "h\u00e9llo \u20ac".encode(), fin=False)
    stream += _core.build_frame(ref.OP_CONT, b"\xf0\x9f\x98\x80" * 40, fin=True)
    text = "h\u00e9llo \u20ac" + "\U0001f600" * 40
    for cuts in ([1], [3, 4], [13, 14, 15, 16, 17], range(len(stream))):
        receiver = _core.WebSocketCodec(client=True)
        assert s.feed(receiver, stream, cuts) == [(ref.EV_TEXT, text)]
