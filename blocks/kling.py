"""The Prefect Block holding Kling AI credentials and what to generate with them."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field, SecretStr, ValidationError

from clipgate.errors import ConfigurationError
from clipgate.generators.kling import (
    OFFICIAL_BASE_URL,
    KlingConfig,
    KlingDuration,
    KlingGenerator,
    KlingMode,
)


class KlingAccount(Block):
    """A Kling AI API account and the model, mode and duration clips are made with."""

    _block_type_name = "clipgate Kling account"
    _description = (
        "Kling AI image-to-video: the API access key and secret key (from the Kling developer "
        "console), the API host, and the model, mode and clip duration to generate with."
    )

    access_key: SecretStr = Field(description="Kling API access key")
    secret_key: SecretStr = Field(description="Kling API secret key")
    base_url: str = Field(default=OFFICIAL_BASE_URL, description="Kling API host")
    model: str = Field(default="kling-v2-1", description="Kling model_name, e.g. kling-v2-1")
    mode: KlingMode = Field(default="std", description="std (720p, cheaper) or pro (1080p)")
    duration: KlingDuration = Field(default="10", description='Clip length: "5" or "10" seconds')
    negative_prompt: str = Field(default="", description="What no clip should show")

    def kling_config(self) -> KlingConfig:
        """The core's view of this block; a bad combination stops with a clear message."""
        try:
            return KlingConfig(
                access_key=self.access_key,
                secret_key=self.secret_key,
                base_url=self.base_url,
                model=self.model,
                mode=self.mode,
                duration=self.duration,
                negative_prompt=self.negative_prompt,
            )
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in issue['loc']) or 'block'}: {issue['msg']}"
                for issue in error.errors()
            )
            raise ConfigurationError(f"bad Kling block: {problems}") from None

    def generator(self) -> KlingGenerator:
        """A Kling generator using this account."""
        return KlingGenerator(self.kling_config())
