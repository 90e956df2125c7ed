"""The Prefect Block holding the Notion integration token and database ids."""

from __future__ import annotations

from prefect.blocks.core import Block

from clipgate.notion.gateway import NotionConfig


class NotionWorkspace(Block):
    """A Notion workspace's Tasks and Videos databases, reached with an integration token."""

    _block_type_name = "clipgate Notion workspace"
    _description = "The integration token and the Tasks and Videos databases clipgate uses."

    config: NotionConfig
