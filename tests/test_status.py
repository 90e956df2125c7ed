"""`clipgate status` and finding the database: read the store, never create one."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from clipgate import gate
from clipgate.clips import ProducedClip
from clipgate.models import AnswerSource, ClipKey, ReviewDecision, VideoProject
from clipgate.settings import Settings
from clipgate.store import GenerationAttemptRow, Store, as_utc
from clipgate.wiring import build_store

CLIPGATE = [sys.executable, "-m", "clipgate.cli"]
LIST_FIELDS = {
    "project_id",
    "channel",
    "status",
    "status_label",
    "review_round",
    "status_since",
    "in_status_s",
    "clips_made",
    "clips_planned",
    "generations",
    "waiting_since",
    "waiting_s",
    "stuck",
    "flow_run_id",
    "created_at",
}


def _run(
    *arguments: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLIPGATE, *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=cwd,
        check=False,
    )


def _make(store: Store, project: VideoProject, number: int, attempt: int) -> ProducedClip:
    """Record one generation of a clip, as the flow does, and return the clip it made."""
    key = ClipKey(
        project_id=project.project_id, channel=project.channel, number=number, attempt=attempt
    )
    store.record_generation(
        GenerationAttemptRow(
            clip_key=key.token,
            project_id=project.project_id,
            clip_number=number,
            attempt=attempt,
            generator="local",
            generation_seconds=1.0,
            file=key.object_key,
            sha256="0" * 64,
        )
    )
    return ProducedClip(
        number=number,
        attempt=attempt,
        object_key=key.object_key,
        location=f"/clips/{key.object_key}",
        url=f"http://127.0.0.1:8780/clips/{key.object_key}",
        sha256="0" * 64,
        size_bytes=1000,
        duration_s=1.0,
        faststart=True,
        generator="local",
        generation_seconds=1.0,
    )


def _waiting_for_review(store: Store, project: VideoProject) -> None:
    """Round 1 made in full and waiting for its review."""
    gate.register_project(store, project, None)
    gate.start_generation(store, project.project_id, 1)
    made = [_make(store, project, number, 1) for number in range(1, 19)]
    gate.finish_generation(store, project.project_id, 1, made)


def _renamed(project: VideoProject, project_id: str) -> VideoProject:
    return project.model_copy(update={"project_id": project_id})


def test_status_lists_every_project(settings: Settings, project: VideoProject) -> None:
    """Newest first, each with status, round, clips made of the round's and waiting since."""
    store = build_store(settings)
    remade = _renamed(project, f"{project.project_id}-a")
    _waiting_for_review(store, remade)
    flag = ReviewDecision(decision="flag", clips=[5, 12], reviewer="ana")
    gate.record_decision(store, remade.project_id, 1, flag, AnswerSource.CLI)
    gate.start_generation(store, remade.project_id, 2)
    _make(store, remade, 5, 2)
    making = _renamed(project, f"{project.project_id}-b")
    gate.register_project(store, making, None)
    gate.start_generation(store, making.project_id, 1)
    for number in range(1, 8):
        _make(store, making, number, 1)
    waiting = _renamed(project, f"{project.project_id}-c")
    _waiting_for_review(store, waiting)
    env = {**os.environ}

    listed = _run("status", "--json", env=env)

    assert listed.returncode == 0, listed.stderr
    lines = json.loads(listed.stdout)
    assert [line["project_id"] for line in lines] == [
        waiting.project_id,
        making.project_id,
        remade.project_id,
    ]
    assert all(set(line) == LIST_FIELDS for line in lines)
    shown = [
        (line["status"], line["review_round"], line["clips_made"], line["clips_planned"])
        for line in lines
    ]
    assert shown == [
        ("video_ready", 1, 18, 18),
        ("generating_video", 1, 7, 18),
        ("generating_video", 2, 1, 2),
    ]
    assert [line["generations"] for line in lines] == [18, 7, 19]
    row = store.project(waiting.project_id)
    assert row is not None
    started = as_utc(row.review_started_at)
    assert started is not None
    assert lines[0]["waiting_since"] == started.isoformat().replace("+00:00", "Z")
    assert [line["waiting_since"] for line in lines[1:]] == [None, None]
    assert not any(line["stuck"] for line in lines)

    table = _run("status", env=env)
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    columns = ["PROJECT", "CHANNEL", "STATUS", "ROUND", "IN STATUS", "CLIPS", "WAITING SINCE"]
    assert re.split(r"\s{2,}", header) == columns
    assert len(rows) == 3
    assert rows[0].startswith(waiting.project_id)
    assert "Video Ready" in rows[0]
    assert rows[0].endswith(started.strftime("%Y-%m-%d %H:%M:%S UTC"))
    assert "Generating Video" in rows[1]
    assert " 7/18 " in rows[1]
    assert " 1/2 " in rows[2]
    assert rows[2].endswith("-")


def test_status_of_one_project_in_detail(settings: Settings, project: VideoProject) -> None:
    """One project: its round, the clips it remakes, its answers, its clips and its room page."""
    store = build_store(settings)
    _waiting_for_review(store, project)
    flag = ReviewDecision(decision="flag", clips=[5, 12], reviewer="ana")
    gate.record_decision(store, project.project_id, 1, flag, AnswerSource.CLI)
    gate.start_generation(store, project.project_id, 2)
    _make(store, project, 12, 2)
    env = {**os.environ}

    done = _run("status", project.project_id, "--json", env=env)

    assert done.returncode == 0, done.stderr
    detail = json.loads(done.stdout)
    assert set(LIST_FIELDS) < set(detail)
    assert detail["status"] == "generating_video"
    assert detail["review_round"] == 2
    assert (detail["clips_made"], detail["clips_planned"]) == (1, 2)
    assert detail["flagged_clips"] == [5, 12]
    assert detail["review_url"] == f"http://127.0.0.1:8780/projects/{project.project_id}"
    assert detail["last_error"] == "Regenerate: clips 5, 12"
    (answered,) = detail["rounds"]
    assert {key: answered[key] for key in ("review_round", "decision", "clips", "reviewer")} == {
        "review_round": 1,
        "decision": "flag",
        "clips": [5, 12],
        "reviewer": "ana",
    }
    assert answered["source"] == "cli"
    assert [(clip["number"], clip["attempt"]) for clip in detail["clips"]] == [
        (number, 1) for number in range(1, 19)
    ]

    text = _run("status", project.project_id, env=env)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0] == f"project     {project.project_id} (channel demo-channel)"
    assert lines[1].startswith("status      Generating Video, round 2, for ")
    assert lines[2] == "clips       1/2 made this round, 19 generations in all"
    assert lines[3] == f"review      http://127.0.0.1:8780/projects/{project.project_id}"
    assert lines[5].startswith("round 1     flag clips 5, 12 by ana (cli, ")
    assert lines[6] == "last error  Regenerate: clips 5, 12"
    assert lines[7] == "clip  attempt  seconds  faststart"
    assert lines[8] == "   1        1      1.0  yes"
    assert len(lines) == 8 + 18


def test_status_reads_only(tmp_path: Path) -> None:
    """No database: status says where it looked and makes nothing; an empty one lists none."""
    home = tmp_path / "home"
    env = {**os.environ, "CLIPGATE_HOME": str(home)}
    missing = _run("status", env=env, cwd=tmp_path)
    assert missing.returncode == 2
    assert missing.stderr.startswith(
        f"clipgate: no clipgate database at {home.resolve() / 'clipgate.db'} "
        f"(CLIPGATE_HOME={home}): set CLIPGATE_HOME"
    )
    assert not home.exists()

    build_store(Settings(home=home))
    empty = _run("status", "--json", env=env, cwd=tmp_path)
    assert empty.returncode == 0, empty.stderr
    assert json.loads(empty.stdout) == []
    nothing = _run("status", env=env, cwd=tmp_path)
    assert nothing.stdout == f"no video projects in the SQLite database {home / 'clipgate.db'}\n"
    unknown = _run("status", "nope", env=env, cwd=tmp_path)
    assert unknown.returncode == 2
    assert unknown.stderr.startswith(
        f"clipgate: no video project 'nope' in the SQLite database {home / 'clipgate.db'}; "
    )


def test_commands_point_to_the_demos_database(tmp_path: Path, project: VideoProject) -> None:
    """Run beside the demo's folder, a command that finds nothing prints the exact command."""
    demo_home = tmp_path / "clipgate-demo" / "data"
    _waiting_for_review(build_store(Settings(home=demo_home)), project)
    env = {key: value for key, value in os.environ.items() if key != "CLIPGATE_HOME"}
    review = ("review", project.project_id, "--approve")

    no_database = _run(*review, env=env, cwd=tmp_path)
    assert no_database.returncode == 2
    assert f"no clipgate database at {tmp_path / '.clipgate' / 'clipgate.db'}" in (
        no_database.stderr
    )
    assert no_database.stderr.rstrip().endswith(
        f"the demo's database is {demo_home / 'clipgate.db'}: "
        f"`CLIPGATE_HOME={demo_home} clipgate status` lists its projects"
    )
    assert not (tmp_path / ".clipgate").exists()

    build_store(Settings(home=tmp_path / ".clipgate"))
    unknown = _run(*review, env=env, cwd=tmp_path)
    assert unknown.returncode == 2
    command = f"CLIPGATE_HOME={demo_home} clipgate review {project.project_id} --approve"
    assert unknown.stderr == (
        f"clipgate: no video project {project.project_id!r} in the SQLite database "
        f"{tmp_path / '.clipgate' / 'clipgate.db'}; set CLIPGATE_HOME (or "
        "CLIPGATE_DATABASE_URL) to where the gate ran; it is in the demo's database "
        f"{demo_home / 'clipgate.db'}: `{command}`\n"
    )

    clipgate = Path(sys.executable).with_name("clipgate")
    followed = subprocess.run(
        ["sh", "-c", command.replace(" clipgate ", f" {clipgate} ")],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert followed.returncode == 0, followed.stderr
    assert followed.stdout.startswith(f"answered review round 1 of {project.project_id}: approve")
    demo_store = build_store(Settings(home=demo_home))
    assert [event.decision for event in demo_store.review_events(project.project_id)] == ["approve"]
