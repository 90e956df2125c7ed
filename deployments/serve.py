"""`clipgate serve`: the gate's deployments and the review room served from this machine.

A suspended review holds no process; when it is resumed the server schedules the run
again and this process (or any other serving the same deployment) picks it up.
"""

from __future__ import annotations

from typing import cast

from prefect import serve
from prefect.deployments.runner import RunnerDeployment

from flows.notion_poll import notion_poll
from flows.video_review import video_review
from prefect_glue.run_settings import load_run_settings
from room.server import start_room

VIDEO_REVIEW = "video-review"
NOTION_POLL = "notion-poll"
POLL_INTERVAL_S = 60


def serve_deployments() -> None:
    """Serve every deployment, and the review room beside them, until interrupted."""
    room = start_room(load_run_settings())
    print(f"review room at {room.url}", flush=True)
    review = video_review.to_deployment(name=VIDEO_REVIEW)
    poll = notion_poll.to_deployment(
        name=NOTION_POLL, interval=POLL_INTERVAL_S, concurrency_limit=1
    )
    try:
        serve(
            cast(RunnerDeployment, review),
            cast(RunnerDeployment, poll),
            print_starting_message=True,
        )
    finally:
        room.stop()
