"""Answering a waiting review from outside the run: CLI, review room, Notion, webhook, demo.

Every answer takes one path: it is checked against the same JSON schema the Prefect
server checks, recorded in the store (a round is decided once, by the first answer),
and only then handed to the waiting run. An answer is never lost with a process: a run
that restarts replays it, and a run whose process is gone is named with the command
that finishes it (`clipgate recover`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from prefect import resume_flow_run
from prefect._internal.pydantic.v2_schema import create_v2_schema
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import State
from prefect.exceptions import NotPausedError
from prefect.input import RunInput
from prefect.utilities.schema_tools import ValidationError, validate
from pydantic import BaseModel
from pydantic import ValidationError as ModelValidationError

from clipgate import gate
from clipgate.errors import AnswerRefused, InputError
from clipgate.gate import RecordedAnswer
from clipgate.liveness import is_alive
from clipgate.models import AnswerSource, ReviewDecision
from clipgate.settings import Settings
from clipgate.states import Status
from clipgate.store import Store
from clipgate.wiring import existing_store, unknown_project


class ReviewInput(ReviewDecision, RunInput):
    """The resume form: approve, or flag clips 1-18 with optional notes."""


# The run reports Paused a moment before it stores its input schema; until then the
# server refuses to resume it, and the answer must be given again shortly.
_SCHEMA_NOT_STORED = "Run input schema not found"
# How long an answer waits for a live run to reach its pause (it may be storing clips).
DELIVERY_WAIT_S = 30.0


class AnswerOutcome(BaseModel):
    """What happened to an answer: recorded or not, handed to the run or not, and why."""

    project_id: str
    review_round: int
    accepted: bool
    delivered: bool
    decided_by: RecordedAnswer
    message: str


def check_answer(answer: Mapping[str, Any]) -> ReviewDecision:
    """The answer as a decision, checked as the Prefect server checks the resume form."""
    schema = create_v2_schema(ReviewInput.__name__, model_base=ReviewInput)
    try:
        validate(dict(answer), schema, raise_on_error=True)
        return ReviewDecision.model_validate(dict(answer))
    except ValidationError as error:
        raise AnswerRefused(f"the answer was refused: {error}") from None
    except ModelValidationError as error:
        reasons = "; ".join(problem["msg"] for problem in error.errors())
        raise AnswerRefused(f"the answer was refused: {reasons}") from None


def submit_answer(
    settings: Settings,
    project_id: str,
    answer: Mapping[str, Any],
    source: AnswerSource,
    review_round: int | None = None,
) -> AnswerOutcome:
    """Record `answer` for the project's waiting round, then resume the run with it.

    `review_round` is the round the answerer saw; without it, the project's current
    round. Raises AnswerRefused when the answer breaks the form's rules and InputError
    when the project is unknown or no round of it is waiting for review.
    """
    decision = check_answer(answer)
    store = existing_store(settings)
    row = store.project(project_id)
    if row is None:
        raise unknown_project(settings, project_id)
    answering = review_round or row.review_round
    earlier = gate.recorded_answer(store, project_id, answering)
    if earlier is None and row.status != Status.VIDEO_READY:
        latest = gate.latest_answer(store, project_id)
        said = f"; the last answer: {latest.describe()}" if latest else ""
        raise InputError(
            f"project {project_id} is not waiting for a review (status {row.status}, "
            f"round {row.review_round}){said}"
        )
    recorded = gate.record_decision(store, project_id, answering, decision, source)
    delivered, delivery = deliver(store, project_id, recorded.decided_by)
    if recorded.accepted:
        message = f"answered review round {answering} of {project_id}: {decision.decision}"
    else:
        message = f"not recorded: {recorded.decided_by.describe()}"
    return AnswerOutcome(
        project_id=project_id,
        review_round=answering,
        accepted=recorded.accepted,
        delivered=delivered,
        decided_by=recorded.decided_by,
        message=f"{message}; {delivery}",
    )


def deliver(
    store: Store, project_id: str, answer: RecordedAnswer, wait_s: float = DELIVERY_WAIT_S
) -> tuple[bool, str]:
    """Hand a recorded answer to the run waiting on its round; (resumed?, what happened).

    A live run not yet at its pause is waited for; a run that took its answer already, or
    one whose process is gone, is left alone and the message says what to do.
    """
    row = store.project(project_id)
    if row is None or row.flow_run_id is None:
        return False, f"no run is recorded; run `clipgate recover {project_id}`"
    run_id = row.flow_run_id
    key = f"review-{answer.review_round}"
    deadline = time.monotonic() + wait_s
    while True:
        state = _run_state(run_id)
        beat = store.heartbeat(project_id)
        alive = is_alive(beat) and beat is not None and beat.flow_run_id == run_id
        if state is None or state.is_final() or not (alive or is_suspended(state)):
            return False, (
                f"the answer is recorded, but run {run_id} has no process to take it; "
                f"run `clipgate recover {project_id}` to finish the project"
            )
        if state.is_paused() and state.state_details.pause_key == key:
            if _resume(run_id, answer.decision):
                return True, f"run {run_id} resumed"
        elif not state.is_paused() and _went_on(store, project_id, answer):
            return False, f"run {run_id} already went on past round {answer.review_round}"
        if time.monotonic() > deadline:
            return False, (
                f"the answer is recorded; run {run_id} did not reach its review within "
                f"{wait_s:.0f} s and will read the answer when it does"
            )
        time.sleep(0.5)


def waiting_review_key(flow_run_id: str) -> str | None:
    """The pause key ("review-N") the run waits on, or None when it is not paused."""
    state = _run_state(flow_run_id)
    if state is None or not state.is_paused():
        return None
    return state.state_details.pause_key


def answer_review(flow_run_id: str, answer: dict[str, Any]) -> bool:
    """Resume the paused run with `answer` as it is; False if it is not ready for input yet.

    Raises AnswerRefused with the server's reason when the answer breaks the form's
    rules; the run then keeps waiting.
    """
    return _resume(flow_run_id, answer)


def _resume(flow_run_id: str, answer: ReviewDecision | dict[str, Any]) -> bool:
    run_input = answer.model_dump(mode="json") if isinstance(answer, BaseModel) else answer
    try:
        resume_flow_run(UUID(flow_run_id), run_input=run_input)
    except NotPausedError:
        return False
    except RuntimeError as error:
        if _SCHEMA_NOT_STORED in str(error):
            return False
        raise AnswerRefused(f"the Prefect server refused the answer: {error}") from None
    return True


def _run_state(flow_run_id: str) -> State[Any] | None:
    with get_client(sync_client=True) as client:
        return client.read_flow_run(UUID(flow_run_id)).state


def is_suspended(state: State[Any]) -> bool:
    # A suspended run holds no process: resuming it schedules it again on a worker.
    return state.is_paused() and bool(state.state_details.pause_reschedule)


def _went_on(store: Store, project_id: str, answer: RecordedAnswer) -> bool:
    # Recording an answer leaves the project queued (flag) or approved; the run moves it
    # on from there only once it has taken the answer.
    row = store.project(project_id)
    if row is None:
        return False
    if answer.decision.approved:
        return row.status != Status.VIDEO_APPROVED
    return row.review_round > answer.review_round + 1 or row.status != Status.QUEUED
