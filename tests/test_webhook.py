"""Notion webhooks: signed deliveries resume the waiting run at once; others change nothing."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from clipgate.models import VideoProject
from clipgate.notion.webhook import sign
from clipgate.settings import Settings, load_settings
from clipgate.wiring import build_store
from deployments.webhook import WebhookReceiver
from prefect_glue.answers import waiting_review_key
from tests.flow_helpers import FlowInThread, eventually, paused_round
from tests.notion_workspace import Workspace

SECRET = "secret_webhook_verification_token"  # noqa: S105


@pytest.fixture
def receiver(
    notion: Workspace,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    prefect_api_url: str,
) -> Iterator[str]:
    """The webhook receiver on a free local port, configured for the local Notion."""
    notion.configure(monkeypatch)
    monkeypatch.setenv("CLIPGATE_NOTION_WEBHOOK_TOKEN", SECRET)
    server = WebhookReceiver(load_settings(), port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def _event(page_id: str, author: str) -> bytes:
    return json.dumps(
        {
            "id": str(uuid.uuid4()),
            "timestamp": "2026-11-24T12:00:00.000Z",
            "type": "page.properties_updated",
            "authors": [{"id": author, "type": "person"}],
            "entity": {"id": page_id, "type": "page"},
            "data": {"updated_properties": ["Status"]},
        }
    ).encode()


def _post(url: str, body: bytes, signature: str | None) -> int:
    headers: dict[str, Any] = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Notion-Signature"] = signature
    return httpx.post(url, content=body, headers=headers, timeout=30).status_code


def test_signed_event_resumes_at_once_and_bad_or_replayed_ones_change_nothing(
    receiver: str, notion: Workspace, settings: Settings, project: VideoProject
) -> None:
    """Unsigned or mis-signed events get 401; a signed one approves; a replay does nothing."""
    in_notion = project.model_copy(update={"notion_page_id": notion.task_page_id})
    store = build_store(settings)
    run = FlowInThread(in_notion)
    run_id = paused_round(store, project.project_id, 1)
    eventually(
        lambda: notion.fake.simple_properties(notion.task_page_id)["Status"] == "Video Ready",
        "Video Ready in Notion",
    )
    ana = notion.fake.add_person("Ana")
    notion.fake.edit_page_as_person(
        notion.task_page_id, {"Status": {"status": {"name": "Video Approved"}}}, ana
    )
    event = _event(notion.task_page_id, ana)

    assert _post(receiver, event, None) == 401
    assert _post(receiver, event, sign("not-the-token", event)) == 401
    assert waiting_review_key(run_id) == "review-1"

    assert _post(receiver, event, sign(SECRET, event)) == 200
    summary = run.finish()
    assert summary.status == "audio_ready"
    assert summary.rounds[0] == {"decision": "approve", "clips": [], "reviewer": ana}
    assert _post(receiver, event, sign(SECRET, event)) == 200
    assert len(store.review_events(project.project_id)) == 1
