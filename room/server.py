"""Running the review room: in the foreground (`clipgate room`) or beside other work.

The access log stays off: the first visit with a token carries it in the address.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import uvicorn

from clipgate.errors import ConfigurationError
from clipgate.settings import Settings
from room.access import check_binding
from room.app import create_app

START_TIMEOUT_S = 20.0


def _server(settings: Settings, host: str, port: int) -> uvicorn.Server:
    check_binding(settings, host)
    config = uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        access_log=False,
        log_level="warning",
        # Video elements hold connections open while they buffer; keep idle ones short.
        timeout_keep_alive=5,
    )
    return uvicorn.Server(config)


def serve_room(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """Serve the room until interrupted."""
    host = host or settings.room_host
    port = settings.room_port if port is None else port
    server = _server(settings, host, port)
    print(f"review room at {_url(settings, host, port)}", flush=True)
    server.run()


@dataclass
class RunningRoom:
    """A room served from a background thread; `url` is where it answers."""

    server: uvicorn.Server
    thread: threading.Thread
    url: str
    port: int

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def start_room(
    settings: Settings,
    host: str | None = None,
    port: int | None = None,
) -> RunningRoom:
    """Start the room in a daemon thread and return once it accepts connections.

    Port 0 picks a free port; the returned `url` names the one chosen.
    """
    host = host or settings.room_host
    port = settings.room_port if port is None else port
    server = _server(settings, host, port)
    thread = threading.Thread(target=server.run, name="review-room", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise ConfigurationError(
                f"the review room could not listen on {host}:{port}; is the port taken? "
                "Set CLIPGATE_ROOM_PORT to another port"
            )
        time.sleep(0.05)
    bound_port = server.servers[0].sockets[0].getsockname()[1]
    return RunningRoom(server, thread, _url(settings, host, bound_port), bound_port)


def _url(settings: Settings, host: str, port: int) -> str:
    if settings.room_public_url:
        return settings.room_url
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"
