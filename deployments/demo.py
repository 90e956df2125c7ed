"""`clipgate demo`: run the gate on sample stills against a local Prefect server.

It plays the reviewer unless asked not to: the first round flags the given clips, the
second approves. Prefect is imported only after PREFECT_API_URL points at the server.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from clipgate.errors import ConfigurationError
from clipgate.gate import summarize
from clipgate.links import review_page_url
from clipgate.models import CLIP_COUNT, AnswerSource, VideoProject
from clipgate.samples import make_sample_project
from clipgate.settings import Settings, load_settings
from clipgate.store import Store
from clipgate.wiring import build_store
from deployments.local_server import ensure_server
from room.server import RunningRoom, start_room


@dataclass
class _FlowThread:
    project: VideoProject
    error: BaseException | None = None
    thread: threading.Thread = field(init=False)

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="video-review", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        from flows.video_review import video_review

        try:
            video_review(self.project)
        except BaseException as error:  # reported by the main thread
            self.error = error


def run_demo(
    workdir: Path, flags: list[int], interactive: bool, emit_json: bool, out: TextIO
) -> int:
    """Run the demo; returns the process exit code."""
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ["CLIPGATE_HOME"] = str(workdir / "data")
    # Prefect is imported only below, so its client files land in the workdir too.
    os.environ.setdefault("PREFECT_HOME", str(workdir / "prefect"))
    os.environ.setdefault("CLIPGATE_REVIEW_POLL_INTERVAL_S", "1")
    settings = load_settings()
    say = _Progress(out)
    say(f"workdir {workdir}")
    say("starting or reusing a local Prefect server ...")
    api_url = ensure_server(workdir / "prefect", os.environ.get("PREFECT_API_URL"))
    os.environ["PREFECT_API_URL"] = api_url
    say(f"Prefect server healthy at {api_url}")
    room = _start_room(settings)
    say(f"review room at {room.url} (Prefect UI at {api_url.removesuffix('/api')})")

    project_id = f"demo-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    project, manifest = make_sample_project(
        workdir / "samples", project_id, width=settings.clip_width, height=settings.clip_height
    )
    say(f"made {CLIP_COUNT} sample stills and the manifest {manifest}")
    say(f"watch and answer its reviews at {review_page_url(room.url, project_id)}")
    clipgate = _command_prefix(workdir, api_url)
    say(f"from another shell: `{clipgate} review {project_id} --approve` answers its review")
    say(f"if this process dies, `{clipgate} recover {project_id}` finishes the project")

    store = build_store(settings)
    runner = _FlowThread(project)
    runner.start()
    reviewer = _Reviewer(store, settings, project_id, api_url, flags, interactive, say, clipgate)
    while runner.thread.is_alive():
        reviewer.step()
        time.sleep(0.5)
    if runner.error is not None:
        say(f"the flow failed: {runner.error}")
        return 1

    summary = summarize(store, project_id)
    say(f"done: status {summary.status}, generator ran {summary.generations} times")
    if emit_json:
        result: dict[str, Any] = {
            "project_id": project_id,
            "flow_run_id": summary.flow_run_id,
            "final_status": summary.status,
            "rounds": [
                {"decision": event["decision"], "clips": event["clips"]} for event in summary.rounds
            ],
            "generations": summary.generations,
            "clips": [
                {
                    "number": clip.number,
                    "attempt": clip.attempt,
                    "path": clip.location,
                    "faststart": clip.faststart,
                    "duration_s": clip.duration_s,
                }
                for clip in summary.clips
            ],
            "narration": summary.narration,
        }
        print(json.dumps(result), file=out)
    return 0


def _start_room(settings: Settings) -> RunningRoom:
    """The review room on its usual port, or on a free one when that is taken."""
    try:
        room = start_room(settings)
    except ConfigurationError:
        room = start_room(settings, port=0)
    # The flow runs in this process; its resume form must link to this room.
    os.environ["CLIPGATE_ROOM_PORT"] = str(room.port)
    return room


def _command_prefix(workdir: Path, api_url: str) -> str:
    """The clipgate command with the environment this demo runs in, to paste elsewhere."""
    executable = Path(sys.executable).with_name("clipgate")
    return shlex.join(
        [
            "env",
            f"CLIPGATE_HOME={workdir / 'data'}",
            f"PREFECT_HOME={os.environ['PREFECT_HOME']}",
            f"PREFECT_API_URL={api_url}",
            str(executable),
        ]
    )


class _Progress:
    def __init__(self, out: TextIO) -> None:
        self.out = out

    def __call__(self, message: str) -> None:
        print(f"[demo] {message}", file=self.out, flush=True)


class _Reviewer:
    """Watches the project and answers each paused review round."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        project_id: str,
        api_url: str,
        flags: list[int],
        interactive: bool,
        say: _Progress,
        clipgate: str,
    ) -> None:
        self.store = store
        self.settings = settings
        self.clipgate = clipgate
        self.project_id = project_id
        self.ui_url = api_url.removesuffix("/api")
        self.flags = flags
        self.interactive = interactive
        self.say = say
        self.reported_generations = 0
        self.made_before_round = 0
        self.progress_round = 0
        self.answered_rounds: set[int] = set()
        self.announced_rounds: set[int] = set()

    def step(self) -> None:
        from prefect_glue.answers import waiting_review_key

        row = self.store.project(self.project_id)
        if row is None or row.flow_run_id is None:
            return
        self._report_generation(row.review_round, row.flagged_clip_numbers)
        if waiting_review_key(row.flow_run_id) is None:
            return
        review_round = row.review_round
        if review_round in self.answered_rounds:
            return
        if self.interactive:
            if review_round not in self.announced_rounds:
                self.announced_rounds.add(review_round)
                self.say(
                    f"round {review_round}: waiting for you. Open "
                    f"{self.ui_url}/runs/flow-run/{row.flow_run_id} and use Resume, or run "
                    f"`{self.clipgate} review {self.project_id} --approve` "
                    "(or --flag 'clips 5, 12')"
                )
            return
        self._answer(review_round)

    def _report_generation(self, review_round: int, flagged: list[int]) -> None:
        if review_round != self.progress_round:
            self.progress_round = review_round
            self.made_before_round = self.reported_generations
            planned = CLIP_COUNT if review_round == 1 else len(flagged)
            self.say(f"round {review_round}: generating {planned} clips")
        attempts = self.store.generation_attempts(self.project_id)
        planned = CLIP_COUNT if review_round == 1 else len(flagged)
        for made in attempts[self.reported_generations :]:
            self.reported_generations += 1
            self.say(
                f"round {review_round}: clip {made.clip_number} made, attempt {made.attempt} "
                f"({made.generation_seconds:.1f} s) - "
                f"{self.reported_generations - self.made_before_round}/{planned}"
            )

    def _answer(self, review_round: int) -> None:
        from prefect_glue.answers import submit_answer

        answer: dict[str, Any]
        if review_round == 1:
            answer = {
                "decision": "flag",
                "clips": self.flags,
                "notes": [{"clip": number, "note": "motion looks off"} for number in self.flags],
                "reviewer": "clipgate demo",
            }
            said = f"round 1: review is waiting; flagging clips {self.flags}"
        else:
            answer = {"decision": "approve", "reviewer": "clipgate demo"}
            said = f"round {review_round}: review is waiting; approving all clips"
        outcome = submit_answer(
            self.settings, self.project_id, answer, AnswerSource.DEMO, review_round
        )
        self.answered_rounds.add(review_round)
        self.say(said if outcome.accepted else outcome.message)
