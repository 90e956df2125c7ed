"""The Prefect Block holding the Notion integration token and database ids."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from clipgate.notion.gateway import NotionConfig


class NotionWorkspace(Block):
    """A Notion workspace's Tasks and Videos databases, reached with an integration token."""

    _block_type_name = "clipgate Notion workspace"
    _description = "The integration token and the Tasks and Videos databases clipgate uses."

    token: SecretStr = Field(description="Internal integration token (ntn_...)")
    tasks_database_id: str = Field(description="The Tasks database, one page per video project")
    videos_database_id: str = Field(
        default="", description="The Videos database; `clipgate notion init` creates it"
    )
    base_url: str = Field(default="https://api.notion.com", description="Notion API host")

    def notion_config(self) -> NotionConfig:
        """The core's view of this block."""
        return NotionConfig(
            token=self.token,
            tasks_database_id=self.tasks_database_id,
            videos_database_id=self.videos_database_id,
            base_url=self.base_url,
        )
