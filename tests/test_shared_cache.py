"""Many machines, one per-clip cache: results on S3 (moto), locks in Redis, Prefect on PostgreSQL.

Each "machine" is a process of its own (tests/shared_cache_machine.py) with its own
CLIPGATE_HOME and PREFECT_HOME. What they share is what machines share in production:
the Prefect server (here on a fresh PostgreSQL database), the store (a fresh schema of
the same PostgreSQL), the results block's bucket and the clips' bucket (moto's S3
server), Redis at 127.0.0.1:6379, and the local Kling.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterId,
)
from prefect.client.schemas.objects import TaskRun
from prefect.settings import PREFECT_API_URL, temporary_settings
from pydantic import SecretStr
from sqlalchemy import create_engine, text

from blocks.results import RESULTS_FOLDER, results_bucket
from clipgate.errors import ConfigurationError
from clipgate.models import CLIP_COUNT, VideoProject
from clipgate.samples import make_sample_project
from clipgate.settings import Settings
from clipgate.storage.r2 import R2Config
from clipgate.store import Store, open_store
from clipgate.wiring import build_store
from deployments.setup import concurrency_limits, ensure_concurrency_limits, save_blocks
from prefect_glue.answers import waiting_review_key
from prefect_glue.clip_cache import NOT_SERIALIZED, clip_result_storage
from prefect_glue.clip_locks import LeasedRedisLockManager
from tests.conftest import SMALL_CLIPS
from tests.fakes.kling_server import KlingFake
from tests.fakes.moto_server import admin_client, create_public_bucket, running_moto_server
from tests.flow_helpers import FlowInThread, answer, eventually, paused_round
from tests.ports import free_port
from tests.postgres_prefect import POSTGRES, prefect_server_on_postgresql

pytestmark = pytest.mark.end_to_end

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = "redis://127.0.0.1:6379/0"
ACCOUNT_ID = "0123456789abcdef0123456789abcdef"
KLING_LIMIT = 4


@pytest.fixture(scope="module")
def postgres_prefect(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Prefect server on a fresh PostgreSQL database, started as deployments/README.md says."""
    with prefect_server_on_postgresql(tmp_path_factory.mktemp("prefect-server")) as api_url:
        yield api_url


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server, for the clips' and the results' buckets."""
    with running_moto_server() as endpoint:
        yield endpoint


@dataclass
class Cluster:
    """What the machines share, and how to start one."""

    api_url: str
    environment: dict[str, str]
    kling: KlingFake
    store: Store
    results_bucket: str
    s3: Any
    folder: Path

    def start(self, name: str, mode: str, project: VideoProject, held: bool = False) -> Machine:
        """A process with its own homes running `mode` (gate or clips) on `project`.

        A held machine waits for `go` before it starts its flow.
        """
        folder = self.folder / name
        folder.mkdir()
        project_file = folder / "project.json"
        project_file.write_text(project.model_dump_json())
        environment = {
            **self.environment,
            "PREFECT_HOME": str(folder / "prefect"),
            "CLIPGATE_HOME": str(folder / "home"),
        }
        command = [sys.executable, "-m", "tests.shared_cache_machine", mode, str(project_file)]
        log = folder / "machine.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [*command, str(self.folder)] if held else command,
                cwd=ROOT,
                env=environment,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return Machine(process, log)

    def go(self, machines: list[Machine]) -> None:
        """Wait until every machine is ready, then let them all start at once."""
        eventually(
            lambda: (
                len(list(self.folder.glob("ready-*"))) == len(machines)
                or any(machine.process.poll() is not None for machine in machines)
            ),
            "the machines to be ready",
        )
        (self.folder / "go").touch()

    def cached_results(self, project: VideoProject) -> list[str]:
        """Keys of the result records in the results bucket for `project`."""
        listed = self.s3.list_objects_v2(
            Bucket=self.results_bucket, Prefix=f"{RESULTS_FOLDER}/produce-clip.{project.project_id}"
        )
        return sorted(item["Key"] for item in listed.get("Contents", []))


@dataclass
class Machine:
    process: subprocess.Popen[bytes]
    log: Path

    def finish(self, timeout_s: float = 300) -> None:
        """Wait for the process to end; fail with its log unless it ended well."""
        self.process.wait(timeout_s)
        assert self.process.returncode == 0, self.log.read_text()[-5000:]

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


@pytest.fixture
def cluster(postgres_prefect: str, s3_endpoint: str, tmp_path: Path) -> Iterator[Cluster]:
    """Fresh shared parts for one test: Kling, store schema, buckets, results block, limits."""
    s3 = admin_client(s3_endpoint)
    clips_bucket = create_public_bucket(s3)
    results = f"results-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=results)
    schema = f"clipgate_{uuid.uuid4().hex[:12]}"
    admin = create_engine(f"{POSTGRES}/test".replace("postgresql://", "postgresql+psycopg://"))
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    database_url = f"{POSTGRES}/test?options=-csearch_path%3D{schema}"
    # Made here once, so two machines starting together never both create its tables.
    store = open_store(database_url)
    block = f"results-{uuid.uuid4().hex[:8]}"
    results_r2 = R2Config(
        account_id=ACCOUNT_ID,
        access_key_id="AKIATEST",
        secret_access_key=SecretStr("results-secret"),
        bucket=results,
        endpoint_url=s3_endpoint,
    )
    with (
        KlingFake(task_seconds=2.0, concurrency_limit=10) as kling,
        temporary_settings({PREFECT_API_URL: postgres_prefect}),
    ):
        settings = Settings(results_block=block, results_r2=results_r2)
        assert save_blocks(settings) == [f"S3Bucket {block!r}"]
        ensure_concurrency_limits({**concurrency_limits(settings), "clipgate-kling": KLING_LIMIT})
        environment = {
            **os.environ,
            **SMALL_CLIPS,
            "PREFECT_API_URL": postgres_prefect,
            "CLIPGATE_DATABASE_URL": database_url,
            "CLIPGATE_RESULTS_BLOCK": block,
            "CLIPGATE_REDIS_URL": REDIS_URL,
            "CLIPGATE_STORAGE": "r2",
            "CLIPGATE_R2__ACCOUNT_ID": ACCOUNT_ID,
            "CLIPGATE_R2__ACCESS_KEY_ID": "AKIATEST",
            "CLIPGATE_R2__SECRET_ACCESS_KEY": "r2-secret",
            "CLIPGATE_R2__BUCKET": clips_bucket,
            "CLIPGATE_R2__ENDPOINT_URL": s3_endpoint,
            "CLIPGATE_R2__PUBLIC_BASE_URL": f"{s3_endpoint}/{clips_bucket}",
            **kling.environment(poll_initial_s="0.05", poll_max_s="0.1"),
            "CLIPGATE_ROOM_PORT": str(free_port()),
        }
        yield Cluster(postgres_prefect, environment, kling, store, results, s3, tmp_path)
    with admin.begin() as connection:
        connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))


@pytest.fixture(scope="module")
def kling_stills(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder for stills Kling accepts (both sides at least 300 px)."""
    return tmp_path_factory.mktemp("kling-stills")


@pytest.fixture
def kling_project(kling_stills: Path) -> VideoProject:
    """A fresh 18-clip project on 480x300 stills."""
    made, _manifest = make_sample_project(
        kling_stills, f"test-{uuid.uuid4().hex[:10]}", width=480, height=300
    )
    return made


def produce_runs(flow_run_ids: list[str]) -> list[TaskRun]:
    """The produce-clip task runs of these flow runs."""
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[UUID(run) for run in flow_run_ids])
            )
        )
    return [run for run in runs if run.task_key.startswith("produce_clip")]


def final_states(flow_run_ids: list[str], count: int) -> dict[str, int]:
    """How many of the runs' `count` produce-clip task runs ended in each state.

    Completed: made by that run; Cached: found in the cache. The server records task run
    states from events, a moment after the runs report them, so this waits for all.
    """

    def settled() -> dict[str, int] | None:
        runs = produce_runs(flow_run_ids)
        if len(runs) != count or not all(run.state and run.state.is_final() for run in runs):
            return None
        names: dict[str, int] = {}
        for run in runs:
            assert run.state is not None
            names[run.state.name or ""] = names.get(run.state.name or "", 0) + 1
        return names

    states: dict[str, int] = eventually(settled, "the task runs' final states", timeout_s=60)
    return states


def flow_runs_of(flow_name: str, project: VideoProject) -> list[str]:
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])), limit=200
        )
    return [
        str(run.id)
        for run in runs
        if run.parameters.get("project", {}).get("project_id") == project.project_id
    ]


def test_two_runs_that_want_the_same_clips_at_once_make_each_clip_once(
    cluster: Cluster, kling_project: VideoProject
) -> None:
    """Two machines map produce-clip over the same 18 keys together: Kling sees 18 tasks."""
    machines = [cluster.start(name, "clips", kling_project, held=True) for name in ("a", "b")]
    try:
        cluster.go(machines)
        for machine in machines:
            machine.finish()
    finally:
        for machine in machines:
            machine.kill()

    assert len(cluster.kling.submissions) == CLIP_COUNT
    assert len({task.external_task_id for task in cluster.kling.submissions}) == CLIP_COUNT
    with temporary_settings({PREFECT_API_URL: cluster.api_url}):
        runs = flow_runs_of("make-clips", kling_project)
        assert len(runs) == 2
        states = final_states(runs, 2 * CLIP_COUNT)
    assert states == {"Completed": CLIP_COUNT, "Cached": CLIP_COUNT}
    assert len(cluster.cached_results(kling_project)) == CLIP_COUNT


def test_a_second_machine_finds_every_clip_in_the_shared_cache(
    cluster: Cluster, kling_project: VideoProject
) -> None:
    """After round 1 on machine a, the gate on a fresh machine b makes nothing and finishes."""
    project_id = kling_project.project_id
    with temporary_settings({PREFECT_API_URL: cluster.api_url}):
        first = cluster.start("a", "gate", kling_project)
        try:
            first_run = paused_round(cluster.store, project_id, 1)
        finally:
            first.kill()
        assert len(cluster.kling.submissions) == CLIP_COUNT
        assert len(cluster.cached_results(kling_project)) == CLIP_COUNT

        second = cluster.start("b", "gate", kling_project)
        try:

            def second_run_waits() -> str | None:
                row = cluster.store.project(project_id)
                run = row.flow_run_id if row else None
                waiting = run != first_run and run and waiting_review_key(run) == "review-1"
                return run if waiting else None

            second_run: str = eventually(second_run_waits, "machine b's first review")
            assert final_states([second_run], CLIP_COUNT) == {"Cached": CLIP_COUNT}
            assert len(cluster.kling.submissions) == CLIP_COUNT
            answer(second_run, {"decision": "approve"})
            second.finish()
        finally:
            second.kill()
    row = cluster.store.project(project_id)
    assert row is not None
    assert row.status == "audio_ready"
    assert len(cluster.store.generation_attempts(project_id)) == CLIP_COUNT


@pytest.mark.usefixtures("prefect_api_url")
def test_without_redis_the_run_warns_that_same_clip_work_is_not_serialized(
    settings: Settings,
    project: VideoProject,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A run with no CLIPGATE_REDIS_URL says so in its log, and caches every clip on local disk."""
    monkeypatch.delenv("CLIPGATE_REDIS_URL", raising=False)
    with caplog.at_level(logging.WARNING):
        run = FlowInThread(project)
        run_id = paused_round(build_store(settings), project.project_id, 1)
        answer(run_id, {"decision": "approve"})
        run.finish()
    warnings = [message for message in caplog.messages if "CLIPGATE_REDIS_URL" in message]
    assert warnings == [NOT_SERIALIZED]
    assert "same-clip work is not serialized across machines" in warnings[0]
    cached = list(settings.results_dir.glob(f"produce-clip.{project.project_id}.*"))
    assert len(cached) == CLIP_COUNT


def test_an_unreachable_redis_stops_the_run_naming_the_setting() -> None:
    """A Redis URL nobody answers at is a configuration error that names CLIPGATE_REDIS_URL."""
    locks = LeasedRedisLockManager(f"redis://127.0.0.1:{free_port()}/0", lease_s=1)
    with pytest.raises(ConfigurationError, match="CLIPGATE_REDIS_URL"):
        locks.check()


def test_a_lock_left_by_a_killed_process_frees_after_its_lease(tmp_path: Path) -> None:
    """A holder killed with SIGKILL keeps its clip locked only until the lease runs out."""
    key = f"produce-clip.test-{uuid.uuid4().hex[:10]}.clip-01.attempt-1"
    held = tmp_path / "held"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time, pathlib\n"
            "from prefect_glue.clip_locks import LeasedRedisLockManager\n"
            f"locks = LeasedRedisLockManager({REDIS_URL!r}, lease_s=1.0)\n"
            f"assert locks.acquire_lock({key!r}, 'crashing-holder')\n"
            f"pathlib.Path({str(held)!r}).touch()\n"
            "time.sleep(600)\n",
        ],
        cwd=ROOT,
        start_new_session=True,
    )
    try:
        eventually(lambda: held.exists() or holder.poll() is not None, "the lock to be taken")
        assert holder.poll() is None
        locks = LeasedRedisLockManager(REDIS_URL, lease_s=1.0)
        # The holder renews its lease while it lives: three leases later it still holds it.
        assert not locks.acquire_lock(key, "next-run", acquire_timeout=3.0)
        os.killpg(holder.pid, signal.SIGKILL)
        assert locks.acquire_lock(key, "next-run", acquire_timeout=30.0)
        locks.release_lock(key, "next-run")
    finally:
        if holder.poll() is None:
            os.killpg(holder.pid, signal.SIGKILL)
        holder.wait(10)


def test_releasing_a_lock_whose_lease_lapsed_only_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A lock that lapsed while its holder stalled is given up with a warning, not an error."""
    key = f"produce-clip.test-{uuid.uuid4().hex[:10]}.clip-02.attempt-1"
    locks = LeasedRedisLockManager(REDIS_URL, lease_s=60.0)
    assert locks.acquire_lock(key, "stalled-holder")
    locks.client.delete(f"lock:{key}")
    with caplog.at_level(logging.WARNING):
        locks.release_lock(key, "stalled-holder")
    assert any("lapsed before it was released" in message for message in caplog.messages)
    assert locks.acquire_lock(key, "next-run", acquire_timeout=1.0)
    locks.release_lock(key, "next-run")


def test_the_results_block_talks_to_r2_as_r2_accepts() -> None:
    """The results block signs for region auto at R2's endpoint, checksums only when required."""
    config = R2Config(
        account_id="a" * 32,
        access_key_id="r2-key",
        secret_access_key=SecretStr("r2-secret"),
        bucket="clips",
    )
    bucket = results_bucket(config)
    client = bucket.credentials.get_s3_client()
    assert bucket.bucket_name == "clips"
    assert bucket.bucket_folder == RESULTS_FOLDER
    assert client.meta.endpoint_url == f"https://{'a' * 32}.r2.cloudflarestorage.com"
    assert client.meta.region_name == "auto"
    assert client.meta.config.request_checksum_calculation == "when_required"
    assert client.meta.config.response_checksum_validation == "when_required"


def test_a_results_bucket_without_a_block_name_stops_the_run(settings: Settings) -> None:
    """CLIPGATE_RESULTS_R2__* alone would leave results on local disk: it is refused instead."""
    bucket = R2Config(
        account_id=ACCOUNT_ID,
        access_key_id="r2-key",
        secret_access_key=SecretStr("r2-secret"),
        bucket="results",
    )
    with pytest.raises(ConfigurationError, match="set CLIPGATE_RESULTS_BLOCK"):
        clip_result_storage(settings.model_copy(update={"results_r2": bucket}))
