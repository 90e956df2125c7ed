"""Everything the Kling generator is told: credentials, what to make, how patiently."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from clipgate.generators.kling.prices import DEFAULT_PRICES_USD, price_key
from clipgate.retries import RetryPolicy

KlingMode = Literal["std", "pro"]
KlingDuration = Literal["5", "10"]

OFFICIAL_BASE_URL = "https://api-singapore.klingai.com"


class KlingConfig(BaseModel):
    """Everything the Kling generator needs: credentials, what to make, how patiently."""

    model_config = ConfigDict(frozen=True)

    access_key: SecretStr = Field(description="Kling API access key (the JWT issuer)")
    secret_key: SecretStr = Field(description="Kling API secret key (signs the JWT)")
    base_url: str = Field(default=OFFICIAL_BASE_URL, description="Kling API host")
    model: str = Field(default="kling-v2-1", description="Kling model_name")
    mode: KlingMode = Field(default="std", description="std (720p) or pro (1080p)")
    duration: KlingDuration = Field(default="10", description='Clip length, "5" or "10" s')
    negative_prompt: str = Field(default="", max_length=2500)
    prices_usd: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_PRICES_USD),
        description="USD per clip, keyed by price_key(model, mode, duration)",
    )
    request_timeout_s: float = Field(default=60.0, gt=0)
    max_retries: int = Field(
        default=8, ge=0, description="Retries of one request after a transient error"
    )
    retry_initial_s: float = Field(default=1.0, ge=0)
    retry_max_s: float = Field(default=60.0, ge=0)
    retry_timeout_s: float = Field(
        default=600.0, gt=0, description="Longest one request is retried for, waits included"
    )
    poll_initial_s: float = Field(default=5.0, gt=0)
    poll_max_s: float = Field(default=20.0, gt=0)
    poll_backoff: float = Field(default=1.5, ge=1.0)
    task_timeout_s: float = Field(
        default=20 * 60.0, gt=0, description="Give up waiting on one task (it can be resumed)"
    )
    token_ttl_s: int = Field(default=1800, ge=10)
    token_refresh_margin_s: int = Field(default=300, ge=0)

    def __hash__(self) -> int:
        # Frozen, but prices_usd is a dict; equal configs share one generator per process.
        return hash(self.model_dump_json())

    @field_validator("access_key", "secret_key")
    @classmethod
    def _not_blank(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError(f"base_url {value!r} must start with https:// or http://")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _priced(self) -> KlingConfig:
        if price_key(self.model, self.mode, self.duration) not in self.prices_usd:
            raise ValueError(
                f"no price for model {self.model!r}, mode {self.mode!r}, duration "
                f"{self.duration!r}; add {price_key(self.model, self.mode, self.duration)!r} "
                "to prices_usd so every clip's cost is recorded"
            )
        if self.token_refresh_margin_s >= self.token_ttl_s:
            raise ValueError("token_refresh_margin_s must be shorter than token_ttl_s")
        return self

    @property
    def price_usd(self) -> float:
        """What one clip costs with this model, mode and duration."""
        return self.prices_usd[price_key(self.model, self.mode, self.duration)]

    @property
    def prices_are_estimates(self) -> bool:
        """True unless the account's own prices were given (CLIPGATE_KLING__PRICES_USD)."""
        return "prices_usd" not in self.model_fields_set

    @property
    def retry_policy(self) -> RetryPolicy:
        """How each request to Kling is retried after a transient failure."""
        return RetryPolicy(
            attempts=self.max_retries + 1,
            timeout_s=self.retry_timeout_s,
            wait_initial_s=self.retry_initial_s,
            wait_max_s=self.retry_max_s,
        )
