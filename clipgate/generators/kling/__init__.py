"""Kling AI image-to-video: the production generator.

One clip is one Kling task. Its `external_task_id` is the clip key's token, so every
attempt of every clip has its own id and a rerun after a crash finds the task it already
paid for instead of paying again. The result is downloaded at once, because Kling clears
generated videos after 30 days, and lands faststart (`mp4.replace_faststart`); the attempt
records when the provider's URL stops working.

The package, along its seams: `prices` (what a clip costs), `config` (KlingConfig),
`token` (the JWT), `errors` (Kling's envelope and error table), `client` (the HTTP API,
one task at a time) and `generator` (a clip from a still and a motion prompt).

What Kling documents (API reference, "Video Generation - Image to Video" and "General
Information", api-singapore.klingai.com) and this package relies on:
- `GET /v1/videos/image2video/{id}` takes either the task_id or the external_task_id in
  the path; the list query `GET /v1/videos/image2video` takes only `pageNum` (1-1000) and
  `pageSize` (1-500, default 30), so it cannot look one task up.
- "the customized task ID must be unique within a single user account".
- The error table: 1000-1004 (HTTP 401) token problems, 1100-1102 (429) account problems,
  1103 (403), 1200-1203 (400/404) bad requests, 1300/1301 (400) content policy,
  1302/1303 (429) rate and concurrency limits, 1304 (429) IP allow list, 5000-5002 (5xx).
What it does not document, and is assumed here: the code of the refusal of a reused
external_task_id (modelled as 400/1201, "invalid parameter value"), how an unknown id
is answered on the single-task path (404/1203 "resource not found", or 400), and whether
a refusal carries Retry-After (honoured when it does).

Errors, by what the caller should do:
- TransientGenerationError: rate limit (1302), concurrency limit (1303), HTTP 429/5xx,
  timeouts. Each request is retried by the config's `retry_policy` (clipgate.retries:
  max_retries + 1 attempts, at most retry_timeout_s, backoff from retry_initial_s to
  retry_max_s or Kling's Retry-After), each retry logged as a warning, then raised;
  running the clip again resumes the same task. A submission whose outcome is unclear
  (timeout, 5xx) is followed by a look-up by external_task_id before it is sent again.
- AccountError: account exception (1100), arrears (1101), resource pack used up (1102).
  Raised at once; nothing is retried.
- ConfigurationError: Kling refused the credentials (1000-1004, 1103, 1304), or nothing
  accepts a connection at the base URL (refused, unknown host). Raised at once: retrying
  an address nobody answers on only hides the mistake for minutes.
- GenerationError: content policy (1300, 1301), bad parameters, or the task failed; the
  message carries Kling's own reason.
"""

from clipgate.generators.kling.client import (
    IMAGE2VIDEO_PATH,
    RESULT_RETENTION,
    KlingClient,
    KlingTask,
    open_http,
)
from clipgate.generators.kling.config import (
    OFFICIAL_BASE_URL,
    KlingConfig,
    KlingDuration,
    KlingMode,
)
from clipgate.generators.kling.generator import MAX_IMAGE_BYTES, KlingGenerator
from clipgate.generators.kling.prices import DEFAULT_PRICES_USD, price_key
from clipgate.generators.kling.token import KlingToken, sign_jwt

__all__ = [
    "DEFAULT_PRICES_USD",
    "IMAGE2VIDEO_PATH",
    "MAX_IMAGE_BYTES",
    "OFFICIAL_BASE_URL",
    "RESULT_RETENTION",
    "KlingClient",
    "KlingConfig",
    "KlingDuration",
    "KlingGenerator",
    "KlingMode",
    "KlingTask",
    "KlingToken",
    "open_http",
    "price_key",
    "sign_jwt",
]
