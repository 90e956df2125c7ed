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
    ├── NotionError             a request to Notion did not go through
    │   ├── TransientNotionError   Notion kept failing (5xx, 429, timeouts); retry later
    │   │   └── AmbiguousWrite  a write failed and may have applied; look before sending again
    │   └── PermanentNotionError   Notion refused the request itself (400, 413, too long)
    └── SpeechError             the speech engine could not speak a narration

What is retried, and by what (nothing else is):
- One HTTP request that is safe to send again, by `clipgate.retries` (bounded attempts
  and time, exponential backoff with jitter, the server's Retry-After honoured): every
  Kling query, look-up and download, and a Kling submission once a look-up has shown
  the task does not exist, when Kling is busy (429, codes 1302/1303), failing (5xx,
  codes 5000-5002) or not answering (timeouts); every R2 request when R2 throttles
  (429, SlowDown), fails (5xx) or times out or drops the connection.
- Notion requests, by the same policy through `clipgate.notion.gateway`: 429 and 529
  after Retry-After; 409, 5xx and timeouts only for a request that adds nothing (one
  that adds raises `AmbiguousWrite` instead, and its caller looks before sending again).
- A whole clip, by Prefect (the produce-clip task, twice, 30 s and then 120 s later),
  only after a `TransientGenerationError`; it resumes the Kling task it started.
- A whole publish to Notion, by Prefect (the publish-review task, twice, 30 s apart),
  only after a `TransientNotionError`; rows already right are left as they are.
Every other error stops the step with a message that says what was wrong and what to do.
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
    """A generation failure worth retrying (rate limit, timeout, 5xx).

    `retry_after_s` is how long the provider asked us to wait, when it said (Retry-After).
    """

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class AccountError(GenerationError):
    """The provider account cannot pay for generation; retrying will not help."""


class StorageError(ClipgateError):
    """A clip could not be stored, or storing it would overwrite a different one."""


class NotionError(ClipgateError):
    """A request to Notion did not go through."""


class TransientNotionError(NotionError):
    """Notion kept failing a request (5xx, 429, timeouts); the same request may pass later."""


class AmbiguousWrite(TransientNotionError):
    """A write failed in a way that may still have applied it; look before writing again."""


class PermanentNotionError(NotionError):
    """Notion refused the request itself (400, 413, a value too long); resending cannot help."""


class SpeechError(ClipgateError):
    """The speech engine could not speak a narration."""
