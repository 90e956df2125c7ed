"""The Prefect Block holding Kling AI credentials and what to generate with them."""

from __future__ import annotations

from prefect.blocks.core import Block

from clipgate.generators.kling import KlingConfig


class KlingAccount(Block):
    """A Kling AI API account and the model, mode and duration clips are made with."""

    _block_type_name = "clipgate Kling account"
    _description = (
        "Kling AI image-to-video: the API access key and secret key (from the Kling developer "
        "console), the API host, and the model, mode and clip duration to generate with."
    )

    config: KlingConfig
