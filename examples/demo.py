"""The demo ASGI application: a page that opens a WebSocket and shows which
HTTP version carried it.

    h2ws examples.demo:app --port 8443 --certfile cert.pem --keyfile key.pem

(`make demo` does that with a generated certificate.) Load
https://127.0.0.1:8443/ in a browser: the page's own request makes an HTTP/2
connection, and the WebSocket rides a stream of that same connection
(RFC 8441). The server tells the page the ``http_version`` of the WebSocket's
ASGI scope.
"""

from __future__ import annotations

import json
from typing import Any

PAGE = b"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>h2ws demo</title>
<style>
body { font: 16px/1.5 system-ui, sans-serif; margin: 3em auto; max-width: 40em; }
#version { font-size: 2em; font-weight: bold; }
#log { font-family: monospace; white-space: pre-wrap; background: #f4f4f4; padding: 1em; }
</style>
</head>
<body>
<h1>h2ws demo</h1>
<p>This page loaded over <b id="page-version">?</b>.</p>
<p>Its WebSocket is carried by <span id="version">connecting...</span></p>
<p id="status"></p>
<div id="log"></div>
<script>
const log = (line) => { document.getElementById("log").textContent += line + "\\n"; };
const nav = performance.getEntriesByType("navigation")[0];
document.getElementById("page-version").textContent = nav ? nav.nextHopProtocol : "unknown";
const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
const ws = new WebSocket(url);
ws.onopen = () => { log("open: " + url); ws.send("ping from the page"); };
ws.onmessage = (event) => {
  const msg = JSON.parse(event.data);
  if (msg.type === "hello") {
    const v = msg.http_version === "2" ? "HTTP/2 (RFC 8441)" : "HTTP/" + msg.http_version;
    document.getElementById("version").textContent = v;
    document.title = "ws over " + msg.http_version;
  } else {
    log("echo: " + msg.text);
    document.getElementById("status").textContent = "echo ok";
  }
};
ws.onclose = (event) => log("closed: " + event.code);
ws.onerror = () => log("error");
</script>
</body>
</html>
"""


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    elif scope["type"] == "http":
        if scope["path"] == "/":
            body, ctype, status = PAGE, b"text/html; charset=utf-8", 200
        elif scope["path"] == "/version":
            body = json.dumps({"http_version": scope["http_version"]}).encode()
            ctype, status = b"application/json", 200
        else:
            body, ctype, status = b"not found\n", b"text/plain", 404
        await send(
            {"type": "http.response.start", "status": status, "headers": [(b"content-type", ctype)]}
        )
        await send({"type": "http.response.body", "body": body})
    elif scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        hello = {"type": "hello", "http_version": scope["http_version"], "path": scope["path"]}
        await send({"type": "websocket.send", "text": json.dumps(hello)})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            text = (
                message.get("text")
                if message.get("text") is not None
                else repr(message.get("bytes"))
            )
            await send(
                {"type": "websocket.send", "text": json.dumps({"type": "echo", "text": text})}
            )
