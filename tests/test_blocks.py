"""The Blocks `clipgate setup` saves are the run's settings when loaded back."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from clipgate.generators.kling import KlingConfig
from clipgate.notion.gateway import NotionConfig
from clipgate.settings import Settings, load_settings
from clipgate.storage.r2 import R2Config
from deployments.setup import save_blocks
from prefect_glue.run_settings import load_run_settings

NOTION = NotionConfig(token=SecretStr("ntn_block_secret"), tasks_database_id="tasks-db")
KLING = KlingConfig(
    access_key=SecretStr("kling-access"), secret_key=SecretStr("kling-secret"), mode="pro"
)
R2 = R2Config(
    account_id="a" * 32,
    access_key_id="r2-key",
    secret_access_key=SecretStr("r2-secret"),
    bucket="clips",
    public_base_url="https://clips.example.com",
)


@pytest.mark.usefixtures("prefect_api_url")
def test_saved_blocks_load_back_as_the_same_configs(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Saved from the environment's configs, the Blocks give a run exactly those configs."""
    names = {"notion_block": "t-notion", "kling_block": "t-kling", "r2_block": "t-r2"}
    configs = {"notion": NOTION, "kling": KLING, "r2": R2}
    saved = save_blocks(settings.model_copy(update={**configs, **names}))
    for variable, name in names.items():
        monkeypatch.setenv(f"CLIPGATE_{variable.upper()}", name)

    loaded = load_run_settings()

    assert saved == ["NotionWorkspace 't-notion'", "KlingAccount 't-kling'", "R2Bucket 't-r2'"]
    assert (loaded.notion, loaded.kling, loaded.r2) == (NOTION, KLING, R2)
    assert loaded.kling is not None
    assert loaded.kling.secret_key.get_secret_value() == "kling-secret"
    assert load_settings().notion is None
