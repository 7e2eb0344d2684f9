// An RFC 8441 WebSocket client on Node's built-in http2 module (no npm).
// Usage: node h2_ws_client.js URL STREAMS [--insecure]
// Opens STREAMS WebSockets on one HTTP/2 connection; each sends a text
// message, a binary message, a fragmented text message with a ping between
// its fragments, waits for the echoes and the pong, then closes cleanly
// (close frame + END_STREAM). Prints one JSON line with what it saw.
'use strict';
const http2 = require('node:http2');
const crypto = require('node:crypto');

const [url, nStr, flag] = process.argv.slice(2);
const N = parseInt(nStr || '1', 10);
const deadline = setTimeout(() => { out({error: 'timeout'}); process.exit(2); }, 30000);

function out(obj) { process.stdout.write(JSON.stringify(obj) + '\n'); }

function frame(opcode, payload, fin = true) {
  payload = Buffer.from(payload);
  const mask = crypto.randomBytes(4);
  let head;
  if (payload.length < 126) {
    head = Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | payload.length]);
  } else if (payload.length < 65536) {
    head = Buffer.alloc(4);
    head[0] = (fin ? 0x80 : 0) | opcode; head[1] = 0x80 | 126; head.writeUInt16BE(payload.length, 2);
  } else {
    head = Buffer.alloc(10);
    head[0] = (fin ? 0x80 : 0) | opcode; head[1] = 0x80 | 127; head.writeBigUInt64BE(BigInt(payload.length), 2);
  }
  const masked = Buffer.alloc(payload.length);
  for (let i = 0; i < payload.length; i++) masked[i] = payload[i] ^ mask[i & 3];
  return Buffer.concat([head, mask, masked]);
}

// Incremental parser of unmasked server frames.
function parser(onFrame) {
  let buf = Buffer.alloc(0);
  return (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    for (;;) {
      if (buf.length < 2) return;
      const masked = buf[1] & 0x80;
      let len = buf[1] & 0x7f, off = 2;
      if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4; }
      else if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); off = 10; }
      if (masked) throw new Error('server frame is masked');
      if (buf.length < off + len) return;
      onFrame({fin: !!(buf[0] & 0x80), opcode: buf[0] & 0x0f, payload: buf.subarray(off, off + len)});
      buf = buf.subarray(off + len);
    }
  };
}

const opts = flag === '--insecure' ? {rejectUnauthorized: false} : {};
const client = http2.connect(url, opts);
client.on('error', (e) => { out({error: String(e)}); process.exit(1); });

client.once('remoteSettings', (settings) => {
  if (!settings.enableConnectProtocol) {
    out({error: 'server did not advertise SETTINGS_ENABLE_CONNECT_PROTOCOL'});
    process.exit(1);
  }
  const results = [];
  let done = 0;
  for (let i = 0; i < N; i++) {
    const r = {stream: i, status: null, messages: [], pong: false, closeCode: null, ended: false, rst: null};
    results.push(r);
    const req = client.request({
      ':method': 'CONNECT', ':protocol': 'websocket', ':path': `/echo/${i}`,
      'sec-websocket-version': '13', 'sec-websocket-protocol': 'chat',
    });
    req.on('response', (h) => {
      r.status = h[':status'];
      r.subprotocol = h['sec-websocket-protocol'] || null;
      req.write(frame(1, `text ${i}`));
      req.write(frame(2, Buffer.from([i & 0xff, 0, 1, 2, 255])));
      req.write(frame(1, 'frag', false));
      req.write(frame(9, 'p' + i));
      req.write(frame(0, 'ment', false));
      req.write(frame(0, `ed ${i}`, true));
    });
    let fragments = null;
    req.on('data', parser((f) => {
      if (f.opcode === 1) r.messages.push(['text', f.payload.toString('utf8')]);
      else if (f.opcode === 2) r.messages.push(['binary', f.payload.toString('hex')]);
      else if (f.opcode === 10) r.pong = f.payload.toString() === 'p' + i;
      else if (f.opcode === 8) r.closeCode = f.payload.length >= 2 ? f.payload.readUInt16BE(0) : 1005;
      if (r.messages.length === 3 && r.pong && r.closeCode === null && !r.closing) {
        r.closing = true;
        const p = Buffer.alloc(2); p.writeUInt16BE(1000, 0);
        req.end(frame(8, p));  // close frame + END_STREAM
      }
    }));
    req.on('end', () => { r.ended = true; });
    req.on('close', () => {
      r.rst = req.rstCode;
      delete r.closing;
      if (++done === N) {
        clearTimeout(deadline);
        out({ok: true, streams: results});
        client.close();
      }
    });
  }
});
