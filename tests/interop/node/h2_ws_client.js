// An RFC 8441 WebSocket client on Node's built-in http2 module (no npm).
//
// Usage: node h2_ws_client.js URL STREAMS [--insecure] [--big BYTES]
//                             [--rounds K [--size BYTES]] [--timeout SECONDS]
//
// Opens STREAMS WebSockets on one HTTP/2 connection. By default each one
// sends a text message, a binary message and a fragmented text message with
// a ping between its fragments (plus, with --big, a binary message of BYTES
// random bytes), waits for the echoes and the pong, then closes cleanly
// (close frame + END_STREAM in one DATA frame). With --rounds, each stream
// instead does K sequential echo round trips of --size bytes (default 256)
// and the output adds the message rate.
//
// Prints one JSON line: {ok, connections, enableConnectProtocol, elapsedMs,
// streams: [{stream, status, subprotocol, messages, pong, closeCode, ended,
// finished, rst}], rate?} or {error}. `connections` counts the TCP
// connections the client opened; `messages` holds [kind, detail] pairs
// (text: the string; binary: hex; big: [length, sha256 matches]).
'use strict';
const http2 = require('node:http2');
const crypto = require('node:crypto');
const net = require('node:net');
const tls = require('node:tls');

function parseArgs(argv) {
  const opts = {url: null, streams: 1, insecure: false, big: 0, rounds: 0, size: 256, timeout: 30};
  const positional = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--insecure') opts.insecure = true;
    else if (a === '--big') opts.big = parseInt(argv[++i], 10);
    else if (a === '--rounds') opts.rounds = parseInt(argv[++i], 10);
    else if (a === '--size') opts.size = parseInt(argv[++i], 10);
    else if (a === '--timeout') opts.timeout = parseFloat(argv[++i]);
    else positional.push(a);
  }
  opts.url = positional[0];
  opts.streams = parseInt(positional[1] || '1', 10);
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
const N = opts.streams;

function out(obj) { process.stdout.write(JSON.stringify(obj) + '\n'); }

const deadline = setTimeout(() => {
  out({error: 'timeout', streams: typeof results === 'undefined' ? [] : results});
  process.exit(2);
}, opts.timeout * 1000);

// A masked client frame (RFC 6455 section 5.3).
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

// Incremental parser of unmasked server frames; fragments are reassembled
// and reported as one message with the opcode of the first frame.
function parser(onMessage) {
  let buf = Buffer.alloc(0);
  let parts = null, partOpcode = 0;
  return (chunk) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    for (;;) {
      if (buf.length < 2) return;
      const masked = buf[1] & 0x80;
      let len = buf[1] & 0x7f, off = 2;
      if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4; }
      else if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); off = 10; }
      if (masked) throw new Error('server frame is masked');
      if (buf.length < off + len) return;
      const fin = !!(buf[0] & 0x80), opcode = buf[0] & 0x0f;
      const payload = buf.subarray(off, off + len);
      buf = buf.subarray(off + len);
      if (opcode >= 8) { onMessage(opcode, payload); continue; }
      if (opcode !== 0) { parts = []; partOpcode = opcode; }
      parts.push(payload);
      if (fin) { const p = Buffer.concat(parts); parts = null; onMessage(partOpcode, p); }
    }
  };
}

let connections = 0;
const url = new URL(opts.url);
const port = parseInt(url.port || (url.protocol === 'https:' ? '443' : '80'), 10);
const host = url.hostname.replace(/^\[|\]$/g, '');

// Every TCP connection goes through here, so the count is exact.
function createConnection() {
  connections++;
  if (url.protocol === 'https:') {
    const o = {host, port, ALPNProtocols: ['h2'], rejectUnauthorized: !opts.insecure};
    if (!net.isIP(host)) o.servername = host;
    return tls.connect(o);
  }
  return net.connect(port, host);
}

const client = http2.connect(opts.url, {createConnection});
client.on('error', (e) => { out({error: String(e)}); process.exit(1); });

const closePayload = () => { const p = Buffer.alloc(2); p.writeUInt16BE(1000, 0); return p; };
let results;
let started;

client.once('remoteSettings', (settings) => {
  if (!settings.enableConnectProtocol) {
    out({error: 'server did not advertise SETTINGS_ENABLE_CONNECT_PROTOCOL'});
    process.exit(1);
  }
  started = process.hrtime.bigint();
  results = [];
  let done = 0;
  for (let i = 0; i < N; i++) {
    const r = {stream: i, status: null, subprotocol: null, messages: [], pong: false,
               closeCode: null, ended: false, finished: false, rst: null};
    results.push(r);
    const req = client.request({
      ':method': 'CONNECT', ':protocol': 'websocket', ':path': `/echo/${i}`,
      'sec-websocket-version': '13', 'sec-websocket-protocol': 'chat',
    });
    const expected = opts.rounds ? 0 : 3 + (opts.big ? 1 : 0);
    let bigHash = null;
    let roundPayload = null, rounds = 0;
    const closeNow = () => { r.closing = true; req.end(frame(8, closePayload())); };
    req.on('response', (h) => {
      r.status = h[':status'];
      r.subprotocol = h['sec-websocket-protocol'] || null;
      if (opts.rounds) {
        roundPayload = crypto.randomBytes(opts.size);
        req.write(frame(2, roundPayload));
        return;
      }
      req.write(frame(1, `text ${i}`));
      req.write(frame(2, Buffer.from([i & 0xff, 0, 1, 2, 255])));
      req.write(frame(1, 'frag', false));
      req.write(frame(9, 'p' + i));
      req.write(frame(0, 'ment', false));
      req.write(frame(0, `ed ${i}`, true));
      if (opts.big) {
        const big = crypto.randomBytes(opts.big);
        bigHash = crypto.createHash('sha256').update(big).digest('hex');
        req.write(frame(2, big));
      }
    });
    req.on('data', parser((opcode, payload) => {
      if (opcode === 8) {
        r.closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
        return;
      }
      if (opcode === 10) { r.pong = payload.toString() === 'p' + i; }
      else if (opts.rounds) {
        if (!payload.equals(roundPayload)) r.messages.push(['mismatch', rounds]);
        if (++rounds < opts.rounds) req.write(frame(2, roundPayload));
        else { r.messages.push(['rounds', rounds]); closeNow(); }
        return;
      }
      else if (opcode === 1) r.messages.push(['text', payload.toString('utf8')]);
      else if (opcode === 2 && opts.big && payload.length === opts.big) {
        const h = crypto.createHash('sha256').update(payload).digest('hex');
        r.messages.push(['big', [payload.length, h === bigHash]]);
      }
      else if (opcode === 2) r.messages.push(['binary', payload.toString('hex')]);
      if (r.messages.length === expected && r.pong && r.closeCode === null && !r.closing) closeNow();
    }));
    req.on('end', () => { r.ended = true; });
    req.on('finish', () => { r.finished = true; });
    req.on('close', () => {
      r.rst = req.rstCode;
      delete r.closing;
      if (++done === N) {
        clearTimeout(deadline);
        const elapsed = Number(process.hrtime.bigint() - started) / 1e6;
        const res = {ok: true, connections, enableConnectProtocol: true, elapsedMs: elapsed,
                     streams: results};
        if (opts.rounds) res.rate = Math.round(N * opts.rounds / (elapsed / 1000));
        out(res);
        client.close();
      }
    });
  }
});
