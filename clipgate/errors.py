"""Every error clipgate raises on purpose.

    ClipgateError
    ├── ConfigurationError      settings, credentials or set-up are wrong; fix them and rerun
    ├── InputError              a project manifest, a review or a file given to us is wrong
    │   ├── AnswerRefused       a review answer breaks the resume form's rules
    │   ├── FeedbackError       reviewer text names no clip, or a clip outside 1-18
    │   └── MP4Error            a file is not an MP4 we can read or relocate
    ├── InvalidTransition       a status move the state machine does not allow
    ├── GenerationError         the video generator could not make a clip
    │   ├── TransientGenerationError   worth retrying (rate limits, timeouts, 5xx)
    │   └── AccountError        the provider account cannot pay; stop, do not retry
    ├── StorageError            a clip could not be stored or would overwrite another
    ├── NotionError             Notion refused a request, or kept failing it
    └── SpeechError             the speech engine could not speak a narration

Only `TransientGenerationError` is retried automatically; every other error stops the
step with a message that says what was wrong and what to do.
"""

from __future__ import annotations


class ClipgateError(Exception):
    """Base of every error clipgate raises on purpose."""


class ConfigurationError(ClipgateError):
    """Settings, credentials or set-up are wrong."""


class InputError(ClipgateError):
    """Something handed to clipgate (manifest, review, file) is wrong."""


class AnswerRefused(InputError):
    """A review answer breaks the resume form's rules; the run keeps waiting."""


class FeedbackError(InputError):
    """Reviewer text names no clip, or names a clip outside 1-18."""


class MP4Error(InputError):
    """A file is not an MP4 we can read or relocate."""


class InvalidTransition(ClipgateError):
    """A status change the state machine does not allow."""

    def __init__(self, current: str, requested: str) -> None:
        super().__init__(
            f"cannot move a video project from {current!r} to {requested!r}: "
            "that transition is not in the state machine"
        )
        self.current = current
        self.requested = requested


class GenerationError(ClipgateError):
    """The video generator could not make a clip."""


class TransientGenerationError(GenerationError):
    """A generation failure worth retrying (rate limit, timeout, 5xx)."""


class AccountError(GenerationError):
    """The provider account cannot pay for generation; retrying will not help."""


class StorageError(ClipgateError):
    """A clip could not be stored, or storing it would overwrite a different one."""


class NotionError(ClipgateError):
    """Notion refused a request, or kept failing it after retries."""


class SpeechError(ClipgateError):
    """The speech engine could not speak a narration."""
