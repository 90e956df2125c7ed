"""Addresses of the review room's pages and media, shared by the room, the resume form and Notion.

Media is addressed by clip key: the path after `/clips/` is the clip's object key (or a
companion's), which the room parses back into a key before it looks anything up.
"""

from __future__ import annotations

from urllib.parse import quote

from clipgate.models import ClipKey

CLIPS_PREFIX = "/clips/"


def review_page_url(room_url: str, project_id: str) -> str:
    """The page where a reviewer watches and answers a project's waiting round."""
    return f"{room_url}/projects/{quote(project_id, safe='')}"


def clip_url(room_url: str, key: ClipKey) -> str:
    """The clip itself, streamable with Range requests."""
    return _media_url(room_url, key.object_key)


def proxy_url(room_url: str, key: ClipKey) -> str:
    """The clip's small preview proxy, for the wall of all clips."""
    return _media_url(room_url, key.proxy_key)


def thumbnail_url(room_url: str, key: ClipKey) -> str:
    """The clip's first frame."""
    return _media_url(room_url, key.thumbnail_key)


def strip_url(room_url: str, key: ClipKey) -> str:
    """The clip's motion strip: frames across the clip, side by side."""
    return _media_url(room_url, key.strip_key)


def _media_url(room_url: str, object_key: str) -> str:
    return f"{room_url}{CLIPS_PREFIX}{quote(object_key, safe='/')}"
