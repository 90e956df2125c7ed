"""The `clipgate` command: as a user runs it (a real process) and, for speed, in this one."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from clipgate import gate
from clipgate.cli import main
from clipgate.models import AnswerSource, ReviewDecision, VideoProject
from clipgate.settings import Settings
from clipgate.store import GenerationAttemptRow, Store
from clipgate.wiring import build_store
from prefect_glue.answers import waiting_review_key
from tests.conftest import SMALL_CLIPS
from tests.flow_helpers import FlowInThread, eventually, paused_round
from tests.ports import free_port

CLIPGATE = [sys.executable, "-m", "clipgate.cli"]


def _run(*arguments: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The command in its own process, as a user starts it."""
    return subprocess.run(
        [*CLIPGATE, *arguments],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )


def _in_process(*arguments: str) -> subprocess.CompletedProcess[str]:
    """The command run by `clipgate.cli.main` in this process, with its output captured."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(arguments))
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 2
    return subprocess.CompletedProcess(list(arguments), code, out.getvalue(), err.getvalue())


def test_parse_feedback_prints_sorted_clips() -> None:
    """The reviewer-note reader prints a sorted JSON list without duplicates."""
    done = _run("parse-feedback", "Regenerate: clips 17, 5, 12 and clip #5")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [5, 12, 17]


def test_parse_feedback_fails_clearly() -> None:
    """A note with a clip outside 1-18 exits non-zero and says why on stderr."""
    done = _in_process("parse-feedback", "clip 19 flickers")
    assert done.returncode != 0
    assert done.stdout == ""
    assert "clip 19" in done.stderr
    assert "1-18" in done.stderr


@pytest.mark.end_to_end
def test_demo_flags_then_approves(prefect_api_url: str, tmp_path: Path) -> None:
    """`clipgate demo --json --flag 2,9,18` remakes exactly those clips and narrates."""
    env = {
        **os.environ,
        **SMALL_CLIPS,
        "PREFECT_API_URL": prefect_api_url,
        "CLIPGATE_ROOM_PORT": str(free_port()),
    }
    env.pop("CLIPGATE_HOME", None)
    workdir = tmp_path / "demo"
    done = _run("demo", "--json", "--flag", "2,9,18", "--workdir", str(workdir), env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])

    assert result["final_status"] == "audio_ready"
    assert result["rounds"] == [
        {"decision": "flag", "clips": [2, 9, 18]},
        {"decision": "approve", "clips": []},
    ]
    assert result["generations"] == 21
    assert [clip["number"] for clip in result["clips"]] == list(range(1, 19))
    for clip in result["clips"]:
        assert clip["attempt"] == (2 if clip["number"] in (2, 9, 18) else 1)
        assert clip["faststart"] is True
        assert clip["duration_s"] == pytest.approx(1.0, abs=0.15)
        assert Path(clip["path"]).is_file()
        assert Path(clip["path"]).is_relative_to(workdir)
    assert len(result["narration"]) == 18
    assert all(Path(audio).is_relative_to(workdir) for audio in result["narration"])
    assert "clip 18" in done.stdout
    assert "flagging clips [2, 9, 18]" in done.stdout


def test_demo_refuses_a_bad_flag(tmp_path: Path) -> None:
    """--flag with a clip outside 1-18 stops before anything runs."""
    done = _in_process("demo", "--flag", "3,25", "--workdir", str(tmp_path / "d"))
    assert done.returncode != 0
    assert "clip 25" in done.stderr
    assert not (tmp_path / "d").exists()


def test_costs_reports_spend_and_savings(settings: Settings, project: VideoProject) -> None:
    """`clipgate costs` sums what the generator cost and values the clips reviews kept."""
    store = build_store(settings)
    gate.register_project(store, project, None)
    for number in [*range(1, 19), 5, 12]:
        attempt = 2 if len(store.generation_attempts(project.project_id)) >= 18 else 1
        store.record_generation(
            GenerationAttemptRow(
                clip_key=f"{project.project_id}.clip-{number:02d}.attempt-{attempt}",
                project_id=project.project_id,
                clip_number=number,
                attempt=attempt,
                generator="kling",
                generation_seconds=1.0,
                file="x",
                sha256="0" * 64,
                cost_usd=0.5,
            )
        )
    gate.start_generation(store, project.project_id, 1)
    gate.finish_generation(store, project.project_id, 1, [])
    gate.record_decision(
        store,
        project.project_id,
        1,
        ReviewDecision(decision="flag", clips=[5, 12]),
        AnswerSource.CLI,
    )
    done = _in_process("costs", project.project_id, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "project_id": project.project_id,
        "generations": 20,
        "spent_usd": 10.0,
        "clips_kept_by_reviews": 16,
        "saved_usd": 8.0,
        "estimated": True,
    }
    unknown = _in_process("costs", "no-such-project")
    assert unknown.returncode != 0
    assert "no video project 'no-such-project'" in unknown.stderr


@pytest.mark.usefixtures("prefect_api_url")
def test_review_command_answers_the_waiting_round(
    settings: Settings, project: VideoProject
) -> None:
    """`clipgate review` flags from a note, refuses a bad one, then approves."""
    store = build_store(settings)
    run = FlowInThread(project)
    paused_round(store, project.project_id, 1)
    refused = _in_process("review", project.project_id, "--flag", "clip 19 stutters")
    assert refused.returncode != 0
    assert "clip 19" in refused.stderr
    assert waiting_review_key(run_id_of(store, project.project_id)) == "review-1"

    flagged = eventually(
        lambda: _ok(_in_process("review", project.project_id, "--flag", "clips 2-3 at 0:04")),
        "the form to take the flag",
    )
    assert "round 1" in flagged.stdout
    paused_round(store, project.project_id, 2)
    approved = _in_process("review", project.project_id, "--approve", "--reviewer", "ana")
    assert approved.returncode == 0, approved.stderr
    summary = run.finish()
    assert summary.rounds[0]["clips"] == [2, 3]
    assert summary.rounds[1] == {"decision": "approve", "clips": [], "reviewer": "ana"}


def run_id_of(store: Store, project_id: str) -> str:
    row = store.project(project_id)
    assert row is not None
    assert row.flow_run_id is not None
    return row.flow_run_id


def _ok(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str] | None:
    return done if done.returncode == 0 else None
