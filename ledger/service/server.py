"""The HTTP server under the service's ASGI application: uvicorn on a listening socket.

uvicorn picks its fastest parts when they are installed (the ``serve`` extra installs them):
the ``uvloop`` event loop and the ``httptools`` HTTP parser; else asyncio's loop and ``h11``.
The benchmark's HTTP floor (``scripts/bench_serve.py``) runs its do-nothing endpoint through
this same function, so the floor is that of the service's own stack.
"""

from __future__ import annotations

import socket
from typing import Any

from ledger.errors import EnvironmentProblem


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket (``OSError`` when it cannot be had)."""
    sock = socket.create_server((host, port))
    # Accepted connections inherit TCP_NODELAY: a response written in two parts (head, body)
    # is not held back by Nagle's algorithm until the client's delayed ACK (~40 ms).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def check_tls(cert: str, key: str) -> tuple[str, str]:
    """``(cert, key)`` once they load as a TLS server's certificate chain and its private key
    (``EnvironmentProblem`` naming the files otherwise: exit 3 before anything listens)."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as e:
        why = getattr(e, "strerror", None) or getattr(e, "reason", None) or str(e)
        raise EnvironmentProblem(
            f"--tls-cert {cert} --tls-key {key}: not a certificate and its key ({why})"
        ) from e
    return cert, key


def run(app: Any, sock: socket.socket, tls: tuple[str, str] | None = None) -> None:
    """Serve ``app`` on ``sock`` until SIGINT or SIGTERM (then gracefully: uvicorn finishes
    the requests in flight and runs the application's shutdown); over TLS with ``tls``
    (certificate chain file, private key file)."""
    import uvicorn

    cert, key = tls if tls is not None else (None, None)
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="on",
        ssl_certfile=cert,
        ssl_keyfile=key,
    )
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
