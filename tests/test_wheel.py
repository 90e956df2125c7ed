"""The wheel built from pyproject.toml works on its own, installed into a fresh venv."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("clipgate", "flows", "tasks", "blocks", "prefect_glue", "deployments", "room")


def _uv() -> str:
    found = shutil.which("uv") or ROOT / ".tools" / "bin" / "uv"
    return str(found)


def _run(*command: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"{command}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
    return done.stdout + done.stderr


def _fetch(url: str, within_s: float = 60) -> str:
    deadline = time.monotonic() + within_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310
                body: bytes = response.read()
                return body.decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


@pytest.mark.end_to_end
def test_the_wheel_installed_alone_runs_a_command_of_every_package(tmp_path: Path) -> None:
    """Built and installed in a fresh venv, every package's files are there and run."""
    _run(_uv(), "build", "--wheel", "--out-dir", tmp_path / "dist", ROOT, cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("clipgate-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for package in PACKAGES:
        assert f"{package}/__init__.py" in names, f"{package} is missing from the wheel"
    assert "room/templates/project.html" in names
    assert "room/static/room.js" in names
    assert "clipgate/migrations/versions/v0001_baseline.py" in names
    assert "clipgate/migrations/script.py.mako" in names

    pinned = tmp_path / "pinned.txt"
    pinned.write_text(
        _run(_uv(), "export", "--frozen", "--no-dev", "--no-hashes", "--no-emit-project", cwd=ROOT)
    )
    venv = tmp_path / "venv"
    _run(_uv(), "venv", "--quiet", "--python", sys.executable, venv, cwd=tmp_path)
    _run(
        _uv(),
        "pip",
        "install",
        "--quiet",
        "--python",
        venv / "bin" / "python",
        "--constraint",
        pinned,
        wheel,
        cwd=tmp_path,
    )
    clipgate = venv / "bin" / "clipgate"
    # Away from the checkout, with nothing of it on the path: only the wheel can answer.
    away = tmp_path / "elsewhere"
    away.mkdir()
    env = {
        key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")
    }
    env["CLIPGATE_HOME"] = str(away / "home")

    assert "review" in _run(clipgate, "--help", cwd=away, env=env)
    assert "5, 12" in _run(clipgate, "parse-feedback", "clips 5 and 12", cwd=away, env=env)
    missing = subprocess.run(
        [clipgate, "recover", "no-such-project"], cwd=away, env=env, capture_output=True, text=True
    )
    assert missing.returncode != 0
    assert "no clipgate database" in missing.stderr, missing.stderr
    _run(venv / "bin" / "python", "-c", "import blocks.kling, blocks.notion, blocks.r2", cwd=away)

    port = free_port()
    room = subprocess.Popen(
        [clipgate, "room", "--port", str(port)],
        cwd=away,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert "clipgate" in _fetch(f"http://127.0.0.1:{port}/")
        assert "The review room" in _fetch(f"http://127.0.0.1:{port}/static/room.js")
    finally:
        room.terminate()
        room.wait(timeout=30)
