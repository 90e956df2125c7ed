"""One "machine" of the shared-cache tests: a process that runs the gate, or round 1's clips.

    python -m tests.shared_cache_machine gate|clips PROJECT_JSON [START_FOLDER]

`gate` runs the video-review flow on the project. `clips` runs a flow that maps
produce-clip over the project's 18 first attempts, as the gate's round 1 does, without
the gate's one-run-per-project guard: two of them are two runs that want the same clip
keys at once. With START_FOLDER, the process leaves a file `ready-<pid>` there and waits
for a file `go`, so that several machines start their flows together.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from prefect import flow, unmapped

from clipgate.models import CLIP_COUNT, ClipKey, VideoProject
from clipgate.settings import load_settings
from flows.video_review import video_review
from prefect_glue.generation_pool import GenerationPool
from tasks.clips import produce_clip_for


@flow(name="make-clips", task_runner=GenerationPool())  # type: ignore[arg-type]
def make_clips(project: VideoProject) -> None:
    """Make (or find in the cache) every first attempt of the project's clips."""
    produce = produce_clip_for(load_settings())
    keys = [
        ClipKey(project_id=project.project_id, channel=project.channel, number=number, attempt=1)
        for number in range(1, CLIP_COUNT + 1)
    ]
    produce.map(project=unmapped(project), key=keys).result()


def main() -> None:
    mode, project_file, *start_folder = sys.argv[1:]
    project = VideoProject.model_validate_json(Path(project_file).read_text())
    if start_folder:
        folder = Path(start_folder[0])
        (folder / f"ready-{os.getpid()}").touch()
        while not (folder / "go").exists():
            time.sleep(0.05)
    if mode == "gate":
        video_review(project)
    else:
        make_clips(project)


if __name__ == "__main__":
    main()
