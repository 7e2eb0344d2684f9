// WebSocket echo over HTTP/2 (RFC 8441) on Node's built-in `http2` module.
//
//   node benchmarks/servers/node_h2_echo.js --port 8080 [--host 127.0.0.1]
//        [--window BYTES] [--tls --certfile C --keyfile K]
//
// The server advertises SETTINGS_ENABLE_CONNECT_PROTOCOL, answers an extended
// CONNECT with :protocol websocket by 200, and runs RFC 6455 framing on the
// stream, written here (Node has no WebSocket server): client frames must be
// masked (else 1002), RSV bits and unknown opcodes are refused (1002), control
// frames must be short and unfragmented (1002), fragmented messages are
// reassembled and echoed as one message of their type, text must be UTF-8
// (1007), messages over 64 MiB get 1009, pings get pongs, and a close frame is
// answered with the same code before the stream ends. Cleartext is h2c with
// prior knowledge; TLS offers ALPN h2 only.
'use strict';

const fs = require('fs');
const http2 = require('http2');
const buffer = require('buffer');

const MAX_MESSAGE = 64 * 1024 * 1024;
const MAX_STREAMS = 2000;

function parseArgs(argv) {
  const opts = { host: '127.0.0.1', port: 0, tls: false, certfile: null, keyfile: null, window: 256 * 1024 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--host') opts.host = next();
    else if (a === '--port') opts.port = Number(next());
    else if (a === '--tls') opts.tls = true;
    else if (a === '--certfile') opts.certfile = next();
    else if (a === '--keyfile') opts.keyfile = next();
    else if (a === '--window') opts.window = Number(next());
    else throw new Error(`unknown option ${a}`);
  }
  return opts;
}

const isUtf8 = typeof buffer.isUtf8 === 'function'
  ? buffer.isUtf8
  : (b) => { try { new TextDecoder('utf-8', { fatal: true }).decode(b); return true; } catch { return false; } };

// Unmasks `buf` in place with the 4-byte key `key` (RFC 6455 section 5.3),
// a 32-bit word at a time where the buffer is aligned.
function unmask(buf, key) {
  const n = buf.length;
  let i = 0;
  if (n >= 32 && buf.byteOffset % 4 === 0) {
    const words = new Uint32Array(buf.buffer, buf.byteOffset, n >>> 2);
    const k = key.readUInt32LE(0);
    for (let w = 0; w < words.length; w++) words[w] ^= k;
    i = words.length << 2;
  }
  for (; i < n; i++) buf[i] ^= key[i & 3];
}

// One server frame header (never masked) for `len` payload bytes.
function frameHeader(opcode, len) {
  let h;
  if (len < 126) {
    h = Buffer.allocUnsafe(2);
    h[1] = len;
  } else if (len < 65536) {
    h = Buffer.allocUnsafe(4);
    h[1] = 126;
    h.writeUInt16BE(len, 2);
  } else {
    h = Buffer.allocUnsafe(10);
    h[1] = 127;
    h.writeUInt32BE(Math.floor(len / 4294967296), 2);
    h.writeUInt32BE(len >>> 0, 6);
  }
  h[0] = 0x80 | opcode;
  return h;
}

class WebSocketStream {
  constructor(stream) {
    this.stream = stream;
    this.chunks = [];      // received bytes not parsed yet
    this.buffered = 0;
    this.fragments = [];   // payloads of the message being reassembled
    this.fragmentBytes = 0;
    this.messageOpcode = 0;
    this.closeSent = false;
    this.done = false;
    stream.on('data', (chunk) => this.receive(chunk));
    stream.on('end', () => this.finish());
    stream.on('error', () => { this.done = true; });
  }

  send(opcode, payload) {
    if (this.closeSent || this.stream.destroyed) return;
    const header = frameHeader(opcode, payload.length);
    if (payload.length <= 16384) {
      this.stream.write(Buffer.concat([header, payload], header.length + payload.length));
    } else {
      this.stream.cork();
      this.stream.write(header);
      this.stream.write(payload);
      this.stream.uncork();
    }
  }

  close(code, reason) {
    if (this.closeSent) return;
    let payload = Buffer.alloc(0);
    if (code !== undefined) {
      const r = Buffer.from(reason || '', 'utf8');
      payload = Buffer.allocUnsafe(2 + r.length);
      payload.writeUInt16BE(code, 0);
      r.copy(payload, 2);
    }
    this.send(0x8, payload);
    this.closeSent = true;
  }

  fail(code) {
    this.close(code, '');
    this.done = true;
    this.chunks = [];
    this.buffered = 0;
    if (!this.stream.destroyed) this.stream.end();
  }

  finish() {
    // The client ended its side: end ours (after a close frame, or it was abnormal).
    this.done = true;
    if (!this.stream.destroyed) this.stream.end();
  }

  // The first `n` buffered bytes as one Buffer, removed from the queue.
  take(n) {
    let out;
    const first = this.chunks[0];
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let off = 0;
      while (off < n) {
        const c = this.chunks[0];
        const m = Math.min(c.length, n - off);
        c.copy(out, off, 0, m);
        off += m;
        if (m === c.length) this.chunks.shift();
        else this.chunks[0] = c.subarray(m);
      }
    }
    this.buffered -= n;
    return out;
  }

  // The first `n` buffered bytes without consuming them (n <= 14).
  peek(n) {
    const first = this.chunks[0];
    if (first.length >= n) return first;
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    for (const c of this.chunks) {
      const m = Math.min(c.length, n - off);
      c.copy(out, off, 0, m);
      off += m;
      if (off === n) break;
    }
    return out;
  }

  receive(chunk) {
    if (this.done) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    while (!this.done && this.buffered >= 2) {
      let h = this.peek(Math.min(this.buffered, 14));
      const b0 = h[0];
      const b1 = h[1];
      const fin = (b0 & 0x80) !== 0;
      const opcode = b0 & 0x0f;
      if ((b0 & 0x70) !== 0 || (b1 & 0x80) === 0) return this.fail(1002);
      let len = b1 & 0x7f;
      let headerLen = 6;
      if (len === 126) headerLen = 8;
      else if (len === 127) headerLen = 14;
      if (this.buffered < headerLen) return;
      if (h.length < headerLen) h = this.peek(headerLen);
      if (len === 126) len = h.readUInt16BE(2);
      else if (len === 127) {
        const hi = h.readUInt32BE(2);
        if (hi > 0x1fffff) return this.fail(1009);
        len = hi * 4294967296 + h.readUInt32BE(6);
      }
      const control = opcode >= 0x8;
      if (control) {
        if (!fin || len > 125 || opcode > 0xa) return this.fail(1002);
      } else if (opcode === 0x0) {
        if (this.messageOpcode === 0) return this.fail(1002);
      } else if (opcode === 0x1 || opcode === 0x2) {
        if (this.messageOpcode !== 0) return this.fail(1002);
      } else {
        return this.fail(1002);
      }
      if (!control && this.fragmentBytes + len > MAX_MESSAGE) return this.fail(1009);
      if (this.buffered < headerLen + len) return;
      const key = Buffer.from(this.take(headerLen).subarray(headerLen - 4, headerLen));
      const payload = len > 0 ? this.take(len) : Buffer.alloc(0);
      unmask(payload, key);
      if (control) this.control(opcode, payload);
      else this.data(opcode, fin, payload);
    }
  }

  control(opcode, payload) {
    if (opcode === 0x9) {
      this.send(0xa, payload);
    } else if (opcode === 0x8) {
      if (payload.length === 1) return this.fail(1002);
      if (payload.length >= 2) {
        const code = payload.readUInt16BE(0);
        if (!isUtf8(payload.subarray(2))) return this.fail(1007);
        if (!this.closeSent) {
          this.send(0x8, payload.subarray(0, 2));
          this.closeSent = true;
        }
        void code;
      } else if (!this.closeSent) {
        this.send(0x8, payload);
        this.closeSent = true;
      }
      this.done = true;
      if (!this.stream.destroyed) this.stream.end();
    }
    // A pong (0xa) needs nothing.
  }

  data(opcode, fin, payload) {
    if (opcode !== 0x0) this.messageOpcode = opcode;
    if (fin && this.fragments.length === 0) {
      const type = this.messageOpcode;
      this.messageOpcode = 0;
      if (type === 0x1 && !isUtf8(payload)) return this.fail(1007);
      this.send(type, payload);
      return;
    }
    this.fragments.push(payload);
    this.fragmentBytes += payload.length;
    if (!fin) return;
    const message = Buffer.concat(this.fragments, this.fragmentBytes);
    const type = this.messageOpcode;
    this.fragments = [];
    this.fragmentBytes = 0;
    this.messageOpcode = 0;
    if (type === 0x1 && !isUtf8(message)) return this.fail(1007);
    this.send(type, message);
  }
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const options = {
    settings: {
      enableConnectProtocol: true,
      maxConcurrentStreams: MAX_STREAMS,
      initialWindowSize: opts.window,
    },
    peerMaxConcurrentStreams: MAX_STREAMS,
    maxSessionMemory: 4096, // MB: 16 MiB messages and 1,000 streams per session
  };
  let server;
  if (opts.tls) {
    options.key = fs.readFileSync(opts.keyfile || opts.certfile);
    options.cert = fs.readFileSync(opts.certfile);
    options.ALPNProtocols = ['h2'];
    server = http2.createSecureServer(options);
  } else {
    server = http2.createServer(options);
  }
  server.on('session', (session) => {
    // The connection window: large enough for the 16 MiB bulk messages.
    session.on('localSettings', () => {});
    session.on('error', () => {});
    try {
      session.setLocalWindowSize(Math.max(8 * 1024 * 1024, 2 * opts.window));
    } catch (e) { /* not connected yet */ }
  });
  server.on('stream', (stream, headers) => {
    stream.on('error', () => {});
    if (headers[':method'] === 'CONNECT' && headers[':protocol'] === 'websocket') {
      if (headers['sec-websocket-version'] !== '13') {
        stream.respond({ ':status': 400, 'sec-websocket-version': '13' }, { endStream: true });
        return;
      }
      stream.respond({ ':status': 200 });
      new WebSocketStream(stream);
    } else {
      stream.respond({ ':status': 426 }, { endStream: true });
    }
  });
  server.on('sessionError', () => {});
  // Nagle off, as on every other server here (Node leaves it on for http2 sockets).
  server.on('connection', (socket) => socket.setNoDelay(true));
  server.listen(opts.port, opts.host, 4096); // the backlog of every server here
  const stop = () => {
    server.close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main();
