"""examples/demo.py plus two things the browser tests need, served by the CLI:

    python -m h2ws helpers.chromium_pages:app --app-dir tests

- ``GET /page?ws=URL&close=1``: a page that opens a WebSocket to URL (default:
  this origin's ``/ws``), sends one message, shows the ``http_version`` of the
  server's hello in ``#version`` and "echo ok" in ``#status`` after the echo;
  with ``close=1`` it then closes with 1000. ``#closed`` gets "CODE CLEAN"
  (``CloseEvent.code`` and ``wasClean``) when the WebSocket closes.
- WebSocket ``/ws-bye``: the hello, one echo, then the server closes with 1000.

Everything else is the demo app.
"""

from __future__ import annotations

import json
from typing import Any

from examples.demo import app as demo_app

PAGE = b"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>h2ws test page</title></head>
<body>
<p id="version"></p>
<p id="status"></p>
<p id="closed"></p>
<pre id="log"></pre>
<script>
const params = new URLSearchParams(location.search);
const target = params.get("ws") || "/ws";
const url = /^wss?:/.test(target)
  ? target
  : (location.protocol === "https:" ? "wss://" : "ws://") + location.host + target;
const show = (id, text) => { document.getElementById(id).textContent = text; };
const log = (line) => { document.getElementById("log").textContent += line + "\\n"; };
const ws = new WebSocket(url);
ws.onopen = () => { log("open " + url); ws.send("ping from the test page"); };
ws.onmessage = (event) => {
  const msg = JSON.parse(event.data);
  if (msg.type === "hello") {
    show("version", msg.http_version);
    document.title = "ws over " + msg.http_version;
  } else {
    show("status", "echo ok");
    if (params.get("close")) ws.close(1000, "page done");
  }
};
ws.onclose = (event) => show("closed", event.code + " " + event.wasClean);
ws.onerror = () => log("error");
</script>
</body>
</html>
"""


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http" and scope["path"] == "/page":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/html; charset=utf-8")],
            }
        )
        await send({"type": "http.response.body", "body": PAGE})
    elif scope["type"] == "websocket" and scope["path"] == "/ws-bye":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        hello = {"type": "hello", "http_version": scope["http_version"], "path": scope["path"]}
        await send({"type": "websocket.send", "text": json.dumps(hello)})
        message = await receive()
        if message["type"] == "websocket.receive":
            echo = {"type": "echo", "text": message.get("text")}
            await send({"type": "websocket.send", "text": json.dumps(echo)})
            await send({"type": "websocket.close", "code": 1000, "reason": "server done"})
        while message["type"] != "websocket.disconnect":
            message = await receive()
    else:
        await demo_app(scope, receive, send)
