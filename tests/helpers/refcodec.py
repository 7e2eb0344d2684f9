"""A small pure-Python RFC 6455 codec: the oracle for the C codec in h2ws._core.

It is written for reading, not for speed, and knows nothing of the C code. Its
events are the tuples ``h2ws._core.WebSocketCodec.receive_data()`` returns:

    (EV_TEXT, str)  (EV_BINARY, bytes)  (EV_PING, bytes)  (EV_PONG, bytes)
    (EV_CLOSE, code, reason)     code 1005 when the close frame had no payload
    (EV_ERROR, close_code, reason)   1002, 1007 or 1009; nothing comes after it

``parse()`` looks at *everything received so far* in one go. The C codec is
incremental and reports a violation as soon as the bytes that reveal it have
arrived; ``parse()`` reproduces that on an input that stops in the middle of a
frame:

- the first two header bytes decide the opcode, RSV, MASK and control-frame
  rules (a bad frame fails before its length or masking key arrive);
- a complete header decides the 64-bit length rule and the size limits
  (a frame over a limit fails before its payload arrives);
- text fails as soon as a byte makes it invalid UTF-8, even before the
  frame ends (RFC 6455 section 8.1);
- anything else (control frames, the end of a message) needs the whole frame.

The reason text of an EV_ERROR is a diagnostic and differs from the C codec's;
compare events through ``comparable()``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

# Event kinds (the values of h2ws._core.EV_*).
EV_TEXT = 1
EV_BINARY = 2
EV_PING = 3
EV_PONG = 4
EV_CLOSE = 5
EV_ERROR = 6

# Opcodes, RFC 6455 section 5.2.
OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA
KNOWN_OPCODES = frozenset({OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG})

FIN = 0x80
RSV1 = 0x40
RSV2 = 0x20
RSV3 = 0x10
RSV_BITS = RSV1 | RSV2 | RSV3

CONTROL_MAX = 125  # section 5.5
DEFAULT_MAX_MESSAGE_SIZE = 1 << 20

# Close codes we send when the peer breaks the rules (section 7.4.1).
PROTOCOL_ERROR = 1002
INVALID_PAYLOAD = 1007
MESSAGE_TOO_BIG = 1009
NO_STATUS = 1005  # reported when a close frame has no payload; never on the wire

Event = tuple[object, ...]


def is_control(opcode: int) -> bool:
    """Control opcodes have the high bit of the opcode set (section 5.5)."""
    return opcode >= 0x8


def close_code_is_valid(code: int) -> bool:
    """May `code` appear in a close frame on the wire?

    Section 7.4.1 defines 1000-1011, of which 1004 is reserved and 1005, 1006
    (and 1015) must never be sent; the IANA registry (section 11.7) added
    1012-1014; section 7.4.2 gives 3000-4999 to libraries and applications.
    Everything else is invalid when received.
    """
    return code in (1000, 1001, 1002, 1003) or 1007 <= code <= 1014 or 3000 <= code <= 4999


def mask(data: bytes, key: bytes, phase: int = 0) -> bytes:
    """XOR with the 4-byte key, starting at key byte `phase % 4` (section 5.3).

    XORing two big integers XORs their bytes: one operation for the payload.
    """
    start = phase % 4
    stream = (key * (len(data) // 4 + 2))[start : start + len(data)]
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(len(data), "big")


def utf8_can_continue(data: bytes) -> bool:
    """True if `data` is valid UTF-8 or can still become valid with more bytes.

    Python's decoder tells whether the bytes are valid; a cut-off last character
    is a valid start if some continuation bytes complete it. At most three are
    missing, and 0x80 or 0xBF always fits the second byte (E0 needs A0-BF, ED
    80-9F, F0 90-BF, F4 80-8F), any continuation byte the others.
    """
    for filler in (
        b"",
        b"\x80",
        b"\x80\x80",
        b"\x80\x80\x80",
        b"\xbf",
        b"\xbf\x80",
        b"\xbf\x80\x80",
    ):
        try:
            (data + filler).decode("utf-8")
        except UnicodeDecodeError:
            continue
        return True
    return False


# ---------------------------------------------------------------------------
# Frame headers (section 5.2)


@dataclass(frozen=True)
class Header:
    fin: bool
    rsv: int  # the RSV bits as in the first byte (mask 0x70)
    opcode: int
    masked: bool
    key: bytes | None
    length: int  # as sent: may have the top bit set, which is invalid
    size: int  # header bytes
    minimal: bool  # the length used the shortest encoding


def parse_header(data: bytes, pos: int = 0) -> Header | None:
    """Parses the header at data[pos:]; None if it has not fully arrived."""
    if len(data) - pos < 2:
        return None
    b0, b1 = data[pos], data[pos + 1]
    len7 = b1 & 0x7F
    masked = bool(b1 & 0x80)
    ext = {126: 2, 127: 8}.get(len7, 0)
    size = 2 + ext + (4 if masked else 0)
    if len(data) - pos < size:
        return None
    if ext == 2:
        (length,) = struct.unpack_from("!H", data, pos + 2)
        minimal = length > 125
    elif ext == 8:
        (length,) = struct.unpack_from("!Q", data, pos + 2)
        minimal = length > 0xFFFF
    else:
        length, minimal = len7, True
    key = bytes(data[pos + 2 + ext : pos + size]) if masked else None
    return Header(bool(b0 & FIN), b0 & RSV_BITS, b0 & 0x0F, masked, key, length, size, minimal)


def build_frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask_key: bytes | None = None,
    length: int | None = None,
    length_bytes: int | None = None,
) -> bytes:
    """Serializes one frame, valid or not.

    `length` overrides the length in the header (a lying header);
    `length_bytes` (0, 2 or 8) forces the length encoding, which lets a test
    build the non-minimal encodings section 5.2 tells senders not to use.
    """
    n = len(payload) if length is None else length
    if length_bytes is None:
        length_bytes = 0 if n <= 125 else 2 if n <= 0xFFFF else 8
    head = bytes([(FIN if fin else 0) | rsv | opcode])
    mbit = 0x80 if mask_key is not None else 0
    if length_bytes == 0:
        head += bytes([mbit | n])
    elif length_bytes == 2:
        head += bytes([mbit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack("!Q", n)
    if mask_key is None:
        return head + payload
    return head + mask_key + mask(payload, mask_key)


def split_frames(data: bytes) -> Iterator[bytes]:
    """Cuts `data` into frames as a parser walks it, without judging them.

    The last piece may be an incomplete frame (or a header that claims more
    bytes than there are). Both parsers walk the same way until one fails.
    """
    pos = 0
    while pos < len(data):
        header = parse_header(data, pos)
        if header is None:
            yield data[pos:]
            return
        end = pos + header.size + header.length
        yield data[pos:end]
        pos = end


# ---------------------------------------------------------------------------
# The parser


class _Fail(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


@dataclass(frozen=True)
class Config:
    client: bool = False  # client role: the peer is a server and must not mask
    max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE  # None or 0: no limit
    max_frame_size: int | None = None  # None or 0: no limit
    rsv_allowed: int = 0  # RSV bits an extension negotiated


def parse(data: bytes, config: Config | None = None) -> list[Event]:
    """The events `data` (everything received so far) produces."""
    events: list[Event] = []
    try:
        _parse(bytes(data), config or Config(), events)
    except _Fail as exc:
        events.append((EV_ERROR, exc.code, str(exc)))
    return events


def _check_first_bytes(b0: int, b1: int, config: Config, message_open: bool) -> None:
    """What the first two header bytes decide (sections 5.1, 5.2, 5.4, 5.5)."""
    fin, rsv, opcode = bool(b0 & FIN), b0 & RSV_BITS, b0 & 0x0F
    masked, len7 = bool(b1 & 0x80), b1 & 0x7F
    # 5.2: RSV bits MUST be 0 unless an extension defines them; a reserved
    # opcode MUST fail the connection.
    if rsv & ~config.rsv_allowed:
        raise _Fail(PROTOCOL_ERROR, "RSV bit without an extension")
    if opcode not in KNOWN_OPCODES:
        raise _Fail(PROTOCOL_ERROR, f"reserved opcode {opcode:#x}")
    if is_control(opcode):
        # 5.5: control frames MUST NOT be fragmented and carry <= 125 bytes.
        # Extensions here only mark data messages, so RSV is wrong too.
        if not fin:
            raise _Fail(PROTOCOL_ERROR, "fragmented control frame")
        if len7 > CONTROL_MAX:
            raise _Fail(PROTOCOL_ERROR, "control frame over 125 bytes")
        if rsv:
            raise _Fail(PROTOCOL_ERROR, "RSV bit on a control frame")
    elif opcode == OP_CONT:
        # 5.4: a continuation needs a message to continue; RSV bits belong to
        # the first frame of a message only.
        if not message_open:
            raise _Fail(PROTOCOL_ERROR, "continuation without a message")
        if rsv:
            raise _Fail(PROTOCOL_ERROR, "RSV bit on a continuation frame")
    elif message_open:
        # 5.4: fragments of one message are not interleaved with another's.
        raise _Fail(PROTOCOL_ERROR, "new message inside a fragmented one")
    # 5.1: a server MUST fail on an unmasked frame, a client on a masked one.
    if masked == config.client:
        raise _Fail(PROTOCOL_ERROR, "wrong masking for the role")


def _check_size(length: int, so_far: int, config: Config) -> None:
    """Limits on a data frame, judged from its header (section 10.4)."""
    if config.max_frame_size and length > config.max_frame_size:
        raise _Fail(MESSAGE_TOO_BIG, "frame over max_frame_size")
    if config.max_message_size and so_far + length > config.max_message_size:
        raise _Fail(MESSAGE_TOO_BIG, "message over max_message_size")


def _control_event(opcode: int, payload: bytes) -> Event:
    if opcode == OP_PING:
        return (EV_PING, payload)
    if opcode == OP_PONG:
        return (EV_PONG, payload)
    # 5.5.1 and 7.4: an optional 2-byte code, then a UTF-8 reason.
    if not payload:
        return (EV_CLOSE, NO_STATUS, "")
    if len(payload) == 1:
        raise _Fail(PROTOCOL_ERROR, "close payload of 1 byte")
    (code,) = struct.unpack_from("!H", payload)
    if not close_code_is_valid(code):
        raise _Fail(PROTOCOL_ERROR, f"close code {code}")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise _Fail(INVALID_PAYLOAD, "close reason not UTF-8") from None
    return (EV_CLOSE, code, reason)


def _parse(data: bytes, config: Config, events: list[Event]) -> None:
    pos = 0
    message_opcode: int | None = None  # TEXT or BINARY while a message is open
    message = b""
    while len(data) - pos >= 2:
        _check_first_bytes(data[pos], data[pos + 1], config, message_opcode is not None)
        header = parse_header(data, pos)
        if header is None:
            return  # the rest of the header has not arrived
        if header.length >> 63:  # 5.2: the most significant bit MUST be 0
            raise _Fail(PROTOCOL_ERROR, "64-bit length with the top bit set")
        start = pos + header.size
        payload = data[start : start + header.length]
        if header.key is not None:
            payload = mask(payload, header.key)
        complete = len(payload) == header.length

        if is_control(header.opcode):
            if not complete:
                return
            event = _control_event(header.opcode, payload)
            events.append(event)
            if event[0] == EV_CLOSE:
                return  # 5.5.1: nothing after the close frame counts
        else:
            if header.opcode == OP_CONT:
                _check_size(header.length, len(message), config)
                message += payload
            else:
                _check_size(header.length, 0, config)
                message_opcode, message = header.opcode, payload
            # 8.1: fail as soon as the text cannot be UTF-8 any more.
            if message_opcode == OP_TEXT and not utf8_can_continue(message):
                raise _Fail(INVALID_PAYLOAD, "text is not UTF-8")
            if not complete:
                return
            if header.fin:
                if message_opcode == OP_TEXT:
                    try:
                        events.append((EV_TEXT, message.decode("utf-8")))
                    except UnicodeDecodeError:  # a character cut off at the end
                        raise _Fail(INVALID_PAYLOAD, "text is not UTF-8") from None
                else:
                    events.append((EV_BINARY, message))
                message_opcode, message = None, b""
        pos = start + header.length


def comparable(events: list[Event]) -> list[Event]:
    """The events with EV_ERROR reduced to its close code (the text is free)."""
    return [e[:2] if e[0] == EV_ERROR else e for e in events]
