"""The review gate: make 18 clips, wait for a human, remake only what they flag, narrate."""

from __future__ import annotations

from prefect import Task, flow, pause_flow_run, suspend_flow_run, unmapped
from prefect.futures import PrefectFutureList
from prefect.runtime import deployment, flow_run

from clipgate.clips import ProducedClip
from clipgate.errors import GenerationError
from clipgate.gate import ProjectSummary
from clipgate.liveness import Heartbeat
from clipgate.models import AnswerSource, ClipKey, ReviewDecision, VideoProject
from clipgate.settings import Settings, load_settings
from clipgate.wiring import build_store
from flows.narration import narration
from prefect_glue.answers import ReviewInput
from prefect_glue.generation_pool import GenerationPool
from tasks.clips import produce_clip_for
from tasks.publish import check_review_surface, publish_review
from tasks.review import (
    clips_to_make,
    finish_generation,
    publish_evidence,
    record_decision,
    record_generation_failures,
    recorded_decision,
    register_project,
    review_table,
    start_generation,
    summarize,
)


# Prefect's stubs type the task runner's futures invariantly, so mypy rejects the runner
# Prefect documents for this argument.
@flow(
    name="video-review",
    task_runner=GenerationPool(),  # type: ignore[arg-type]
    persist_result=True,
)
def video_review(project: VideoProject) -> ProjectSummary:
    """Run the gate for one video project until a reviewer approves, then narrate."""
    settings = load_settings()
    produce = produce_clip_for(settings)
    check_review_surface(project)
    run_id = str(flow_run.get_id())
    register_project(project, run_id)
    with Heartbeat(build_store(settings), project.project_id, run_id):
        return review_until_approved(project, settings, produce)


def review_until_approved(
    project: VideoProject,
    settings: Settings,
    produce: Task[[VideoProject, ClipKey], ProducedClip],
) -> ProjectSummary:
    """Make the round's clips, wait for the answer, repeat until approved, then narrate."""
    review_round = 1
    while True:
        keys = clips_to_make(project, review_round)
        start_generation(project.project_id, review_round)
        futures = produce.map(project=unmapped(project), key=keys)
        produced = made_or_reported(project.project_id, review_round, keys, futures)
        finish_generation(project.project_id, review_round, produced)
        publish_review(project)
        decision = recorded_decision(project.project_id, review_round)
        if decision is None:
            answer = wait_for_review(project.project_id, review_round, settings)
            decision = record_decision(
                project.project_id, review_round, answer, source=AnswerSource.PREFECT_FORM
            )
            publish_review(project)
        publish_evidence(project.project_id, review_round)
        if decision.approved:
            break
        review_round += 1
    narration(project)
    return summarize(project.project_id)


def made_or_reported(
    project_id: str,
    review_round: int,
    keys: list[ClipKey],
    futures: PrefectFutureList[ProducedClip],
) -> list[ProducedClip]:
    """Wait for every clip; if any failed, log each failure and stop short of Video Ready."""
    futures.wait()
    made: list[ProducedClip] = []
    failures: list[str] = []
    for key, future in zip(keys, futures, strict=True):
        outcome = future.result(raise_on_failure=False)
        if isinstance(outcome, ProducedClip):
            made.append(outcome)
        else:
            failures.append(f"clip {key.number} attempt {key.attempt}: {outcome}")
    if failures:
        record_generation_failures(project_id, review_round, failures)
        raise GenerationError(f"{len(failures)} clip(s) could not be made: " + "; ".join(failures))
    return made


def wait_for_review(project_id: str, review_round: int, settings: Settings) -> ReviewDecision:
    """Wait until a reviewer answers the resume form for this round.

    A deployed run suspends: its process exits, and on resume the run starts again from
    the top, where every clip is a cache hit and this wait hands back the answer given.
    A run started by hand (the demo, a script) pauses and keeps its process.
    """
    form = ReviewInput.with_initial_data(description=review_table(project_id, review_round))
    key = f"review-{review_round}"
    if deployment.id:
        answer = suspend_flow_run(wait_for_input=form, timeout=settings.review_timeout_s, key=key)
    else:
        answer = pause_flow_run(
            wait_for_input=form,
            timeout=settings.review_timeout_s,
            poll_interval=settings.review_poll_interval_s,
            key=key,
        )
    return ReviewDecision.model_validate(answer.model_dump())
