"""A short tour of the C codec: a client frames messages, a server parses them.

Run: python examples/codec_demo.py  (or `make demo`)
"""

from __future__ import annotations

from h2ws import _core


def main() -> None:
    print(f"h2ws._core linked against libnghttp2 {_core.nghttp2_version()}")
    print(f"masking implementation: {_core.build_info()['mask_impl']}")

    client = _core.WebSocketCodec(client=True)
    server = _core.WebSocketCodec(client=False, max_message_size=1 << 20)

    client.send("hello, κόσμε")
    client.send(bytes(range(256)) * 300)  # 76,800 bytes: a 64-bit length header
    client.send_frame(_core.OP_TEXT, b"frag", fin=False)
    client.ping(b"between fragments")  # control frames may interleave
    client.send_frame(_core.OP_CONT, b"mented", fin=True)
    client.close(1000, "done")
    wire = client.data_to_send()
    print(f"client framed {len(wire)} bytes (masked with fresh keys)")

    # Feed the server the wire bytes 1,000 at a time: any split works.
    names = {v: k for k, v in vars(_core).items() if k.startswith("EV_")}
    for i in range(0, len(wire), 1000):
        for event in server.receive_data(wire[i : i + 1000]):
            kind, *rest = event
            shown = [
                r if not isinstance(r, bytes) or len(r) < 40 else f"<{len(r)} bytes>" for r in rest
            ]
            print(f"  server got {names[kind]}: {shown}")

    # A protocol violation: a text frame that is not UTF-8 gets close code 1007.
    bad = _core.WebSocketCodec()
    print(
        "  invalid UTF-8 ->",
        bad.receive_data(_core.build_frame(_core.OP_TEXT, b"\xc3\x28", mask=b"abcd")),
    )


if __name__ == "__main__":
    main()
