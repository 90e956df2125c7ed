"""Tasks that keep the gate's books: projects, rounds, decisions and the review evidence."""

from __future__ import annotations

import re
from collections.abc import Sequence

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from clipgate import gate
from clipgate.clips import ProducedClip
from clipgate.gate import ProjectSummary
from clipgate.models import AnswerSource, ClipKey, ReviewDecision, VideoProject
from clipgate.store import Store
from clipgate.wiring import build_store
from prefect_glue.run_settings import load_run_settings


def _store() -> Store:
    return build_store(load_run_settings())


@task(cache_policy=NO_CACHE)
def register_project(project: VideoProject, flow_run_id: str | None) -> None:
    """Create the project if new and note the run that drives it."""
    gate.register_project(_store(), project, flow_run_id)


@task(cache_policy=NO_CACHE)
def clips_to_make(project: VideoProject, review_round: int) -> list[ClipKey]:
    """The clip keys this round needs."""
    return gate.clips_to_make(_store(), project, review_round)


@task(cache_policy=NO_CACHE)
def start_generation(project_id: str, review_round: int) -> None:
    """Mark the round's generation as started."""
    gate.start_generation(_store(), project_id, review_round)


@task(cache_policy=NO_CACHE)
def finish_generation(project_id: str, review_round: int, produced: Sequence[ProducedClip]) -> None:
    """Record the round's clips and open the review."""
    gate.finish_generation(_store(), project_id, review_round, produced)


@task(cache_policy=NO_CACHE)
def record_generation_failures(project_id: str, review_round: int, failures: list[str]) -> None:
    """Log which clips could not be made, and why."""
    gate.record_generation_failures(_store(), project_id, review_round, failures)


@task(cache_policy=NO_CACHE)
def recorded_decision(project_id: str, review_round: int) -> ReviewDecision | None:
    """The round's decision if one is already recorded."""
    return gate.recorded_decision(_store(), project_id, review_round)


@task(cache_policy=NO_CACHE)
def review_table(project_id: str, review_round: int) -> str:
    """The markdown the reviewer sees on the resume form."""
    settings = load_run_settings()
    return gate.review_table(build_store(settings), project_id, review_round, settings.room_url)


@task(cache_policy=NO_CACHE)
def publish_evidence(project_id: str, review_round: int) -> None:
    """Write the project's review evidence so far as a markdown artifact of this run."""
    create_markdown_artifact(
        markdown=gate.audit(_store(), project_id).markdown(),
        key=_artifact_key(f"review-evidence-{project_id}"),
        description=f"Review evidence after round {review_round}",
    )


def _artifact_key(name: str) -> str:
    # Artifact keys allow only lowercase letters, digits and dashes.
    return re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")


@task(cache_policy=NO_CACHE)
def record_decision(
    project_id: str, review_round: int, decision: ReviewDecision, source: AnswerSource
) -> ReviewDecision:
    """End the review round; the decision that counts (the first one recorded)."""
    return gate.record_decision(
        _store(), project_id, review_round, decision, source
    ).decided_by.decision


@task(cache_policy=NO_CACHE)
def summarize(project_id: str) -> ProjectSummary:
    """Where the project stands."""
    return gate.summarize(_store(), project_id)
