"""A deployed review suspends: its process can go away, and another one finishes the run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment

from clipgate.models import VideoProject
from clipgate.notion.webhook import sign
from clipgate.settings import Settings, load_settings
from clipgate.wiring import build_store
from deployments.serve import NOTION_POLL, VIDEO_REVIEW
from deployments.webhook import WebhookReceiver
from flows.notion_poll import notion_poll
from prefect_glue.answers import waiting_review_key
from tests.flow_helpers import answer, eventually, generations
from tests.notion_workspace import Workspace
from tests.ports import free_port

pytestmark = pytest.mark.end_to_end

WEBHOOK_SECRET = "secret_webhook_token"  # noqa: S105


@contextmanager
def serving(api_url: str) -> Iterator[subprocess.Popen[bytes]]:
    """`clipgate serve` in its own process, killed (not stopped politely) on exit."""
    server = subprocess.Popen(
        [sys.executable, "-m", "clipgate.cli", "serve"],
        # The runner looks for resumed runs every 10 s by default; tests need not wait that.
        env={
            **os.environ,
            "PREFECT_API_URL": api_url,
            "PREFECT_RUNNER_POLL_FREQUENCY": "1",
            "CLIPGATE_ROOM_PORT": str(free_port()),
        },
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield server
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(10)


def _state_name(run_id: UUID) -> str | None:
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(run_id).state
    return state.name if state else None


def test_a_suspended_review_is_finished_by_another_process(
    prefect_api_url: str, settings: Settings, project: VideoProject
) -> None:
    """Suspend at review, kill the serving process, resume, and a new process finishes it."""
    store = build_store(settings)
    with serving(prefect_api_url):
        eventually(lambda: _deployment_exists(), "the deployment to be served", timeout_s=120)
        run: FlowRun = run_deployment(  # type: ignore[assignment]
            f"{VIDEO_REVIEW}/{VIDEO_REVIEW}",
            parameters={"project": project.model_dump(mode="json")},
            timeout=0,
        )
        run_id = str(run.id)
        eventually(
            lambda: waiting_review_key(run_id) == "review-1", "the first review", timeout_s=60
        )
        assert _state_name(run.id) == "Suspended"
    assert generations(store, project.project_id) == 18

    answer(run_id, {"decision": "flag", "clips": [3, 14]})
    with serving(prefect_api_url):
        eventually(lambda: waiting_review_key(run_id) == "review-2", "the second review")
        assert generations(store, project.project_id) == 20
    answer(run_id, {"decision": "approve"})
    with serving(prefect_api_url):
        eventually(lambda: _state_name(run.id) == "Completed", "the run to complete")
    row = store.project(project.project_id)
    assert row is not None
    assert row.status == "audio_ready"
    assert generations(store, project.project_id) == 20
    assert [event.decision for event in store.review_events(project.project_id)] == [
        "flag",
        "approve",
    ]


def _deployment_exists() -> bool:
    with get_client(sync_client=True) as client:
        try:
            client.read_deployment_by_name(f"{VIDEO_REVIEW}/{VIDEO_REVIEW}")
        except Exception:
            return False
    return True


def test_setup_then_prefect_deploy_all(prefect_api_url: str, tmp_path: Path) -> None:
    """`clipgate setup` and `prefect deploy --all` put video-review on the process pool."""
    root = Path(__file__).resolve().parent.parent
    env = {
        **os.environ,
        "PREFECT_API_URL": prefect_api_url,
        "CLIPGATE_HOME": str(tmp_path),
        "PWD": str(root),
    }
    setup = subprocess.run(
        [sys.executable, "-m", "clipgate.cli", "setup"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert setup.returncode == 0, setup.stderr
    assert "process work pool 'clipgate' is in place" in setup.stdout
    deploy = subprocess.run(
        [str(Path(sys.executable).with_name("prefect")), "--no-prompt", "deploy", "--all"],
        cwd=root, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert deploy.returncode == 0, deploy.stdout[-3000:] + deploy.stderr[-3000:]
    with get_client(sync_client=True) as client:
        made = client.read_deployment_by_name(f"{VIDEO_REVIEW}/{VIDEO_REVIEW}")
        poll = client.read_deployment_by_name(f"{NOTION_POLL}/{NOTION_POLL}")
        limit = client.read_global_concurrency_limit_by_name("clipgate-notion")
    assert made.work_pool_name == "clipgate"
    assert made.entrypoint == "flows/video_review.py:video_review"
    assert made.pull_steps == [
        {"prefect.deployments.steps.set_working_directory": {"directory": str(root)}}
    ]
    assert limit.limit == 1
    assert poll.work_pool_name == "clipgate"
    assert poll.entrypoint == "flows/notion_poll.py:notion_poll"
    (schedule,) = poll.schedules
    assert schedule.schedule.model_dump()["interval"] == timedelta(seconds=60)
    assert poll.global_concurrency_limit is not None
    assert poll.global_concurrency_limit.limit == 1


def test_deployed_review_answered_in_notion_by_poll_then_webhook(
    prefect_api_url: str,
    settings: Settings,
    project: VideoProject,
    notion: Workspace,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Served and suspended: Video Error + Queued through the poll, approval by webhook."""
    notion.configure(monkeypatch)
    monkeypatch.setenv("CLIPGATE_NOTION_WEBHOOK_TOKEN", WEBHOOK_SECRET)
    store = build_store(settings)
    in_notion = project.model_copy(update={"notion_page_id": notion.task_page_id})
    ana = notion.fake.add_person("Ana")

    def reviewer_sets(**properties: Any) -> None:
        notion.fake.edit_page_as_person(notion.task_page_id, properties, ana)

    def notion_status() -> str:
        return str(notion.fake.simple_properties(notion.task_page_id)["Status"])

    with serving(prefect_api_url):
        eventually(_deployment_exists, "the deployment to be served", timeout_s=120)
        run: FlowRun = run_deployment(  # type: ignore[assignment]
            f"{VIDEO_REVIEW}/{VIDEO_REVIEW}",
            parameters={"project": in_notion.model_dump(mode="json")},
            timeout=0,
        )
        run_id = str(run.id)
        eventually(lambda: waiting_review_key(run_id) == "review-1", "the first review")
        eventually(lambda: notion_status() == "Video Ready", "Video Ready in Notion")
        assert _state_name(run.id) == "Suspended"

        log = "Regenerate: clips 5, 12, 17"
        reviewer_sets(
            Status={"status": {"name": "Video Error"}},
            **{"Error Log": {"rich_text": [{"type": "text", "text": {"content": log}}]}},
        )
        assert notion_poll() == 0
        reviewer_sets(Status={"status": {"name": "Queued"}})
        assert notion_poll() == 1
        eventually(lambda: waiting_review_key(run_id) == "review-2", "the second review")
        eventually(lambda: notion_status() == "Video Ready", "Video Ready again")
        assert generations(store, project.project_id) == 21

        reviewer_sets(Status={"status": {"name": "Video Approved"}})
        receiver = WebhookReceiver(load_settings(), port=0)
        threading.Thread(target=receiver.serve_forever, daemon=True).start()
        event = json.dumps(
            {
                "id": str(uuid.uuid4()),
                "type": "page.properties_updated",
                "authors": [{"id": ana, "type": "person"}],
                "entity": {"id": notion.task_page_id, "type": "page"},
            }
        ).encode()
        delivered = httpx.post(
            f"http://127.0.0.1:{receiver.server_address[1]}/",
            content=event,
            headers={"X-Notion-Signature": sign(WEBHOOK_SECRET, event)},
            timeout=60,
        )
        receiver.shutdown()
        assert delivered.status_code == 200
        eventually(lambda: _state_name(run.id) == "Completed", "the run to complete")
    assert notion_status() == "Audio Ready"
    assert generations(store, project.project_id) == 21
    events = store.review_events(project.project_id)
    assert [(event.decision, event.clips, event.reviewer) for event in events] == [
        ("flag", [5, 12, 17], ana),
        ("approve", [], ana),
    ]
