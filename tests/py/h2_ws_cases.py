"""WebSocket over HTTP/2 (RFC 8441) on a cleartext connection (prior
knowledge), case by case, for tests/tests/http2.rs, built on the `h2`
package. Every frame the client sends is masked (RFC 6455 §5.3); every
frame it reads must not be.

Usage: h2_ws_cases.py HOST PORT CASE PATH...

Cases (each prints `SETTINGS-ENABLE-CONNECT-PROTOCOL <v>`, then
`STATUS <status>` for each extended CONNECT, and ends with `DONE`):

  messages PATH   a text message, a binary one, a 1 MiB binary one (each
                  echoed whole: `TEXT <text>`, `BINARY <n> SAME|DIFFERENT`,
                  `BIG <n> SAME|DIFFERENT`), a ping (`PONG <payload>`), a
                  close (`CLOSE <code>`), then END_STREAM and the stream's
                  end (`ENDED ...`).
  late PATH       sends `before the end` with END_STREAM on the same DATA,
                  then prints every frame that still comes (`FRAME <text>`)
                  and how the stream ended.
  fin PATH        reads frames until the server ends its side (`FRAME
                  <text>`, `SERVER-ENDED ...`), then sends `after the fin`
                  and END_STREAM.
  reset PATH_A PATH_B
                  opens two WebSocket streams, echoes one text on each
                  (`A ECHO <text>`, `B ECHO <text>`), resets A with
                  RST_STREAM CANCEL, then echoes three more on B
                  (`B ECHO ...`, `A-AFTER-RESET <bytes of DATA on A>`), and
                  ends B (`B ENDED ...`).
  refused PATH    prints the status, the body (`BODY <text>`) and how the
                  stream ended.

How a stream ended is read from the frames themselves (not from `h2`'s
state machine): `END_STREAM` when a HEADERS or DATA frame carried the
flag, `RST_STREAM <code>` for a reset (both, in order, when both came).
Before `DONE` each case does a PING round trip and prints `RESETS <list of
stream:code>` (or `RESETS none`): every RST_STREAM the server sent.

Reads are bounded (10 s each, 60 s in all). Prints `MISSING-H2 ...` and
exits 3 when the `h2` package is missing.
"""

import hashlib
import os
import socket
import struct
import sys
import time

try:
    import h2.config
    import h2.connection
    import h2.errors
    import h2.events
    import h2.settings
except ImportError as e:
    print("MISSING-H2", e, flush=True)
    sys.exit(3)

DEADLINE = time.monotonic() + 60


def fail(why):
    print("FAIL", why, flush=True)
    sys.exit(1)


def ws_frame(opcode, payload):
    """A final, masked client frame."""
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, 0x80 | n])
    elif n < 65536:
        head = bytes([0x80 | opcode, 0x80 | 126]) + struct.pack(">H", n)
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + struct.pack(">Q", n)
    mask = os.urandom(4)
    if n == 0:
        return head + mask
    reps = (mask * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(reps, "big")).to_bytes(n, "big")
    return head + mask + masked


def take_frame(buf):
    """(opcode, payload, rest) for the first whole server frame in buf,
    or None when it is not all there."""
    if len(buf) < 2:
        return None
    b0, b1 = buf[0], buf[1]
    if b1 & 0x80:
        fail("a masked frame from the server")
    if not b0 & 0x80:
        fail("a fragmented frame (the test's messages fit in one)")
    n, i = b1 & 0x7F, 2
    if n == 126:
        if len(buf) < 4:
            return None
        n, i = struct.unpack(">H", buf[2:4])[0], 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n, i = struct.unpack(">Q", buf[2:10])[0], 10
    if len(buf) < i + n:
        return None
    return b0 & 0x0F, bytes(buf[i:i + n]), buf[i + n:]


class Client:
    def __init__(self, host, port):
        self.authority = "%s:%d" % (host, port)
        self.sock = socket.create_connection((host, port), timeout=10)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.sock.sendall(self.conn.data_to_send())
        self.settings = None
        self.streams = {}
        self.raw = b""
        self.resets = []
        self.pongs = 0

    def stream(self, sid):
        return self.streams.setdefault(sid, {
            "status": None, "data": b"", "ends": [], "all_data": 0})

    def watch_frames(self, data):
        """Record END_STREAM flags and RST_STREAMs as the frames come."""
        self.raw += data
        while len(self.raw) >= 9:
            n = int.from_bytes(self.raw[:3], "big")
            if len(self.raw) < 9 + n:
                break
            kind, flags = self.raw[3], self.raw[4]
            sid = int.from_bytes(self.raw[5:9], "big") & 0x7FFFFFFF
            payload = self.raw[9:9 + n]
            self.raw = self.raw[9 + n:]
            if kind in (0, 1) and flags & 1:
                self.stream(sid)["ends"].append("END_STREAM")
            elif kind == 3:
                code = int.from_bytes(payload[:4], "big")
                self.stream(sid)["ends"].append("RST_STREAM %d" % code)
                self.resets.append("%d:%d" % (sid, code))

    def pump(self):
        if time.monotonic() > DEADLINE:
            fail("out of time")
        data = self.sock.recv(65536)
        if not data:
            fail("EOF")
        self.watch_frames(data)
        for ev in self.conn.receive_data(data):
            if isinstance(ev, h2.events.RemoteSettingsChanged):
                v = ev.changed_settings.get(h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL)
                if v is not None:
                    self.settings = v.new_value
                elif self.settings is None:
                    self.settings = 0
            elif isinstance(ev, h2.events.ResponseReceived):
                self.stream(ev.stream_id)["status"] = dict(ev.headers)[b":status"].decode()
            elif isinstance(ev, h2.events.DataReceived):
                s = self.stream(ev.stream_id)
                s["data"] += ev.data
                s["all_data"] += len(ev.data)
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.PingAckReceived):
                self.pongs += 1
        self.sock.sendall(self.conn.data_to_send())

    def wait(self, done):
        while not done():
            self.pump()

    def open(self, path):
        self.wait(lambda: self.settings is not None)
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, [(":method", "CONNECT"), (":protocol", "websocket"),
                                     (":scheme", "http"), (":path", path),
                                     (":authority", self.authority),
                                     ("sec-websocket-version", "13")])
        self.sock.sendall(self.conn.data_to_send())
        s = self.stream(sid)
        self.wait(lambda: s["status"] is not None or s["ends"])
        print("STATUS", s["status"], flush=True)
        return sid

    def send(self, sid, data, end=False):
        """Send data on sid as the flow-control windows allow (END_STREAM
        on the last DATA when end)."""
        sent = 0
        while True:
            room = min(self.conn.local_flow_control_window(sid),
                       self.conn.max_outbound_frame_size, len(data) - sent)
            if room <= 0 and sent < len(data):
                self.pump()
                continue
            last = sent + room == len(data)
            self.conn.send_data(sid, data[sent:sent + room], end_stream=end and last)
            sent += room
            self.sock.sendall(self.conn.data_to_send())
            if last:
                return

    def end(self, sid):
        self.conn.end_stream(sid)
        self.sock.sendall(self.conn.data_to_send())

    def frame(self, sid):
        """The next whole WebSocket frame on sid: (opcode, payload)."""
        s = self.stream(sid)
        while True:
            got = take_frame(s["data"])
            if got is not None:
                s["data"] = got[2]
                return got[0], got[1]
            if s["ends"]:
                fail("stream %d ended (%s) inside a frame" % (sid, s["ends"]))
            self.pump()

    def ended(self, sid):
        s = self.stream(sid)
        self.wait(lambda: s["ends"])
        return " ".join(s["ends"])

    def barrier(self):
        """A PING round trip: what the server sent before its ACK is in."""
        want = self.pongs + 1
        self.conn.ping(b"barrier!")
        self.sock.sendall(self.conn.data_to_send())
        self.wait(lambda: self.pongs >= want)

    def finish(self):
        self.barrier()
        print("RESETS", " ".join(self.resets) or "none")
        print("DONE", flush=True)


def echo(c, sid, opcode, payload):
    c.send(sid, ws_frame(opcode, payload))
    return c.frame(sid)


def messages(c, path):
    sid = c.open(path)
    if c.stream(sid)["status"] != "200":
        return
    op, p = echo(c, sid, 1, b"hello over h2")
    print("TEXT" if op == 1 else "OPCODE %d" % op, p.decode())
    binary = bytes(range(256)) * 3
    op, p = echo(c, sid, 2, binary)
    print("BINARY" if op == 2 else "OPCODE %d" % op, len(p), "SAME" if p == binary else "DIFFERENT")
    big = os.urandom(1 << 20)
    op, p = echo(c, sid, 2, big)
    same = hashlib.sha256(p).digest() == hashlib.sha256(big).digest()
    print("BIG" if op == 2 else "OPCODE %d" % op, len(p), "SAME" if same else "DIFFERENT")
    op, p = echo(c, sid, 9, b"are you there")
    print("PONG" if op == 10 else "OPCODE %d" % op, p.decode())
    op, p = echo(c, sid, 8, struct.pack(">H", 1000) + b"bye")
    print("CLOSE" if op == 8 else "OPCODE %d" % op, struct.unpack(">H", p[:2])[0] if len(p) >= 2 else "-")
    c.end(sid)
    print("ENDED", c.ended(sid))


def late(c, path):
    sid = c.open(path)
    if c.stream(sid)["status"] != "200":
        return
    c.send(sid, ws_frame(1, b"before the end"), end=True)
    s = c.stream(sid)
    while True:
        got = take_frame(s["data"])
        if got is not None:
            s["data"] = got[2]
            print("FRAME", got[1].decode())
            continue
        if s["ends"]:
            break
        c.pump()
    print("ENDED", " ".join(s["ends"]), "LEFT", len(s["data"]))


def fin(c, path):
    sid = c.open(path)
    if c.stream(sid)["status"] != "200":
        return
    s = c.stream(sid)
    while True:
        got = take_frame(s["data"])
        if got is not None:
            s["data"] = got[2]
            print("FRAME", got[1].decode())
            continue
        if s["ends"]:
            break
        c.pump()
    print("SERVER-ENDED", " ".join(s["ends"]))
    if s["ends"] == ["END_STREAM"]:
        c.send(sid, ws_frame(1, b"after the fin"), end=True)


def reset(c, path_a, path_b):
    a = c.open(path_a)
    b = c.open(path_b)
    if c.stream(a)["status"] != "200" or c.stream(b)["status"] != "200":
        return
    print("A ECHO", echo(c, a, 1, b"a1")[1].decode())
    print("B ECHO", echo(c, b, 1, b"b1")[1].decode())
    before = c.stream(a)["all_data"]
    c.conn.reset_stream(a, error_code=h2.errors.ErrorCodes.CANCEL)
    c.sock.sendall(c.conn.data_to_send())
    for text in (b"b2", b"b3", b"b4"):
        print("B ECHO", echo(c, b, 1, text)[1].decode())
    print("A-AFTER-RESET", c.stream(a)["all_data"] - before)
    c.send(b, ws_frame(8, struct.pack(">H", 1000)))
    op, _ = c.frame(b)
    c.end(b)
    print("B ENDED", c.ended(b))


def refused(c, path):
    sid = c.open(path)
    ends = c.ended(sid)
    print("BODY", c.stream(sid)["data"].decode(errors="replace"))
    print("ENDED", ends)


host, port, case, args = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
client = Client(host, port)
client.wait(lambda: client.settings is not None)
print("SETTINGS-ENABLE-CONNECT-PROTOCOL", client.settings, flush=True)
{"messages": messages, "late": late, "fin": fin, "reset": reset, "refused": refused}[case](client, *args)
client.finish()
