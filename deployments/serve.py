"""`clipgate serve`: the gate's deployments served from this machine, no worker needed.

A suspended review holds no process; when it is resumed the server schedules the run
again and this process (or any other serving the same deployment) picks it up.
"""

from __future__ import annotations

from typing import cast

from prefect import serve
from prefect.deployments.runner import RunnerDeployment

from flows.video_review import video_review

VIDEO_REVIEW = "video-review"


def serve_deployments() -> None:
    """Serve every deployment until interrupted."""
    deployment = cast(RunnerDeployment, video_review.to_deployment(name=VIDEO_REVIEW))
    serve(deployment, print_starting_message=True)
