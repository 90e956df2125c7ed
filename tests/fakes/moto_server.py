"""moto's S3 server on a free local port: a real HTTP endpoint that speaks the S3 API."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from moto.server import ThreadedMotoServer


@contextmanager
def running_moto_server() -> Iterator[str]:
    """Serve moto on 127.0.0.1 for the duration of the block; yields its base URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()
