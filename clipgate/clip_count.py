"""How many clips a video project has, numbered 1 to CLIP_COUNT.

A module of its own so that light readers (the note reader behind `clipgate
parse-feedback`) need not import pydantic with `clipgate.models`.
"""

from __future__ import annotations

CLIP_COUNT = 18
