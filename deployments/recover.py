"""`clipgate recover PROJECT`: finish a project whose run lost its process.

The store knows everything a run needs: the manifest, every clip made (with where it is
stored), and every recorded answer. Recovering marks the dead run crashed in Prefect,
then runs the gate again here: clips already made are reused, recorded answers are
replayed, and only what never finished is done. A run of a deployment (on a work pool)
is put back on its pool instead, where any live worker runs it again the same way; a
suspended one lost nothing and is only handed a recorded answer it never got.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, TextIO
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import State
from prefect.states import AwaitingRetry, Crashed

from clipgate import gate
from clipgate.errors import InputError
from clipgate.liveness import STALE_AFTER_S, is_alive
from clipgate.models import VideoProject
from clipgate.settings import Settings
from clipgate.states import Status
from clipgate.store import Store, utc_now
from clipgate.wiring import existing_store, unknown_project
from prefect_glue.answers import deliver, is_suspended, waiting_review_key


def recover_project(settings: Settings, project_id: str, out: TextIO) -> int:
    """Finish `project_id` from where it stopped; the process exit code."""
    store = existing_store(settings)
    row = store.project(project_id)
    if row is None:
        raise unknown_project(settings, project_id)
    spec = store.project_spec(project_id)
    if spec is None:
        raise InputError(
            f"project {project_id} has no stored manifest (it was started by an older "
            "clipgate); start it again with its manifest"
        )
    if row.status == Status.AUDIO_READY:
        print(f"project {project_id} is complete ({row.status}); nothing to recover", file=out)
        return 0
    beat = store.heartbeat(project_id)
    if (
        row.flow_run_id
        and beat is not None
        and beat.flow_run_id == row.flow_run_id
        and (is_alive(beat))
    ):
        return _hand_over_answer(store, project_id, row.flow_run_id, out)
    if row.flow_run_id and (deployed := _deployed_state(row.flow_run_id)) is not None:
        if is_suspended(deployed):
            return _hand_over_answer(store, project_id, row.flow_run_id, out)
        if deployed.is_scheduled() or deployed.is_pending() or _just_started(deployed):
            print(
                f"run {row.flow_run_id} of {project_id} is {deployed.name} on its work pool "
                f"and has not beaten yet; nothing to recover (a run whose worker died is "
                f"recovered {STALE_AFTER_S:g} s after its last beat)",
                file=out,
            )
            return 0
        if deployed.is_final() and not deployed.is_crashed():
            # Failed, Cancelled or Completed on its own: its worker was there to say so.
            print(
                f"run {row.flow_run_id} of {project_id} ended {deployed.name}"
                f"{f' ({deployed.message})' if deployed.message else ''}; it did not lose its "
                "worker, so there is nothing to recover",
                file=out,
            )
            return 0
        return _requeue(row.flow_run_id, project_id, out)
    if row.flow_run_id:
        _mark_crashed(row.flow_run_id)
    print(
        f"recovering {project_id} from {row.status} (round {row.review_round}): clips already "
        f"made are reused and {len(store.review_events(project_id))} recorded answer(s) "
        "replayed",
        file=out,
        flush=True,
    )
    print(
        f"when it waits for review, answer with `clipgate review {project_id} --approve` "
        "(or --flag 'clips 5, 12') from another shell, or in the review room",
        file=out,
        flush=True,
    )
    from flows.video_review import video_review

    summary = video_review(VideoProject.model_validate(spec))
    print(f"project {project_id} finished: status {summary.status}", file=out)
    return 0


def _hand_over_answer(store: Store, project_id: str, run_id: str, out: TextIO) -> int:
    # The run's process is alive: the only thing that can be missing is an answer that
    # was recorded but never handed to it (its sender died in between).
    key = waiting_review_key(run_id)
    answer = None
    if key is not None and key.startswith("review-"):
        answer = gate.recorded_answer(store, project_id, int(key.removeprefix("review-")))
    if answer is None:
        print(
            f"run {run_id} of {project_id} is alive or waiting, and has no recorded answer "
            "waiting; nothing to recover",
            file=out,
        )
        return 0
    delivered, what = deliver(store, project_id, answer)
    print(f"{answer.describe()}; {what}", file=out)
    return 0 if delivered else 1


def _deployed_state(run_id: str) -> State[Any] | None:
    """The run's state if it is a run of a deployment, else None."""
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(run_id))
    return run.state if run.deployment_id is not None and run.state is not None else None


def _just_started(state: State[Any]) -> bool:
    # A run beats only once its flow has begun: for its first seconds, a stopped beat of
    # its previous process is no sign that its worker is gone.
    return state.is_running() and utc_now() - state.timestamp < timedelta(seconds=STALE_AFTER_S)


def _requeue(run_id: str, project_id: str, out: TextIO) -> int:
    # Its worker died with it: Crashed says so, and AwaitingRetry puts the same run back
    # on its work pool, so that `clipgate review` and the Prefect UI keep finding it.
    _mark_crashed(run_id)
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(
            UUID(run_id),
            AwaitingRetry(message="`clipgate recover`: any live worker of the pool runs it"),
            force=True,
        )
    print(
        f"run {run_id} of {project_id} lost its worker: marked crashed and put back on its "
        "work pool, where a live worker runs it again (clips made are reused, answers "
        "replayed)",
        file=out,
    )
    return 0


def _mark_crashed(run_id: str) -> None:
    # A killed process leaves its run Running or Paused forever; say what happened to it.
    with get_client(sync_client=True) as client:
        state: Any = client.read_flow_run(UUID(run_id)).state
        if state is not None and not state.is_final():
            client.set_flow_run_state(
                UUID(run_id),
                Crashed(message="its process was gone; `clipgate recover` took over"),
                force=True,
            )
