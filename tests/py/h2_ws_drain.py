"""A graceful stop seen by a WebSocket over HTTP/2 (RFC 8441), for
tests/tests/http2.rs, built on `hyperframe` and `hpack` (`h2`'s state
machine refuses DATA after a GOAWAY).

Usage: h2_ws_drain.py HOST PORT PID PATH

Opens an extended CONNECT to PATH, sends one masked text frame and reads
its echo, then sends SIGTERM to PID and reads (each read bounded, 10 s)
until the connection closes, printing

    STATUS <status>
    ECHO <text>
    GOAWAY LAST <last-stream-id> CODE <error-code>
    CLOSE-FRAME <close code>          (a WebSocket close frame in DATA)
    STREAM-END <END_STREAM|RST_STREAM <code>>
    CLOSED
    DONE

Prints `MISSING-H2 ...` and exits 3 when the packages are missing.
"""

import os
import signal
import socket
import struct
import sys

try:
    import hpack
    from hyperframe.frame import (DataFrame, Frame, GoAwayFrame, HeadersFrame,
                                  RstStreamFrame, SettingsFrame)
except ImportError as e:
    print("MISSING-H2", e, flush=True)
    sys.exit(3)

host, port, pid, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
sock = socket.create_connection((host, port), timeout=10)
enc, dec = hpack.Encoder(), hpack.Decoder()
buf = b""


def send(*frames):
    sock.sendall(b"".join(f.serialize() for f in frames))


def next_frame():
    global buf
    while True:
        if len(buf) >= 9:
            f, length = Frame.parse_frame_header(memoryview(buf[:9]))
            if len(buf) >= 9 + length:
                f.parse_body(memoryview(buf[9:9 + length]))
                buf = buf[9 + length:]
                return f
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            return None
        if not data:
            return None
        buf += data


sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
send(SettingsFrame(0))
connect_ok = False
while not connect_ok:
    f = next_frame()
    if f is None:
        print("EOF BEFORE SETTINGS", flush=True)
        sys.exit(1)
    if isinstance(f, SettingsFrame) and "ACK" not in f.flags:
        connect_ok = f.settings.get(8) == 1  # SETTINGS_ENABLE_CONNECT_PROTOCOL
        ack = SettingsFrame(0)
        ack.flags.add("ACK")
        send(ack)
        if not connect_ok:
            print("NO EXTENDED CONNECT", flush=True)
            sys.exit(1)
h = HeadersFrame(1)
h.data = enc.encode([(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"),
                     (":path", path), (":authority", "%s:%d" % (host, port)),
                     ("sec-websocket-version", "13")])
h.flags.add("END_HEADERS")
send(h)

data, goaway, ended = b"", None, None


def handle(f):
    global data, goaway, ended
    if isinstance(f, SettingsFrame) and "ACK" not in f.flags:
        ack = SettingsFrame(0)
        ack.flags.add("ACK")
        send(ack)
    elif isinstance(f, GoAwayFrame):
        goaway = (f.last_stream_id, f.error_code)
        print("GOAWAY LAST %d CODE %d" % goaway, flush=True)
    elif f.stream_id == 1 and isinstance(f, HeadersFrame):
        for n, v in dec.decode(f.data):
            if n == ":status":
                print("STATUS", v, flush=True)
    elif f.stream_id == 1 and isinstance(f, DataFrame):
        data += f.data
    elif f.stream_id == 1 and isinstance(f, RstStreamFrame):
        ended = "RST_STREAM %d" % f.error_code
    if f.stream_id == 1 and "END_STREAM" in f.flags and ended is None:
        ended = "END_STREAM"


def ws_frame(text):
    payload = text.encode()
    mask = os.urandom(4)
    return bytes([0x81, 0x80 | len(payload)]) + mask + bytes(
        b ^ mask[i % 4] for i, b in enumerate(payload))


d = DataFrame(1)
d.data = ws_frame("before the stop")
send(d)
while len(data) < 2 or len(data) < 2 + (data[1] & 0x7F):
    f = next_frame()
    if f is None:
        print("EOF BEFORE ECHO", flush=True)
        sys.exit(1)
    handle(f)
n = data[1] & 0x7F
print("ECHO", data[2:2 + n].decode(), flush=True)
data = data[2 + n:]
os.kill(pid, signal.SIGTERM)
while True:
    f = next_frame()
    if f is None:
        break
    handle(f)
if len(data) >= 4 and data[0] == 0x88:
    print("CLOSE-FRAME", struct.unpack("!H", data[2:4])[0])
else:
    print("NO CLOSE FRAME", data)
print("STREAM-END", ended)
print("CLOSED")
print("DONE", flush=True)
