"""How close a deployed gate's 18 Kling clips come to the concurrency floor, through the flow.

Each value of C gets a local Kling (tests/fakes/kling_server.py) whose tasks take a
fixed latency L and which allows C tasks at a time, the global limit `clipgate-kling` set
to C, and a process serving the video-review deployment, all against a Prefect server on
a fresh database of the local PostgreSQL (as on many machines; the test server's SQLite
answers concurrent writes with 503s the client waits out, which this would measure
instead). A deployed run of a fresh project makes its 18 clips and suspends at the
review. Measured is the span of its produce-clip task runs, first start to last end, as
the Prefect server timed them. Beside it, the same 18 clips from the generator alone on a
pool of C threads (no flow, no limit, no storage; faststart only as the download does it,
which for the fake's already faststart MP4 is a read of its index and a rename). No
schedule beats the floor ceil(18 / C) x L; the goal is 1.1 x floor + 3 s. Figures are
medians of --rounds runs; peak is the most Kling tasks the flow had in flight at once.

Run from the repository root (about 10 minutes at L = 2 s):

    .venv/bin/python -m bench.generation                 # L = 2 s, C = 1, 3, 5, 6, 3 rounds
    .venv/bin/python -m bench.generation --latency 1 --concurrency 2 4 --rounds 1
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL, temporary_settings
from pydantic import SecretStr

from clipgate.generators import GenerationResult
from clipgate.generators.kling import KlingConfig, KlingGenerator
from clipgate.models import CLIP_COUNT, ClipKey, VideoProject
from clipgate.samples import make_sample_project
from deployments.setup import ensure_concurrency_limits
from prefect_glue.answers import waiting_review_key
from prefect_glue.run_settings import GENERATION_LIMITS, NOTION_LIMIT
from tests.fakes.kling_server import KlingFake
from tests.postgres_prefect import prefect_server_on_postgresql

DEPLOYMENT = "video-review/bench-generation"
# As `clipgate serve` serves it, without the review room and the Notion poll.
SERVE = (
    "from prefect import serve\n"
    "from flows.video_review import video_review\n"
    "serve(video_review.to_deployment(name='bench-generation'), print_starting_message=False)\n"
)


def kling_timing(latency_s: float) -> dict[str, float]:
    """KlingConfig's poll and retry fields, polling as often as the latency warrants."""
    # Polling a few times a second is to a 1 s task what Kling's default 5-20 s polling is
    # to a 2-5 minute one.
    return {
        "poll_initial_s": min(0.05, latency_s / 10),
        "poll_max_s": min(0.1, latency_s / 5),
        "retry_initial_s": 0.05,
        "retry_max_s": 0.2,
    }


@contextmanager
def serving(api_url: str, environment: dict[str, str]) -> Iterator[None]:
    """The video-review deployment served from its own process until the block ends."""
    server = subprocess.Popen(
        [sys.executable, "-c", SERVE],
        env={
            **os.environ,
            **environment,
            "PREFECT_API_URL": api_url,
            "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        },
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not deployment_exists():
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("the bench deployment was not served")
            time.sleep(0.5)
        yield
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(10)


def deployment_exists() -> bool:
    with get_client(sync_client=True) as client:
        try:
            client.read_deployment_by_name(DEPLOYMENT)
        except Exception:
            return False
    return True


def produce_span_s(run_id: UUID) -> float:
    """First start to last end of the run's produce-clip task runs, as the server saw them."""
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
        )
    produced = [run for run in runs if run.task_key.startswith("produce_clip")]
    starts = [run.start_time for run in produced if run.start_time]
    ends = [run.end_time for run in produced if run.end_time]
    if len(starts) != CLIP_COUNT or len(ends) != CLIP_COUNT:
        raise RuntimeError(f"{len(ends)} of {CLIP_COUNT} clips finished")
    return float((max(ends) - min(starts)).total_seconds())


def through_the_flow(
    api_url: str, latency_s: float, concurrency: int, stills: Path, home: Path
) -> tuple[float, int]:
    """Produce span of one deployed run at this latency and limit, and Kling's peak."""
    project: VideoProject
    project, _manifest = make_sample_project(
        stills, f"bench-{uuid.uuid4().hex[:8]}", width=480, height=300
    )
    ensure_concurrency_limits({GENERATION_LIMITS["kling"]: concurrency, NOTION_LIMIT: 1})
    with KlingFake(task_seconds=latency_s, concurrency_limit=concurrency) as kling:
        environment = {
            **kling.environment(
                **{name: str(value) for name, value in kling_timing(latency_s).items()}
            ),
            "CLIPGATE_HOME": str(home / f"c{concurrency}"),
        }
        with serving(api_url, environment):
            run: FlowRun = run_deployment(  # type: ignore[assignment]
                DEPLOYMENT, parameters={"project": project.model_dump(mode="json")}, timeout=0
            )
            deadline = time.monotonic() + 600
            while waiting_review_key(str(run.id)) != "review-1":
                if time.monotonic() > deadline:
                    raise RuntimeError(f"run {run.id} did not reach its review")
                time.sleep(0.5)
    if len(kling.submissions) != CLIP_COUNT:
        raise RuntimeError(f"{len(kling.submissions)} tasks paid for {CLIP_COUNT} clips")
    return produce_span_s(run.id), kling.peak_in_flight


def generator_alone(latency_s: float, concurrency: int, stills: Path, folder: Path) -> float:
    """Wall time of 18 clips of a fresh project from KlingGenerator on C threads."""
    with KlingFake(task_seconds=latency_s, concurrency_limit=concurrency) as kling:
        generator = KlingGenerator(
            KlingConfig(
                access_key=SecretStr(kling.access_key),
                secret_key=SecretStr(kling.secret_key),
                base_url=kling.base_url,
                **kling_timing(latency_s),
            )
        )
        project, _manifest = make_sample_project(
            stills, f"bench-{uuid.uuid4().hex[:8]}", width=480, height=300
        )
        keys = [
            ClipKey(project_id=project.project_id, channel="bench", number=number, attempt=1)
            for number in range(1, CLIP_COUNT + 1)
        ]
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            results = list(
                pool.map(
                    lambda key: generator.generate(
                        key, project.clip(key.number), folder / key.object_key
                    ),
                    keys,
                )
            )
        wall = time.perf_counter() - started
        generator.close()
    if not all(isinstance(result, GenerationResult) for result in results):
        raise RuntimeError("a clip was not made")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--latency", type=float, default=2.0, help="seconds per task (L)")
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[1, 3, 5, 6], help="values of C"
    )
    parser.add_argument("--rounds", type=int, default=3, help="runs per C; medians are shown")
    arguments = parser.parse_args()
    latency = arguments.latency
    print(
        f"{CLIP_COUNT} clips, L = {latency:g} s per task: a deployed video-review run "
        "(served in its own process) against the local Kling, global limit C"
    )
    print(
        f"{'C':>3} {'floor s':>8} {'flow s':>7} {'ratio':>6} {'goal s':>7} {'peak':>5}"
        f" {'gen s':>6} {'ratio':>6}  verdict"
    )
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        with (
            prefect_server_on_postgresql(folder / "prefect") as api_url,
            temporary_settings({PREFECT_API_URL: api_url}),
        ):
            for concurrency in arguments.concurrency:
                floor = math.ceil(CLIP_COUNT / concurrency) * latency
                goal = 1.1 * floor + 3.0
                flows = [
                    through_the_flow(
                        api_url, latency, concurrency, folder / "stills", folder / "homes"
                    )
                    for _ in range(arguments.rounds)
                ]
                flow_s = statistics.median(seconds for seconds, _peak in flows)
                generator_s = statistics.median(
                    generator_alone(latency, concurrency, folder / "stills", folder / "generated")
                    for _ in range(arguments.rounds)
                )
                verdict = "within goal" if flow_s <= goal else "OVER GOAL"
                print(
                    f"{concurrency:>3} {floor:>8.2f} {flow_s:>7.2f} {flow_s / floor:>6.3f} "
                    f"{goal:>7.2f} {max(peak for _seconds, peak in flows):>5} "
                    f"{generator_s:>6.2f} {generator_s / floor:>6.3f}  {verdict}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
