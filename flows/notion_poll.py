"""The scheduled Notion poll: resume every waiting run whose reviewer answered in Notion."""

from __future__ import annotations

from prefect import flow

from tasks.poll import advance_poll_cursor, deliver_answer, read_notion_answers


@flow(name="notion-poll")
def notion_poll() -> int:
    """One poll: read changed task pages once, answer waiting runs; how many were resumed."""
    polled = read_notion_answers()
    delivered = [deliver_answer(answer) for answer in polled.answers]
    # A run that was not ready for its answer is read again next poll, from the same point.
    if all(delivered):
        advance_poll_cursor(polled.started_at)
    return sum(delivered)
