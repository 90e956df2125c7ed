"""A Prefect server on this machine: reuse the one that answers, or start one and wait."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from clipgate.errors import ConfigurationError

DEFAULT_API_URL = "http://127.0.0.1:4200/api"


def is_healthy(api_url: str) -> bool:
    """True when a Prefect API answers its health check at `api_url`."""
    try:
        if not api_url.startswith(("http://", "https://")):
            return False
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:  # noqa: S310
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def ensure_server(prefect_home: Path, api_url: str | None = None, wait_s: float = 180) -> str:
    """The API URL of a healthy server: `api_url` if given, else one on 127.0.0.1:4200."""
    if api_url:
        if not is_healthy(api_url):
            raise ConfigurationError(
                f"no Prefect server answers at PREFECT_API_URL={api_url}; start it or unset it"
            )
        return api_url
    if is_healthy(DEFAULT_API_URL):
        return DEFAULT_API_URL
    prefect_home.mkdir(parents=True, exist_ok=True)
    log = prefect_home / "server.log"
    environment = {**os.environ, "PREFECT_HOME": str(prefect_home.resolve())}
    environment.pop("PREFECT_API_URL", None)
    # Not `prefect server start --background`: it hands the server pipes that close when
    # the starting command exits, and the server dies at its first log line. A detached
    # process writing to a log file outlives the demo so the UI stays up; its pid file is
    # the one `prefect server stop` reads.
    with log.open("ab") as output:
        server = subprocess.Popen(
            [
                *(sys.executable, "-m", "prefect", "server", "start"),
                *("--host", "127.0.0.1", "--port", "4200"),
            ],
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    (prefect_home / "server.pid").write_text(str(server.pid))
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if is_healthy(DEFAULT_API_URL):
            return DEFAULT_API_URL
        if server.poll() is not None:
            break
        time.sleep(0.5)
    raise ConfigurationError(
        f"the Prefect server did not become healthy within {wait_s:.0f} s; see {log}"
        if server.poll() is None
        else f"the Prefect server exited with code {server.returncode}; see {log}"
    )
