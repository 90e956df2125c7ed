"""Tasks of the Notion poll: read the answers, hand each to its run, remember where we were."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import NotPausedError

from clipgate.notion.poll import ReviewAnswer, read_answers
from clipgate.notion.sync import review_surface
from clipgate.store import utc_now
from clipgate.wiring import build_store
from prefect_glue.answers import answer_review
from prefect_glue.run_settings import load_run_settings

CURSOR = "notion-poll"


@dataclass(frozen=True)
class Polled:
    answers: list[ReviewAnswer]
    started_at: datetime


@task(cache_policy=NO_CACHE)
def read_notion_answers() -> Polled:
    """Answers from task pages changed since the last complete poll."""
    started = utc_now()
    settings = load_run_settings()
    if settings.notion is None:
        return Polled([], started)
    store = build_store(settings)
    answers = read_answers(
        review_surface(settings.notion),
        store,
        store.poll_cursor(CURSOR),
        frozenset(settings.regenerate_on_error),
    )
    return Polled(answers, started)


@task(cache_policy=NO_CACHE, task_run_name="answer {answer.project_id} round {answer.review_round}")
def deliver_answer(answer: ReviewAnswer) -> bool:
    """Resume the run with the reviewer's answer; False if it is not waiting for it yet."""
    try:
        return answer_review(answer.flow_run_id, answer.answer)
    except NotPausedError:
        return False


@task(cache_policy=NO_CACHE)
def advance_poll_cursor(started_at: datetime) -> None:
    """The next poll reads pages changed since this one started."""
    build_store(load_run_settings()).set_poll_cursor(CURSOR, started_at)
