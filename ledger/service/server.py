"""The HTTP server under the service's ASGI application: uvicorn on a listening socket.

uvicorn picks its fastest parts when they are installed (the ``serve`` extra installs them):
the ``uvloop`` event loop and the ``httptools`` HTTP parser; else asyncio's loop and ``h11``.
The benchmark's HTTP floor (``scripts/bench_serve.py``) runs its do-nothing endpoint through
this same function, so the floor is that of the service's own stack.
"""

from __future__ import annotations

import socket
from typing import Any


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket (``OSError`` when it cannot be had)."""
    sock = socket.create_server((host, port))
    # Accepted connections inherit TCP_NODELAY: a response written in two parts (head, body)
    # is not held back by Nagle's algorithm until the client's delayed ACK (~40 ms).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def run(app: Any, sock: socket.socket) -> None:
    """Serve ``app`` on ``sock`` until SIGINT or SIGTERM (then gracefully: uvicorn finishes
    the requests in flight and runs the application's shutdown)."""
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])


def stack() -> str:
    """The event loop and HTTP parser uvicorn uses here, e.g. ``uvloop+httptools``."""
    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    try:
        import httptools  # noqa: F401

        http = "httptools"
    except ImportError:
        http = "h11"
    return f"{loop}+{http}"
