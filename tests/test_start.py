"""`clipgate start`: manifests checked field by field, stills fetched, one run per project."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar, cast
from uuid import UUID

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
from prefect.deployments.runner import RunnerDeployment
from prefect.states import Failed

from clipgate import gate
from clipgate.errors import InputError
from clipgate.ffmpeg import run_ffmpeg
from clipgate.liveness import Heartbeat
from clipgate.manifest import MAX_FETCH_BYTES, load_manifest
from clipgate.models import VideoProject
from clipgate.samples import make_sample_project
from clipgate.settings import Settings, load_settings
from clipgate.wiring import build_store
from deployments.recover import recover_project
from deployments.start import PROJECT_TAG
from flows.video_review import video_review
from tests.flow_helpers import eventually, paused_round

CLIPGATE = [sys.executable, "-m", "clipgate.cli"]


def _run(*arguments: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLIPGATE, *arguments], capture_output=True, text=True, timeout=300, env=env, check=False
    )


def _manifest_data(project: VideoProject, folder: Path) -> dict[str, Any]:
    """The project as a manifest whose stills are named relative to `folder`."""
    data = project.model_dump(mode="json")
    for clip in data["clips"]:
        clip["composite_image"] = os.path.relpath(clip["composite_image"], folder)
    return data


def _write_yaml(folder: Path, data: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / "project.yaml"
    manifest.write_text(yaml.safe_dump(data, sort_keys=False))
    return manifest


def _problems(manifest: Path, settings: Settings) -> list[str]:
    with pytest.raises(InputError) as raised:
        load_manifest(manifest, settings)
    first, *lines = str(raised.value).splitlines()
    assert first == f"manifest {manifest} has {len(lines)} problem(s):"
    return [line.strip() for line in lines]


def test_yaml_manifest_with_relative_paths(
    settings: Settings, project: VideoProject, tmp_path: Path
) -> None:
    """A YAML manifest's relative still paths resolve against its own folder, not the cwd."""
    manifest = _write_yaml(tmp_path / "manifests", _manifest_data(project, tmp_path / "manifests"))
    loaded = load_manifest(manifest, settings)
    assert loaded == project
    assert all(clip.composite_image.is_absolute() for clip in loaded.clips)


def test_the_example_manifest_reads_the_sample_stills(settings: Settings, tmp_path: Path) -> None:
    """deployments/example-manifest.yaml is a valid project on the stills the demo makes."""
    make_sample_project(tmp_path / "clipgate-demo" / "samples", "example", width=160, height=90)
    example = Path(__file__).resolve().parent.parent / "deployments" / "example-manifest.yaml"
    copied = tmp_path / "deployments" / example.name
    copied.parent.mkdir()
    shutil.copy(example, copied)
    loaded = load_manifest(copied, settings)
    assert loaded.project_id == "example-harbour"
    assert loaded.clip(18).composite_image == tmp_path / "clipgate-demo/samples/still-18.png"


def test_every_problem_is_reported_by_field(
    settings: Settings, project: VideoProject, tmp_path: Path
) -> None:
    """One load lists every problem, each named by its place in the manifest."""
    folder = tmp_path / "manifests"
    data = _manifest_data(project, folder)
    data["project_id"] = "has space"
    data["clips"][4]["composite_image"] = "stills/missing.png"
    data["clips"][6]["number"] = 3
    data["clips"][7]["motion_prompt"] = ""
    data["clips"][8]["motion_promt"] = "zoom"
    data["clips"][9]["composite_image"] = "project.yaml"
    data["clips"][10]["composite_image"] = "s3://bucket/still.png"
    del data["clips"][11]["composite_image"]
    manifest = _write_yaml(folder, data)

    problems = _problems(manifest, settings)

    assert problems[0].startswith("project_id: project_id 'has space' must be 1-100 characters")
    assert problems[1:] == [
        "clips: no clip numbered 7; a project has one clip for each number 1-18",
        "clips[4].composite_image (clip 5): stills/missing.png does not exist "
        f"(looked for {folder / 'stills' / 'missing.png'})",
        "clips[6].number (clip 3): 3 is taken: clips[2] is clip 3",
        "clips[7].motion_prompt (clip 8): String should have at least 1 character",
        "clips[8].motion_promt (clip 9): not a clip field; expected composite_image, "
        "motion_prompt, narration, number",
        "clips[9].composite_image (clip 10): project.yaml is not a PNG or JPEG image, or is "
        "cut short",
        "clips[10].composite_image (clip 11): s3://bucket/still.png is neither a path nor an "
        "http(s) URL",
        "clips[11].composite_image (clip 12): Field required",
    ]


def test_unreadable_manifests_say_why(settings: Settings, tmp_path: Path) -> None:
    """A missing file, broken JSON or YAML, or a list instead of a mapping: one clear line."""
    broken_json = tmp_path / "broken.json"
    broken_json.write_text('{"project_id": "a",\n "clips": [}')
    broken_yaml = tmp_path / "broken.yaml"
    broken_yaml.write_text("project_id: a\nclips: [1, 2\n")
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n- 2\n")
    expected = {
        tmp_path / "none.yaml": f"manifest {tmp_path / 'none.yaml'} does not exist",
        broken_json: f"manifest {broken_json} is not valid JSON: Expecting value at line 2, "
        "column 12",
        broken_yaml: f"manifest {broken_yaml} is not valid YAML: expected ',' or ']', but got "
        "'<stream end>' at line 3, column 1",
        listed: f"manifest {listed} must be a mapping with project_id, channel and clips; it "
        "holds list",
    }
    for manifest, message in expected.items():
        with pytest.raises(InputError) as raised:
            load_manifest(manifest, settings)
        assert str(raised.value) == message


def test_stills_must_be_whole_png_or_jpeg(
    settings: Settings, project: VideoProject, tmp_path: Path
) -> None:
    """A JPEG is read to its size; a PNG cut short is refused."""
    jpeg = tmp_path / "still.jpg"
    run_ffmpeg(
        ["-f", "lavfi", "-i", "testsrc=s=640x360", "-frames:v", "1", str(jpeg)], "draw a jpeg"
    )
    cut = tmp_path / "cut.png"
    cut.write_bytes(project.clips[0].composite_image.read_bytes()[:-40])
    data = _manifest_data(project, tmp_path)
    data["clips"][0]["composite_image"] = "still.jpg"
    data["clips"][1]["composite_image"] = "cut.png"
    manifest = _write_yaml(tmp_path, data)

    assert _problems(manifest, settings) == [
        "clips[1].composite_image (clip 2): cut.png is not a PNG or JPEG image, or is cut short"
    ]
    data["clips"][1] = _manifest_data(project, tmp_path)["clips"][1]
    loaded = load_manifest(_write_yaml(tmp_path, data), settings)
    assert loaded.clips[0].composite_image == jpeg


def test_kling_limits_apply_when_kling_generates(
    project: VideoProject, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With Kling chosen, a still under 300 px a side or wider than 2.5:1 is refused."""
    monkeypatch.setenv("CLIPGATE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CLIPGATE_GENERATOR", "kling")
    wide = tmp_path / "wide.png"
    run_ffmpeg(["-f", "lavfi", "-i", "color=s=1000x300", "-frames:v", "1", str(wide)], "draw")
    data = _manifest_data(project, tmp_path)
    data["clips"][1]["composite_image"] = "wide.png"
    manifest = _write_yaml(tmp_path, data)

    problems = _problems(manifest, load_settings())

    assert len(problems) == 18
    assert problems[0] == (
        f"clips[0].composite_image (clip 1): {data['clips'][0]['composite_image']} is 160x90; "
        "Kling needs at least 300 px a side"
    )
    assert problems[1] == (
        "clips[1].composite_image (clip 2): wide.png is 1000x300; Kling takes aspect ratios "
        "from 1:2.5 to 2.5:1"
    )


class _Stills(BaseHTTPRequestHandler):
    """Serves stills and failures: /still-N.png, /missing, /page.html, /huge, /endless."""

    stills: ClassVar[dict[str, bytes]] = {}
    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.requests.append(self.path)
        if self.path in self.stills:
            self._send(200, self.stills[self.path], "image/png")
        elif self.path == "/page.html":
            self._send(200, b"<html>not an image</html>", "text/html")
        elif self.path == "/huge":
            self.send_response(200)
            self.send_header("Content-Length", str(MAX_FETCH_BYTES + 1))
            self.end_headers()
        elif self.path == "/endless":
            # No length: the body runs until the server closes the connection.
            self.send_response(200)
            self.end_headers()
            chunk = b"\0" * (1024 * 1024)
            try:
                for _ in range(MAX_FETCH_BYTES // len(chunk) + 2):
                    self.wfile.write(chunk)
            except (BrokenPipeError, ConnectionResetError):
                return
        else:
            self._send(404, b"no such still", "text/plain")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        """Quiet: the test reads `requests` instead."""


@contextmanager
def _still_server(project: VideoProject) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 serving the project's stills; its base URL."""
    _Stills.stills = {
        f"/still-{clip.number}.png": clip.composite_image.read_bytes() for clip in project.clips
    }
    _Stills.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stills)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_url_stills_are_fetched_into_home_by_content(
    settings: Settings, project: VideoProject, tmp_path: Path
) -> None:
    """Stills given by URL land in CLIPGATE_HOME/images under their SHA-256, fetched once each."""
    data = _manifest_data(project, tmp_path)
    with _still_server(project) as base:
        for clip in data["clips"]:
            clip["composite_image"] = f"{base}/still-{clip['number']}.png"
        data["clips"][17]["composite_image"] = f"{base}/still-1.png"
        loaded = load_manifest(_write_yaml(tmp_path, data), settings)
    images = settings.home.resolve() / "images"
    for clip in loaded.clips:
        source = project.clip(1 if clip.number == 18 else clip.number).composite_image
        digest = hashlib.sha256(source.read_bytes()).hexdigest()
        assert clip.composite_image == images / f"{digest}.png"
        assert clip.composite_image.read_bytes() == source.read_bytes()
    assert sorted(path.name for path in images.iterdir()) == sorted(
        {clip.composite_image.name for clip in loaded.clips}
    )
    assert len(_Stills.requests) == 17


def test_url_failures_name_the_clip_and_the_url(
    settings: Settings, project: VideoProject, tmp_path: Path
) -> None:
    """404, a web page, a declared or streamed body over the cap, nobody listening: each named."""
    data = _manifest_data(project, tmp_path)
    with _still_server(project) as base:
        for index, path in enumerate(["/missing", "/page.html", "/huge", "/endless"]):
            data["clips"][index]["composite_image"] = f"{base}{path}"
        data["clips"][4]["composite_image"] = "http://127.0.0.1:9/still.png"
        problems = _problems(_write_yaml(tmp_path, data), settings)
    cap = f"over the {MAX_FETCH_BYTES // (1024 * 1024)} MiB a still may be"
    assert problems[:4] == [
        f"clips[0].composite_image (clip 1): could not fetch {base}/missing: HTTP 404 Not Found",
        f"clips[1].composite_image (clip 2): could not use {base}/page.html: what it sent is "
        "not a PNG or JPEG image",
        f"clips[2].composite_image (clip 3): could not fetch {base}/huge: it is "
        f"{MAX_FETCH_BYTES + 1} bytes, {cap}",
        f"clips[3].composite_image (clip 4): could not fetch {base}/endless: it sent more, {cap}",
    ]
    assert problems[4].startswith(
        "clips[4].composite_image (clip 5): could not fetch http://127.0.0.1:9/still.png: "
        "ConnectError"
    )
    assert len(problems) == 5
    assert list((settings.home / "images").iterdir()) == []


def test_start_refuses_a_bad_manifest_before_prefect(tmp_path: Path) -> None:
    """The command prints every problem, exits 2 and starts nothing."""
    manifest = tmp_path / "project.json"
    manifest.write_text(json.dumps({"project_id": "p-1", "channel": "c", "clips": []}))
    env = {**os.environ, "CLIPGATE_HOME": str(tmp_path / "home")}
    done = _run("start", str(manifest), env=env)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"clipgate: manifest {manifest} has 1 problem(s):",
        "  clips: no clip numbered 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, "
        "18; a project has one clip for each number 1-18",
    ]
    assert not (tmp_path / "home").exists()


def _tagged_runs(project_id: str) -> list[str]:
    tag = PROJECT_TAG.format(project_id=project_id)
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[tag]))
        )
    return [str(run.id) for run in runs]


def test_start_on_a_deployment_once(
    prefect_api_url: str, settings: Settings, project: VideoProject, tmp_path: Path
) -> None:
    """A deployed start prints run, project and room; a second start finds that run."""
    name = f"start-test-{uuid.uuid4().hex[:8]}"
    deployment = cast(RunnerDeployment, video_review.to_deployment(name=name))
    deployment_id = cast(UUID, deployment.apply())
    manifest = _write_yaml(tmp_path, _manifest_data(project, tmp_path))
    env = {**os.environ, "PREFECT_API_URL": prefect_api_url}
    try:
        first = _run("start", str(manifest), "--deployment", name, env=env)
        assert first.returncode == 0, first.stderr
        (run_id,) = _tagged_runs(project.project_id)
        room = f"http://127.0.0.1:8780/projects/{project.project_id}"
        assert first.stdout.splitlines() == [
            f"started flow run {run_id} on deployment video-review/{name}",
            f"run      {prefect_api_url.removesuffix('/api')}/runs/flow-run/{run_id}",
            f"project  {project.project_id} (channel demo-channel, 18 clips)",
            f"review   {room}",
            f"nothing is serving video-review/{name} now: the run starts when `clipgate serve` "
            "or a worker on its work pool picks it up",
        ]
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(UUID(run_id))
        assert VideoProject.model_validate(run.parameters["project"]) == project

        again = _run("start", str(manifest), "--deployment", name, env=env)
        assert again.returncode == 1, again.stderr
        assert again.stdout.splitlines() == [
            f"project {project.project_id} is already running: flow run {run_id} is "
            "Scheduled; not starting it twice",
            f"review   {room}",
        ]
        assert _tagged_runs(project.project_id) == [run_id]
        missing = _run("start", str(manifest), "--deployment", "no-such", env=env)
        assert missing.returncode == 1
        assert missing.stdout.startswith(f"project {project.project_id} is already running")
    finally:
        with get_client(sync_client=True) as client:
            for run_id in _tagged_runs(project.project_id):
                client.delete_flow_run(UUID(run_id))
            client.delete_deployment(deployment_id)
    unknown = _run("start", str(manifest), "--deployment", "no-such", env=env)
    assert unknown.returncode == 2
    assert (
        f"clipgate: no deployment video-review/no-such on the Prefect server at {prefect_api_url}"
        in unknown.stderr
    )


def test_recover_leaves_a_deployed_run_that_failed_on_its_own(
    prefect_api_url: str, settings: Settings, project: VideoProject
) -> None:
    """A deployed run that ended Failed is reported as such, never put back on its pool."""
    deployment = cast(
        RunnerDeployment, video_review.to_deployment(name=f"failed-{project.project_id}")
    )
    deployment_id = cast(UUID, deployment.apply())
    with get_client(sync_client=True) as client:
        run = client.create_flow_run_from_deployment(
            deployment_id, parameters={"project": project.model_dump(mode="json")}
        )
        client.set_flow_run_state(run.id, Failed(message="Kling refused the still"), force=True)
    store = build_store(settings)
    gate.register_project(store, project, str(run.id))
    store.save_project_spec(project.project_id, project.model_dump(mode="json"))
    with Heartbeat(store, project.project_id, str(run.id)):
        pass  # as the flow does: it beat while it ran, and stopped when it ended
    said = io.StringIO()
    try:
        assert recover_project(settings, project.project_id, said) == 0
        with get_client(sync_client=True) as client:
            states = [state.name for state in client.read_flow_run_states(run.id)]
    finally:
        with get_client(sync_client=True) as client:
            client.delete_flow_run(run.id)
            client.delete_deployment(deployment_id)
    assert said.getvalue() == (
        f"run {run.id} of {project.project_id} ended Failed (Kling refused the still); it did "
        "not lose its worker, so there is nothing to recover\n"
    )
    assert "AwaitingRetry" not in states
    assert "Crashed" not in states


@pytest.mark.end_to_end
def test_start_local_is_run_once_then_recovered(
    prefect_api_url: str, settings: Settings, project: VideoProject, tmp_path: Path
) -> None:
    """--local runs here; a second start is refused, and names recover once the process dies."""
    manifest = _write_yaml(tmp_path, _manifest_data(project, tmp_path))
    env = {**os.environ, "PREFECT_API_URL": prefect_api_url}
    local = subprocess.Popen(
        [*CLIPGATE, "start", "--local", str(manifest)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    store = build_store(settings)
    try:
        run_id = paused_round(store, project.project_id, 1)
        again = _run("start", str(manifest), env=env)
        assert again.returncode == 1, again.stderr
        assert again.stdout.splitlines()[0] == (
            f"project {project.project_id} is already running: flow run {run_id} is Paused "
            "(status Video Ready, round 1); not starting it twice"
        )
        assert len(again.stdout.splitlines()) == 2
    finally:
        os.killpg(local.pid, signal.SIGKILL)
        output, _ = local.communicate(timeout=30)
    assert output.splitlines()[:4] == [
        f"started flow run {run_id} on this process",
        f"run      {prefect_api_url.removesuffix('/api')}/runs/flow-run/{run_id}",
        f"project  {project.project_id} (channel demo-channel, 18 clips)",
        f"review   http://127.0.0.1:8780/projects/{project.project_id}",
    ]
    eventually(
        lambda: _run("start", str(manifest), env=env).stdout.endswith(
            f"its process is gone: `clipgate recover {project.project_id}` finishes the project\n"
        ),
        "start to see the process gone",
    )

    recovering = subprocess.Popen(
        [*CLIPGATE, "recover", project.project_id], env=env, stdout=subprocess.DEVNULL
    )

    def recovered() -> bool:
        row = store.project(project.project_id)
        return row is not None and row.flow_run_id != run_id

    eventually(recovered, "the recovered run to register")
    paused_round(store, project.project_id, 1)
    approved = _run("review", project.project_id, "--approve", env=env)
    assert approved.returncode == 0, approved.stderr
    assert recovering.wait(timeout=180) == 0
    done = _run("start", str(manifest), env=env)
    assert done.returncode == 1
    assert done.stdout == (
        f"project {project.project_id} is already complete (Audio Ready); start it under a "
        "new project id to make it again\n"
    )
