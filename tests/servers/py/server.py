#!/usr/bin/python3
"""server.py — the Python (`websockets`) test server of the mmws integration tests.

Its twin tests/servers/node/server.js behaves identically; keep them in step.
Runs on Debian's python3-websockets (10.4, the legacy asyncio API) under
/usr/bin/python3:

    /usr/bin/python3 server.py --port 0 --host 127.0.0.1 [--tls CERT KEY] [--mode MODE]

Prints exactly one line, "LISTENING <port>", to stdout once it listens;
everything else goes to stderr. Exits 0 on SIGTERM.

MODE normal (default): WebSocket at any path, no compression, messages up to
MAX_MESSAGE bytes. A TEXT message starting with '#' is a command (JSON after
the '#'); every other message is echoed with the same opcode:
  {"cmd":"send","count":K,"size":S,"binary":B,"fragment":F}
       K messages of S bytes (text: "abcd...z0123456789" repeated; binary:
       byte i = i % 251), each split into frames of F bytes when F > 0
  {"cmd":"close","code":C,"reason":"R"}   server-initiated close handshake
  {"cmd":"kill"}                          abort the TCP connection (RST)
  {"cmd":"stall"}        from now on send nothing, answer no ping, read
                         nothing; the TCP connection stays open
  {"cmd":"count"}        TEXT {"connections":N,"messages":M}: WebSocket
                         connections accepted and non-command messages
                         received since start, over all connections
  {"cmd":"ping","payload":"P"}            send a PING carrying P
A bad command is answered with TEXT {"error":"..."}. Messages of one
connection are handled strictly in order, one at a time. Every PING is
answered with a PONG of the same payload (until "stall").

MODE heartbeat:MS: as normal, and every MS the server pings each client;
a client whose pong to the previous ping is missing is disconnected.
MODE noupgrade: accept TCP (or TLS) and never answer.
MODE status:NNN: answer each HTTP request with status NNN and close.

Frames are written with the protocol's write_frame so that fragmented
messages are framed exactly as ws frames them (websockets' own send() of an
iterable appends an empty final frame) and so that a server PING does not
wait for its PONG.
"""
import asyncio
import os
import json
import re
import signal
import socket
import ssl
import struct
import sys

import websockets
from websockets.frames import OP_BINARY, OP_PING, OP_TEXT

MAX_MESSAGE = 64 * 1024 * 1024
TEXT_PATTERN = b"abcdefghijklmnopqrstuvwxyz0123456789"

REASONS = {
    200: "OK", 301: "Moved Permanently", 302: "Found", 307: "Temporary Redirect",
    308: "Permanent Redirect", 400: "Bad Request", 401: "Unauthorized",
    403: "Forbidden", 404: "Not Found", 426: "Upgrade Required",
    429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
    503: "Service Unavailable",
}

stats = {"connections": 0, "messages": 0}
live = set()  # transports of open connections, aborted on SIGTERM


def log(msg):
    print(f"server.py: {msg}", file=sys.stderr, flush=True)


def usage(msg):
    log(msg)
    print("usage: server.py --port N --host ADDR [--tls CERT KEY] "
          "[--mode normal|noupgrade|status:NNN|heartbeat:MS]", file=sys.stderr)
    sys.exit(2)


def parse_args(argv):
    o = {"port": 0, "host": "127.0.0.1", "cert": None, "key": None, "mode": "normal"}
    i = 0
    while i < len(argv):
        a = argv[i]

        def need(n):
            if i + n >= len(argv):
                usage(f"{a} needs {n} argument(s)")
        if a == "--port":
            need(1)
            try:
                o["port"] = int(argv[i + 1])
            except ValueError:
                usage("bad --port")
            i += 2
        elif a == "--host":
            need(1)
            o["host"] = argv[i + 1]
            i += 2
        elif a == "--tls":
            need(2)
            o["cert"], o["key"] = argv[i + 1], argv[i + 2]
            i += 3
        elif a == "--mode":
            need(1)
            o["mode"] = argv[i + 1]
            i += 2
        else:
            usage(f"unknown argument {a}")
    if not 0 <= o["port"] <= 65535:
        usage("bad --port")
    m = o["mode"]
    if m not in ("normal", "noupgrade") and not re.fullmatch(r"status:[1-5][0-9][0-9]", m) \
            and not re.fullmatch(r"heartbeat:[1-9][0-9]{0,6}", m):
        usage(f"bad --mode {m}")
    return o


def status_response(code):
    """The exact bytes of the status:NNN answer (the same in server.js)."""
    body = f"status {code}\n"
    head = (f"HTTP/1.1 {code} {REASONS.get(code, 'Status')}\r\n"
            "Content-Type: text/plain\r\n"
            f"Content-Length: {len(body)}\r\n"
            "Connection: close\r\n")
    if code in (429, 503):
        head += "Retry-After: 3\r\n"
    if 300 <= code < 400:
        head += "Location: /redirected\r\n"
    return (head + "\r\n" + body).encode("latin-1")


def payload_of(size, binary):
    if binary:
        block = bytes(i % 251 for i in range(251))
    else:
        block = TEXT_PATTERN
    reps = size // len(block) + 1
    return (block * reps)[:size]


def is_count(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def valid_close_code(c):
    return (isinstance(c, int) and not isinstance(c, bool) and
            ((1000 <= c <= 1014 and c not in (1004, 1005, 1006)) or 3000 <= c <= 4999))


class Conn:
    """One WebSocket connection: commands and echoes, in order."""

    def __init__(self, ws):
        self.ws = ws
        self.stalled = False

    async def reply(self, obj):
        await self.ws.send(json.dumps(obj, separators=(",", ":")))

    async def command(self, text):
        ws = self.ws
        try:
            c = json.loads(text[1:])
        except ValueError:
            return await self.reply({"error": "bad command: not JSON"})
        if not isinstance(c, dict) or not isinstance(c.get("cmd"), str):
            return await self.reply({"error": "bad command: no cmd"})
        cmd = c["cmd"]
        if cmd == "send":
            count, size = c.get("count", 1), c.get("size", 0)
            frag, binary = c.get("fragment", 0), c.get("binary", False)
            if not (is_count(count) and is_count(size) and is_count(frag)
                    and isinstance(binary, bool)):
                return await self.reply({"error": "bad send: count, size, fragment must "
                                         "be integers >= 0, binary a boolean"})
            p = payload_of(size, binary)
            opcode = OP_BINARY if binary else OP_TEXT
            for _ in range(count):
                if self.stalled or not ws.open:
                    return
                if 0 < frag < size:
                    for off in range(0, size, frag):
                        end = min(off + frag, size)
                        await ws.write_frame(end == size, opcode if off == 0 else 0,
                                             p[off:end])
                else:
                    await ws.write_frame(True, opcode, p)
        elif cmd == "close":
            code, reason = c.get("code", 1000), c.get("reason", "")
            if not valid_close_code(code):
                return await self.reply({"error": "bad close: invalid code"})
            if not isinstance(reason, str) or len(reason.encode()) > 123:
                return await self.reply({"error": "bad close: reason must be a string "
                                         "of at most 123 bytes"})
            await ws.close(code, reason)
        elif cmd == "kill":
            sock = ws.transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            ws.transport.abort()
        elif cmd == "stall":
            self.stalled = True
            ws.transport.pause_reading()
        elif cmd == "count":
            await self.reply({"connections": stats["connections"],
                              "messages": stats["messages"]})
        elif cmd == "ping":
            payload = c.get("payload", "")
            if not isinstance(payload, str) or len(payload.encode()) > 125:
                return await self.reply({"error": "bad ping: payload must be a string "
                                         "of at most 125 bytes"})
            await ws.write_frame(True, OP_PING, payload.encode())
        else:
            await self.reply({"error": "bad command: unknown cmd"})

    async def run(self):
        ws = self.ws
        async for msg in ws:
            if isinstance(msg, str) and msg.startswith("#"):
                await self.command(msg)
            else:
                stats["messages"] += 1
                await ws.send(msg)
            if self.stalled:
                await asyncio.Future()  # until the connection is aborted


async def ws_handler(ws):
    stats["connections"] += 1
    live.add(ws.transport)
    try:
        await Conn(ws).run()
    except websockets.ConnectionClosed:
        pass
    except ConnectionError as e:
        log(f"connection error: {e}")
    finally:
        live.discard(ws.transport)


def raw_handler(status):
    async def handler(reader, writer):
        live.add(writer.transport)
        try:
            if status == 0:
                while await reader.read(65536):  # read and ignore, never answer
                    pass
                return
            buf = b""
            while b"\r\n\r\n" not in buf and len(buf) <= 65536:
                d = await reader.read(65536)
                if not d:
                    return
                buf += d
            writer.write(status_response(status))
            await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            live.discard(writer.transport)
            writer.close()
    return handler


async def main():
    o = parse_args(sys.argv[1:])
    ctx = None
    if o["cert"]:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(o["cert"], o["key"])
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))

    mode = o["mode"]
    if mode == "normal" or mode.startswith("heartbeat:"):
        # heartbeat:MS: websockets' own keepalive pings every MS and closes
        # the connection (1011) when a pong is not back within MS.
        hb = int(mode[10:]) / 1000 if mode != "normal" else None
        server = await websockets.serve(
            ws_handler, o["host"], o["port"], ssl=ctx, compression=None,
            max_size=MAX_MESSAGE, ping_interval=hb, ping_timeout=hb)
    else:
        status = 0 if mode == "noupgrade" else int(mode[7:])
        server = await asyncio.start_server(raw_handler(status), o["host"], o["port"], ssl=ctx)
    port = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"LISTENING {port}\n")
    sys.stdout.flush()

    await stop
    # Stop at once: no closing handshakes with peers that may be stalled.
    server.close()
    for t in list(live):
        try:
            t.abort()
        except Exception:  # a TLS transport already half torn down
            pass
    os._exit(0)


if __name__ == "__main__":
    asyncio.run(main())
