"""The closing handshake and close frames: RFC 6455 sections 5.5.1, 7 and
the IANA "WebSocket Close Code Number Registry" (section 11.7).

Codes allowed on the wire: 1000-1003, 1007-1014 (1012-1014 registered by
IANA after the RFC) and 3000-4999 (registered and private use). Never on
the wire: 0-999 (unused), 1004 (reserved), 1005, 1006 and 1015 (reserved
for reporting, section 7.4.1), 1016-2999 (reserved for future RFCs) and
5000 and above (undefined).
"""

from __future__ import annotations

import pytest

from h2ws import _core
from h2ws.exceptions import InvalidState

pytestmark = pytest.mark.codec

KEY = b"\xa5\x5a\x01\xfe"


def valid_on_the_wire(code: int) -> bool:
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


def close_frame(payload: bytes, *, client_sends: bool = True) -> bytes:
    return _core.build_frame(_core.OP_CLOSE, payload, mask=KEY if client_sends else None)


def code_bytes(code: int, reason: bytes = b"") -> bytes:
    return code.to_bytes(2, "big") + reason


def events(codec: _core.WebSocketCodec, data: bytes) -> list[tuple[object, ...]]:
    return [e[:2] if e[0] == _core.EV_ERROR else e for e in codec.receive_data(data)]


def test_close_code_table() -> None:
    """Section 7.4.1/7.4.2 and the IANA registry, for every 16-bit code."""
    for code in range(1 << 16):
        assert _core.close_code_is_valid(code) == valid_on_the_wire(code), code
    for code in (-1, 1 << 16, 1 << 20):
        assert not _core.close_code_is_valid(code)


VALID_SAMPLE = [
    1000,
    1001,
    1002,
    1003,
    1007,
    1008,
    1009,
    1010,
    1011,
    1012,
    1013,
    1014,
    3000,
    3999,
    4000,
    4999,
]
INVALID_SAMPLE = [0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]


def test_valid_codes_are_received() -> None:
    """Section 7.4: a close frame with a defined code is reported with it."""
    for code in VALID_SAMPLE:
        codec = _core.WebSocketCodec()
        assert events(codec, close_frame(code_bytes(code))) == [(_core.EV_CLOSE, code, "")]
        assert codec.close_received and not codec.failed


def test_invalid_codes_fail_with_1002() -> None:
    """Section 7.4.1: 1005, 1006 and 1015 "MUST NOT be set as a status code
    in a Close control frame by an endpoint"; 0-999 are not used and
    1004/1016-2999 are reserved: receiving one is a protocol error."""
    for code in INVALID_SAMPLE:
        codec = _core.WebSocketCodec()
        assert events(codec, close_frame(code_bytes(code))) == [(_core.EV_ERROR, 1002)], code
        assert codec.failed and not codec.close_received


def test_every_received_code() -> None:
    """All 65536 codes through the parser, against the table."""
    for code in range(1 << 16):
        got = events(_core.WebSocketCodec(), close_frame(code_bytes(code)))
        expected = (_core.EV_CLOSE, code, "") if valid_on_the_wire(code) else (_core.EV_ERROR, 1002)
        assert got == [expected], code


def test_empty_close_reports_1005() -> None:
    """Section 7.1.5: with no status code, "_The WebSocket Connection Close
    Code_ is considered to be 1005"."""
    for client in (False, True):
        codec = _core.WebSocketCodec(client=client)
        assert events(codec, close_frame(b"", client_sends=not client)) == [
            (_core.EV_CLOSE, 1005, "")
        ]


def test_one_octet_close_payload_fails() -> None:
    """Section 5.5.1: a close body, if present, starts with a 2-octet code."""
    for payload in (b"\x03", b"\xe8"):
        assert events(_core.WebSocketCodec(), close_frame(payload)) == [(_core.EV_ERROR, 1002)]


def test_reason_is_delivered() -> None:
    """Section 5.5.1: the body may carry a UTF-8 reason after the code."""
    reason = "κόσμε — bye"
    got = events(_core.WebSocketCodec(), close_frame(code_bytes(1001, reason.encode())))
    assert got == [(_core.EV_CLOSE, 1001, reason)]


def test_reason_must_be_utf8() -> None:
    """Section 5.5.1: the reason "is not guaranteed to be human readable"
    but is UTF-8; section 8.1: invalid UTF-8 fails the connection (1007)."""
    for bad in (b"\xff", b"\xed\xa0\x80", b"ok\xe2\x82", b"\xc0\xaf"):
        codec = _core.WebSocketCodec()
        assert events(codec, close_frame(code_bytes(1000, bad))) == [(_core.EV_ERROR, 1007)]


def test_close_payload_of_125_octets_and_126() -> None:
    """Section 5.5: a close body is at most 125 octets (code + 123)."""
    got = events(_core.WebSocketCodec(), close_frame(code_bytes(1000, b"r" * 123)))
    assert got == [(_core.EV_CLOSE, 1000, "r" * 123)]
    got = events(_core.WebSocketCodec(), close_frame(code_bytes(1000, b"r" * 124)))
    assert got == [(_core.EV_ERROR, 1002)]


def test_close_split_at_every_octet() -> None:
    wire = close_frame(code_bytes(4321, "ünïcode".encode()))
    for cut in range(len(wire) + 1):
        codec = _core.WebSocketCodec()
        got = events(codec, wire[:cut]) + events(codec, wire[cut:])
        assert got == [(_core.EV_CLOSE, 4321, "ünïcode")]


# --------------------------------------------------------------------------
# Sending close frames


def sent_close(codec: _core.WebSocketCodec) -> bytes:
    """The close payload our codec put on the wire (unmasked)."""
    data = codec.data_to_send()
    parsed = _core.parse_frame_header(data)
    assert parsed is not None
    fin, rsv, opcode, is_masked, key, length, size = parsed
    assert (fin, rsv, opcode) == (True, 0, _core.OP_CLOSE)
    assert len(data) == size + length
    body = data[size:]
    return _core.mask(body, key) if key else body


def test_close_without_a_code_sends_an_empty_body() -> None:
    """Section 5.5.1: the close body is optional."""
    for client in (False, True):
        codec = _core.WebSocketCodec(client=client)
        codec.close()
        assert sent_close(codec) == b""
        assert codec.close_sent


def test_close_code_and_reason_on_the_wire() -> None:
    """Section 5.5.1: 2-octet code in network byte order, then the reason."""
    for client in (False, True):
        codec = _core.WebSocketCodec(client=client)
        codec.close(3001, "gone fishing ✓")
        assert sent_close(codec) == code_bytes(3001, "gone fishing ✓".encode())


def test_sending_only_wire_codes() -> None:
    """Section 7.4.1: an endpoint MUST NOT send 1005, 1006 or 1015, nor any
    code outside the defined ranges."""
    for code in range(1 << 16):
        codec = _core.WebSocketCodec()
        if valid_on_the_wire(code):
            codec.close(code)
            assert sent_close(codec) == code_bytes(code)
        else:
            with pytest.raises(ValueError):
                codec.close(code)
            assert not codec.close_sent
            assert codec.data_to_send() == b""
    for code in (-1, 1 << 16, 1 << 40):
        with pytest.raises((ValueError, OverflowError)):
            _core.WebSocketCodec().close(code)


def test_reason_length_limit_counts_octets() -> None:
    """Section 5.5: the body (2 + reason) fits in 125 octets, so the reason
    is at most 123 octets of UTF-8, not 123 characters."""
    codec = _core.WebSocketCodec()
    codec.close(1000, "é" * 61 + "a")  # 123 octets
    assert len(sent_close(codec)) == 125
    for reason in ("a" * 124, "é" * 62, "€" * 41 + "a"):
        with pytest.raises(ValueError):
            _core.WebSocketCodec().close(1000, reason)


def test_reason_needs_a_code_and_valid_text() -> None:
    """A reason can only follow a code (section 5.5.1); a str with a lone
    surrogate has no UTF-8 form."""
    with pytest.raises(ValueError):
        _core.WebSocketCodec().close(None, "why")
    with pytest.raises(ValueError):
        _core.WebSocketCodec().close(1000, "\ud800")


def test_second_close_raises() -> None:
    """Section 5.5.1: one close frame per endpoint."""
    codec = _core.WebSocketCodec()
    codec.close(1000)
    with pytest.raises(InvalidState):
        codec.close(1000)
    with pytest.raises(InvalidState):
        codec.close()


def test_nothing_is_sent_after_close() -> None:
    """Section 5.5.1: "The application MUST NOT send any more data frames
    after sending a Close frame"; h2ws refuses control frames as well."""
    codec = _core.WebSocketCodec()
    codec.send_frame(_core.OP_TEXT, b"half", fin=False)
    codec.close(1001)
    codec.data_to_send()
    with pytest.raises(InvalidState):
        codec.send("text")
    with pytest.raises(InvalidState):
        codec.send(b"binary")
    with pytest.raises(InvalidState):
        codec.send_frame(_core.OP_CONT, b"rest")
    with pytest.raises(InvalidState):
        codec.ping(b"")
    with pytest.raises(InvalidState):
        codec.pong(b"")
    assert codec.data_to_send() == b""


# --------------------------------------------------------------------------
# The handshake


def test_closing_handshake_both_ways() -> None:
    """Section 7.1.2 / 5.5.1: the client sends close, the server answers
    with close (echoing the code); both sides see the other's frame."""
    client = _core.WebSocketCodec(client=True)
    server = _core.WebSocketCodec()
    client.close(1000, "done")
    assert (client.close_sent, client.close_received) == (True, False)
    assert server.receive_data(client.data_to_send()) == [(_core.EV_CLOSE, 1000, "done")]
    assert (server.close_sent, server.close_received) == (False, True)
    # Sans-IO: the codec does not answer by itself.
    assert server.data_to_send() == b""
    server.close(1000)
    assert (server.close_sent, server.close_received) == (True, True)
    assert client.receive_data(server.data_to_send()) == [(_core.EV_CLOSE, 1000, "")]
    assert (client.close_sent, client.close_received) == (True, True)
    assert not client.failed and not server.failed


def test_server_initiated_close() -> None:
    server = _core.WebSocketCodec()
    client = _core.WebSocketCodec(client=True)
    server.close(1001, "shutting down")
    assert client.receive_data(server.data_to_send()) == [(_core.EV_CLOSE, 1001, "shutting down")]
    client.close()
    assert server.receive_data(client.data_to_send()) == [(_core.EV_CLOSE, 1005, "")]


def test_peer_data_is_received_until_its_close() -> None:
    """Section 7.1.2 (and 5.5.1): after sending close an endpoint still reads
    until the peer's close frame; a peer may finish what it was sending."""
    server = _core.WebSocketCodec()
    server.close(1000)
    wire = (
        _core.build_frame(_core.OP_TEXT, b"late", mask=KEY)
        + _core.build_frame(_core.OP_PING, b"p", mask=KEY)
        + close_frame(code_bytes(1000))
    )
    assert server.receive_data(wire) == [
        (_core.EV_TEXT, "late"),
        (_core.EV_PING, b"p"),
        (_core.EV_CLOSE, 1000, ""),
    ]


def test_nothing_is_received_after_the_peers_close() -> None:
    """Section 5.5.1: the close frame is the peer's last; anything after it
    is ignored."""
    codec = _core.WebSocketCodec()
    wire = close_frame(code_bytes(1000)) + _core.build_frame(_core.OP_TEXT, b"x", mask=KEY)
    assert events(codec, wire) == [(_core.EV_CLOSE, 1000, "")]
    assert codec.receive_data(_core.build_frame(_core.OP_PING, b"", mask=KEY)) == []
    assert codec.receive_data(b"\xff\xff garbage") == []
    assert not codec.failed


def test_close_in_the_middle_of_a_fragmented_message() -> None:
    """Section 5.4: control frames, close included, may come between
    fragments; the unfinished message is dropped."""
    wire = _core.build_frame(_core.OP_TEXT, b"frag", fin=False, mask=KEY) + close_frame(
        code_bytes(1000)
    )
    assert events(_core.WebSocketCodec(), wire) == [(_core.EV_CLOSE, 1000, "")]


def test_failed_endpoint_sends_the_error_code() -> None:
    """Section 7.1.7: to fail the connection an endpoint sends a close frame
    with the appropriate code (here 1002, from the error event)."""
    codec = _core.WebSocketCodec()
    got = codec.receive_data(_core.build_frame(_core.OP_TEXT, b"unmasked"))
    assert got[0][:2] == (_core.EV_ERROR, 1002)
    assert isinstance(got[0][2], str) and got[0][2]
    codec.close(got[0][1])
    assert sent_close(codec) == code_bytes(1002)
    assert codec.failed and codec.close_sent and not codec.close_received
