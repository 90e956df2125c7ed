"""A Prefect server on a fresh database of the PostgreSQL at 127.0.0.1:5432, as production runs it.

The commands are the ones deployments/README.md gives: a database of its own, then
`prefect server start` with PREFECT_SERVER_DATABASE_CONNECTION_URL naming it through
asyncpg (the server migrates the database when it starts).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from deployments.local_server import is_healthy
from tests.ports import free_port

POSTGRES = "postgresql://postgres@127.0.0.1:5432"


@contextmanager
def prefect_server_on_postgresql(home: Path, wait_s: float = 180) -> Iterator[str]:
    """Serve Prefect from a new database until the block ends; yields the API URL."""
    database = f"prefect_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{POSTGRES}/test", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {database}")
    environment = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": (
            f"postgresql+asyncpg://postgres@127.0.0.1:5432/{database}"
        ),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
    }
    environment.pop("PREFECT_API_URL", None)
    home.mkdir(parents=True, exist_ok=True)
    log = home / "server.log"
    port = free_port()
    with log.open("wb") as output:
        server = subprocess.Popen(
            [
                *(sys.executable, "-m", "prefect", "server", "start"),
                *("--host", "127.0.0.1", "--port", str(port)),
            ],
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    api_url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + wait_s
        while not is_healthy(api_url):
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"the Prefect server on PostgreSQL did not start: {log.read_text()[-3000:]}"
                )
            time.sleep(0.5)
        yield api_url
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(10)
        with psycopg.connect(f"{POSTGRES}/test", autocommit=True) as admin:
            admin.execute(f"DROP DATABASE {database} WITH (FORCE)")
