#!/usr/bin/env node
'use strict';
/*
 * server.js — the Node (`ws`) test server of the mmws integration tests.
 * Its twin tests/servers/py/server.py behaves identically; keep them in step.
 *
 *   node server.js --port 0 --host 127.0.0.1 [--tls CERT KEY] [--mode MODE]
 *
 * Prints exactly one line, "LISTENING <port>", to stdout once it listens;
 * everything else goes to stderr. Exits 0 on SIGTERM.
 *
 * MODE normal (default): WebSocket at any path, no compression, messages up
 * to MAX_MESSAGE bytes. A TEXT message starting with '#' is a command (JSON
 * after the '#'); every other message is echoed with the same opcode:
 *   {"cmd":"send","count":K,"size":S,"binary":B,"fragment":F}
 *        K messages of S bytes (text: "abcd...z0123456789" repeated; binary:
 *        byte i = i % 251), each split into frames of F bytes when F > 0
 *   {"cmd":"close","code":C,"reason":"R"}   server-initiated close handshake
 *   {"cmd":"kill"}                          abort the TCP connection (RST)
 *   {"cmd":"stall"}        from now on send nothing, answer no ping, read
 *                          nothing; the TCP connection stays open
 *   {"cmd":"count"}        TEXT {"connections":N,"messages":M}: WebSocket
 *                          connections accepted and non-command messages
 *                          received since start, over all connections
 *   {"cmd":"ping","payload":"P"}            send a PING carrying P
 * A bad command is answered with TEXT {"error":"..."}. Messages of one
 * connection are handled strictly in order, one at a time. Every PING is
 * answered with a PONG of the same payload (until "stall").
 *
 * MODE heartbeat:MS: as normal, and every MS the server pings each client;
 * a client whose pong to the previous ping is missing is disconnected.
 * MODE noupgrade: accept TCP (or TLS) and never answer.
 * MODE status:NNN: answer each HTTP request with status NNN and close.
 */
const fs = require('fs');
const http = require('http');
const https = require('https');
const net = require('net');
const tls = require('tls');
const { WebSocketServer, WebSocket } = require('ws');

const MAX_MESSAGE = 64 * 1024 * 1024;
const TEXT_PATTERN = 'abcdefghijklmnopqrstuvwxyz0123456789';
const SEND_HIGH_WATER = 1 << 20;

function usage(msg) {
  process.stderr.write(`server.js: ${msg}\n` +
    'usage: server.js --port N --host ADDR [--tls CERT KEY] [--mode normal|noupgrade|status:NNN|heartbeat:MS]\n');
  process.exit(2);
}

function parseArgs(argv) {
  const o = { port: 0, host: '127.0.0.1', cert: null, key: null, mode: 'normal' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const need = (n) => { if (i + n >= argv.length) usage(`${a} needs ${n} argument(s)`); };
    if (a === '--port') { need(1); o.port = Number(argv[++i]); }
    else if (a === '--host') { need(1); o.host = argv[++i]; }
    else if (a === '--tls') { need(2); o.cert = argv[++i]; o.key = argv[++i]; }
    else if (a === '--mode') { need(1); o.mode = argv[++i]; }
    else usage(`unknown argument ${a}`);
  }
  if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) usage('bad --port');
  if (o.mode !== 'normal' && o.mode !== 'noupgrade' && !/^status:[1-5][0-9][0-9]$/.test(o.mode) &&
      !/^heartbeat:[1-9][0-9]{0,6}$/.test(o.mode))
    usage(`bad --mode ${o.mode}`);
  return o;
}

const REASONS = {
  200: 'OK', 301: 'Moved Permanently', 302: 'Found', 307: 'Temporary Redirect',
  308: 'Permanent Redirect', 400: 'Bad Request', 401: 'Unauthorized',
  403: 'Forbidden', 404: 'Not Found', 426: 'Upgrade Required',
  429: 'Too Many Requests', 500: 'Internal Server Error', 502: 'Bad Gateway',
  503: 'Service Unavailable',
};

/* The exact bytes of the status:NNN answer (the same in server.py). */
function statusResponse(code) {
  const body = `status ${code}\n`;
  let head = `HTTP/1.1 ${code} ${REASONS[code] || 'Status'}\r\n` +
    'Content-Type: text/plain\r\n' +
    `Content-Length: ${body.length}\r\n` +
    'Connection: close\r\n';
  if (code === 429 || code === 503) head += 'Retry-After: 3\r\n';
  if (code >= 300 && code < 400) head += 'Location: /redirected\r\n';
  return Buffer.from(head + '\r\n' + body, 'latin1');
}

function payloadOf(size, binary) {
  const b = Buffer.allocUnsafe(size);
  if (binary) {
    for (let i = 0; i < size; i++) b[i] = i % 251;
  } else {
    for (let i = 0; i < size; i++) b[i] = TEXT_PATTERN.charCodeAt(i % TEXT_PATTERN.length);
  }
  return b;
}

function isCount(v) { return Number.isSafeInteger(v) && v >= 0; }

function validCloseCode(c) {
  return Number.isInteger(c) &&
    ((c >= 1000 && c <= 1014 && c !== 1004 && c !== 1005 && c !== 1006) ||
     (c >= 3000 && c <= 4999));
}

const stats = { connections: 0, messages: 0 };

/* Resolves when the socket can take more, or at once if it is gone. */
function drained(ws) {
  return new Promise((resolve) => {
    const s = ws._socket;
    if (!s || s.destroyed || ws.readyState !== WebSocket.OPEN) return resolve();
    const done = () => { s.off('drain', done); s.off('close', done); resolve(); };
    s.on('drain', done);
    s.on('close', done);
  });
}

/* The TCP socket under a ws socket: a TLSSocket wraps the raw one in
 * _parent, and only a socket with a TCP handle can be reset. */
function tcpOf(sock) {
  let s = sock;
  while (s._parent && !(s._handle && s._handle.constructor.name === 'TCP')) s = s._parent;
  return s;
}

function onConnection(ws) {
  stats.connections++;
  const st = { stalled: false, dead: false };
  let chain = Promise.resolve();

  ws.on('ping', (data) => {
    if (!st.stalled && !st.dead && ws.readyState === WebSocket.OPEN) ws.pong(data);
  });
  ws.on('error', (err) => process.stderr.write(`server.js: connection error: ${err.message}\n`));
  ws.on('close', () => { st.dead = true; });
  ws.on('message', (data, isBinary) => {
    chain = chain.then(() => handle(data, isBinary)).catch((err) => {
      process.stderr.write(`server.js: handler error: ${err && err.stack}\n`);
    });
  });

  const reply = (obj) => ws.send(JSON.stringify(obj));

  async function handle(data, isBinary) {
    if (st.stalled || st.dead || ws.readyState !== WebSocket.OPEN) return;
    if (isBinary || data.length === 0 || data[0] !== 0x23 /* '#' */) {
      stats.messages++;
      ws.send(data, { binary: isBinary });
      if (ws.bufferedAmount > SEND_HIGH_WATER) await drained(ws);
      return;
    }
    let c;
    try {
      c = JSON.parse(data.toString('utf8').slice(1));
    } catch (e) {
      return reply({ error: 'bad command: not JSON' });
    }
    if (c === null || typeof c !== 'object' || typeof c.cmd !== 'string')
      return reply({ error: 'bad command: no cmd' });
    switch (c.cmd) {
      case 'send': {
        const count = c.count === undefined ? 1 : c.count;
        const size = c.size === undefined ? 0 : c.size;
        const frag = c.fragment === undefined ? 0 : c.fragment;
        const binary = c.binary === undefined ? false : c.binary;
        if (!isCount(count) || !isCount(size) || !isCount(frag) || typeof binary !== 'boolean')
          return reply({ error: 'bad send: count, size, fragment must be integers >= 0, binary a boolean' });
        const p = payloadOf(size, binary);
        for (let i = 0; i < count; i++) {
          if (st.stalled || st.dead || ws.readyState !== WebSocket.OPEN) return;
          if (frag > 0 && size > frag) {
            for (let off = 0; off < size; off += frag) {
              const end = Math.min(off + frag, size);
              ws.send(p.subarray(off, end), { binary, fin: end === size });
            }
          } else {
            ws.send(p, { binary });
          }
          if (ws.bufferedAmount > SEND_HIGH_WATER) await drained(ws);
        }
        return;
      }
      case 'close': {
        const code = c.code === undefined ? 1000 : c.code;
        const reason = c.reason === undefined ? '' : c.reason;
        if (!validCloseCode(code)) return reply({ error: 'bad close: invalid code' });
        if (typeof reason !== 'string' || Buffer.byteLength(reason) > 123)
          return reply({ error: 'bad close: reason must be a string of at most 123 bytes' });
        ws.close(code, reason);
        return;
      }
      case 'kill': {
        st.dead = true;
        const raw = tcpOf(ws._socket);
        try {
          raw.resetAndDestroy();
        } catch (e) {
          process.stderr.write(`server.js: resetAndDestroy failed (${e.message}); destroying\n`);
          raw.destroy();
        }
        ws._socket.destroy();
        return;
      }
      case 'stall':
        st.stalled = true;
        ws.pause();
        return;
      case 'count':
        return reply({ connections: stats.connections, messages: stats.messages });
      case 'ping': {
        const payload = c.payload === undefined ? '' : c.payload;
        if (typeof payload !== 'string' || Buffer.byteLength(payload) > 125)
          return reply({ error: 'bad ping: payload must be a string of at most 125 bytes' });
        ws.ping(Buffer.from(payload, 'utf8'));
        return;
      }
      default:
        return reply({ error: 'bad command: unknown cmd' });
    }
  }
}

function main() {
  const o = parseArgs(process.argv.slice(2));
  const tlsOpts = o.cert ? { cert: fs.readFileSync(o.cert), key: fs.readFileSync(o.key) } : null;
  let server;

  if (o.mode === 'normal' || o.mode.startsWith('heartbeat:')) {
    const onRequest = (req, res) => {
      res.writeHead(426, { 'Content-Type': 'text/plain', Connection: 'close' });
      res.end('WebSocket only\n');
    };
    server = tlsOpts ? https.createServer(tlsOpts, onRequest) : http.createServer(onRequest);
    const wss = new WebSocketServer({
      server,
      perMessageDeflate: false,
      maxPayload: MAX_MESSAGE,
      autoPong: false,
      clientTracking: true,
    });
    wss.on('connection', (ws) => onConnection(ws));
    if (o.mode.startsWith('heartbeat:')) {
      /* heartbeat:MS: ping every client every MS; one whose pong for the
       * previous ping has not come back is terminated (as server.py's
       * keepalive does, which closes with 1011). */
      const ms = Number(o.mode.slice(10));
      setInterval(() => {
        for (const ws of wss.clients) {
          if (ws.hbWaiting) {
            process.stderr.write('server.js: heartbeat: no pong, terminating\n');
            ws.close(1011, 'keepalive ping timeout');
            ws.terminate();
            continue;
          }
          ws.hbWaiting = true;
          ws.once('pong', () => { ws.hbWaiting = false; });
          ws.ping();
        }
      }, ms);
    }
    wss.on('error', (err) => process.stderr.write(`server.js: ${err.message}\n`));
  } else {
    const status = o.mode === 'noupgrade' ? 0 : Number(o.mode.slice(7));
    const onSocket = (sock) => {
      sock.on('error', () => {});
      if (status === 0) { sock.resume(); return; } /* read and ignore, never answer */
      let buf = Buffer.alloc(0);
      let answered = false;
      sock.on('data', (d) => {
        if (answered) return;
        buf = Buffer.concat([buf, d]);
        if (buf.indexOf('\r\n\r\n') >= 0 || buf.length > 65536) {
          answered = true;
          sock.end(statusResponse(status));
        }
      });
    };
    server = tlsOpts ? tls.createServer(tlsOpts, onSocket) : net.createServer(onSocket);
  }

  server.on('error', (err) => {
    process.stderr.write(`server.js: ${err.message}\n`);
    process.exit(1);
  });
  if (tlsOpts) server.on('tlsClientError', (err) => process.stderr.write(`server.js: tls: ${err.message}\n`));
  server.listen(o.port, o.host, () => {
    process.stdout.write(`LISTENING ${server.address().port}\n`);
  });
  const stop = () => process.exit(0);
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main();
