"""`clipgate mp4 ...` and `clipgate parse-feedback` import only what they use.

Each command runs through the installed `clipgate` entry point in a process of its own,
with `python -X importtime`, which lists every module the process imports.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.mp4_samples import encoded

ENTRY_POINT = Path(sys.executable).with_name("clipgate")
# The libraries the database, cloud, Notion and Prefect commands need, and the wheel's
# ffmpeg that only thumbnails and generation need.
HEAVY = frozenset(
    {
        "pydantic", "pydantic_core", "pydantic_settings", "prefect", "sqlmodel",
        "sqlalchemy", "boto3", "botocore", "httpx", "notion_client", "fastapi",
        "imageio_ffmpeg",
    }
)  # fmt: skip


def imported_by(*arguments: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run `clipgate ARGUMENTS...`; its result and the name of every module it imported."""
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", str(ENTRY_POINT), *arguments],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    modules = {
        line.rsplit("|", 1)[1].strip()
        for line in completed.stderr.splitlines()
        if line.startswith("import time:") and not line.endswith("imported package")
    }
    return completed, modules


def packages(modules: set[str]) -> set[str]:
    """The top-level packages of `modules`."""
    return {module.split(".")[0] for module in modules}


@pytest.mark.parametrize("command", ["check", "faststart", "repair"])
def test_mp4_commands_import_no_library_they_do_not_use(tmp_path: Path, command: str) -> None:
    """`clipgate mp4 check/faststart/repair` run without pydantic, Prefect, SQL, cloud, ffmpeg."""
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(encoded("av"))

    completed, modules = imported_by("mp4", command, str(clip))

    assert completed.returncode == 0, completed.stderr[-2000:]
    assert f"{clip}: " in completed.stdout
    assert "clipgate.mp4.boxes" in modules
    assert packages(modules) & HEAVY == set()
    assert "clipgate.feedback" not in modules


def test_parse_feedback_imports_neither_libraries_nor_the_mp4_code() -> None:
    """`clipgate parse-feedback` reads the note without pydantic, Prefect or the MP4 modules."""
    completed, modules = imported_by("parse-feedback", "Bad motion on clips 5-8, clip 12")

    assert completed.returncode == 0, completed.stderr[-2000:]
    assert json.loads(completed.stdout) == [5, 6, 7, 8, 12]
    assert "clipgate.feedback" in modules
    assert packages(modules) & HEAVY == set()
    assert not {module for module in modules if module.split(".")[:2] == ["clipgate", "mp4"]}
