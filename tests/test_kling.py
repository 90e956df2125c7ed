"""The Kling generator against a local Kling speaking the HTTP API over a real socket."""

from __future__ import annotations

import base64
import json
import logging
import re
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import imageio_ffmpeg
import pytest
import stamina
from pydantic import SecretStr, ValidationError

from blocks.kling import KlingAccount
from clipgate import mp4
from clipgate.errors import (
    AccountError,
    ConfigurationError,
    GenerationError,
    TransientGenerationError,
)
from clipgate.generators import ClipGenerator, GenerationResult
from clipgate.generators.kling import (
    IMAGE2VIDEO_PATH,
    KlingClient,
    KlingConfig,
    KlingGenerator,
    KlingToken,
    sign_jwt,
)
from clipgate.models import ClipKey, ClipSpec
from clipgate.settings import Settings, load_settings
from clipgate.wiring import build_generator
from tests.fakes.kling_server import CONCURRENCY_REFUSAL, KlingFake, Refusal
from tests.log_helpers import retry_warnings

Outcome = GenerationResult | Exception


@pytest.fixture(scope="session")
def still(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real PNG composite still."""
    target = tmp_path_factory.mktemp("still") / "composite.png"
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            *("-hide_banner", "-loglevel", "error", "-y"),
            *("-f", "lavfi", "-i", "color=c=teal:s=640x360", "-frames:v", "1", str(target)),
        ],
        check=True,
    )
    return target


@pytest.fixture
def kling() -> Iterator[KlingFake]:
    """A local Kling: 0.1 s per task, five tasks at a time."""
    with KlingFake(task_seconds=0.1, concurrency_limit=5) as fake:
        yield fake


@pytest.fixture
def real_waits() -> Iterator[None]:
    """Retries wait as the policy says (milliseconds here): riding out a queue takes time."""
    with stamina.set_testing(False):
        yield


def config_for(fake: KlingFake, **overrides: Any) -> KlingConfig:
    """A config that reaches `fake` and polls and backs off in milliseconds."""
    settings: dict[str, Any] = {
        "access_key": SecretStr(fake.access_key),
        "secret_key": SecretStr(fake.secret_key),
        "base_url": fake.base_url,
        "negative_prompt": "blur, watermark",
        "request_timeout_s": 5.0,
        "max_retries": 12,
        "retry_initial_s": 0.01,
        "retry_max_s": 0.05,
        "poll_initial_s": 0.02,
        "poll_max_s": 0.05,
        "task_timeout_s": 10.0,
    }
    settings.update(overrides)
    return KlingConfig(**settings)


def clip(
    number: int, still: Path, attempt: int = 1, prompt: str = "slow zoom in"
) -> tuple[ClipKey, ClipSpec]:
    key = ClipKey(project_id="proj-1", channel="chan", number=number, attempt=attempt)
    spec = ClipSpec(number=number, composite_image=still, motion_prompt=prompt)
    return key, spec


def output_for(folder: Path, key: ClipKey) -> Path:
    return folder / key.object_key


def generate_all(
    generator: KlingGenerator,
    clips: Sequence[tuple[ClipKey, ClipSpec]],
    folder: Path,
    workers: int,
) -> dict[int, Outcome]:
    """Generate `clips` from a pool of `workers` threads; each clip's result or error."""

    def one(key: ClipKey, spec: ClipSpec) -> Outcome:
        try:
            return generator.generate(key, spec, output_for(folder, key))
        except Exception as error:
            return error

    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {key.number: pool.submit(one, key, spec) for key, spec in clips}
    return {number: future.result() for number, future in futures.items()}


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def all_clips(still: Path, attempt: int = 1) -> list[tuple[ClipKey, ClipSpec]]:
    return [clip(number, still, attempt) for number in range(1, 19)]


def test_eighteen_clips_from_five_workers_never_exceed_five_in_flight(
    kling: KlingFake, still: Path, tmp_path: Path
) -> None:
    """18 clips through a concurrency cap of 5: all made, at most 5 tasks ever in flight."""
    outcomes = generate_all(KlingGenerator(config_for(kling)), all_clips(still), tmp_path, 5)

    assert all(isinstance(outcome, GenerationResult) for outcome in outcomes.values()), outcomes
    assert len(kling.submissions) == 18
    assert 1 <= kling.peak_in_flight <= 5
    assert kling.create_answers[1303] == 0


@pytest.mark.usefixtures("real_waits")
def test_more_workers_than_slots_ride_out_concurrency_refusals(still: Path, tmp_path: Path) -> None:
    """Eight workers against three slots: 1303 answers are retried, the cap holds, all made."""
    with KlingFake(task_seconds=0.1, concurrency_limit=3) as fake:
        # Five threads always waiting for a slot: the retry budget must outlast the queue.
        generator = KlingGenerator(config_for(fake, max_retries=60))
        outcomes = generate_all(generator, all_clips(still), tmp_path, 8)

    assert all(isinstance(outcome, GenerationResult) for outcome in outcomes.values()), outcomes
    assert fake.peak_in_flight <= 3
    assert fake.create_answers[1303] > 0
    assert len(fake.submissions) == 18


def test_storm_of_concurrency_refusals_is_ridden_out(
    kling: KlingFake, still: Path, tmp_path: Path
) -> None:
    """Ten 1303 answers in a row: the clip is still made, with exactly one paid task."""
    kling.refuse_creations(CONCURRENCY_REFUSAL, times=10)
    key, spec = clip(4, still)

    KlingGenerator(config_for(kling)).generate(key, spec, output_for(tmp_path, key))

    assert kling.create_answers[1303] == 10
    assert len(kling.submissions) == 1


def test_refusals_beyond_the_retry_budget_raise_a_transient_error(
    kling: KlingFake, still: Path, tmp_path: Path
) -> None:
    """Retries are bounded: past max_retries the clip fails as transient, nothing paid."""
    kling.refuse_creations(CONCURRENCY_REFUSAL, times=10)
    key, spec = clip(4, still)

    with pytest.raises(TransientGenerationError, match="1303"):
        KlingGenerator(config_for(kling, max_retries=2)).generate(
            key, spec, output_for(tmp_path, key)
        )
    assert kling.create_answers[1303] == 3
    assert kling.submissions == []


@pytest.mark.usefixtures("real_waits")
def test_rate_limit_answers_are_ridden_out(still: Path, tmp_path: Path) -> None:
    """Two creations a second: 1302 answers are retried until all six clips are made."""
    with KlingFake(task_seconds=0.05, concurrency_limit=10, rate_limit_per_s=2) as fake:
        generator = KlingGenerator(
            config_for(fake, max_retries=40, retry_initial_s=0.1, retry_max_s=0.4)
        )
        outcomes = generate_all(generator, all_clips(still)[:6], tmp_path, 6)

    assert all(isinstance(outcome, GenerationResult) for outcome in outcomes.values()), outcomes
    assert fake.create_answers[1302] > 0
    assert len(fake.submissions) == 6


def test_server_errors_are_retried(kling: KlingFake, still: Path, tmp_path: Path) -> None:
    """HTTP 500 and 503 answers to a creation are retried; one task is paid."""
    kling.refuse_creations(Refusal(500, 5000, "Server internal error"), times=1)
    kling.refuse_creations(Refusal(503, 5001, "Server temporarily unavailable"), times=1)
    key, spec = clip(2, still)

    KlingGenerator(config_for(kling)).generate(key, spec, output_for(tmp_path, key))

    assert len(kling.submissions) == 1


@pytest.mark.parametrize(
    ("code", "explanation"),
    [(1101, "in arrears"), (1102, "resource pack is used up")],
)
def test_account_errors_stop_at_once_with_their_message(
    kling: KlingFake, still: Path, tmp_path: Path, code: int, explanation: str
) -> None:
    """Arrears or an empty pack: AccountError saying so, after a single request."""
    kling.account_error = code
    key, spec = clip(1, still)
    output = output_for(tmp_path, key)

    with pytest.raises(AccountError, match=explanation) as raised:
        KlingGenerator(config_for(kling)).generate(key, spec, output)

    assert f"code {code}" in str(raised.value)
    assert sum(kling.create_answers.values()) == 1
    assert not output.exists()


def test_failed_task_reports_the_clip_and_reason(
    kling: KlingFake, still: Path, tmp_path: Path
) -> None:
    """One task fails among 18: that clip's error names it and Kling's reason; others made."""
    failing_key, _ = clip(7, still)
    kling.failures[failing_key.token] = "Content moderation review failed."

    outcomes = generate_all(KlingGenerator(config_for(kling)), all_clips(still), tmp_path, 5)

    failure = outcomes.pop(7)
    assert isinstance(failure, GenerationError)
    assert not isinstance(failure, TransientGenerationError)
    assert "clip 7" in str(failure)
    assert "Content moderation review failed." in str(failure)
    assert not output_for(tmp_path, failing_key).exists()
    assert all(isinstance(outcome, GenerationResult) for outcome in outcomes.values())


def test_content_policy_refusal_fails_the_clip_with_klings_message(
    kling: KlingFake, still: Path, tmp_path: Path
) -> None:
    """A 1301 refusal is the clip's own failure, carries Kling's message, is not retried."""
    kling.banned_words.add("explodes")
    key, spec = clip(3, still, prompt="the car explodes")

    with pytest.raises(GenerationError, match="risk control") as raised:
        KlingGenerator(config_for(kling)).generate(key, spec, output_for(tmp_path, key))

    assert not isinstance(raised.value, TransientGenerationError)
    assert "clip 3" in str(raised.value)
    assert "code 1301" in str(raised.value)
    assert sum(kling.create_answers.values()) == 1


def test_flagging_three_clips_submits_exactly_three_new_tasks(
    kling: KlingFake, still: Path, tmp_path: Path
) -> None:
    """Attempt 2 of clips 5, 12 and 17: three new tasks, each under a new external_task_id."""
    generator = KlingGenerator(config_for(kling))
    generate_all(generator, all_clips(still), tmp_path, 5)
    first_round = {submission.external_task_id for submission in kling.submissions}

    flagged = [clip(number, still, attempt=2) for number in (5, 12, 17)]
    outcomes = generate_all(generator, flagged, tmp_path, 5)

    assert all(isinstance(outcome, GenerationResult) for outcome in outcomes.values()), outcomes
    new_ids = [submission.external_task_id for submission in kling.submissions[18:]]
    assert sorted(new_ids) == sorted(key.token for key, _ in flagged)
    assert not first_round & set(new_ids)
    assert len(first_round) == 18


def test_wrong_secret_key_stops_with_a_configuration_error_that_hides_secrets(
    kling: KlingFake, still: Path, tmp_path: Path
) -> None:
    """Kling refusing the token is a configuration error; no key appears in the message."""
    wrong_secret = secrets.token_hex(16)
    config = config_for(kling, secret_key=SecretStr(wrong_secret))
    key, spec = clip(1, still)

    with pytest.raises(ConfigurationError, match="credentials") as raised:
        KlingGenerator(config).generate(key, spec, output_for(tmp_path, key))

    for secret in (wrong_secret, kling.access_key):
        assert secret not in str(raised.value)
        assert secret not in repr(config)
    assert kling.submissions == []


def test_downloaded_file_is_the_mp4_the_fake_served(
    kling: KlingFake, still: Path, tmp_path: Path
) -> None:
    """The clip is the served MP4 byte for byte, renamed into place with no temp file left."""
    key, spec = clip(9, still)
    output = output_for(tmp_path, key)

    result = KlingGenerator(config_for(kling)).generate(key, spec, output)

    assert output.read_bytes() == kling.video
    assert output.read_bytes()[4:8] == b"ftyp"
    assert sorted(path.name for path in output.parent.iterdir()) == [output.name]
    assert (result.generator, result.cost_usd, result.external_task_id) == (
        "kling",
        0.56,
        kling.submissions[0].task_id,
    )


def test_a_result_that_is_not_an_mp4_fails_the_clip_and_leaves_no_file(
    kling: KlingFake, still: Path, tmp_path: Path
) -> None:
    """A download that is no MP4 (an HTML error page) is refused: no clip, no temp file."""
    kling.video = b"<html>gateway error page</html>"
    key, spec = clip(13, still)
    output = output_for(tmp_path, key)

    with pytest.raises(GenerationError, match="not an MP4"):
        KlingGenerator(config_for(kling)).generate(key, spec, output)

    assert list(output.parent.iterdir()) == []


def test_a_result_with_its_moov_last_lands_faststart(
    kling: KlingFake, still: Path, tmp_path: Path
) -> None:
    """Kling serving moov after mdat: the clip is written once, moov first, same duration."""
    moov_last = tmp_path / "moov-last.mp4"
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            *("-hide_banner", "-loglevel", "error", "-y"),
            *("-f", "lavfi", "-i", "testsrc=size=160x90:rate=10", "-t", "1"),
            *("-c:v", "libx264", "-pix_fmt", "yuv420p", str(moov_last)),
        ],
        check=True,
    )
    served = mp4.inspect(moov_last)
    assert not served.faststart
    kling.video = moov_last.read_bytes()
    key, spec = clip(15, still)
    output = output_for(tmp_path, key)

    KlingGenerator(config_for(kling)).generate(key, spec, output)

    stored = mp4.inspect(output)
    assert stored.faststart
    assert stored.duration_s == served.duration_s
    assert [path.name for path in output.parent.iterdir()] == [output.name]


def test_submission_carries_the_clip_and_the_configured_model(
    kling: KlingFake, still: Path, tmp_path: Path
) -> None:
    """The request has the still, motion prompt, negative prompt, model, mode, duration string."""
    key, spec = clip(11, still, prompt="pan left over the harbour")
    config = config_for(kling, model="kling-v2-5-turbo", mode="pro", duration="5")

    result = KlingGenerator(config).generate(key, spec, output_for(tmp_path, key))

    (submission,) = kling.submissions
    assert submission.external_task_id == key.token
    assert submission.prompt == "pan left over the harbour"
    assert submission.negative_prompt == "blur, watermark"
    assert (submission.model_name, submission.mode, submission.duration) == (
        "kling-v2-5-turbo",
        "pro",
        "5",
    )
    assert submission.image_bytes == still.stat().st_size
    assert result.cost_usd == config.price_usd == 0.35


def test_rerun_of_a_clip_key_resumes_its_task_instead_of_paying_twice(
    kling: KlingFake, still: Path, tmp_path: Path
) -> None:
    """The same clip key run again finds its task by external_task_id; one task is paid."""
    key, spec = clip(6, still)
    generator = KlingGenerator(config_for(kling))

    first = generator.generate(key, spec, tmp_path / "first.mp4")
    second = generator.generate(key, spec, tmp_path / "second.mp4")

    assert len(kling.submissions) == 1
    assert first.external_task_id == second.external_task_id
    assert (tmp_path / "second.mp4").read_bytes() == kling.video


def test_crash_after_submitting_resumes_the_submitted_task(
    kling: KlingFake, still: Path, tmp_path: Path
) -> None:
    """A task submitted by a run that then died is polled and downloaded, not submitted again."""
    key, spec = clip(8, still)
    generator = KlingGenerator(config_for(kling))
    with KlingClient(generator.config) as client:
        orphan = client.start_task(generator.request_body(key, spec))

    result = generator.generate(key, spec, output_for(tmp_path, key))

    assert len(kling.submissions) == 1
    assert result.external_task_id == orphan.task_id


def test_submit_timeout_looks_the_task_up_before_submitting_again(
    kling: KlingFake, still: Path, tmp_path: Path
) -> None:
    """Kling creates the task but answers too late: the retry finds it, nothing paid twice."""
    kling.stall_creations(seconds=1.0, times=1)
    key, spec = clip(10, still)

    KlingGenerator(config_for(kling, request_timeout_s=0.3)).generate(
        key, spec, output_for(tmp_path, key)
    )

    assert len(kling.submissions) == 1


def test_task_outlasting_the_wait_is_transient_and_resumable(still: Path, tmp_path: Path) -> None:
    """Giving up on a slow task raises a transient error; the rerun picks the same task up."""
    key, spec = clip(12, still)
    with KlingFake(task_seconds=0.6) as fake:
        with pytest.raises(TransientGenerationError, match="resume"):
            KlingGenerator(config_for(fake, task_timeout_s=0.1)).generate(
                key, spec, output_for(tmp_path, key)
            )
        KlingGenerator(config_for(fake)).generate(key, spec, output_for(tmp_path, key))

    assert len(fake.submissions) == 1
    assert output_for(tmp_path, key).read_bytes() == fake.video


def test_token_is_signed_as_kling_asks_and_renewed_before_it_expires() -> None:
    """HS256 with iss, exp = now + 30 min, nbf = now - 5 s; a new one 5 minutes before exp."""
    now = [1_000_000.0]
    config = KlingConfig(access_key=SecretStr("ak"), secret_key=SecretStr("sk"))
    token = KlingToken(config, clock=lambda: now[0])

    first = token.current()
    header, payload = (json.loads(unb64url(part)) for part in first.split(".")[:2])
    assert header == {"alg": "HS256", "typ": "JWT"}
    assert payload == {"iss": "ak", "exp": 1_001_800, "nbf": 999_995}
    assert first == sign_jwt("ak", "sk", now[0], 1800)

    now[0] += 1499
    assert token.current() == first
    now[0] += 1
    assert token.current() != first


def test_config_without_a_price_for_its_model_is_refused() -> None:
    """Every clip's cost must be known: an unpriced model, mode and duration is rejected."""
    with pytest.raises(ValidationError, match="no price"):
        KlingConfig(access_key=SecretStr("ak"), secret_key=SecretStr("sk"), model="kling-v9")


def test_block_wraps_the_core_config(kling: KlingFake) -> None:
    """The Prefect block holds the KlingConfig the generator uses, field for field."""
    config = KlingConfig(
        access_key=SecretStr(kling.access_key),
        secret_key=SecretStr(kling.secret_key),
        base_url=kling.base_url,
        mode="pro",
        duration="5",
    )

    block = KlingAccount(config=config)

    assert block.config == config
    assert kling.secret_key not in repr(block)


def test_lookup_finds_a_task_older_than_the_newest_thirty(
    kling: KlingFake, still: Path, tmp_path: Path
) -> None:
    """A clip whose task has 30 newer ones resumes it by external_task_id; nothing paid twice."""
    kling.concurrency_limit = 100
    key, spec = clip(1, still)
    generator = KlingGenerator(config_for(kling))
    with KlingClient(generator.config) as client:
        oldest = client.start_task(generator.request_body(key, spec))
        for project in range(30):
            newer = ClipKey(project_id=f"other-{project}", channel="chan", number=1, attempt=1)
            client.start_task(generator.request_body(newer, spec))
    token = sign_jwt(kling.access_key, kling.secret_key, time.time(), 1800)
    with httpx.Client(base_url=kling.base_url) as http:
        first_page = http.get(
            IMAGE2VIDEO_PATH,
            params={"external_task_id": key.token},
            headers={"Authorization": f"Bearer {token}"},
        ).json()["data"]
    assert oldest.task_id not in {task["task_id"] for task in first_page}

    result = generator.generate(key, spec, output_for(tmp_path, key))

    assert result.external_task_id == oldest.task_id
    assert len(kling.submissions) == 31


def test_a_refused_duplicate_external_id_resolves_to_the_existing_task(
    kling: KlingFake, still: Path
) -> None:
    """Submitting an id another worker already used gets Kling's refusal, then that task."""
    key, spec = clip(2, still)
    generator = KlingGenerator(config_for(kling))
    body = generator.request_body(key, spec)
    with KlingClient(generator.config) as client:
        first = client.start_task(body)
        second = client.start_task(body)

    assert second.task_id == first.task_id
    assert kling.create_answers[1201] == 1
    assert len(kling.submissions) == 1


def test_connection_refused_fails_at_once_naming_the_base_url(
    still: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing listening at the base URL: one ConfigurationError saying what to check, no retry."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    base_url = f"http://127.0.0.1:{closed_port}"
    config = KlingConfig(
        access_key=SecretStr("ak"),
        secret_key=SecretStr("sk"),
        base_url=base_url,
        max_retries=1,
    )
    key, spec = clip(3, still)

    with pytest.raises(ConfigurationError) as raised:
        KlingGenerator(config).generate(key, spec, output_for(tmp_path, key))

    message = str(raised.value)
    assert message.startswith("clip 3 (attempt 1): cannot connect to the Kling API at " + base_url)
    assert "CLIPGATE_KLING__BASE_URL" in message
    assert "firewall" in message
    assert retry_warnings(caplog) == []


def test_every_retry_is_a_warning_naming_the_clip_the_reason_and_the_wait(
    kling: KlingFake, still: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two 1303 refusals: two warnings, each with the clip, Kling's code and the wait."""
    kling.refuse_creations(CONCURRENCY_REFUSAL, times=2)
    key, spec = clip(4, still, attempt=2)

    with caplog.at_level(logging.WARNING, logger="clipgate.retries"):
        KlingGenerator(config_for(kling)).generate(key, spec, output_for(tmp_path, key))

    warnings = retry_warnings(caplog)
    assert len(warnings) == 2
    for number, warning in enumerate(warnings, 1):
        assert warning.startswith("clip 4 (attempt 2): Kling is busy")
        assert "code 1303" in warning
        assert re.search(rf"; retry {number} of 12 in \d+\.\d s$", warning), warning


def test_a_result_records_when_klings_copy_is_cleared(
    kling: KlingFake, still: Path, tmp_path: Path
) -> None:
    """The result carries the provider URL's expiry: 30 days after Kling created the task."""
    key, spec = clip(5, still)
    before = datetime.now(UTC)

    result = KlingGenerator(config_for(kling)).generate(key, spec, output_for(tmp_path, key))

    assert result.provider_url_expires_at is not None
    assert before + timedelta(days=30) - timedelta(seconds=1) <= result.provider_url_expires_at
    assert result.provider_url_expires_at <= datetime.now(UTC) + timedelta(days=30)


def test_defaults_are_klings_global_host_and_its_published_list_prices() -> None:
    """Base URL api-singapore; the price table is the published list, marked as estimates."""
    config = KlingConfig(access_key=SecretStr("ak"), secret_key=SecretStr("sk"))

    assert config.base_url == "https://api-singapore.klingai.com"
    assert config.prices_are_estimates
    assert config.prices_usd == {
        "kling-v2-1/std/5s": 0.28,
        "kling-v2-1/std/10s": 0.56,
        "kling-v2-1/pro/5s": 0.49,
        "kling-v2-1/pro/10s": 0.98,
        "kling-v2-1-master/pro/5s": 1.40,
        "kling-v2-1-master/pro/10s": 2.80,
        "kling-v2-5-turbo/std/5s": 0.21,
        "kling-v2-5-turbo/std/10s": 0.42,
        "kling-v2-5-turbo/pro/5s": 0.35,
        "kling-v2-5-turbo/pro/10s": 0.70,
    }


def test_prices_from_the_environment_are_the_accounts_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """CLIPGATE_KLING__PRICES_USD replaces the list; such prices are no longer estimates."""
    monkeypatch.setenv("CLIPGATE_KLING__ACCESS_KEY", "ak")
    monkeypatch.setenv("CLIPGATE_KLING__SECRET_KEY", "sk")
    monkeypatch.setenv("CLIPGATE_KLING__PRICES_USD", '{"kling-v2-1/std/10s": 0.4}')

    kling = load_settings().kling

    assert kling is not None
    assert kling.price_usd == 0.4
    assert not kling.prices_are_estimates


def test_a_still_kling_would_refuse_fails_the_clip_with_klings_reason(
    kling: KlingFake, tmp_path: Path
) -> None:
    """A 160x90 still is under Kling's 300 px minimum: the clip fails with that reason, unpaid."""
    small = tmp_path / "small.png"
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            *("-hide_banner", "-loglevel", "error", "-y"),
            *("-f", "lavfi", "-i", "color=c=teal:s=160x90", "-frames:v", "1", str(small)),
        ],
        check=True,
    )
    key, spec = clip(14, small)

    with pytest.raises(GenerationError, match="300px") as raised:
        KlingGenerator(config_for(kling)).generate(key, spec, output_for(tmp_path, key))

    assert not isinstance(raised.value, TransientGenerationError)
    assert kling.submissions == []


def test_a_retry_after_from_kling_replaces_the_backoff(
    kling: KlingFake, still: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A refusal with Retry-After: 3 is retried 3 s later, not after the millisecond backoff."""
    too_fast = Refusal(429, 1302, "The API request is too fast, please slow down", "3")
    kling.refuse_creations(too_fast, times=1)
    key, spec = clip(5, still)

    with caplog.at_level(logging.WARNING, logger="clipgate.retries"):
        KlingGenerator(config_for(kling)).generate(key, spec, output_for(tmp_path, key))

    (warning,) = retry_warnings(caplog)
    assert "code 1302" in warning
    assert warning.endswith("; retry 1 of 12 in 3.0 s")
    assert len(kling.submissions) == 1


def test_a_retry_after_beyond_the_retry_timeout_fails_at_once(
    kling: KlingFake, still: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Kling asking for an hour when retries may take ten minutes: a transient error, no wait."""
    kling.refuse_creations(replace(CONCURRENCY_REFUSAL, retry_after="3600"), times=1)
    key, spec = clip(6, still)

    with pytest.raises(TransientGenerationError, match="code 1303"):
        KlingGenerator(config_for(kling)).generate(key, spec, output_for(tmp_path, key))

    assert retry_warnings(caplog) == []
    assert kling.create_answers[1303] == 1
    assert kling.submissions == []


def kling_settings(kling: KlingFake, monkeypatch: pytest.MonkeyPatch, **fields: str) -> Settings:
    """Settings that send every clip to `kling`, set as the environment sets them."""
    environment = kling.environment(poll_initial_s="0.02", poll_max_s="0.05", **fields)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return load_settings()


@pytest.mark.usefixtures("settings")
def test_clips_on_four_threads_share_one_generator_and_its_connection_pool(
    kling: KlingFake, still: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """18 clips that each ask build_generator on 4 threads: one generator, at most 4 sockets."""
    kling_settings(kling, monkeypatch)

    def make(number: int) -> ClipGenerator:
        generator = build_generator(load_settings())
        key, spec = clip(number, still)
        generator.generate(key, spec, output_for(tmp_path, key))
        return generator

    with ThreadPoolExecutor(max_workers=4) as pool:
        generators = list(pool.map(make, range(1, 19)))

    assert len({id(generator) for generator in generators}) == 1
    assert len(kling.submissions) == 18
    assert 1 <= kling.connections_accepted <= 4


@pytest.mark.usefixtures("settings")
def test_other_credentials_or_settings_get_a_generator_of_their_own(
    kling: KlingFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Equal settings share a generator; another secret key or mode never borrows it."""
    first = build_generator(kling_settings(kling, monkeypatch))
    again = build_generator(load_settings())
    other_secret = build_generator(
        kling_settings(kling, monkeypatch, secret_key=secrets.token_hex(16))
    )
    other_mode = build_generator(kling_settings(kling, monkeypatch, mode="pro"))

    assert again is first
    assert len({id(first), id(other_secret), id(other_mode)}) == 3
