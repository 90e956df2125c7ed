"""The Blocks `clipgate setup` saves are the run's settings when loaded back."""

from __future__ import annotations

import pytest
from prefect import flow
from pydantic import SecretStr

from blocks.kling import KlingAccount
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


@pytest.mark.usefixtures("prefect_api_url")
def test_a_flow_run_reads_its_blocks_once_and_the_next_run_sees_them_edited(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Inside one run every load gives the Block as first read; a new run reads it again."""
    KlingAccount(config=KLING).save("t-kling-edited", overwrite=True)
    monkeypatch.setenv("CLIPGATE_KLING_BLOCK", "t-kling-edited")

    @flow
    def reads_twice_around_an_edit(mode: str) -> tuple[str, str]:
        first = load_run_settings().kling
        KlingAccount(config=KLING.model_copy(update={"mode": mode})).save(
            "t-kling-edited", overwrite=True
        )
        second = load_run_settings().kling
        assert first is not None
        assert second is not None
        return first.mode, second.mode

    assert reads_twice_around_an_edit("std") == ("pro", "pro")
    assert reads_twice_around_an_edit("pro") == ("std", "std")
    assert load_run_settings().kling == KLING
