"""Many concurrent HTTP/2 streams on one cleartext connection (prior
knowledge) to an upstream whose answers come after different delays, for
tests/tests/http2.rs, built on the `h2` package.

Usage: h2_slow_streams.py HOST PORT PATH...

Opens one GET stream per PATH, in the order given, all of them before
reading anything, then reads until every stream has ended (or been
reset). Prints, in the order the streams ended,

    END <stream id> <path> <status> <ms since the requests were sent> <body>

(`RESET-<code>` in place of the status for a reset stream), then
`OPENED <n>` and `DONE`. Each read is bounded (30 s). Prints
`MISSING-H2 ...` and exits 3 when the `h2` package is missing.
"""

import socket
import sys
import time

try:
    import h2.config
    import h2.connection
    import h2.events
except ImportError as e:
    print("MISSING-H2", e, flush=True)
    sys.exit(3)

host, port, paths = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
sock = socket.create_connection((host, port), timeout=30)
conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
conn.initiate_connection()
authority = "%s:%d" % (host, port)
streams = {}
for path in paths:
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, [(":method", "GET"), (":scheme", "http"),
                            (":authority", authority), (":path", path)],
                      end_stream=True)
    streams[sid] = {"path": path, "status": None, "body": b"", "done": False}
sock.sendall(conn.data_to_send())
start = time.monotonic()
opened = len(streams)


def finish(sid, how):
    s = streams[sid]
    s["done"] = True
    ms = int((time.monotonic() - start) * 1000)
    print("END", sid, s["path"], how, ms, s["body"].decode(errors="replace"), flush=True)


while not all(s["done"] for s in streams.values()):
    data = sock.recv(65536)
    if not data:
        print("EOF")
        break
    for ev in conn.receive_data(data):
        if isinstance(ev, h2.events.ResponseReceived):
            streams[ev.stream_id]["status"] = dict(ev.headers)[b":status"].decode()
        elif isinstance(ev, h2.events.DataReceived):
            streams[ev.stream_id]["body"] += ev.data
            conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded):
            finish(ev.stream_id, streams[ev.stream_id]["status"])
        elif isinstance(ev, h2.events.StreamReset):
            finish(ev.stream_id, "RESET-%d" % ev.error_code)
    sock.sendall(conn.data_to_send())
print("OPENED", opened)
print("DONE", flush=True)
