"""The review room in Chromium against a real Prefect server and a real video-review run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from clipgate.cli import main
from clipgate.models import VideoProject
from clipgate.settings import Settings
from clipgate.wiring import build_store
from prefect_glue.answers import waiting_review_key
from tests.flow_helpers import FlowInThread, generations, paused_round
from tests.room_helpers import chromium, running_room, screenshots_dir

PLAYING_CLIP = """() => {
  const video = [...document.querySelectorAll('.screen-video')]
    .find((one) => !one.classList.contains('standby'));
  return { time: video.currentTime, rate: video.playbackRate, paused: video.paused };
}"""
PLAYING_WALL = """() => [...document.querySelectorAll('.wall-tile video')]
  .filter((video) => !video.paused && video.currentTime > 0).length"""
ROUND_DATA = "() => JSON.parse(document.getElementById('round-data').textContent)"


def clip_label(page: Page) -> str:
    return page.locator("#clip-label").inner_text()


def go_to_clip(page: Page, number: int) -> None:
    page.keyboard.type(str(number))
    expect(page.locator("#clip-label")).to_have_text(f"Clip {number}/18")


@pytest.mark.usefixtures("prefect_api_url")
def test_review_a_run_in_the_room_from_first_look_to_evidence(
    settings: Settings,
    project: VideoProject,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Watch, flag two clips with notes, compare the remakes, approve, read the evidence."""
    shots = screenshots_dir(tmp_path / "screenshots")
    store = build_store(settings)
    with running_room(settings) as room, chromium() as browser:
        monkeypatch.setenv("CLIPGATE_ROOM_PORT", room.rsplit(":", 1)[1])
        run = FlowInThread(project)
        run_id = paused_round(store, project.project_id, 1)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.set_default_timeout(30_000)

        page.goto(f"{room}/")
        row = page.locator(f'tr[data-project="{project.project_id}"]')
        expect(row).to_have_class("project tone-ready")
        expect(row.locator(".status")).to_have_text("Video Ready")
        expect(row).to_contain_text("18/18")
        page.screenshot(path=shots / "queue.png", full_page=True)

        row.locator(".project-link").click()
        page.locator("#reviewer").fill("ana")
        page.locator("#reviewer").press("Escape")
        page.wait_for_function(f"() => ({PLAYING_CLIP})().time > 0.2")
        playing = page.evaluate(PLAYING_CLIP)
        assert playing["rate"] == 2
        assert not playing["paused"]
        page.screenshot(path=shots / "review.png")

        page.keyboard.press("l")
        for _ in range(17):
            page.keyboard.press("ArrowRight")
        expect(page.locator("#clip-label")).to_have_text("Clip 18/18")
        page.keyboard.press("ArrowLeft")
        expect(page.locator("#clip-label")).to_have_text("Clip 17/18")
        go_to_clip(page, 1)

        page.keyboard.press("w")
        page.wait_for_function(f"() => ({PLAYING_WALL})() === 18")
        page.screenshot(path=shots / "wall.png")
        page.keyboard.press("p")

        page.keyboard.press("Shift+S")
        expect(page.locator("#answer-result")).to_contain_text("refused")
        expect(page.locator("#answer-result")).to_contain_text("'clips'")
        assert waiting_review_key(run_id) == "review-1"
        assert store.review_events(project.project_id) == []

        go_to_clip(page, 5)
        page.keyboard.press("x")
        page.keyboard.press("n")
        page.keyboard.type("horizon wobbles")
        page.keyboard.press("Escape")
        page.keyboard.press("t")
        page.keyboard.press("Escape")
        go_to_clip(page, 12)
        page.keyboard.press("x")
        page.keyboard.press("n")
        page.keyboard.type("colours flicker")
        page.keyboard.press("Escape")
        expect(page.locator("#flag-summary")).to_have_text("flagged: 5, 12")
        page.keyboard.press("Shift+S")

        paused_round(store, project.project_id, 2)
        assert generations(store, project.project_id) == 20
        (first,) = store.review_events(project.project_id)
        assert (first.decision, first.clips, first.source, first.reviewer) == (
            "flag",
            [5, 12],
            "room",
            "ana",
        )
        assert first.notes == [
            {"clip": 5, "note": "horizon wobbles at 0:00"},
            {"clip": 12, "note": "colours flicker"},
        ]

        page.wait_for_function(f"() => ({ROUND_DATA})().round === 2 && ({ROUND_DATA})().waiting")
        go_to_clip(page, 5)
        page.keyboard.press("c")
        expect(page.locator("#compare")).to_be_visible()
        expect(page.locator("#earlier-attempt")).to_have_text("1")
        expect(page.locator("#current-attempt")).to_have_text("2")
        expect(page.locator("#earlier-notes")).to_contain_text("horizon wobbles at 0:00")
        page.wait_for_function(
            "() => document.querySelector('#earlier-video').currentSrc"
            ".endsWith('/clip-05/attempt-1.mp4') && document.querySelector('#current-video')"
            ".currentSrc.endsWith('/clip-05/attempt-2.mp4')"
        )
        page.screenshot(path=shots / "compare.png", full_page=True)

        page.keyboard.press("Shift+A")
        summary = run.finish()
        assert summary.status in ("generating_audio", "audio_ready")

        # The answered page reloads itself as the run moves on, so the evidence is read in a
        # second tab that nothing navigates away from.
        expect(page.locator("#answered")).to_contain_text(
            "Round 2 was answered by ana", timeout=30_000
        )
        later = browser.new_page(viewport={"width": 1440, "height": 900})
        later.set_default_timeout(30_000)
        later.goto(f"{room}/projects/{project.project_id}")
        expect(later.locator("#answered")).to_contain_text("Round 2 was answered by ana")
        evidence = later.locator("#evidence tbody tr")
        expect(evidence).to_have_count(2)
        expect(evidence.nth(0)).to_contain_text("horizon wobbles at 0:00")
        expect(evidence.nth(1)).to_contain_text("approve")
        expect(later.locator("#send-flags")).to_have_count(0)
        later.screenshot(path=shots / "evidence.png", full_page=True)

    assert main(["audit", project.project_id, "--json"]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert [r["decision"] for r in exported["rounds"]] == ["flag", "approve"]
    assert all(r["review_seconds"] is not None for r in exported["rounds"])
