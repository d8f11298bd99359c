"""An h2c smuggling client for tests/tests/upgrade_protocols.rs, built on
the `h2` package (a client library independent of the Rust tests).

Usage: h2c_client.py HOST PORT PATH

It sends `GET PATH HTTP/1.1` asking to upgrade to h2c (`Upgrade: h2c`,
`HTTP2-Settings`, `Connection: Upgrade, HTTP2-Settings`) and prints:

    HTTP1-STATUS <status>          the HTTP/1.1 answer's status
    HTTP1-UPGRADE <value>          its Upgrade field, if any
    HTTP1-BODY <body>              its body (when it is not a 101)

On a 101 it speaks HTTP/2 over the connection: the connection preface
and SETTINGS, then a request for `/admin` on stream 3 (stream 1 is the
upgraded request), and prints for each stream answered

    H2-STREAM <id> STATUS <status> BODY <body>

Without a 101 it sends the HTTP/2 preface anyway, as a smuggler would,
and prints `AFTER-PREFACE <first line of the answer>` (or `EOF`).
Every read is bounded (10 s). Prints `MISSING-H2 ...` and exits 3 when
the `h2` package is missing; ends with `DONE`.
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

TIMEOUT = 10


def read_head(sock, buf):
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise SystemExit(f"EOF before a response head: {buf!r}")
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head.decode("latin1"), rest


def field(head, name):
    for line in head.split("\r\n")[1:]:
        n, _, v = line.partition(":")
        if n.strip().lower() == name:
            return v.strip()
    return None


def main():
    host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    sock = socket.create_connection((host, port), timeout=TIMEOUT)
    sock.settimeout(TIMEOUT)
    conn = h2.connection.H2Connection(
        config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
    )
    settings = conn.initiate_upgrade_connection()
    request = (
        f"GET {path} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        "Upgrade: h2c\r\n"
        f"HTTP2-Settings: {settings.decode('ascii')}\r\n"
        "Connection: Upgrade, HTTP2-Settings\r\n"
        "\r\n"
    )
    sock.sendall(request.encode("ascii"))
    head, rest = read_head(sock, b"")
    status = int(head.split(" ")[1])
    print("HTTP1-STATUS", status, flush=True)
    upgrade = field(head, "upgrade")
    if upgrade is not None:
        print("HTTP1-UPGRADE", upgrade, flush=True)

    if status != 101:
        length = int(field(head, "content-length") or "0")
        while len(rest) < length:
            data = sock.recv(65536)
            if not data:
                break
            rest += data
        print("HTTP1-BODY", rest[:length].decode("latin1"), flush=True)
        # Press on as a smuggler would: HTTP/2 on the same connection.
        conn = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        conn.initiate_connection()
        conn.send_headers(
            1,
            [(":method", "GET"), (":path", "/admin"), (":scheme", "http"), (":authority", host)],
            end_stream=True,
        )
        try:
            sock.sendall(conn.data_to_send())
            answer = b""
            while b"\r\n" not in answer:
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
            first = answer.split(b"\r\n")[0].decode("latin1")
            print("AFTER-PREFACE", first if first else "EOF", flush=True)
        except OSError as e:
            print("AFTER-PREFACE", "ERROR", e, flush=True)
        print("DONE", flush=True)
        return

    # Switched: stream 1 is the upgraded request; ask for /admin on 3.
    conn.send_headers(
        3,
        [(":method", "GET"), (":path", "/admin"), (":scheme", "http"), (":authority", host)],
        end_stream=True,
    )
    sock.sendall(conn.data_to_send())
    statuses, bodies, ended = {}, {}, set()
    pending = rest
    while ended != {1, 3}:
        if not pending:
            try:
                pending = sock.recv(65536)
            except socket.timeout:
                print("H2-TIMEOUT", flush=True)
                break
            if not pending:
                print("H2-EOF", flush=True)
                break
        events = conn.receive_data(pending)
        pending = b""
        for ev in events:
            if isinstance(ev, h2.events.ResponseReceived):
                statuses[ev.stream_id] = dict(ev.headers).get(":status")
            elif isinstance(ev, h2.events.DataReceived):
                bodies[ev.stream_id] = bodies.get(ev.stream_id, b"") + ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                ended.add(ev.stream_id)
            elif isinstance(ev, h2.events.StreamReset):
                ended.add(ev.stream_id)
                print("H2-RESET", ev.stream_id, flush=True)
        out = conn.data_to_send()
        if out:
            sock.sendall(out)
    for sid in sorted(statuses):
        body = bodies.get(sid, b"").decode("latin1")
        print("H2-STREAM", sid, "STATUS", statuses[sid], "BODY", body, flush=True)
    print("DONE", flush=True)


if __name__ == "__main__":
    main()
