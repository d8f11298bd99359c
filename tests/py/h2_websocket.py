"""WebSocket over HTTP/2 (RFC 8441) on a cleartext connection (prior
knowledge), for tests/tests/http2.rs, built on the `h2` package.

Usage: h2_websocket.py HOST PORT PATH MESSAGE...

Checks that the server's SETTINGS enable the extended CONNECT, sends
`:method CONNECT`, `:protocol websocket` for PATH and prints

    SETTINGS-ENABLE-CONNECT-PROTOCOL <0|1>
    STATUS <status>

then, on a 200, sends each MESSAGE as a masked WebSocket text frame in
DATA, one at a time, and prints each frame that comes back:

    ECHO <text>

then ends the stream and prints `ENDED` when the server ends its side.
Reads are bounded (10 s). Prints `MISSING-H2 ...` and exits 3 when the
`h2` package is missing; ends with `DONE`.
"""

import os
import socket
import sys

try:
    import h2.config
    import h2.connection
    import h2.events
    import h2.settings
except ImportError as e:
    print("MISSING-H2", e, flush=True)
    sys.exit(3)

host, port, path, messages = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
sock = socket.create_connection((host, port), timeout=10)
conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
conn.initiate_connection()
sock.sendall(conn.data_to_send())

state = {"settings": None, "status": None, "data": b"", "ended": False}


def pump():
    data = sock.recv(65536)
    if not data:
        print("EOF")
        sys.exit(1)
    for ev in conn.receive_data(data):
        if isinstance(ev, h2.events.RemoteSettingsChanged):
            v = ev.changed_settings.get(h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL)
            if v is not None:
                state["settings"] = v.new_value
            elif state["settings"] is None:
                state["settings"] = 0
        elif isinstance(ev, h2.events.ResponseReceived):
            state["status"] = dict(ev.headers)[b":status"].decode()
        elif isinstance(ev, h2.events.DataReceived):
            state["data"] += ev.data
            conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded):
            state["ended"] = True
        elif isinstance(ev, h2.events.StreamReset):
            print("RESET", ev.error_code)
            state["ended"] = True
    sock.sendall(conn.data_to_send())


while state["settings"] is None:
    pump()
print("SETTINGS-ENABLE-CONNECT-PROTOCOL", state["settings"])
sid = conn.get_next_available_stream_id()
conn.send_headers(sid, [(":method", "CONNECT"), (":protocol", "websocket"),
                        (":scheme", "http"), (":path", path),
                        (":authority", "%s:%d" % (host, port)),
                        ("sec-websocket-version", "13")])
sock.sendall(conn.data_to_send())
while state["status"] is None and not state["ended"]:
    pump()
print("STATUS", state["status"])


def frame(text):
    payload = text.encode()
    mask = os.urandom(4)
    assert len(payload) < 126
    return bytes([0x81, 0x80 | len(payload)]) + mask + bytes(
        b ^ mask[i % 4] for i, b in enumerate(payload))


if state["status"] == "200":
    for m in messages:
        conn.send_data(sid, frame(m))
        sock.sendall(conn.data_to_send())
        while len(state["data"]) < 2 or len(state["data"]) < 2 + (state["data"][1] & 0x7F):
            pump()
        n = state["data"][1] & 0x7F
        print("ECHO", state["data"][2:2 + n].decode())
        state["data"] = state["data"][2 + n:]
    conn.end_stream(sid)
    sock.sendall(conn.data_to_send())
    while not state["ended"]:
        pump()
    print("ENDED")
print("DONE", flush=True)
