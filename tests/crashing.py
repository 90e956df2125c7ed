"""Runs clipgate in a process that kills itself (SIGKILL) at one chosen step.

    python -m tests.crashing STEP NTH flow MANIFEST      run the gate on a manifest
    python -m tests.crashing STEP NTH cli ARGS...        run a clipgate command

The NTH call of the step's function kills the process, as a power cut or an OOM kill
would: no exception handler, no `finally`, no atexit runs. Everything before that
point ran for real; the fault-matrix tests then check that the documented recovery
finishes the project as if nothing had happened.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clipgate import mp4, narration
from clipgate.generators.local import LocalMotionGenerator
from clipgate.store import Store


def _killing(original: Callable[..., Any], nth: int, after: bool) -> Callable[..., Any]:
    calls = 0
    counting = threading.Lock()

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        # Clips are made on several threads: each call takes its own number under the
        # lock, or two calls could both read the count past NTH and nobody would die.
        with counting:
            calls += 1
            call = calls
        if call == nth and not after:
            os.kill(os.getpid(), signal.SIGKILL)
        result = original(*args, **kwargs)
        if call == nth and after:
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    return wrapper


def _install(step: str, nth: int) -> None:
    """Patch the function that marks `step` so that its NTH call kills the process."""
    if step == "generating":
        LocalMotionGenerator.generate = _killing(  # type: ignore[method-assign]
            LocalMotionGenerator.generate, nth, after=False
        )
    elif step == "before-faststart":
        mp4.make_faststart = _killing(mp4.make_faststart, nth, after=False)
    elif step == "storing":
        # The copy is written and synced, the link that puts it in place not yet made.
        os.link = _killing(os.link, nth, after=False)
    elif step == "after-recording":
        Store.record_generation = _killing(  # type: ignore[method-assign]
            Store.record_generation, nth, after=True
        )
    elif step == "narrating":
        narration.speak_to_wav = _killing(  # type: ignore[attr-defined]
            narration.speak_to_wav,  # type: ignore[attr-defined]
            nth,
            after=False,
        )
    elif step == "delivering":
        import prefect_glue.answers

        prefect_glue.answers.deliver = _killing(prefect_glue.answers.deliver, nth, after=False)
    elif step != "none":
        raise SystemExit(f"unknown step {step!r}")


def main(arguments: list[str]) -> int:
    step, nth, mode, *rest = arguments
    _install(step, int(nth))
    if mode == "flow":
        from clipgate.models import VideoProject
        from flows.video_review import video_review

        video_review(VideoProject.model_validate_json(Path(rest[0]).read_text()))
        return 0
    from clipgate.cli import main as clipgate

    return clipgate(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
