"""A real h2c-capable backend for tests/tests/upgrade_protocols.rs.

Hypercorn serving a tiny ASGI app: `/admin` (and anything under it)
answers 200 "secret", every other path 200 "public". Hypercorn upgrades
an HTTP/1.1 request to HTTP/2 on `Upgrade: h2c` alone (whether or not
`Connection` names it), which is what makes h2c smuggling through a
proxy possible.

It binds 127.0.0.1 on a port the kernel picks, prints `PORT <n>` once it
is listening, and `REQUEST <http_version> <path>` for every request the
app serves (stdout, flushed), so the test can tell what reached it.
If Hypercorn is not installed it prints `MISSING-HYPERCORN ...` and
exits 3.
"""

import asyncio
import socket
import sys

try:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config
except ImportError as e:
    print("MISSING-HYPERCORN", e, flush=True)
    sys.exit(3)


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    path = scope["path"]
    print("REQUEST", scope["http_version"], path, flush=True)
    body = b"secret" if path == "/admin" or path.startswith("/admin/") else b"public"
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/plain"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def main():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    config = Config()
    config.bind = [f"fd://{sock.fileno()}"]
    config.accesslog = None
    config.errorlog = "-"
    config.graceful_timeout = 1
    # Connects queue in the backlog until Hypercorn accepts them.
    print("PORT", sock.getsockname()[1], flush=True)
    asyncio.run(serve(app, config))


if __name__ == "__main__":
    main()
