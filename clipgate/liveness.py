"""Is the process that runs a project's flow still there? A heartbeat in the store says.

A paused review keeps its flow process; if that process is killed, Prefect still shows
the run as paused or running, and an answer sent to it would be lost. The process beats
every few seconds while the flow runs; a beat that stopped, a process that is gone from
this host, or a beat older than `STALE_AFTER_S` from another host means nobody is there.
"""

from __future__ import annotations

import os
import socket
import threading
from datetime import datetime, timedelta
from types import TracebackType

from clipgate.store import RunHeartbeatRow, Store, as_utc, utc_now

BEAT_EVERY_S = 5.0
STALE_AFTER_S = 30.0


def this_process(project_id: str, flow_run_id: str) -> RunHeartbeatRow:
    """A beat of this process for `flow_run_id`, stamped now."""
    return RunHeartbeatRow(
        project_id=project_id,
        flow_run_id=flow_run_id,
        host=socket.gethostname(),
        pid=os.getpid(),
        beat_at=utc_now(),
    )


def is_alive(beat: RunHeartbeatRow | None, now: datetime | None = None) -> bool:
    """True while the process that wrote `beat` may still be running its flow."""
    if beat is None or beat.stopped:
        return False
    if beat.host == socket.gethostname():
        try:
            os.kill(beat.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    last = as_utc(beat.beat_at)
    return last is not None and (now or utc_now()) - last < timedelta(seconds=STALE_AFTER_S)


class Heartbeat:
    """Beats for one flow run in a background thread until the `with` block ends."""

    def __init__(self, store: Store, project_id: str, flow_run_id: str) -> None:
        self.store = store
        self.project_id = project_id
        self.flow_run_id = flow_run_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="clipgate-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self.store.beat(this_process(self.project_id, self.flow_run_id))
        self._thread.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _error: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        if self._owned():
            stopped = this_process(self.project_id, self.flow_run_id)
            stopped.stopped = True
            self.store.beat(stopped)

    def _owned(self) -> bool:
        current = self.store.heartbeat(self.project_id)
        return current is not None and current.flow_run_id == self.flow_run_id

    def _beat(self) -> None:
        while not self._stop.wait(BEAT_EVERY_S):
            # A newer run of the project has taken over: this one has nothing to say.
            if not self._owned():
                return
            self.store.beat(this_process(self.project_id, self.flow_run_id))
