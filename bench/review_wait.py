"""What waiting for a reviewer costs: resume latency (poll, webhook) and memory (pause, suspend).

Everything runs here against a Prefect test server and the local Notion, with tiny clips:

- Latency: a run waits at Video Ready; the reviewer sets "Video Approved" in Notion; we time
  from that change until the run is Running again. Webhook: the signed event is delivered
  the moment the page changes. Poll: the notion-poll flow runs every POLL_INTERVAL_S seconds
  (as its deployment does), the change landing at a random point of the interval.
  Goals: webhook median 3 s or less; poll at most the interval + 5 s.
- Memory: a paused review keeps its flow process alive (its RSS is the cost); a suspended
  one (a deployed run under `clipgate serve`) leaves no process for the run.

Run from the repository root (takes about 5 minutes):

    .venv/bin/python -m bench.review_wait
"""

from __future__ import annotations

import contextvars
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from uuid import UUID

import httpx
from prefect.client.orchestration import get_client
from prefect.testing.utilities import prefect_test_harness

from clipgate.models import VideoProject
from clipgate.notion.webhook import sign
from clipgate.samples import make_sample_project
from clipgate.settings import load_settings
from clipgate.wiring import build_store
from deployments.setup import ensure_concurrency_limits
from deployments.webhook import WebhookReceiver
from flows.notion_poll import notion_poll
from flows.video_review import video_review
from prefect_glue.answers import waiting_review_key
from prefect_glue.run_settings import NOTION_LIMIT
from tests.notion_workspace import Workspace, seeded_notion

T = TypeVar("T")
POLL_INTERVAL_S = 60
WEBHOOK_SAMPLES = 5
POLL_SAMPLES = 3
SECRET = "secret_bench_webhook"  # noqa: S105
SMALL = {
    "CLIPGATE_CLIP_SECONDS": "1",
    "CLIPGATE_CLIP_WIDTH": "160",
    "CLIPGATE_CLIP_HEIGHT": "90",
    "CLIPGATE_CLIP_FPS": "10",
    "CLIPGATE_REVIEW_POLL_INTERVAL_S": "1",
}


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch, prefect_test_harness(180):
        folder = Path(scratch)
        os.environ.update(SMALL | {"CLIPGATE_HOME": str(folder / "home")})
        ensure_concurrency_limits({NOTION_LIMIT: 1})
        print(f"resume latency, status change -> run Running again ({time.strftime('%F')})")
        webhook = [_latency(folder, "webhook") for _ in range(WEBHOOK_SAMPLES)]
        poll = [_latency(folder, "poll") for _ in range(POLL_SAMPLES)]
        print(
            f"{'webhook':<10} median {statistics.median(webhook):6.2f} s  max {max(webhook):6.2f} s"
        )
        print(f"{'poll':<10} median {statistics.median(poll):6.2f} s  max {max(poll):6.2f} s")
        ratio = statistics.median(poll) / statistics.median(webhook)
        print(f"webhook is {ratio:.1f}x faster (median)")
        print(f"goals: webhook median <= 3 s; poll max <= {POLL_INTERVAL_S + 5} s")
        rss = _paused_process_rss(folder)
        print(f"memory held by one waiting review: pause {rss / 1024:.0f} MiB (its flow process);")
        print("suspend 0 MiB: the run has no process while it waits (tests/test_suspend.py kills")
        print("the serving process during the wait and another one finishes the run)")


def _latency(folder: Path, how: str) -> float:
    with seeded_notion() as notion:
        _use_notion(notion)
        project = _project(folder, notion.task_page_id)
        run = _run_in_thread(lambda: video_review(project))
        run_id = str(_wait(lambda: _run_id_when_waiting(project.project_id), 180))
        _wait(lambda: _notion_status(notion) == "Video Ready", 60)
        if how == "webhook":
            receiver = WebhookReceiver(load_settings(), port=0)
            threading.Thread(target=receiver.serve_forever, daemon=True).start()
            changed = _approve(notion)
            event = _event(notion.task_page_id)
            httpx.post(
                f"http://127.0.0.1:{receiver.server_address[1]}/",
                content=event,
                headers={"X-Notion-Signature": sign(SECRET, event)},
                timeout=60,
            )
            latency = _wait(lambda: _running_since(run_id, changed), 120)
            receiver.shutdown()
        else:
            stop = threading.Event()
            _run_in_thread(lambda: _poll_every_interval(stop))
            time.sleep(random.uniform(0, POLL_INTERVAL_S))
            changed = _approve(notion)
            latency = _wait(lambda: _running_since(run_id, changed), POLL_INTERVAL_S * 3)
            stop.set()
        run.join(120)
        return latency


def _use_notion(notion: Workspace) -> None:
    os.environ.update(
        {
            "CLIPGATE_NOTION__TOKEN": notion.config.token.get_secret_value(),
            "CLIPGATE_NOTION__TASKS_DATABASE_ID": notion.config.tasks_database_id,
            "CLIPGATE_NOTION__VIDEOS_DATABASE_ID": notion.config.videos_database_id,
            "CLIPGATE_NOTION__BASE_URL": notion.config.base_url,
            "CLIPGATE_NOTION_WEBHOOK_TOKEN": SECRET,
        }
    )


def _project(folder: Path, page_id: str) -> VideoProject:
    project, _ = make_sample_project(
        folder / "stills", f"wait-{uuid.uuid4().hex[:8]}", width=160, height=90
    )
    return project.model_copy(update={"notion_page_id": page_id})


def _poll_every_interval(stop: threading.Event) -> None:
    """The notion-poll deployment's schedule: one poll every POLL_INTERVAL_S seconds."""
    while not stop.wait(POLL_INTERVAL_S):
        notion_poll()


def _run_in_thread(work: Callable[[], object]) -> threading.Thread:
    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(work,), daemon=True)
    thread.start()
    return thread


def _approve(notion: Workspace) -> float:
    person = notion.fake.add_person("Reviewer")
    notion.fake.edit_page_as_person(
        notion.task_page_id, {"Status": {"status": {"name": "Video Approved"}}}, person
    )
    return time.monotonic()


def _event(page_id: str) -> bytes:
    return json.dumps(
        {
            "id": str(uuid.uuid4()),
            "type": "page.properties_updated",
            "entity": {"id": page_id, "type": "page"},
            "authors": [],
        }
    ).encode()


def _notion_status(notion: Workspace) -> str:
    return str(notion.fake.simple_properties(notion.task_page_id)["Status"])


def _run_id_when_waiting(project_id: str) -> str | None:
    row = build_store(load_settings()).project(project_id)
    if row is None or row.flow_run_id is None:
        return None
    return row.flow_run_id if waiting_review_key(row.flow_run_id) else None


def _running_since(run_id: str, changed: float) -> float | None:
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(UUID(run_id)).state
    if state is None or state.is_paused():
        return None
    return time.monotonic() - changed


def _wait(check: Callable[[], T | None], timeout_s: float) -> T:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError("the bench waited too long")


def _paused_process_rss(folder: Path) -> int:
    """KiB resident in a process that runs one review and waits paused."""
    project, manifest = make_sample_project(
        folder / "stills", f"rss-{uuid.uuid4().hex[:8]}", width=160, height=90
    )
    script = (
        "import json, sys\n"
        "from clipgate.models import VideoProject\n"
        "from flows.video_review import video_review\n"
        "video_review(VideoProject.model_validate_json(open(sys.argv[1]).read()))\n"
    )
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    for name in [name for name in env if name.startswith("CLIPGATE_NOTION")]:
        env.pop(name)
    waiting = subprocess.Popen([sys.executable, "-c", script, str(manifest)], env=env)
    try:
        _wait(lambda: _run_id_when_waiting(project.project_id), 180)
        status = Path(f"/proc/{waiting.pid}/status").read_text()
        return int(
            next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1]
        )
    finally:
        waiting.kill()
        waiting.wait(10)


if __name__ == "__main__":
    main()
