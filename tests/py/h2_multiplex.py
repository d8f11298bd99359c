"""Several HTTP/2 requests on one cleartext connection (prior knowledge),
for tests/tests/http2.rs, built on the `h2` package.

Usage: h2_multiplex.py HOST PORT PATH...

Sends one GET per PATH, each on its own stream, all before reading any
answer, plus a POST of 200 000 bytes to the first PATH on the last
stream, then reads until every stream has ended and prints, in stream
order,

    STREAM <id> STATUS <status> BODY <body>

and `OPENED-BEFORE-READING <n>`: the streams opened before the first
read (all of them). Reads are bounded (10 s). Prints `MISSING-H2 ...` and
exits 3 when the `h2` package is missing; ends with `DONE`.
"""

import socket
import sys

try:
    import h2.config
    import h2.connection
    import h2.events
except ImportError as e:
    print("MISSING-H2", e, flush=True)
    sys.exit(3)

host, port, paths = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
sock = socket.create_connection((host, port), timeout=10)
conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
conn.initiate_connection()
authority = "%s:%d" % (host, port)
streams = {}
for path in paths:
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, [(":method", "GET"), (":scheme", "http"),
                            (":authority", authority), (":path", path)],
                      end_stream=True)
    streams[sid] = {"status": None, "body": b"", "done": False}
post = conn.get_next_available_stream_id()
body = b"x" * 200000
conn.send_headers(post, [(":method", "POST"), (":scheme", "http"),
                         (":authority", authority), (":path", paths[0]),
                         ("content-length", str(len(body)))])
streams[post] = {"status": None, "body": b"", "done": False}
sock.sendall(conn.data_to_send())
sent = 0
opened = len(streams)
while not all(s["done"] for s in streams.values()):
    # Send what the windows allow of the POST body.
    while sent < len(body):
        room = min(conn.local_flow_control_window(post), conn.max_outbound_frame_size,
                   len(body) - sent)
        if room <= 0:
            break
        conn.send_data(post, body[sent:sent + room], end_stream=sent + room == len(body))
        sent += room
    sock.sendall(conn.data_to_send())
    data = sock.recv(65536)
    if not data:
        print("EOF")
        break
    for ev in conn.receive_data(data):
        if isinstance(ev, h2.events.ResponseReceived):
            for n, v in ev.headers:
                if n == b":status":
                    streams[ev.stream_id]["status"] = v.decode()
        elif isinstance(ev, h2.events.DataReceived):
            streams[ev.stream_id]["body"] += ev.data
            conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded):
            streams[ev.stream_id]["done"] = True
        elif isinstance(ev, h2.events.StreamReset):
            print("RESET", ev.stream_id, ev.error_code)
            streams[ev.stream_id]["done"] = True
    sock.sendall(conn.data_to_send())
for sid in sorted(streams):
    s = streams[sid]
    print("STREAM", sid, "STATUS", s["status"], "BODY", s["body"].decode(errors="replace"))
print("OPENED-BEFORE-READING", opened)
print("DONE", flush=True)
