"""A small clipgate cluster on one machine: tests/test_cluster.py, bench/cluster.py and
scripts/cluster-demo all build it here.

Services (started fresh, on the bridge address when workers run in namespaces):
- a Prefect server (`prefect server start`) on its own PostgreSQL database, with the
  `video-review` deployment from prefect.yaml on the process pool `clipgate`;
- the clipgate store on another fresh PostgreSQL database;
- moto's S3 server (`python -m moto.server`) holding two buckets: clips, and the per-clip
  result cache (an S3Bucket block saved by `clipgate setup`);
- a private `redis-server` for the clip locks;
- the local Kling (tests/fakes/kling_server.py) with latency `task_seconds`, behind the
  global generator limit `clipgate-kling`.

Workers are `prefect worker start --pool clipgate --type process`, each in its own
network namespace (`ip netns`, a veth into one bridge) with its own hostname, empty
CLIPGATE_HOME, PREFECT_HOME and working folder; credentials reach them only as Blocks on
the server. PostgreSQL listens on 127.0.0.1 only, which a namespace cannot reach, so a
TCP relay on the bridge address carries the workers' store connections to it. Where
namespaces cannot be made, the same cluster runs as plain processes on 127.0.0.1.

Every namespace, link, process and database is removed on the way out, failure or not.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO, TypeVar
from uuid import UUID

import httpx
import psycopg
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import FlowRun, State, TaskRun
from prefect.events.filters import EventFilter, EventNameFilter
from prefect.settings import PREFECT_API_URL, temporary_settings

from clipgate.liveness import is_alive
from clipgate.models import CLIP_COUNT, VideoProject
from clipgate.samples import make_sample_project
from clipgate.store import open_store
from deployments.local_server import is_healthy
from tests.fakes.kling_server import KlingFake
from tests.fakes.moto_server import admin_client, create_public_bucket
from tests.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
POSTGRES_PORT = 5432
DEPLOYMENT = "video-review/video-review"
# The clip size of tests/conftest.py's SMALL_CLIPS (1 s, 160x90, 10 fps), which is not
# imported: that module pulls in pytest and Prefect's test server. A review may wait an
# hour, so that no suspended run times out while the bench waits for its slowest round.
SMALL_CLIPS = {
    "CLIPGATE_CLIP_SECONDS": "1",
    "CLIPGATE_CLIP_WIDTH": "160",
    "CLIPGATE_CLIP_HEIGHT": "90",
    "CLIPGATE_CLIP_FPS": "10",
    "CLIPGATE_REVIEW_TIMEOUT_S": "3600",
}
SUBMITTED = "prefect.worker.submitted-flow-run"
# What `clipgate recover` says when it puts a run whose worker died back on its pool.
REQUEUED = "put back on its work pool"

Value = TypeVar("Value")


class ClusterError(RuntimeError):
    """A part of the cluster did not start or did not get where it was waited for."""


@dataclass(frozen=True)
class ClusterSpec:
    """What to build: how many workers, their size, and the generator behind the limit."""

    workers: int = 2
    runs_per_worker: int = 3
    """Flow runs one worker runs at once (`prefect worker start --limit`): a machine's size."""
    generator_limit: int = 4
    """Slots of the global limit `clipgate-kling` (CLIPGATE_KLING_CONCURRENCY)."""
    task_seconds: float = 0.5
    """How long the local Kling takes per clip."""
    namespaces: bool = True
    """Run each worker in its own network namespace when they can be made."""
    ui: bool = False
    """Serve the Prefect UI (the demo does)."""


def namespaces_unavailable() -> str:
    """Why network namespaces cannot be made here, or '' when they can."""
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    if shutil.which("unshare") is None:
        return "the `unshare` command (util-linux) is not installed"
    probe = f"cg-probe-{secrets.token_hex(3)}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip() or made.returncode}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return ""


def _run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a set-up command, failing with its output."""
    done = subprocess.run(args, capture_output=True, text=True, check=False, **kwargs)
    if done.returncode != 0:
        raise ClusterError(
            f"{' '.join(args)} exited {done.returncode}:\n{done.stdout[-3000:]}"
            f"{done.stderr[-3000:]}"
        )
    return done


@dataclass
class Network:
    """Where services listen, and how a worker's command enters its own namespace."""

    host: str
    namespaces: list[str] = field(default_factory=list)
    worker_addresses: list[str] = field(default_factory=list)

    @property
    def isolated(self) -> bool:
        return bool(self.namespaces)

    def enter(self, index: int, hostname: str) -> list[str]:
        """The command prefix that runs a worker in namespace `index` as `hostname`."""
        if not self.namespaces:
            return []
        rename = "import os, socket, sys; socket.sethostname(sys.argv[1]); os.execv(sys.argv[2], sys.argv[2:])"  # noqa: E501
        return [
            *("ip", "netns", "exec", self.namespaces[index], "unshare", "--uts", "--"),
            *(sys.executable, "-c", rename, hostname),
        ]


def _free_subnet() -> int:
    """A third octet X with 10.213.X.0/24 unused on this host."""
    used = _run(["ip", "-4", "-o", "addr", "show"]).stdout
    for _ in range(100):
        octet = secrets.randbelow(250) + 2
        if f"10.213.{octet}." not in used:
            return octet
    raise ClusterError("no free 10.213.X.0/24 subnet for the cluster's bridge")


@contextmanager
def bridged_namespaces(workers: int) -> Iterator[Network]:
    """A bridge on the host and one namespace per worker, a veth from each into the bridge."""
    tag = secrets.token_hex(2)
    octet = _free_subnet()
    bridge = f"cg{tag}br"
    host = f"10.213.{octet}.1"
    names = [f"cg-{tag}-w{index + 1}" for index in range(workers)]
    etc_netns = Path("/etc/netns")
    with ExitStack() as cleanup:
        if not etc_netns.exists():
            # Made below for the namespaces' files; it stays while another cluster uses it.
            cleanup.callback(_remove_if_empty, etc_netns)
        _run(["ip", "link", "add", bridge, "type", "bridge"])
        cleanup.callback(subprocess.run, ["ip", "link", "del", bridge], capture_output=True)
        _run(["ip", "addr", "add", f"{host}/24", "dev", bridge])
        _run(["ip", "link", "set", bridge, "up"])
        for index, name in enumerate(names):
            outside, inside = f"cg{tag}w{index + 1}h", f"cg{tag}w{index + 1}n"
            _run(["ip", "netns", "add", name])
            cleanup.callback(subprocess.run, ["ip", "netns", "del", name], capture_output=True)
            cleanup.callback(shutil.rmtree, etc_netns / name, ignore_errors=True)
            # `ip netns exec` mounts these over /etc: the worker's own name resolves, and
            # nothing waits on a DNS server the namespace cannot reach.
            etc = etc_netns / name
            etc.mkdir(parents=True, exist_ok=True)
            hostname = f"cg-w{index + 1}"
            (etc / "hosts").write_text(f"127.0.0.1 localhost\n127.0.1.1 {hostname}\n")
            (etc / "resolv.conf").write_text("# no DNS inside a cluster worker\n")
            _run(["ip", "link", "add", outside, "type", "veth", "peer", "name", inside])
            cleanup.callback(subprocess.run, ["ip", "link", "del", outside], capture_output=True)
            _run(["ip", "link", "set", inside, "netns", name])
            _run(["ip", "link", "set", outside, "master", bridge])
            _run(["ip", "link", "set", outside, "up"])
            for command in (
                ["ip", "addr", "add", f"{_worker_address(octet, index)}/24", "dev", inside],
                ["ip", "link", "set", inside, "up"],
                ["ip", "link", "set", "lo", "up"],
            ):
                _run(["ip", "netns", "exec", name, *command])
        yield Network(
            host=host,
            namespaces=names,
            worker_addresses=[_worker_address(octet, index) for index in range(workers)],
        )


def _remove_if_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):
        folder.rmdir()


def _worker_address(octet: int, index: int) -> str:
    return f"10.213.{octet}.{index + 11}"


class TcpRelay:
    """Carries connections from `listen` to `target` byte for byte, one thread per direction."""

    def __init__(self, listen: tuple[str, int], target: tuple[str, int]) -> None:
        self.target = target
        self._server = socket.create_server(listen, reuse_port=False)
        self._server.settimeout(0.5)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="cluster-relay", daemon=True)

    @property
    def port(self) -> int:
        port: int = self._server.getsockname()[1]
        return port

    def __enter__(self) -> TcpRelay:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._server.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _address = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()


@contextmanager
def fresh_database(prefix: str) -> Iterator[str]:
    """A new empty PostgreSQL database on 127.0.0.1:5432, dropped (connections and all) after."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name in parentheses may hold spaces; the parent pid follows it.
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found: list[int] = []
    queue = [pid]
    while queue:
        below = children.get(queue.pop(), [])
        found.extend(below)
        queue.extend(below)
    return found


@dataclass
class Service:
    """A process the cluster started, with its log."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        """SIGTERM to its process group, SIGKILL if it lingers."""
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


@dataclass
class Worker:
    """One `prefect worker start`, in namespace `namespace` (or none), with its own folders."""

    name: str
    folder: Path
    namespace: str
    service: Service
    killed: bool = False

    @property
    def home(self) -> Path:
        return self.folder / "home"

    def namespaces(self) -> str:
        """The network and hostname namespaces the worker process is in."""
        pid = self.service.process.pid
        return " ".join(os.readlink(f"/proc/{pid}/ns/{kind}") for kind in ("net", "uts"))

    def processes(self) -> list[int]:
        """The worker and everything it started: its flow runs and their ffmpeg."""
        pids = {self.service.process.pid, *descendants(self.service.process.pid)}
        if self.namespace:
            listed = subprocess.run(
                ["ip", "netns", "pids", self.namespace], capture_output=True, text=True
            )
            pids.update(int(line) for line in listed.stdout.split())
        return sorted(pids)

    def kill(self) -> list[int]:
        """SIGKILL the worker and every process under it at once, as a machine dies."""
        pids = self.processes()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        pids = sorted({*pids, *self.processes()})
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.service.process.wait(10)
        self.killed = True
        return pids

    def tear_down(self) -> None:
        # Its flow runs may have sessions of their own, out of reach of a group signal.
        if not self.killed and self.service.process.poll() is None:
            self.kill()


class Cluster:
    """A running cluster: its services, workers and the clients a test or demo drives it with."""

    def __init__(self, spec: ClusterSpec, workdir: Path, out: TextIO | None = None) -> None:
        self.spec = spec
        self.workdir = workdir
        self.out = out
        self.network = Network(host="127.0.0.1")
        self.isolation_note = ""
        self.services: list[Service] = []
        self.workers: list[Worker] = []
        self.api_url = ""
        self.store_url = ""
        self.worker_store_url = ""
        self.redis_url = ""
        self.s3_endpoint = ""
        self.clips_bucket = ""
        self.results_bucket = ""
        self.server: Service
        self.kling: KlingFake
        self._stack = ExitStack()

    # -- building -------------------------------------------------------------------------

    def __enter__(self) -> Cluster:
        try:
            self._build()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stack.close()

    def say(self, message: str) -> None:
        if self.out is not None:
            print(f"{time.strftime('%H:%M:%S')} {message}", file=self.out, flush=True)

    def _build(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "logs").mkdir(exist_ok=True)
        (self.workdir / "host" / "prefect").mkdir(parents=True, exist_ok=True)
        reason = namespaces_unavailable() if self.spec.namespaces else ""
        if reason or not self.spec.namespaces:
            self.isolation_note = (
                f"network namespaces cannot be made here ({reason})"
                if reason
                else "no network namespaces, as asked"
            ) + ": workers run as plain processes with separate homes"
            self.say(self.isolation_note)
        else:
            self.network = self._stack.enter_context(bridged_namespaces(self.spec.workers))
            self.say(
                f"bridge {self.network.host}/24, one namespace per worker: "
                + ", ".join(self.network.namespaces)
            )
        host = self.network.host
        prefect_db = self._stack.enter_context(fresh_database("clipgate_cluster_prefect"))
        store_db = self._stack.enter_context(fresh_database("clipgate_cluster_store"))
        self.store_url = f"postgresql://postgres@127.0.0.1:{POSTGRES_PORT}/{store_db}"
        self.worker_store_url = self.store_url
        if self.network.isolated:
            relay = self._stack.enter_context(TcpRelay((host, 0), ("127.0.0.1", POSTGRES_PORT)))
            self.worker_store_url = f"postgresql://postgres@{host}:{relay.port}/{store_db}"
        self._start_prefect_server(prefect_db)
        self._start_moto()
        self._start_redis()
        self.kling = self._stack.enter_context(
            KlingFake(
                task_seconds=self.spec.task_seconds,
                # Room for more than the global limit: what caps the clips is clipgate's
                # limit, not Kling refusing them.
                concurrency_limit=self.spec.generator_limit * 4,
                host=host,
            )
        )
        self._stack.enter_context(temporary_settings({PREFECT_API_URL: self.api_url}))
        self._set_up_and_deploy()
        for index in range(self.spec.workers):
            self._start_worker(index)
        self.say(
            f"{len(self.workers)} workers on pool clipgate, {self.spec.runs_per_worker} runs "
            f"each at most; generator limit {self.spec.generator_limit}"
        )

    def _log(self, name: str) -> Path:
        return self.workdir / "logs" / f"{name}.log"

    def _start(
        self, name: str, args: list[str], env: dict[str, str], cwd: Path | None = None
    ) -> Service:
        log = self._log(name)
        with log.open("ab") as output:
            process = subprocess.Popen(
                args,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        service = Service(name, process, log)
        self.services.append(service)
        self._stack.callback(service.stop)
        return service

    def wait_for(
        self, check: Callable[[], Value | None], what: str, timeout_s: float = 300
    ) -> Value:
        """Poll `check` until it gives something true; fail naming `what` and the logs."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for service in self.services:
                if service.process.poll() is not None and not self._is_killed(service):
                    raise ClusterError(
                        f"{service.name} exited {service.process.returncode} while waiting "
                        f"for {what}:\n{service.tail()}"
                    )
            value = check()
            if value:
                return value
            time.sleep(0.25)
        tails = "\n".join(f"--- {s.name}\n{s.tail(15)}" for s in self.services)
        raise ClusterError(f"timed out after {timeout_s:g} s waiting for {what}\n{tails}")

    def _is_killed(self, service: Service) -> bool:
        return any(worker.killed and worker.service is service for worker in self.workers)

    def _base_environment(self) -> dict[str, str]:
        # Nothing of the caller's Prefect or clipgate settings leaks in (a test session's
        # server, a user's CLIPGATE_HOME): the cluster's processes see only their own.
        inherited = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("PREFECT_", "CLIPGATE_"))
        }
        return {**inherited, "PYTHONUNBUFFERED": "1"}

    def _start_prefect_server(self, database: str) -> None:
        port = free_port(self.network.host)
        self.api_url = f"http://{self.network.host}:{port}/api"
        home = self.workdir / "server" / "prefect"
        home.mkdir(parents=True)
        env = {
            **self._base_environment(),
            "PREFECT_HOME": str(home),
            "PREFECT_SERVER_DATABASE_CONNECTION_URL": (
                f"postgresql+asyncpg://postgres@127.0.0.1:{POSTGRES_PORT}/{database}"
            ),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_UI_ENABLED": str(self.spec.ui).lower(),
            # INFO lets uvicorn log one line per request answered, which api_requests() counts.
            "PREFECT_SERVER_LOGGING_LEVEL": "INFO",
        }
        args = [
            *(str(BIN / "prefect"), "server", "start"),
            *("--host", self.network.host, "--port", str(port)),
        ]
        server = self._start("prefect-server", args, env)
        self.wait_for(lambda: is_healthy(self.api_url), "the Prefect server to answer", 240)
        self.server = server
        self.say(f"Prefect server on PostgreSQL database {database}: {self.api_url}")

    def _start_moto(self) -> None:
        port = free_port(self.network.host)
        self.s3_endpoint = f"http://{self.network.host}:{port}"
        args = [sys.executable, "-m", "moto.server", "-H", self.network.host, "-p", str(port)]
        self._start("moto-s3", args, self._base_environment())
        self.wait_for(lambda: _answers(self.s3_endpoint), "moto's S3 server", 60)
        admin = admin_client(self.s3_endpoint)
        self.clips_bucket = create_public_bucket(admin)
        self.results_bucket = f"results-{uuid.uuid4().hex[:12]}"
        admin.create_bucket(Bucket=self.results_bucket)
        self.say(f"S3 (moto) at {self.s3_endpoint}: {self.clips_bucket}, {self.results_bucket}")

    def _start_redis(self) -> None:
        redis_server = shutil.which("redis-server")
        if redis_server is None:
            raise ClusterError("redis-server is not installed (apt-get install redis-server)")
        port = free_port(self.network.host)
        self.redis_url = f"redis://{self.network.host}:{port}/0"
        args = [
            *(redis_server, "--bind", self.network.host, "--port", str(port)),
            *("--save", "", "--appendonly", "no", "--protected-mode", "no"),
        ]
        self._start("redis", args, self._base_environment())
        self.wait_for(lambda: _accepts(self.network.host, port), "redis-server", 30)
        self.say(f"Redis at {self.redis_url}")

    def clipgate_environment(self) -> dict[str, str]:
        """Settings every clipgate process on the host shares: services and Block names."""
        return {
            **self._base_environment(),
            "PREFECT_API_URL": self.api_url,
            "PREFECT_HOME": str(self.workdir / "host" / "prefect"),
            "CLIPGATE_HOME": str(self.workdir / "host" / "home"),
            "CLIPGATE_DATABASE_URL": self.store_url,
            "CLIPGATE_GENERATOR": "kling",
            "CLIPGATE_KLING_BLOCK": "cluster-kling",
            "CLIPGATE_KLING_CONCURRENCY": str(self.spec.generator_limit),
            "CLIPGATE_STORAGE": "r2",
            "CLIPGATE_R2_BLOCK": "cluster-clips",
            "CLIPGATE_RESULTS_BLOCK": "cluster-results",
            "CLIPGATE_REDIS_URL": self.redis_url,
            **SMALL_CLIPS,
        }

    def _credentials(self) -> dict[str, str]:
        """What `clipgate setup` saves as Blocks; no worker is ever given these."""
        latency = self.spec.task_seconds
        # Polling 15-20 times a clip is what Kling's 5-20 s polling is to its 2-5 minutes;
        # no faster than 20 times a second, which the fake and the CPU carry.
        kling = self.kling.environment(
            poll_initial_s=str(max(0.05, latency / 20)),
            poll_max_s=str(max(0.1, latency / 15)),
            retry_initial_s="0.05",
            retry_max_s="0.5",
        )
        bucket = {
            "ACCOUNT_ID": "0123456789abcdef0123456789abcdef",
            "ACCESS_KEY_ID": "AKIACLUSTER",
            "SECRET_ACCESS_KEY": "cluster-secret",
            "ENDPOINT_URL": self.s3_endpoint,
        }
        return {
            **kling,
            **{f"CLIPGATE_R2__{name}": value for name, value in bucket.items()},
            "CLIPGATE_R2__BUCKET": self.clips_bucket,
            "CLIPGATE_R2__PUBLIC_BASE_URL": f"{self.s3_endpoint}/{self.clips_bucket}",
            **{f"CLIPGATE_RESULTS_R2__{name}": value for name, value in bucket.items()},
            "CLIPGATE_RESULTS_R2__BUCKET": self.results_bucket,
        }

    def _set_up_and_deploy(self) -> None:
        env = {**self.clipgate_environment(), **self._credentials()}
        setup = _run([str(BIN / "clipgate"), "setup"], env=env, timeout=300)
        self.say("clipgate setup: " + "; ".join(setup.stdout.strip().splitlines()))
        # Only the review gate: the cluster has no Notion for notion-poll to read.
        _run(
            [str(BIN / "prefect"), "--no-prompt", "deploy", "--name", "video-review"],
            env={**self.clipgate_environment(), "PWD": str(ROOT)},
            cwd=ROOT,
            timeout=300,
        )
        self.say(f"deployed {DEPLOYMENT} from prefect.yaml")

    def worker_environment(self, folder: Path) -> dict[str, str]:
        """A worker's settings: the host's, with the addresses it reaches and its own folders."""
        return {
            **self.clipgate_environment(),
            "PREFECT_HOME": str(folder / "prefect"),
            "CLIPGATE_HOME": str(folder / "home"),
            "CLIPGATE_DATABASE_URL": self.worker_store_url,
            "PREFECT_WORKER_QUERY_SECONDS": "1",
        }

    def _start_worker(self, index: int) -> None:
        name = f"cg-w{index + 1}"
        folder = self.workdir / name
        working = folder / "work"
        working.mkdir(parents=True)
        args = [
            *self.network.enter(index, name),
            *(str(BIN / "prefect"), "worker", "start", "--pool", "clipgate"),
            *("--type", "process", "--name", name),
            *("--limit", str(self.spec.runs_per_worker)),
        ]
        service = self._start(name, args, self.worker_environment(folder), cwd=working)
        namespace = self.network.namespaces[index] if self.network.isolated else ""
        worker = Worker(name=name, folder=folder, namespace=namespace, service=service)
        self.workers.append(worker)
        self._stack.callback(worker.tear_down)
        self.wait_for(lambda: self._worker_online(name), f"worker {name} to poll the pool", 120)

    def _worker_online(self, name: str) -> bool:
        with get_client(sync_client=True) as client:
            workers = client.read_workers_for_work_pool("clipgate")
        return any(worker.name == name and worker.status == "ONLINE" for worker in workers)

    # -- driving --------------------------------------------------------------------------

    def worker(self, name: str) -> Worker:
        (found,) = [worker for worker in self.workers if worker.name == name]
        return found

    def make_projects(self, count: int) -> list[tuple[VideoProject, Path]]:
        """`count` fresh projects on stills Kling takes, with their manifests."""
        stills = self.workdir / "stills"
        stills.mkdir(exist_ok=True)
        return [
            make_sample_project(
                stills, f"cluster-{number:02d}-{uuid.uuid4().hex[:6]}", width=480, height=300
            )
            for number in range(1, count + 1)
        ]

    def start_projects(self, projects: list[tuple[VideoProject, Path]]) -> dict[str, str]:
        """`clipgate start MANIFEST` for every project at once; project id -> flow run id."""
        printed = self.clipgate_all(
            {project.project_id: ["start", str(manifest)] for project, manifest in projects}
        )
        runs: dict[str, str] = {}
        for project_id, output in printed.items():
            started = [line for line in output.splitlines() if line.startswith("started flow run ")]
            if not started:
                raise ClusterError(f"clipgate start for {project_id} started nothing:\n{output}")
            runs[project_id] = started[0].split()[3]
        first = printed[next(iter(printed))].strip().splitlines()
        self.say(f"clipgate start, {len(runs)} times; the first said: " + " | ".join(first))
        return runs

    def clipgate(self, *args: str) -> subprocess.Popen[str]:
        """Start a `clipgate` command on the host, as a person at a terminal would."""
        return subprocess.Popen(
            [str(BIN / "clipgate"), *args],
            env=self.clipgate_environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def create_runs(self, projects: list[tuple[VideoProject, Path]]) -> dict[str, str]:
        """A `video-review` run for each project, created through the API within a second.

        What `clipgate start` does, without starting a Python process per project: a
        benchmark's clock then measures the cluster, not 12 interpreters importing Prefect.
        """
        from prefect.deployments import run_deployment

        runs: dict[str, str] = {}
        for project, _manifest in projects:
            run: FlowRun = run_deployment(  # type: ignore[assignment]
                DEPLOYMENT,
                parameters={"project": project.model_dump(mode="json")},
                timeout=0,
                as_subflow=False,
            )
            runs[project.project_id] = str(run.id)
        return runs

    def clipgate_all(self, commands: dict[str, list[str]]) -> dict[str, str]:
        """Run several `clipgate` commands at once; what each printed, by key."""
        started = {key: self.clipgate(*args) for key, args in commands.items()}
        printed: dict[str, str] = {}
        for key, command in started.items():
            output, _ = command.communicate(timeout=300)
            if command.returncode != 0:
                raise ClusterError(
                    f"clipgate {' '.join(commands[key])} exited {command.returncode}:\n{output}"
                )
            printed[key] = output
        return printed

    def review_all(self, answers: dict[str, list[int] | None]) -> None:
        """`clipgate review` for every project at once: None approves, a list flags clips."""
        self.clipgate_all(
            {
                project: [
                    "review",
                    project,
                    *(["--approve"] if clips is None else ["--flag", ",".join(map(str, clips))]),
                ]
                for project, clips in answers.items()
            }
        )

    def recover_all(self, projects: list[str]) -> dict[str, str]:
        """`clipgate recover` for every project at once; what it said about each."""
        return self.clipgate_all({project: ["recover", project] for project in projects})

    def states(self, run_id: str) -> list[State[Any]]:
        """Every state the run has been in, oldest first."""
        with get_client(sync_client=True) as client:
            return sorted(
                client.read_flow_run_states(UUID(run_id)), key=lambda state: state.timestamp
            )

    def flow_runs(self, runs: dict[str, str]) -> list[FlowRun]:
        """The runs as the server has them now, read in one request."""
        ids = [UUID(run) for run in runs.values()]
        with get_client(sync_client=True) as client:
            return client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)), limit=len(ids)
            )

    def waiting_on(self, runs: dict[str, str], key: str) -> bool:
        """True when every run is suspended waiting on review `key` ("review-1")."""
        found = self.flow_runs(runs)
        return len(found) == len(runs) and all(_pause_key(run) == key for run in found)

    def completed(self, runs: dict[str, str]) -> bool:
        found = self.flow_runs(runs)
        return len(found) == len(runs) and all(_state_name(run) == "Completed" for run in found)

    def submissions(self) -> dict[str, list[tuple[datetime, str]]]:
        """Flow run id -> (when, worker name) of every time a worker took the run, in order."""
        taken: dict[str, list[tuple[datetime, str]]] = {}
        with get_client(sync_client=True) as client:
            page = client.read_events(
                EventFilter(event=EventNameFilter(name=[SUBMITTED])), limit=50
            )
            events = list(page.events)
            while page.next_page is not None:
                page = client.read_events_page(str(page.next_page))
                events.extend(page.events)
        for event in events:
            worker = event.resource.get("prefect.resource.name") or ""
            for related in event.related:
                if related.role == "flow-run":
                    run_id = related.id.removeprefix("prefect.flow-run.")
                    taken.setdefault(run_id, []).append((event.occurred, worker))
        return {run: sorted(times) for run, times in taken.items()}

    def workers_of(self, run_id: str) -> list[str]:
        """The workers that took `run_id`, in order."""
        return [worker for _when, worker in self.submissions().get(run_id, [])]

    def task_runs(self, run_id: str) -> list[TaskRun]:
        """Every task run of the flow run, from all of its attempts."""
        found: list[TaskRun] = []
        with get_client(sync_client=True) as client:
            while True:
                page = client.read_task_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(run_id)])),
                    limit=200,
                    offset=len(found),
                )
                found.extend(page)
                if len(page) < 200:
                    return found

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time used so far, by part: each service, each worker (with the flow runs and
        ffmpeg it reaped) and this process (the local Kling, the relay). PostgreSQL serves
        the whole machine and is not counted."""
        ticks = os.sysconf("SC_CLK_TCK")
        used = {"local Kling and relay (this process)": sum(os.times()[:4])}
        for service in self.services:
            pid = service.process.pid
            # Its own time and its reaped children's, and the time of those still running.
            total = _cpu_ticks(pid, with_reaped=True) + sum(
                _cpu_ticks(below, with_reaped=False) for below in descendants(pid)
            )
            used[service.name] = total / ticks
        return used

    def api_requests(self, clients: list[str] | None = None) -> Counter[str]:
        """Requests the Prefect server answered so far, by method and path template.

        Only those from `clients` (addresses) when given: in namespaces, the workers and
        their flow runs each have their own address, apart from this process's polling.
        """
        counted: Counter[str] = Counter()
        for line in self.server.log.read_text(errors="replace").splitlines():
            # uvicorn.access - 10.213.7.11:50112 - "GET /api/flow_runs/... HTTP/1.1" 200
            _, marker, access = line.partition("uvicorn.access - ")
            if not marker or '"' not in access:
                continue
            client_address = access.split(" - ", 1)[0].rsplit(":", 1)[0]
            request = access.split('"')[1].split()
            if len(request) < 2 or not request[1].startswith("/api/"):
                continue
            if clients is None or client_address in clients:
                counted[f"{request[0]} {_path_template(request[1])}"] += 1
        return counted


def _cpu_ticks(pid: int, with_reaped: bool) -> int:
    """utime + stime of `pid` (and cutime + cstime with `with_reaped`), 0 if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = stat.rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11 : 15 if with_reaped else 13])


def _path_template(path: str) -> str:
    """/api/flow_runs/3f2a.../set_state -> /api/flow_runs/{id}/set_state."""
    parts = path.split("?")[0].split("/")
    return "/".join("{id}" if _is_uuid(part) else part for part in parts)


def _is_uuid(text: str) -> bool:
    try:
        UUID(text)
    except ValueError:
        return False
    return True


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return False
    return True


def _accepts(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return False
    return True


def _state_name(run: FlowRun) -> str:
    return run.state.name if run.state is not None and run.state.name else ""


def _pause_key(run: FlowRun) -> str:
    if run.state is None or not run.state.is_paused():
        return ""
    return run.state.state_details.pause_key or ""


# -- the story the test checks and the demo shows ----------------------------------------


@dataclass
class Story:
    """What happened when six projects went through the cluster and a worker was killed."""

    namespaces: bool
    generator_limit: int
    runs: dict[str, str]
    first_round_generations: int
    peak_in_flight: int
    made_on: dict[str, str]
    flagged: dict[str, list[int]]
    approved: list[str]
    killed: str
    survivor: str
    killed_pids: int
    killed_mid_round: list[str]
    in_flight_at_kill: list[str]
    worker_namespaces: dict[str, str]
    """Worker -> its network namespace (and hostname namespace), read from /proc."""
    crashed: list[str]
    awaiting_retry: list[str]
    """Of killed_mid_round, those whose states include AwaitingRetry: back on their pool."""
    requeued: list[str]
    recovered: dict[str, str]
    """What `clipgate recover` said about each project."""
    rerun_on: dict[str, list[str]]
    resumed_elsewhere: list[str]
    resumed_on: dict[str, list[str]]
    """Workers that took each of resumed_elsewhere after the kill."""
    resumed_cache_hits: dict[str, int]
    resumed_generations: dict[str, int]
    generations: int
    generations_per_project: dict[str, int]
    keys_made_twice: list[str]
    statuses: dict[str, str]
    seconds: dict[str, float]

    @property
    def expected_generations(self) -> int:
        return len(self.runs) * CLIP_COUNT + sum(len(clips) for clips in self.flagged.values())


def _clip_key(project_id: str, number: int, attempt: int) -> str:
    return f"{project_id}.clip-{number:02d}.attempt-{attempt}"


def run_story(cluster: Cluster, project_count: int = 6) -> Story:
    """Six projects at once; flag 2 clips on three, approve three; kill a worker mid-round."""
    began = time.monotonic()
    seconds: dict[str, float] = {}
    kling = cluster.kling
    worker_namespaces = {worker.name: worker.namespaces() for worker in cluster.workers}
    projects = cluster.make_projects(project_count)
    cluster.say(f"starting {project_count} projects at once")
    runs = cluster.start_projects(projects)
    cluster.wait_for(lambda: cluster.waiting_on(runs, "review-1"), "every first review", 600)
    seconds["first round"] = time.monotonic() - began
    first_round_generations = len(kling.submissions)
    peak = kling.peak_in_flight
    made_on = {project: cluster.workers_of(run)[-1] for project, run in runs.items()}
    cluster.say(
        f"all {project_count} wait for review after {first_round_generations} clips "
        f"(peak in flight {peak}, limit {cluster.spec.generator_limit}); made on "
        + ", ".join(f"{project} {worker}" for project, worker in made_on.items())
    )

    # Flag on two projects one worker made and one the other made, so that whichever
    # worker dies, some project it made is still waiting to be approved afterwards.
    by_worker: dict[str, list[str]] = {}
    for project, worker in made_on.items():
        by_worker.setdefault(worker, []).append(project)
    ordered = sorted(by_worker.values(), key=len, reverse=True)
    flag_order = [*ordered[0][:2], *(ordered[1][:1] if len(ordered) > 1 else ordered[0][2:3])]
    flagged = {project: [3 + index, 11 + index] for index, project in enumerate(flag_order)}
    approved = [project for project in runs if project not in flagged]

    # A long round 2 at Kling, so that a worker can be killed while its clips are in flight.
    kling.task_seconds = max(6.0, cluster.spec.task_seconds)
    second_round = {
        _clip_key(project, number, 2) for project, clips in flagged.items() for number in clips
    }
    cluster.say("flagging " + ", ".join(f"{p} clips {c}" for p, c in flagged.items()))
    cluster.review_all(dict(flagged))

    def mid_round() -> str | None:
        # A worker that took a flagged run again (its second round) while that run's
        # round-2 clips are in flight at Kling.
        in_flight = set(kling.in_flight())
        taken = cluster.submissions()
        for project in flagged:
            workers = [worker for _when, worker in taken.get(runs[project], [])]
            if len(workers) >= 2 and any(
                _clip_key(project, number, 2) in in_flight for number in flagged[project]
            ):
                return workers[-1]
        return None

    killed = cluster.wait_for(mid_round, "a worker with round-2 clips in flight", 300)
    survivor = next(worker.name for worker in cluster.workers if worker.name != killed)
    taken = cluster.submissions()
    took = {project: [worker for _when, worker in taken[runs[project]]] for project in flagged}
    killed_mid_round = [
        project for project, workers in took.items() if len(workers) >= 2 and workers[-1] == killed
    ]
    in_flight_at_kill = sorted(second_round & set(kling.in_flight()))
    pids = cluster.worker(killed).kill()
    killed_at = time.monotonic()
    kling.task_seconds = cluster.spec.task_seconds
    cluster.say(
        f"killed {killed} (SIGKILL to {len(pids)} processes) while it made round 2 of "
        f"{', '.join(killed_mid_round)}; {len(in_flight_at_kill)} clips were in flight at Kling"
    )

    submitted_before = {run: len(cluster.workers_of(run)) for run in runs.values()}
    resume_started = datetime.now().astimezone()
    cluster.say("approving " + ", ".join(approved))
    cluster.review_all(dict.fromkeys(approved))

    # The operator's part: once the killed runs' beats are stale, `clipgate recover` on
    # every project; only the runs that lost their worker are put back on the pool.
    store = open_store(cluster.store_url)
    cluster.wait_for(
        lambda: not any(is_alive(store.heartbeat(project)) for project in killed_mid_round),
        "the killed runs' heartbeats to go stale",
        180,
    )
    recovered = cluster.recover_all(list(runs))
    requeued = sorted(project for project, said in recovered.items() if REQUEUED in said)
    seconds["kill to recovered"] = time.monotonic() - killed_at
    cluster.say(
        f"clipgate recover on all {len(runs)} projects, {seconds['kill to recovered']:.0f} s "
        f"after the kill, put back on the pool: {', '.join(requeued)}"
    )

    cluster.wait_for(
        lambda: cluster.waiting_on({p: runs[p] for p in flagged}, "review-2"),
        "every second review",
        600,
    )
    seconds["kill to second reviews"] = time.monotonic() - killed_at
    cluster.say("approving the second round of " + ", ".join(flagged))
    cluster.review_all(dict.fromkeys(flagged))
    cluster.wait_for(lambda: cluster.completed(runs), "every run to complete", 600)
    seconds["whole story"] = time.monotonic() - began

    resumed_elsewhere = [project for project in approved if made_on[project] == killed]
    resumed_cache_hits: dict[str, int] = {}
    resumed_generations: dict[str, int] = {}
    per_key = kling.submissions_per_external_id()
    for project in resumed_elsewhere:
        cached = {
            task.name
            for task in cluster.task_runs(runs[project])
            if task.name.startswith("clip ")
            and task.state is not None
            and task.state.name == "Cached"
            and task.created is not None
            and task.created >= resume_started
        }
        resumed_cache_hits[project] = len(cached)
        resumed_generations[project] = sum(
            count for key, count in per_key.items() if key.startswith(f"{project}.")
        )
    per_project = Counter(key.split(".")[0] for key in per_key.elements())
    statuses = _store_statuses(cluster, list(runs))
    histories = {
        project: {state.name for state in cluster.states(runs[project])}
        for project in killed_mid_round
    }
    return Story(
        namespaces=cluster.network.isolated,
        generator_limit=cluster.spec.generator_limit,
        runs=runs,
        first_round_generations=first_round_generations,
        peak_in_flight=peak,
        made_on=made_on,
        flagged=flagged,
        approved=approved,
        killed=killed,
        survivor=survivor,
        killed_pids=len(pids),
        killed_mid_round=killed_mid_round,
        in_flight_at_kill=in_flight_at_kill,
        worker_namespaces=worker_namespaces,
        crashed=[project for project in killed_mid_round if "Crashed" in histories[project]],
        awaiting_retry=[
            project for project in killed_mid_round if "AwaitingRetry" in histories[project]
        ],
        requeued=requeued,
        recovered=recovered,
        rerun_on={
            project: cluster.workers_of(runs[project])[submitted_before[runs[project]] :]
            for project in killed_mid_round
        },
        resumed_elsewhere=resumed_elsewhere,
        resumed_on={
            project: cluster.workers_of(runs[project])[submitted_before[runs[project]] :]
            for project in resumed_elsewhere
        },
        resumed_cache_hits=resumed_cache_hits,
        resumed_generations=resumed_generations,
        generations=len(kling.submissions),
        generations_per_project=dict(per_project),
        keys_made_twice=sorted(key for key, count in per_key.items() if count > 1),
        statuses=statuses,
        seconds=seconds,
    )


def _store_statuses(cluster: Cluster, projects: list[str]) -> dict[str, str]:
    store = open_store(cluster.store_url)
    statuses: dict[str, str] = {}
    for project in projects:
        row = store.project(project)
        statuses[project] = row.status if row is not None else ""
    return statuses


# -- scripts/cluster-demo ----------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/cluster-demo",
        description="Build a two-worker clipgate cluster on this machine, review six "
        "projects, kill a worker in the middle of a round, and show that nothing is lost.",
    )
    parser.add_argument("--workdir", default="clipgate-cluster", help="where logs and data go")
    parser.add_argument(
        "--no-namespaces", action="store_true", help="run workers as plain processes"
    )
    parser.add_argument("--json", action="store_true", help="end with the story as JSON")
    parser.add_argument(
        "--keep", action="store_true", help="keep the cluster up until Enter is pressed"
    )
    args = parser.parse_args(argv)
    # A SIGTERM unwinds like Ctrl-C, so the namespaces, processes and databases go too.
    signal.signal(signal.SIGTERM, lambda _signal, _frame: sys.exit(143))
    workdir = Path(args.workdir).resolve()
    if workdir.exists():
        shutil.rmtree(workdir)
    spec = ClusterSpec(namespaces=not args.no_namespaces, ui=True)
    with Cluster(spec, workdir, out=sys.stdout) as cluster:
        story = run_story(cluster)
        _print_story(story, sys.stdout)
        if args.json:
            print(json.dumps(story.__dict__, default=str))
        if args.keep:
            print(f"Prefect UI at {cluster.api_url.removesuffix('/api')}; Enter to tear down")
            sys.stdin.readline()
    return 0 if _story_holds(story) else 1


def _story_holds(story: Story) -> bool:
    """What tests/test_cluster.py asserts of the story, namespaces apart."""
    half = len(story.runs) // 2
    killed = sorted(story.killed_mid_round)
    return (
        story.first_round_generations == len(story.runs) * CLIP_COUNT
        and story.peak_in_flight == story.generator_limit
        and Counter(story.made_on.values()) == {story.killed: half, story.survivor: half}
        and len(story.flagged) == len(story.approved) == half
        and bool(killed)
        and bool(story.in_flight_at_kill)
        and sorted(story.requeued) == sorted(story.crashed) == killed
        and sorted(story.awaiting_retry) == killed
        and all(set(story.rerun_on[project]) == {story.survivor} for project in killed)
        and bool(story.resumed_elsewhere)
        and all(
            story.resumed_on[project] == [story.survivor]
            and story.resumed_cache_hits[project] == CLIP_COUNT
            and story.resumed_generations[project] == CLIP_COUNT
            for project in story.resumed_elsewhere
        )
        and story.generations == story.expected_generations
        and not story.keys_made_twice
        and story.generations_per_project
        == {project: CLIP_COUNT + len(story.flagged.get(project, [])) for project in story.runs}
        and set(story.statuses.values()) == {"audio_ready"}
    )


def _print_story(story: Story, out: TextIO) -> None:
    def line(text: str) -> None:
        print(text, file=out)

    line("")
    line(f"generator calls: {story.generations} (expected {story.expected_generations})")
    line(f"clip keys generated twice: {story.keys_made_twice or 'none'}")
    line(f"peak clips in flight at Kling: {story.peak_in_flight} (limit {story.generator_limit})")
    line(
        f"killed {story.killed} mid-round; `clipgate recover` put back: {', '.join(story.requeued)}"
    )
    for project, workers in story.rerun_on.items():
        line(f"  {project} taken again by {', '.join(workers)}")
    for project in story.resumed_elsewhere:
        line(
            f"resumed on {story.survivor} after being made on {story.killed}: {project}, "
            f"{story.resumed_cache_hits[project]} of {CLIP_COUNT} clips from the shared cache, "
            f"{story.resumed_generations[project]} generations in all"
        )
    line(f"statuses: {sorted(set(story.statuses.values()))}")
    line("timings: " + ", ".join(f"{name} {value:.0f} s" for name, value in story.seconds.items()))
    line("the story holds" if _story_holds(story) else "THE STORY DOES NOT HOLD")


if __name__ == "__main__":
    sys.exit(main())
