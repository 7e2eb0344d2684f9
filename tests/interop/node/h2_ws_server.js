// An RFC 8441 WebSocket echo server on Node's built-in http2 module (no npm).
//
// Usage: node h2_ws_server.js [--cert FILE --key FILE] [--port N]
//
// Listens on 127.0.0.1 (h2c with prior knowledge, or TLS with ALPN h2 when
// --cert/--key are given), advertises SETTINGS_ENABLE_CONNECT_PROTOCOL and
// answers each extended CONNECT (`:protocol websocket`) with 200. Client
// frames must be masked (RFC 6455 section 5.1: an unmasked one gets close
// 1002). Text and binary messages are echoed (fragments reassembled), pings
// answered with pongs; a close frame is answered with a close frame carrying
// the same code, then the stream is ended (END_STREAM).
//
// Paths: /close/CODE: the server closes first with CODE right after the 200.
// A `sec-websocket-protocol` offer gets its first token chosen.
//
// Prints JSON lines: {"port": N} once listening, then one line per closed
// WebSocket stream: {stream, path, headers, sessionId, status, closeCode,
// closeReason, masked, keys, frames, clientEnded, rstCode, messages}.
// `masked` is true when every client frame was masked, `keys` counts the
// distinct masking keys, `clientEnded` tells whether the client's END_STREAM
// arrived, `rstCode` is the stream's RST_STREAM code (0: none).
'use strict';
const http2 = require('node:http2');
const fs = require('node:fs');

const opts = {cert: null, key: null, port: 0};
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  if (a === '--cert') opts.cert = process.argv[++i];
  else if (a === '--key') opts.key = process.argv[++i];
  else if (a === '--port') opts.port = parseInt(process.argv[++i], 10);
}

function out(obj) { process.stdout.write(JSON.stringify(obj) + '\n'); }

// An unmasked server frame (RFC 6455 section 5.2).
function frame(opcode, payload) {
  payload = Buffer.from(payload);
  let head;
  if (payload.length < 126) {
    head = Buffer.from([0x80 | opcode, payload.length]);
  } else if (payload.length < 65536) {
    head = Buffer.alloc(4);
    head[0] = 0x80 | opcode; head[1] = 126; head.writeUInt16BE(payload.length, 2);
  } else {
    head = Buffer.alloc(10);
    head[0] = 0x80 | opcode; head[1] = 127; head.writeBigUInt64BE(BigInt(payload.length), 2);
  }
  return Buffer.concat([head, payload]);
}

function closePayload(code, reason) {
  if (code === 1005) return Buffer.alloc(0);
  const p = Buffer.alloc(2);
  p.writeUInt16BE(code, 0);
  return Buffer.concat([p, Buffer.from(reason || '')]);
}

// Parses masked client frames as they arrive; calls onFrame(fin, opcode,
// payload, key) with the unmasked payload (key null for an unmasked frame).
function frameReader(onFrame) {
  let buf = Buffer.alloc(0);
  return (chunk) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    for (;;) {
      if (buf.length < 2) return;
      const masked = (buf[1] & 0x80) !== 0;
      let len = buf[1] & 0x7f, off = 2;
      if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4; }
      else if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); off = 10; }
      const need = off + (masked ? 4 : 0) + len;
      if (buf.length < need) return;
      const key = masked ? buf.subarray(off, off + 4) : null;
      const body = buf.subarray(need - len, need);
      const payload = Buffer.alloc(len);
      for (let i = 0; i < len; i++) payload[i] = key ? body[i] ^ key[i & 3] : body[i];
      const fin = (buf[0] & 0x80) !== 0, opcode = buf[0] & 0x0f;
      buf = buf.subarray(need);
      onFrame(fin, opcode, payload, key ? key.toString('hex') : null);
    }
  };
}

let sessions = 0;
const settings = {enableConnectProtocol: true};
const server = opts.cert
  ? http2.createSecureServer({cert: fs.readFileSync(opts.cert), key: fs.readFileSync(opts.key),
                              ALPNProtocols: ['h2'], settings})
  : http2.createServer({settings});

server.on('session', (session) => { session.h2wsId = ++sessions; });

server.on('stream', (stream, headers) => {
  if (headers[':method'] !== 'CONNECT' || headers[':protocol'] !== 'websocket') {
    stream.respond({':status': 404}, {endStream: true});
    return;
  }
  if (headers['sec-websocket-version'] !== '13') {
    stream.respond({':status': 400, 'sec-websocket-version': '13'}, {endStream: true});
    return;
  }
  const path = headers[':path'];
  const r = {stream: stream.id, path, sessionId: stream.session.h2wsId, status: 200,
             headers: {}, closeCode: null, closeReason: null, masked: true, keys: 0, frames: 0,
             clientEnded: false, rstCode: 0, messages: 0};
  for (const [k, v] of Object.entries(headers)) if (!k.startsWith(':')) r.headers[k] = v;
  const keys = new Set();
  const answer = {':status': 200};
  const offer = headers['sec-websocket-protocol'];
  if (offer) answer['sec-websocket-protocol'] = offer.split(',')[0].trim();
  stream.respond(answer);
  let closeSent = false;
  const sendClose = (code, reason) => {
    if (closeSent) return;
    closeSent = true;
    stream.write(frame(8, closePayload(code, reason)));
  };
  const m = /^\/close\/(\d+)(\?.*)?$/.exec(path);
  if (m) sendClose(parseInt(m[1], 10), 'server closes');
  let parts = null, partOpcode = 0;
  stream.on('data', frameReader((fin, opcode, payload, key) => {
    r.frames++;
    if (key === null) {
      r.masked = false;
      sendClose(1002, 'unmasked frame');
      stream.end();
      return;
    }
    keys.add(key);
    r.keys = keys.size;
    if (opcode === 8) {
      r.closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
      r.closeReason = payload.subarray(2).toString('utf8');
      sendClose(r.closeCode, '');
      stream.end();  // both close frames seen: END_STREAM (RFC 8441 section 5.3)
      return;
    }
    if (opcode === 9) { if (!closeSent) stream.write(frame(10, payload)); return; }
    if (opcode === 10) return;
    if (opcode !== 0) { parts = []; partOpcode = opcode; }
    if (parts === null) return;
    parts.push(payload);
    if (fin) {
      const message = Buffer.concat(parts);
      parts = null;
      r.messages++;
      if (!closeSent) stream.write(frame(partOpcode, message));
    }
  }));
  stream.on('end', () => { r.clientEnded = true; });
  stream.on('error', () => {});
  stream.on('close', () => { r.rstCode = stream.rstCode || 0; out(r); });
});

server.on('error', (e) => { out({error: String(e)}); process.exit(1); });
server.listen(opts.port, '127.0.0.1', () => { out({port: server.address().port}); });
process.on('SIGTERM', () => { server.close(); process.exit(0); });
