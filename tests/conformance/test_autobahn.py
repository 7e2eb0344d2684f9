"""The Autobahn TestSuite's fuzzingclient cases 1 to 7, run against the C codec.

The fuzzer is played in Python (``autobahn_cases``): it writes each case's
frames to a ``WebSocketCodec`` in the server role (frames masked, as a client
sends them) and in the client role (unmasked), cut every way a peer may write
them: all at once, frame by frame, octet by octet and the case's own chops.
Every delivery must give the case's events, and a failure must be reported
by the write that holds the offending octet (strict fail-fast; Autobahn would
also accept a later failure as NON-STRICT).

An echo application then answers the events (messages echoed, pings ponged,
close echoed, failure answered with a close carrying the error's code) and
the frames the codec writes are checked: masked in the client role only
(RFC 6455 section 5.1), and carrying what Autobahn expects back.
"""

from __future__ import annotations

import autobahn_cases as ab
import pytest

from h2ws import _core

pytestmark = pytest.mark.codec


def feed(codec: _core.WebSocketCodec, chunks: list[bytes]) -> list[tuple[int, int, ab.Event]]:
    """Writes the chunks one call each; returns (start, end, event), where
    start..end is the wire range of the chunk whose call reported the event."""
    out = []
    pos = 0
    for chunk in chunks:
        for event in codec.receive_data(chunk):
            out.append((pos, pos + len(chunk), event))
        pos += len(chunk)
    return out


def echo(codec: _core.WebSocketCodec, events: list[ab.Event]) -> list[tuple[int, bytes]]:
    """Answers the events as Autobahn's echo testee would; returns the
    (opcode, payload) of each frame that answer must put on the wire."""
    replies: list[tuple[int, bytes]] = []
    for event in events:
        kind = event[0]
        if kind == _core.EV_TEXT:
            assert isinstance(event[1], str)
            codec.send(event[1])
            replies.append((ab.OP_TEXT, event[1].encode()))
        elif kind == _core.EV_BINARY:
            assert isinstance(event[1], bytes)
            codec.send(event[1])
            replies.append((ab.OP_BINARY, event[1]))
        elif kind == _core.EV_PING:
            assert isinstance(event[1], bytes)
            codec.pong(event[1])
            replies.append((ab.OP_PONG, event[1]))
        elif kind == _core.EV_CLOSE:
            code, reason = event[1], event[2]
            assert isinstance(code, int) and isinstance(reason, str)
            if code == 1005:  # no status: answer with an empty close
                codec.close()
                replies.append((ab.OP_CLOSE, b""))
            else:  # section 5.5.1: echo the status code
                codec.close(code)
                replies.append((ab.OP_CLOSE, ab.close_payload(code)))
        elif kind == _core.EV_ERROR:
            code = event[1]
            assert isinstance(code, int)
            codec.close(code)
            replies.append((ab.OP_CLOSE, ab.close_payload(code)))
    return replies


def check_deliveries(case: ab.Case, client: bool) -> None:
    wire = ab.build_wire(case, masked=not client)
    expected = list(case.expect)
    fails = expected[-1][0] == _core.EV_ERROR
    for mode, chunks in ab.deliveries(case, wire).items():
        where = f"{case.id} ({case.description}), client={client}, delivered {mode}"
        codec = _core.WebSocketCodec(client=client)
        got = feed(codec, chunks)
        events = [ab.normalize(e) for _, _, e in got]
        assert events == expected, where
        assert codec.failed == fails, where
        assert codec.close_received == any(e[0] == _core.EV_CLOSE for e in expected), where
        if fails:
            start, end, _ = got[-1]
            offset = ab.fail_offset(case, wire)
            assert start <= offset < end, (
                f"{where}: failure reported by the write of octets {start}..{end}, "
                f"the offending octet is {offset}"
            )

        replies = echo(codec, [e for _, _, e in got])
        sent = ab.decode_all(codec.data_to_send())
        assert [(f.opcode, f.payload) for f in sent] == replies, where
        for f in sent:
            assert f.fin and f.rsv == 0
            # Section 5.1: a client masks every frame, a server none.
            assert (f.key is not None) == client, where
        if replies and replies[-1][0] == ab.OP_CLOSE:
            assert codec.close_sent


def check_utf8_fail_fast(case: ab.Case, client: bool) -> None:
    """RFC 6455 section 8.1: invalid text fails the connection; h2ws fails
    as soon as the octets received so far cannot begin valid UTF-8 (the
    strict outcome of Autobahn 6.4), not when the frame or message ends."""
    wire = ab.build_wire(case, masked=not client)
    offset = ab.fail_offset(case, wire)
    codec = _core.WebSocketCodec(client=client)
    before = codec.receive_data(wire.data[:offset])
    assert all(e[0] != _core.EV_ERROR for e in before), case.id
    assert not codec.failed
    last = codec.receive_data(wire.data[offset : offset + 1])
    assert [ab.normalize(e) for e in last] == [ab.fail(1007)], case.id
    assert codec.receive_data(wire.data[offset + 1 :]) == []


@pytest.mark.parametrize("case", ab.CASES, ids=[c.id for c in ab.CASES])
def test_case(case: ab.Case) -> None:
    """One Autobahn case, in the server role (the peer masks its frames) and
    in the client role (it does not)."""
    for client in (False, True):
        check_deliveries(case, client)
        if case.fail_at == ("utf8",):
            check_utf8_fail_fast(case, client)


def test_catalogue_matches_autobahn() -> None:
    ids = [c.id for c in ab.CASES]
    assert len(ids) == len(set(ids))
    counts: dict[int, int] = {}
    for c in ab.CASES:
        counts[c.section] = counts.get(c.section, 0) + 1
    assert counts == ab.AUTOBAHN_COUNTS


def test_utf8_labels_agree_with_python() -> None:
    """The valid/invalid labels of cases 6.5-6.23 and the prefix oracle agree
    with CPython's own UTF-8 decoder."""
    for title, seqs in ab.utf8_sequences():
        for valid, payload in seqs:
            try:
                payload.decode("utf-8")
                python_ok = True
            except UnicodeDecodeError:
                python_ok = False
            assert valid == python_ok == ab.utf8_ok(payload), (title, payload)


def test_fuzzer_frames_match_build_frame() -> None:
    """The Python fuzzer and the core's build_frame agree on the wire format,
    so a mistake in one of them cannot hide a mistake in the codec."""
    for case in ab.CASES[:60]:
        for frame in case.frames:
            key = b"\x01\x80\xfe\x37"
            assert ab.encode(frame, key) == _core.build_frame(
                frame.opcode, frame.payload, fin=frame.fin, rsv=frame.rsv, mask=key
            )
            assert ab.encode(frame, None) == _core.build_frame(
                frame.opcode, frame.payload, fin=frame.fin, rsv=frame.rsv
            )
