"""Answering a paused review from outside the run: the demo, tests, CLI and Notion poll."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from prefect import resume_flow_run
from prefect.client.orchestration import get_client

# The run reports Paused a moment before it stores its input schema; until then the
# server refuses to resume it, and the answer must be given again shortly.
_SCHEMA_NOT_STORED = "Run input schema not found"


def waiting_review_key(flow_run_id: str) -> str | None:
    """The pause key ("review-N") the run waits on, or None when it is not paused."""
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(UUID(flow_run_id)).state
    if state is None or not state.is_paused():
        return None
    return state.state_details.pause_key


def answer_review(flow_run_id: str, answer: dict[str, Any]) -> bool:
    """Resume the paused run with `answer`; False if it is not ready for input yet.

    Raises RuntimeError with the server's reason when the answer breaks the form's rules;
    the run then keeps waiting.
    """
    try:
        resume_flow_run(UUID(flow_run_id), run_input=answer)
    except RuntimeError as error:
        if _SCHEMA_NOT_STORED in str(error):
            return False
        raise
    return True
