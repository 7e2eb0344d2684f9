"""Hypothesis strategies shared by the property tests of the RFC 6455 codec.

- ``conversations()``: what one endpoint sends (messages, fragments, control
  frames between fragments, a final close) and what the peer must receive.
- ``frame_streams()``: frames built field by field, valid or not, for the
  differential tests.
- ``tampered()``, ``mutated()``: valid streams with header fields or bytes
  changed, so that parsing goes deep before something is wrong.
- ``configs()``, ``limits_near()``, ``codec()``, ``feed()``: codecs, limits
  and how input reaches them.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from hypothesis import strategies as st

from h2ws import _core

from . import refcodec as ref
from .refcodec import Config, Event

# ---------------------------------------------------------------------------
# Configurations and feeding


def configs(*, client: bool | None = None) -> st.SearchStrategy[Config]:
    """Receiver settings, limits included; both roles unless `client` is given."""
    sizes = st.sampled_from([None, 0, 1, 2, 10, 125, 126, 300, 65535, 65536, 1 << 20])
    return st.builds(
        Config,
        client=st.booleans() if client is None else st.just(client),
        max_message_size=st.one_of(sizes, st.integers(0, 400)),
        max_frame_size=st.one_of(st.just(None), sizes, st.integers(0, 200)),
        rsv_allowed=st.sampled_from([0, 0, ref.RSV1, ref.RSV1 | ref.RSV2, ref.RSV_BITS]),
    )


@st.composite
def limits_near(draw: st.DrawFn, config: Config, stream: bytes) -> Config:
    """`config` with max_frame_size or max_message_size moved next to a size
    that occurs in `stream` (a data frame's length, or a message's length so
    far at the end of one of its frames): off-by-one errors show there."""
    frame_sizes: list[int] = []
    message_sizes: list[int] = []
    so_far = 0
    for raw in ref.split_frames(stream):
        header = ref.parse_header(raw)
        if header is None or ref.is_control(header.opcode) or header.length >> 63:
            continue
        so_far = so_far + header.length if header.opcode == ref.OP_CONT else header.length
        frame_sizes.append(header.length)
        message_sizes.append(so_far)
    if not frame_sizes:
        return config
    delta = draw(st.integers(-1, 1))
    if draw(st.booleans()):
        size = max(1, draw(st.sampled_from(frame_sizes)) + delta)
        return replace(config, max_frame_size=size)
    size = max(1, draw(st.sampled_from(message_sizes)) + delta)
    return replace(config, max_message_size=size)


def codec(config: Config) -> _core.WebSocketCodec:
    return _core.WebSocketCodec(
        client=config.client,
        max_message_size=config.max_message_size,
        max_frame_size=config.max_frame_size,
        rsv_allowed=config.rsv_allowed,
    )


def feed(receiver: _core.WebSocketCodec, data: bytes, cuts: Sequence[int] = ()) -> list[Event]:
    """Feeds `data` cut at the offsets in `cuts`; returns all events."""
    events: list[Event] = []
    start = 0
    for cut in [*sorted(cuts), len(data)]:
        events += receiver.receive_data(data[start:cut])
        start = cut
    return events


def cuts_for(data: bytes) -> st.SearchStrategy[list[int]]:
    """Where to split `data`: anywhere, including inside headers and keys."""
    if not data:
        return st.just([])
    return st.lists(st.integers(0, len(data)), max_size=12)


# ---------------------------------------------------------------------------
# Payloads


def _random_bytes(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


# Sizes where the length encoding changes (section 5.2), and a bit beyond.
EDGE_SIZES = [0, 1, 124, 125, 126, 127, 65535, 65536, 70000]


@st.composite
def binaries(draw: st.DrawFn, max_size: int = 200) -> bytes:
    """Mostly short; one time in eight a size where the length encoding
    changes (section 5.2)."""
    if draw(st.integers(0, 7)):
        return draw(st.binary(max_size=max_size))
    return _random_bytes(draw(st.integers(0, 2**32 - 1)), draw(st.sampled_from(EDGE_SIZES)))


@st.composite
def texts(draw: st.DrawFn) -> str:
    """Any text; one time in eight long enough for the 16/64-bit lengths
    (a short text repeated)."""
    if draw(st.integers(0, 7)):
        return draw(st.text(max_size=100))
    unit = draw(st.text(min_size=1, max_size=4))
    size = draw(st.sampled_from([126, 65536]))
    return unit * (size // len(unit.encode("utf-8")) + 1)


# Byte sequences that are never valid UTF-8, wherever they stand.
BAD_UTF8 = [
    b"\x80",  # lone continuation byte
    b"\xbf",
    b"\xc0\x80",  # overlong NUL
    b"\xc1\xbf",
    b"\xe0\x80\x80",  # overlong
    b"\xed\xa0\x80",  # surrogate U+D800
    b"\xed\xbf\xbf",  # surrogate U+DFFF
    b"\xf0\x80\x80\x80",  # overlong
    b"\xf4\x90\x80\x80",  # above U+10FFFF
    b"\xf5",
    b"\xff",
    b"\xe2\x82",  # cut-off euro sign followed by whatever comes next
    b"\xed\xa0",  # first two bytes of a surrogate
]


@st.composite
def maybe_bad_utf8(draw: st.DrawFn) -> bytes:
    """UTF-8 text, sometimes with an invalid sequence put in or cut short."""
    data = draw(texts()).encode("utf-8")
    choice = draw(st.integers(0, 3))
    if choice == 1 and data:
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from(BAD_UTF8)) + data[at:]
    elif choice == 2 and data:
        data = data[: draw(st.integers(0, len(data)))]  # may cut a character
    return data


CLOSE_CODES = [0, 999, 1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008, 1011, 1012, 1013,
               1014, 1015, 1016, 2000, 2999, 3000, 3999, 4000, 4999, 5000, 65535]  # fmt: skip


@st.composite
def close_payloads(draw: st.DrawFn) -> bytes:
    """Close frame payloads: empty, 1 byte, or code + reason, right or wrong."""
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return b""
    if kind == 1:
        return draw(st.binary(min_size=1, max_size=1))
    code = draw(st.one_of(st.sampled_from(CLOSE_CODES), st.integers(0, 0xFFFF)))
    reason = draw(st.text(max_size=40)).encode("utf-8")
    if kind == 5 and reason:
        reason = reason[:-1] + draw(st.sampled_from(BAD_UTF8))
    return code.to_bytes(2, "big") + reason[:123]


# ---------------------------------------------------------------------------
# Frames built field by field (valid or not)

RESERVED_OPCODES = [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF]


def _one_in(draw: st.DrawFn, n: int) -> bool:
    """True one time in n (shrinks towards False)."""
    return draw(st.integers(0, n - 1)) == n - 1


@st.composite
def wire_frames(draw: st.DrawFn, *, masked: bool, oddities: bool = True) -> bytes:
    """One frame as bytes, well formed for a receiver that expects `masked`,
    except that with `oddities` any field may now and then be wrong: a
    reserved opcode, RSV bits, a control frame without FIN or over 125 bytes,
    the wrong masking, a header that lies about the length, a non-minimal
    length encoding. (Payloads are wrong more often: invalid UTF-8, bad close
    codes and reasons.)
    """
    odd = oddities and _one_in(draw, 2)  # half of the frames have a wrong header field
    opcode = draw(st.sampled_from([ref.OP_TEXT, ref.OP_BINARY, ref.OP_CONT, ref.OP_CONT,
                                   ref.OP_PING, ref.OP_PONG, ref.OP_CLOSE]))  # fmt: skip
    if odd and _one_in(draw, 5):
        opcode = draw(st.sampled_from(RESERVED_OPCODES))
    if opcode == ref.OP_CLOSE:
        payload = draw(close_payloads())
    elif opcode in (ref.OP_PING, ref.OP_PONG):
        payload = draw(st.binary(max_size=135 if odd else 125))
    elif opcode in (ref.OP_TEXT, ref.OP_CONT):
        payload = draw(maybe_bad_utf8())
    else:
        payload = draw(binaries())
    fin = True if ref.is_control(opcode) else draw(st.booleans())
    if not odd:
        return _core.build_frame(opcode, payload, fin=fin, mask=_key(draw) if masked else None)
    if _one_in(draw, 4):
        fin = not fin
    rsv = (
        draw(st.sampled_from([ref.RSV1, ref.RSV2, ref.RSV3, ref.RSV_BITS]))
        if _one_in(draw, 5)
        else 0
    )
    key = _key(draw) if masked != _one_in(draw, 5) else None
    length: int | None = None
    if _one_in(draw, 3):
        lie = draw(st.sampled_from(["near", "any", "edge"]))
        if lie == "near":
            length = max(0, len(payload) + draw(st.integers(-3, 3)))
        elif lie == "any":
            length = draw(st.integers(0, 2**64 - 1))
        else:
            length = draw(st.sampled_from([126, 65536, 2**63, 2**64 - 1]))
    n = len(payload) if length is None else length
    length_bytes = draw(st.sampled_from([2, 8])) if _one_in(draw, 4) else None
    if length_bytes is not None and n < 2 ** (8 * length_bytes):
        # Non-minimal encodings: only the reference serializer writes them.
        return ref.build_frame(
            opcode, payload, fin=fin, rsv=rsv, mask_key=key, length=length,
            length_bytes=length_bytes,
        )  # fmt: skip
    return _core.build_frame(opcode, payload, fin=fin, rsv=rsv, mask=key, length=length)


def _key(draw: st.DrawFn) -> bytes:
    return draw(st.binary(min_size=4, max_size=4))


@st.composite
def frame_streams(draw: st.DrawFn, *, masked: bool, oddities: bool = True) -> bytes:
    """A few frames back to back, sometimes cut short at the end."""
    data = b"".join(draw(st.lists(wire_frames(masked=masked, oddities=oddities), max_size=8)))
    if data and draw(st.integers(0, 3)) == 0:
        data = data[: draw(st.integers(0, len(data)))]
    return data


# ---------------------------------------------------------------------------
# Conversations: what a well-behaved endpoint sends


@dataclass(frozen=True)
class Step:
    """One call on the sending codec."""

    call: str  # "send", "frame", "ping", "pong" or "close"
    payload: bytes | str = b""  # send: the message; frame, ping, pong: the payload
    opcode: int = 0  # frame
    fin: bool = True  # frame
    rsv: int = 0  # frame
    code: int | None = None  # close
    reason: str = ""  # close


@dataclass
class Conversation:
    """Steps for a sending codec and the events its peer must report."""

    steps: list[Step] = field(default_factory=list)
    expected: list[Event] = field(default_factory=list)

    def play(self, sender: _core.WebSocketCodec) -> bytes:
        """Runs the steps on `sender`; returns the bytes it wrote."""
        for step in self.steps:
            if step.call == "send":
                sender.send(step.payload)
            elif step.call == "close":
                sender.close(step.code, step.reason)
            else:
                assert isinstance(step.payload, bytes)
                if step.call == "frame":
                    sender.send_frame(step.opcode, step.payload, fin=step.fin, rsv=step.rsv)
                elif step.call == "ping":
                    sender.ping(step.payload)
                else:
                    sender.pong(step.payload)
        return sender.data_to_send()


def _control_step(kind: str, payload: bytes) -> tuple[Step, Event]:
    return Step(kind, payload), (ref.EV_PING if kind == "ping" else ref.EV_PONG, payload)


controls = st.tuples(st.sampled_from(["ping", "pong"]), st.binary(max_size=125))


def _reasons() -> st.SearchStrategy[str]:
    return st.text(max_size=40).filter(lambda s: len(s.encode("utf-8")) <= 123)


close_steps: st.SearchStrategy[tuple[int | None, str]] = st.one_of(
    st.just((None, "")),
    st.tuples(
        st.one_of(st.sampled_from([1000, 1001, 1002, 1003, *range(1007, 1015)]),
                  st.integers(3000, 4999)),
        _reasons(),
    ),
)  # fmt: skip


@st.composite
def conversations(draw: st.DrawFn, *, rsv: int = 0) -> Conversation:
    """Text and binary messages, fragmented at random byte offsets (through
    characters, too), ping and pong frames on their own and between the
    fragments of a message (section 5.4), an optional close at the end.
    `rsv` bits are set on the first frame of some messages.
    """
    conv = Conversation()
    items = draw(
        st.lists(
            st.one_of(
                st.tuples(st.just("text"), texts()),
                st.tuples(st.just("binary"), binaries()),
                controls,
            ),
            max_size=8,
        )
    )  # fmt: skip
    for kind, value in items:
        if kind in ("ping", "pong"):
            assert isinstance(value, bytes)
            step, event = _control_step(kind, value)
            conv.steps.append(step)
            conv.expected.append(event)
            continue
        is_text = kind == "text"
        raw = value.encode("utf-8") if isinstance(value, str) else value
        conv_event: Event = (ref.EV_TEXT, value) if is_text else (ref.EV_BINARY, value)
        cuts = sorted(draw(st.lists(st.integers(0, len(raw)), max_size=4)))
        first_rsv = rsv if rsv and draw(st.booleans()) else 0
        if not cuts and not first_rsv and draw(st.booleans()):
            conv.steps.append(Step("send", value))
            conv.expected.append(conv_event)
            continue
        bounds = [0, *cuts, len(raw)]
        pieces = [raw[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            if i == 0:
                opcode = ref.OP_TEXT if is_text else ref.OP_BINARY
                conv.steps.append(Step("frame", piece, opcode, last, first_rsv))
            else:
                conv.steps.append(Step("frame", piece, ref.OP_CONT, last))
            if not last:
                for ctl_kind, ctl_payload in draw(st.lists(controls, max_size=2)):
                    step, event = _control_step(ctl_kind, ctl_payload)
                    conv.steps.append(step)
                    conv.expected.append(event)
        conv.expected.append(conv_event)
    close = draw(st.none() | close_steps)
    if close is not None:
        code, reason = close
        conv.steps.append(Step("close", code=code, reason=reason))
        conv.expected.append((ref.EV_CLOSE, code or ref.NO_STATUS, reason))
    return conv


# ---------------------------------------------------------------------------
# Changes to a valid stream


@st.composite
def tampered(draw: st.DrawFn, wire: bytes, *, rsv_allowed: int = 0) -> bytes:
    """`wire` (complete frames) with a header field or the payload of one to
    three of its frames changed: RSV bits (often ones an extension allows, so
    that only the control-frame and continuation rules catch them), FIN, the
    opcode, the MASK bit, a lying length, a non-minimal length encoding, a
    payload grown past 125 bytes or made invalid UTF-8.
    """
    frames = list(ref.split_frames(wire))
    if not frames:
        return wire
    # Continuation and control frames have rules of their own: pick them often.
    special = [i for i, raw in enumerate(frames) if raw[0] & 0x0F in (0, 8, 9, 10)]
    for _ in range(draw(st.integers(1, 3))):
        prefer_special = draw(st.booleans())
        if special and prefer_special:
            i = draw(st.sampled_from(special))
        else:
            i = draw(st.integers(0, len(frames) - 1))
        header = ref.parse_header(frames[i])
        if header is None or header.size + header.length != len(frames[i]):
            continue
        payload = frames[i][header.size :]
        if header.key is not None:
            payload = ref.mask(payload, header.key)
        fin, rsv, opcode, key = header.fin, header.rsv, header.opcode, header.key
        length: int | None = None
        length_bytes: int | None = None
        change = draw(st.sampled_from(["rsv", "fin", "opcode", "mask", "length", "encoding",
                                       "grow", "utf8"]))  # fmt: skip
        if change == "rsv":
            choices = [b for b in (ref.RSV1, ref.RSV2, ref.RSV3) if b & rsv_allowed]
            rsv = draw(st.sampled_from(choices * 4 + [ref.RSV1, ref.RSV_BITS]))
        elif change == "fin":
            fin = not fin
        elif change == "opcode":
            opcode = draw(st.integers(0, 15))
        elif change == "mask":
            key = None if key is not None else _key(draw)
        elif change == "length":
            length = max(0, len(payload) + draw(st.integers(-3, 3)))
        elif change == "encoding" and len(payload) <= 0xFFFF:
            length_bytes = draw(st.sampled_from([2, 8]))
        elif change == "grow":
            payload += bytes(max(1, 126 - len(payload) + draw(st.integers(0, 4))))
        elif change == "utf8":
            at = draw(st.integers(0, len(payload)))
            payload = payload[:at] + draw(st.sampled_from(BAD_UTF8)) + payload[at:]
        frames[i] = ref.build_frame(
            opcode, payload, fin=fin, rsv=rsv, mask_key=key, length=length,
            length_bytes=length_bytes,
        )  # fmt: skip
    return b"".join(frames)


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` with a few bytes flipped, inserted, deleted or repeated."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.integers(0, 4))
        at = draw(st.integers(0, len(out)))
        if op == 0 and at < len(out):
            out[at] ^= draw(st.integers(1, 255))
        elif op == 1:
            out[at:at] = draw(st.binary(min_size=1, max_size=6))
        elif op == 2:
            del out[at : at + draw(st.integers(1, 6))]
        elif op == 3:
            end = min(len(out), at + draw(st.integers(1, 16)))
            out[at:at] = out[at:end]
        else:
            del out[at:]
    return bytes(out)
