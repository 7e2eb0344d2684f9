"""An ASGI WebSocket echo app served by Hypercorn, run as a program by
``test_client_peers.py``: ``python hypercorn_echo.py [--certfile F --keyfile F]``.

Hypercorn binds 127.0.0.1 on a free port and logs "Running on http(s)://HOST:PORT".
The app accepts every WebSocket (choosing the first offered subprotocol),
echoes text and binary messages, and on ``/close/CODE`` closes first with
CODE. It prints one JSON line per WebSocket event to stdout: ``{"open": ...}``
with the scope's path, http_version and headers, and ``{"disconnect": ...}``
with the close code the client sent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from typing import Any


def report(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"not found\n"})
        return
    path = scope["path"]
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
    report(open=path, http_version=scope["http_version"], headers=headers)
    await receive()  # websocket.connect
    offered = scope.get("subprotocols") or []
    await send({"type": "websocket.accept", "subprotocol": offered[0] if offered else None})
    m = re.fullmatch(r"/close/(\d+)", path)
    if m:
        await send({"type": "websocket.close", "code": int(m.group(1)), "reason": "bye"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            report(disconnect=path, code=message.get("code"))
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


def main() -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    parser = argparse.ArgumentParser()
    parser.add_argument("--certfile")
    parser.add_argument("--keyfile")
    args = parser.parse_args()
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.errorlog = "-"
    config.loglevel = "INFO"
    if args.certfile:
        config.certfile = args.certfile
        config.keyfile = args.keyfile
    asyncio.run(serve(app, config))  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
