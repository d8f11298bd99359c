"""A graceful stop seen by an HTTP/2 client, for tests/tests/http2.rs,
built on `hyperframe` and `hpack` (the frame and header layers of the `h2`
package; `h2`'s own state machine refuses to go on after a GOAWAY, which
is what this checks).

Usage: h2_goaway.py HOST PORT PID PATH NEWPATH

Opens a cleartext connection (prior knowledge), starts a POST to PATH with
content-length 10 and sends 5 bytes of it; once ringway has answered a
PING sent after that (so it has seen the stream), sends SIGTERM to PID.
Then waits for GOAWAY and prints

    GOAWAY LAST <last-stream-id> CODE <error-code>

then opens stream 3, a GET to NEWPATH, sends the rest of the POST's body,
and reads until the connection closes, printing

    STREAM 1 STATUS <status> BODY <body> ENDED <bool>
    STREAM 3 FRAMES <frames seen on stream 3>
    CLOSED

Every read is bounded (10 s). Prints `MISSING-H2 ...` and exits 3 when
the packages are missing; ends with `DONE`.
"""

import os
import signal
import socket
import sys

try:
    import hpack
    from hyperframe.frame import (DataFrame, Frame, GoAwayFrame, HeadersFrame,
                                  PingFrame, SettingsFrame)
except ImportError as e:
    print("MISSING-H2", e, flush=True)
    sys.exit(3)

host, port, pid, path, newpath = (sys.argv[1], int(sys.argv[2]), int(sys.argv[3]),
                                  sys.argv[4], sys.argv[5])
authority = "%s:%d" % (host, port)
sock = socket.create_connection((host, port), timeout=10)
enc = hpack.Encoder()
dec = hpack.Decoder()
buf = b""


def send(*frames):
    sock.sendall(b"".join(f.serialize() for f in frames))


def next_frame():
    """The next whole frame from the socket, or None at its end."""
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
            # ringway closed with bytes of ours unread (a late frame):
            # what it sent before is read first, so this is its end too.
            return None
        if not data:
            return None
        buf += data


def headers(sid, fields, end_stream):
    h = HeadersFrame(sid)
    h.data = enc.encode(fields)
    h.flags.add("END_HEADERS")
    if end_stream:
        h.flags.add("END_STREAM")
    return h


def data(sid, payload, end_stream):
    d = DataFrame(sid)
    d.data = payload
    if end_stream:
        d.flags.add("END_STREAM")
    return d


sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
post = [(":method", "POST"), (":scheme", "http"), (":authority", authority),
        (":path", path), ("content-length", "10")]
ping = PingFrame(0)
ping.opaque_data = b"goaway!!"
send(SettingsFrame(0), headers(1, post, False), data(1, b"01234", False), ping)

status, body, ended, goaway, stream3 = None, b"", False, None, 0

def handle(f):
    global status, body, ended, goaway, stream3
    if isinstance(f, SettingsFrame) and "ACK" not in f.flags:
        ack = SettingsFrame(0)
        ack.flags.add("ACK")
        send(ack)
    elif isinstance(f, GoAwayFrame):
        goaway = (f.last_stream_id, f.error_code)
    elif f.stream_id == 3:
        stream3 += 1
    elif f.stream_id == 1:
        if isinstance(f, HeadersFrame):
            for n, v in dec.decode(f.data):
                if n == ":status":
                    status = v
        elif isinstance(f, DataFrame):
            # A few bytes, far below the windows: no WINDOW_UPDATE.
            body += f.data
        if "END_STREAM" in f.flags:
            ended = True


# The PING's answer says ringway has read the stream's HEADERS.
while True:
    f = next_frame()
    if f is None:
        print("EOF BEFORE PING ACK", flush=True)
        sys.exit(1)
    if isinstance(f, PingFrame) and "ACK" in f.flags:
        break
    handle(f)
os.kill(pid, signal.SIGTERM)
while goaway is None:
    f = next_frame()
    if f is None:
        print("EOF BEFORE GOAWAY", flush=True)
        sys.exit(1)
    handle(f)
print("GOAWAY LAST %d CODE %d" % goaway, flush=True)
# A new stream after the GOAWAY, then the rest of the in-flight body.
send(headers(3, [(":method", "GET"), (":scheme", "http"), (":authority", authority),
                 (":path", newpath)], True),
     data(1, b"56789", True))
while True:
    f = next_frame()
    if f is None:
        break
    handle(f)
print("STREAM 1 STATUS %s BODY %s ENDED %s" % (status, body.decode(errors="replace"), ended))
print("STREAM 3 FRAMES %d" % stream3)
print("CLOSED")
print("DONE", flush=True)
