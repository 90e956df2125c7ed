"""Notion as the review surface, through notion-client against the local Notion over HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from prefect import flow
from pydantic import SecretStr

from clipgate import gate
from clipgate.errors import ConfigurationError, PermanentNotionError, TransientNotionError
from clipgate.models import AnswerSource, ReviewDecision, VideoProject
from clipgate.notion.gateway import NotionConfig, NotionGateway
from clipgate.notion.schema import create_videos_database, schema_problems
from clipgate.notion.surface import NotionReviewSurface
from clipgate.notion.sync import sync_project
from clipgate.settings import Settings
from clipgate.store import Store
from clipgate.wiring import build_store
from tasks.publish import publish_review
from tests.fakes.notion_server import MB, running_fake_notion
from tests.flow_helpers import FlowInThread, answer, generations, paused_round
from tests.notion_workspace import Workspace, notion_rows, reviewed_project, stored_clips


def _attached_bytes(notion: Workspace, row: dict[str, Any]) -> bytes:
    (attached,) = row["page"]["properties"]["File"]["files"]
    return notion.fake.uploaded_bytes(notion.fake.upload_id_of_file_url(attached["file"]["url"]))


def _assert_rows_match_store(notion: Workspace, store: Store, project_id: str) -> None:
    rows = notion_rows(notion)
    assert sorted(rows) == list(range(1, 19))
    for clip in store.clips(project_id):
        row = rows[clip.number]
        assert row["Attempt"] == clip.attempt
        assert row["Duration"] == pytest.approx(clip.duration_s, abs=0.01)
        assert row["Status"] == "generated"
        assert _attached_bytes(notion, row) == Path(clip.location).read_bytes()
        videos = [
            block for block in notion.fake.block_children(row["id"]) if block["type"] == "video"
        ]
        assert videos, f"clip {clip.number} has no inline player"


@pytest.mark.usefixtures("prefect_api_url")
def test_run_with_notion_lists_18_playable_rows_and_keeps_them_on_regeneration(
    notion: Workspace,
    settings: Settings,
    project: VideoProject,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """18 rows with their clips attached; flagging 5, 12, 17 updates those rows, adds none."""
    notion.configure(monkeypatch)
    monkeypatch.setenv("CLIPGATE_CHANNEL_STORAGE", f'{{"{project.channel}": "notion"}}')
    in_notion = project.model_copy(update={"notion_page_id": notion.task_page_id})
    store = build_store(settings)

    run = FlowInThread(in_notion)
    run_id = paused_round(store, project.project_id, 1)
    _assert_rows_match_store(notion, store, project.project_id)
    task = notion.fake.simple_properties(notion.task_page_id)
    assert task["Status"] == "Video Ready"
    assert task["Review Started"]
    assert sorted(task["Videos"]) == sorted(row["id"] for row in notion_rows(notion).values())

    answer(run_id, {"decision": "flag", "clips": [5, 12, 17], "reviewer": "ana"})
    paused_round(store, project.project_id, 2)
    _assert_rows_match_store(notion, store, project.project_id)
    attempts = {number: row["Attempt"] for number, row in notion_rows(notion).items()}
    assert {number for number, attempt in attempts.items() if attempt == 2} == {5, 12, 17}
    task = notion.fake.simple_properties(notion.task_page_id)
    assert "Regenerate: clips 5, 12, 17 (by ana)" in task["Error Log"]

    answer(run_id, {"decision": "approve"})
    run.finish()
    task = notion.fake.simple_properties(notion.task_page_id)
    assert task["Status"] == "Audio Ready"
    assert task["Review Completed"]
    assert "Regenerate: clips 5, 12, 17" in task["Error Log"]
    assert generations(store, project.project_id) == 21


def _no_wait(seconds: float) -> None:
    """The gateway's sleep in tests that need no pacing and no Retry-After waits."""


def test_publishing_converges_through_injected_faults(
    notion: Workspace, project: VideoProject, tmp_path: Path
) -> None:
    """With 20% of requests failing (429, 409, 500, timeouts): 18 rows, none twice."""
    store = build_store_at(tmp_path)
    reviewed_project(store, project, tmp_path)
    notion.fake.inject_faults(0.2, seed=7, delay_s=0.4)
    impatient = notion.config.model_copy(update={"timeout_s": 0.25})
    surface = NotionReviewSurface.connect(impatient, sleep=_no_wait)
    sync_project(surface, store, project.project_id, notion.task_page_id, upload=True)
    _assert_rows_match_store(notion, store, project.project_id)

    gate.record_decision(
        store,
        project.project_id,
        1,
        ReviewDecision(decision="flag", clips=[5, 12, 17]),
        AnswerSource.CLI,
    )
    gate.start_generation(store, project.project_id, 2)
    gate.finish_generation(
        store, project.project_id, 2, stored_clips(tmp_path, {5: 2, 12: 2, 17: 2})
    )
    sync_project(surface, store, project.project_id, notion.task_page_id, upload=True)
    notion.fake.inject_faults(0)
    _assert_rows_match_store(notion, store, project.project_id)
    assert len(notion.fake.pages_in(notion.videos_source)) == 18
    assert notion.fake.simple_properties(notion.task_page_id)["Status"] == "Video Ready"


def test_a_crash_mid_publish_then_a_rerun_converges(
    notion: Workspace, project: VideoProject, tmp_path: Path
) -> None:
    """Killing the publisher after some uploads, then publishing again: 18 rows, no twins."""
    store = build_store_at(tmp_path)
    reviewed_project(store, project, tmp_path)
    script = (
        "import sys\n"
        "from pydantic import SecretStr\n"
        "from clipgate.notion.gateway import NotionConfig\n"
        "from clipgate.notion.surface import NotionReviewSurface\n"
        "from clipgate.notion.sync import sync_project\n"
        "from clipgate.store import open_store\n"
        "config = NotionConfig.model_validate_json(sys.argv[1])\n"
        "config = config.model_copy(update={'token': SecretStr(sys.argv[2])})\n"
        "surface = NotionReviewSurface.connect(config)\n"
        "sync_project(surface, open_store(sys.argv[3]), sys.argv[4], sys.argv[5], upload=True)\n"
    )
    slow = notion.config.model_copy(update={"requests_per_second": 10})
    publisher = subprocess.Popen(
        [
            *(sys.executable, "-c", script, slow.model_dump_json()),
            notion.config.token.get_secret_value(),
            str(store.engine.url),
            *(project.project_id, notion.task_page_id),
        ],
        env={**os.environ},
    )
    rows_before = notion.fake.counts()["POST /v1/pages"]

    def rows_and_sends() -> tuple[int, int]:
        counts = notion.fake.counts()
        return counts["POST /v1/pages"] - rows_before, counts["POST /v1/file_uploads/{id}/send"]

    deadline = time.monotonic() + 60
    # Kill it after a clip's upload has been sent but before its row is created.
    while time.monotonic() < deadline:
        rows, sends = rows_and_sends()
        if rows >= 5 and sends > rows:
            break
        time.sleep(0.002)
    publisher.send_signal(signal.SIGKILL)
    publisher.wait(10)
    assert 5 <= len(notion_rows(notion)) < 18

    sync_project(
        NotionReviewSurface.connect(notion.config),
        store,
        project.project_id,
        notion.task_page_id,
        upload=True,
    )
    _assert_rows_match_store(notion, store, project.project_id)


def test_a_second_publish_with_nothing_new_changes_nothing(
    notion: Workspace, project: VideoProject, tmp_path: Path
) -> None:
    """Publishing again finds the rows with one query and writes nothing."""
    store = build_store_at(tmp_path)
    reviewed_project(store, project, tmp_path)
    surface = NotionReviewSurface.connect(notion.config)
    sync_project(surface, store, project.project_id, notion.task_page_id, upload=True)
    before = notion.fake.counts()
    sync_project(surface, store, project.project_id, notion.task_page_id, upload=True)
    after = notion.fake.counts()
    assert after - before == {
        "POST /v1/data_sources/{id}/query": 1,
        "GET /v1/pages/{id}": 1,
    }


class _Clock:
    """A clock shared by the gateway and the local Notion that moves only as they wait."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_requests_are_paced_under_notions_rate(
    notion: Workspace, project: VideoProject, tmp_path: Path
) -> None:
    """At 3 requests a second from the gateway, Notion's rate limit never answers 429."""
    store = build_store_at(tmp_path)
    reviewed_project(store, project, tmp_path)
    workspace = NotionReviewSurface.connect(notion.config).workspace
    clock = _Clock()
    notion.fake.set_rate_limit(3, burst=3, clock=clock.monotonic)
    three_a_second = notion.config.model_copy(update={"requests_per_second": 3})
    paced = NotionGateway(three_a_second, sleep=clock.sleep, monotonic=clock.monotonic)
    started = len(notion.fake.requests)
    surface = NotionReviewSurface(paced, workspace)
    for _ in range(9):
        surface.sync_task(notion.task_page_id, _task_state(store, project.project_id))
    answered = [record.status for record in notion.fake.requests[started:]]
    assert 429 not in answered
    assert len(answered) >= 9
    assert clock.now == pytest.approx((len(answered) - 1) / 3)


def test_bad_setup_is_reported_before_anything_is_uploaded(notion: Workspace) -> None:
    """A wrong token, an unshared database, or a missing property stop with what to fix."""
    wrong_token = notion.config.model_copy(update={"token": SecretStr("ntn_wrong")})
    with pytest.raises(ConfigurationError, match="refused the integration token") as raised:
        NotionReviewSurface.connect(wrong_token)
    assert "ntn_wrong" not in str(raised.value)

    notion.fake.unshare(notion.parent_page_id, notion.fake.token)
    with pytest.raises(ConfigurationError, match="share the page or database"):
        NotionReviewSurface.connect(notion.config)
    notion.fake.share(notion.parent_page_id, notion.fake.token)

    gateway = NotionGateway(notion.config)
    gateway.send_repeatable(
        "drop a property",
        gateway.client.data_sources.update,
        data_source_id=notion.videos_source,
        properties={"Duration": None, "Attempt": {"rich_text": {}}},
    )
    problems, workspace = schema_problems(
        gateway, notion.config.tasks_database_id, notion.config.videos_database_id
    )
    assert workspace is None
    assert problems == [
        "Videos: property 'Duration' is missing (needs type number)",
        "Videos: property 'Attempt' is rich_text, needs type number",
    ]
    with pytest.raises(ConfigurationError, match="'Duration' is missing"):
        NotionReviewSurface.connect(notion.config)
    assert notion.fake.counts()["POST /v1/file_uploads"] == 0


def build_store_at(folder: Path) -> Store:
    """A SQLite store of its own in `folder`."""
    from clipgate.store import open_store

    return open_store(f"sqlite:///{folder / 'gate.db'}")


def _task_state(store: Store, project_id: str) -> Any:
    from clipgate.notion.surface import TaskReviewState
    from clipgate.states import Status

    row = store.project(project_id)
    assert row is not None
    return TaskReviewState(
        status=Status(row.status),
        error_log=[],
        review_started_at=row.review_started_at,
        review_completed_at=None,
    )


def test_notion_init_and_doctor_commands(tmp_path: Path) -> None:
    """`clipgate notion init` builds the Videos database; `doctor` then finds nothing missing."""
    with running_fake_notion() as fake:
        seeded = fake.seed_workspace(token=fake.token)
        env = {
            **os.environ,
            "CLIPGATE_HOME": str(tmp_path),
            "CLIPGATE_NOTION__TOKEN": fake.token,
            "CLIPGATE_NOTION__TASKS_DATABASE_ID": seeded.tasks_database_id,
            "CLIPGATE_NOTION__BASE_URL": fake.base_url,
        }

        def clipgate(*arguments: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "clipgate.cli", *arguments],
                capture_output=True,
                text=True,
                env=env,
                timeout=120,
                check=False,
            )

        missing = clipgate("notion", "doctor")
        assert missing.returncode == 1
        assert "run `clipgate notion init --parent PAGE_ID`" in missing.stdout

        made = clipgate("notion", "init", "--parent", seeded.parent_page_id)
        assert made.returncode == 0, made.stderr
        assert "Notion named the relation on Tasks 'Videos'" in made.stdout
        videos = made.stdout.split("CLIPGATE_NOTION__VIDEOS_DATABASE_ID=")[1].split()[0]
        env["CLIPGATE_NOTION__VIDEOS_DATABASE_ID"] = videos

        ready = clipgate("notion", "doctor")
        assert ready.returncode == 0, ready.stdout + ready.stderr
        assert "ready for clipgate" in ready.stdout


def _publish_everything(notion: Workspace) -> str:
    """Every page and block of the workspace as one JSON text."""
    pages = [*notion.fake.pages_in(notion.videos_source), notion.fake.page(notion.task_page_id)]
    blocks = [notion.fake.block_children(page["id"]) for page in pages]
    return json.dumps([pages, blocks])


def test_a_clip_over_the_workspace_limit_stops_before_any_upload(
    notion: Workspace, project: VideoProject, tmp_path: Path
) -> None:
    """On a free workspace a 5 MiB + 1 byte clip stops the publish first, naming the fix."""
    store = build_store_at(tmp_path)
    reviewed_project(store, project, tmp_path)
    (clip_7,) = [clip for clip in store.clips(project.project_id) if clip.number == 7]
    Path(clip_7.location).write_bytes(b"v" * (5 * MB + 1))
    notion.fake.set_plan("free")
    surface = NotionReviewSurface.connect(notion.config)
    before = notion.fake.counts()

    for _ in range(2):
        with pytest.raises(ConfigurationError) as stopped:
            sync_project(surface, store, project.project_id, notion.task_page_id, upload=True)

    assert notion.fake.counts() - before == {"GET /v1/users/me": 1}
    message = str(stopped.value)
    assert "clip 7 (clip-07-attempt-1.mp4) is 5.0 MiB (5,242,881 bytes)" in message
    assert "the 5.0 MiB (5,242,880 bytes) this Notion workspace takes" in message
    assert f'CLIPGATE_CHANNEL_STORAGE=\'{{"{project.channel}": "r2"}}\'' in message
    assert notion_rows(notion) == {}


def test_a_refused_upload_is_not_sent_again(notion: Workspace, tmp_path: Path) -> None:
    """A 400 from Notion is a permanent refusal: it stops at once, after one request."""
    notion.fake.set_plan("free")
    gateway = NotionGateway(notion.config)
    before = notion.fake.counts()
    with pytest.raises(PermanentNotionError, match="HTTP 400 validation_error"):
        gateway.send_repeatable(
            "start a file upload",
            gateway.client.file_uploads.create,
            mode="multi_part",
            number_of_parts=2,
            filename="clip.mp4",
            content_type="video/mp4",
        )
    assert notion.fake.counts() - before == {"POST /v1/file_uploads": 1}


def test_the_tasks_relation_is_found_by_what_it_points_to(tmp_path: Path) -> None:
    """When Notion names the reverse relation otherwise, init reports it and doctor finds it."""
    with running_fake_notion() as fake:
        seeded = fake.seed_workspace(token=fake.token)
        fake.reverse_relation_name = "Related to Videos (Task)"
        config = NotionConfig(
            token=SecretStr(fake.token),
            tasks_database_id=seeded.tasks_database_id,
            base_url=fake.base_url,
            requests_per_second=50,
        )
        created = create_videos_database(
            NotionGateway(config), seeded.parent_page_id, seeded.tasks_database_id
        )
        assert created.tasks_relation_name == "Related to Videos (Task)"
        ready = config.model_copy(update={"videos_database_id": created.database_id})
        gateway = NotionGateway(ready)
        problems, workspace = schema_problems(
            gateway, ready.tasks_database_id, ready.videos_database_id
        )
        assert (problems, workspace is not None) == ([], True)
        NotionReviewSurface.connect(ready)

        gateway.send_repeatable(
            "drop the relation",
            gateway.client.data_sources.update,
            data_source_id=seeded.tasks_data_source_id,
            properties={"Related to Videos (Task)": None, "Videos": {"rich_text": {}}},
        )
        problems, workspace = schema_problems(
            gateway, ready.tasks_database_id, ready.videos_database_id
        )
        assert workspace is None
        assert problems == [
            "Tasks: no relation property points to the Videos database; make 'Task' on "
            "Videos a two-way relation (show it on Tasks), or run `clipgate notion init`"
        ]


def test_overload_529_waits_as_long_as_retry_after_says(notion: Workspace) -> None:
    """A 529 service_overload is retried, also for a create, after its Retry-After."""
    waits: list[float] = []
    gateway = NotionGateway(notion.config, sleep=waits.append)
    notion.fake.fail_next("GET", r"/v1/users/me$", "529", retry_after_s=4)
    assert gateway.send_repeatable("read the bot", gateway.client.users.me)["type"] == "bot"
    assert max(waits) == pytest.approx(4, abs=0.2)

    # The recorded waits took no time, so the first pacer still holds: use a fresh one.
    waits.clear()
    fresh = notion.config.model_copy(update={"requests_per_second": 49})
    writer = NotionGateway(fresh, sleep=waits.append)
    notion.fake.fail_next("POST", r"^/v1/file_uploads$", "529", retry_after_s=2)
    created = writer.write_once(
        "start a file upload",
        writer.client.file_uploads.create,
        filename="clip.mp4",
        content_type="video/mp4",
    )
    assert created["status"] == "pending"
    assert max(waits) == pytest.approx(2, abs=0.2)
    statuses = [record.status for record in notion.fake.requests[-4:]]
    assert statuses == [529, 200, 529, 200]


def test_local_clips_are_uploaded_never_linked_as_files(
    notion: Workspace, project: VideoProject, tmp_path: Path
) -> None:
    """Local storage, no public review room: every clip is uploaded; no file:// anywhere.

    A row an older clipgate linked to a file:// address is uploaded to as well.
    """
    store = build_store_at(tmp_path)
    reviewed_project(store, project, tmp_path)
    surface = NotionReviewSurface.connect(notion.config)
    surface.gateway.send_repeatable(
        "make an old row",
        surface.gateway.client.pages.create,
        parent={"type": "data_source_id", "data_source_id": notion.videos_source},
        properties={
            "Clip Number": {"number": 3},
            "Attempt": {"number": 1},
            "Task": {"relation": [{"id": notion.task_page_id}]},
            "File": {"files": [{"external": {"url": (tmp_path / "c.mp4").as_uri()}}]},
        },
    )
    assert "file:" in _publish_everything(notion)
    sync_project(surface, store, project.project_id, notion.task_page_id, upload=False)
    _assert_rows_match_store(notion, store, project.project_id)
    assert "file:" not in _publish_everything(notion)


def test_local_clips_link_to_the_public_review_page(
    notion: Workspace, project: VideoProject, tmp_path: Path
) -> None:
    """Local storage with a public review room: rows link to the project's review page."""
    store = build_store_at(tmp_path)
    reviewed_project(store, project, tmp_path)
    page = f"https://review.example.com/projects/{project.project_id}"
    surface = NotionReviewSurface.connect(notion.config)
    sync_project(
        surface, store, project.project_id, notion.task_page_id, upload=False, review_page=page
    )
    rows = notion_rows(notion)
    assert sorted(rows) == list(range(1, 19))
    for row in rows.values():
        (linked,) = row["page"]["properties"]["File"]["files"]
        assert linked["external"]["url"] == page
        blocks = notion.fake.block_children(row["id"])
        assert [block["type"] for block in blocks] == ["heading_3", "paragraph"]
        assert blocks[1]["paragraph"]["rich_text"][0]["href"] == page
    assert notion.fake.counts()["POST /v1/file_uploads"] == 0
    assert "file:" not in _publish_everything(notion)


def test_a_create_that_keeps_failing_stops_with_an_error_naming_the_row(
    notion: Workspace, project: VideoProject, tmp_path: Path
) -> None:
    """Every create answered 500: the publish stops after its bounded tries, naming the row."""
    store = build_store_at(tmp_path)
    reviewed_project(store, project, tmp_path)
    surface = NotionReviewSurface.connect(notion.config, sleep=_no_wait)
    notion.fake.fail_next("POST", r"^/v1/pages$", "500", times=None)
    before = notion.fake.counts()
    with pytest.raises(TransientNotionError) as failing:
        sync_project(surface, store, project.project_id, notion.task_page_id, upload=True)
    assert str(failing.value).startswith(
        "Notion kept failing to create the Video row of clip 1 for task page "
        f"{notion.task_page_id} ({notion.config.max_attempts} tries, "
    )
    assert (notion.fake.counts() - before)["POST /v1/pages"] == notion.config.max_attempts
    assert notion_rows(notion) == {}

    notion.fake.clear_faults()
    sync_project(surface, store, project.project_id, notion.task_page_id, upload=True)
    _assert_rows_match_store(notion, store, project.project_id)


def test_a_create_that_may_have_happened_is_looked_up_before_it_is_sent_again(
    notion: Workspace, project: VideoProject, tmp_path: Path
) -> None:
    """Two creates answered 500, then one applied but answered 503: clip 1 still has one row."""
    store = build_store_at(tmp_path)
    reviewed_project(store, project, tmp_path)
    surface = NotionReviewSurface.connect(notion.config, sleep=_no_wait)
    notion.fake.fail_next("POST", r"^/v1/pages$", "500", times=2)
    notion.fake.fail_next("POST", r"^/v1/pages$", "503", after_apply=True)
    before = notion.fake.counts()
    sync_project(surface, store, project.project_id, notion.task_page_id, upload=True)
    _assert_rows_match_store(notion, store, project.project_id)
    assert (notion.fake.counts() - before)["POST /v1/pages"] == 18 + 2
    assert len(notion.fake.pages_in(notion.videos_source, include_trashed=True)) == 18


@flow(name="publish-review-without-delays")
def publish_without_retry_delays(project: VideoProject) -> None:
    """The publish task as the video-review flow runs it, retried without waiting."""
    publish_review.with_options(retry_delay_seconds=0)(project)


@pytest.mark.usefixtures("prefect_api_url")
def test_the_publish_task_stops_at_once_when_notion_refuses(
    notion: Workspace,
    settings: Settings,
    project: VideoProject,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """An Error Log too long for Notion fails the publish task at its first run, unretried."""
    notion.configure(monkeypatch)
    monkeypatch.setenv("CLIPGATE_ROOM_PUBLIC_URL", "https://review.example.com")
    in_notion = project.model_copy(update={"notion_page_id": notion.task_page_id})
    store = build_store(settings)
    reviewed_project(store, in_notion, tmp_path)
    flag = ReviewDecision(decision="flag", clips=[5])
    gate.record_decision(store, project.project_id, 1, flag, AnswerSource.CLI)
    full = [{"type": "text", "text": {"content": "x" * 2000}}] * 100
    ana = notion.fake.add_person("Ana")
    notion.fake.edit_page_as_person(notion.task_page_id, {"Error Log": {"rich_text": full}}, ana)

    before = notion.fake.counts()

    refused = publish_without_retry_delays(in_notion, return_state=True).result(
        raise_on_failure=False
    )

    assert isinstance(refused, PermanentNotionError)
    assert "more than Notion's 100" in str(refused)
    # Each run of the task queries the task's Video rows once.
    assert (notion.fake.counts() - before)["POST /v1/data_sources/{id}/query"] == 1


@pytest.mark.usefixtures("prefect_api_url")
def test_the_publish_task_runs_again_while_notion_keeps_failing(
    notion: Workspace,
    settings: Settings,
    project: VideoProject,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """Notion answering every request 503: the publish task runs three times, then fails."""
    notion.configure(monkeypatch)
    in_notion = project.model_copy(update={"notion_page_id": notion.task_page_id})
    reviewed_project(build_store(settings), in_notion, tmp_path)
    notion.fake.inject_faults(1.0, kinds=("503",))
    before = notion.fake.counts()

    failed = publish_without_retry_delays(in_notion, return_state=True).result(
        raise_on_failure=False
    )

    assert isinstance(failed, TransientNotionError)
    # Each run of the task tries its first request, opening the Tasks database, in full.
    opened = (notion.fake.counts() - before)["GET /v1/databases/{id}"]
    assert opened == 3 * notion.config.max_attempts
