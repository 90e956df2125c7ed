"""Running the video-review flow in a test and answering its reviews."""

from __future__ import annotations

import contextvars
import json
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar
from uuid import UUID

import httpx
from prefect.client.orchestration import get_client

from clipgate.gate import ProjectSummary
from clipgate.models import VideoProject
from clipgate.store import Store
from flows.video_review import video_review
from prefect_glue.answers import answer_review, waiting_review_key

Result = TypeVar("Result")


class InThread(Generic[Result]):
    """Runs `call` in a thread that sees this test's Prefect settings; keeps its result."""

    def __init__(self, call: Callable[[], Result]) -> None:
        self.result: Result | None = None
        self.error: BaseException | None = None
        context = contextvars.copy_context()
        self.thread = threading.Thread(target=context.run, args=(self._run, call), daemon=True)
        self.thread.start()

    def _run(self, call: Callable[[], Result]) -> None:
        try:
            self.result = call()
        except BaseException as error:
            self.error = error

    def finish(self, timeout_s: float = 180) -> Result:
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), "the call did not finish"
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


class FlowInThread(InThread[ProjectSummary]):
    """Runs the video-review flow on `project` in a thread; `finish` gives its summary."""

    def __init__(self, project: VideoProject) -> None:
        super().__init__(lambda: video_review(project))


def eventually(check: Callable[[], Any], what: str, timeout_s: float = 180) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def paused_round(store: Store, project_id: str, review_round: int) -> str:
    """Wait until the project's run waits on review round `review_round`; its run id."""

    def paused() -> str | None:
        row = store.project(project_id)
        if row is None or row.flow_run_id is None:
            return None
        key = waiting_review_key(row.flow_run_id)
        return row.flow_run_id if key == f"review-{review_round}" else None

    run_id: str = eventually(paused, f"review round {review_round} to pause")
    return run_id


def answer(run_id: str, answer: dict[str, Any]) -> None:
    eventually(lambda: answer_review(run_id, answer), "the run to take input")


def generations(store: Store, project_id: str) -> int:
    return len(store.generation_attempts(project_id))


def review_description(run_id: str, review_round: int) -> str:
    """The markdown on the resume form ("" until the run has stored it)."""
    with get_client(sync_client=True) as client:
        try:
            stored = client.read_flow_run_input(
                key=f"paused-review-{review_round}-description", flow_run_id=UUID(run_id)
            )
            return str(json.loads(stored))
        except httpx.HTTPStatusError as error:
            if error.response.status_code == 404:
                return ""
            raise
