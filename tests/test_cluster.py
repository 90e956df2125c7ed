"""Issue 13: two workers in their own network namespaces share only the services, and a
worker killed in the middle of a round loses nothing and pays for nothing twice."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from clipgate.models import CLIP_COUNT
from tests.cluster_harness import (
    Cluster,
    ClusterSpec,
    Network,
    TcpRelay,
    bridged_namespaces,
    namespaces_unavailable,
    run_story,
)

pytestmark = pytest.mark.end_to_end
POSTGRES = ("127.0.0.1", 5432)


def _reaches(network: Network, index: int, host: str, port: int) -> bool:
    """Whether a process in worker namespace `index` opens a TCP connection to host:port."""
    probe = (
        "import socket, sys\n"
        "try:\n"
        "    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()\n"
        "except OSError:\n"
        "    sys.exit(1)\n"
    )
    done = subprocess.run(
        [*network.enter(index, f"cg-w{index + 1}"), sys.executable, "-c", probe, host, str(port)],
        capture_output=True,
        timeout=30,
    )
    return done.returncode == 0


def test_worker_namespaces_reach_the_bridge_but_not_the_hosts_loopback() -> None:
    """From each worker namespace, PostgreSQL is reached through the relay, never directly."""
    assert not namespaces_unavailable(), "this test needs root and iproute2 (ip netns)"
    with (
        bridged_namespaces(2) as network,
        TcpRelay((network.host, 0), POSTGRES) as relay,
    ):
        assert len(set(network.namespaces)) == 2
        for index in range(2):
            assert _reaches(network, index, network.host, relay.port)
            assert not _reaches(network, index, *POSTGRES)
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(name in listed for name in network.namespaces)


def test_six_reviews_on_two_workers_survive_a_worker_killed_mid_round(tmp_path: Path) -> None:
    """Limit held across workers, crashed runs rerun on the survivor, every clip made once."""
    spec = ClusterSpec(workers=2, runs_per_worker=3, generator_limit=4, task_seconds=0.5)
    with Cluster(spec, tmp_path / "cluster", out=sys.stdout) as cluster:
        story = run_story(cluster)
        workers = cluster.workers

    assert story.namespaces, cluster.isolation_note
    namespaces = list(story.worker_namespaces.values())
    assert len(set(namespaces)) == len(namespaces) == 2
    # Clips and cached results live in S3, the store in PostgreSQL: no worker home holds
    # the local clip folder or result cache.
    assert len({worker.home for worker in workers}) == 2
    for worker in workers:
        assert not (worker.home / "clips").exists()
        assert not (worker.home / "results").exists()

    assert story.first_round_generations == 6 * CLIP_COUNT
    assert story.peak_in_flight == spec.generator_limit
    assert sorted(story.made_on.values()).count("cg-w1") == 3
    assert len(story.flagged) == 3
    assert len(story.approved) == 3

    assert story.killed_mid_round
    assert story.in_flight_at_kill
    assert sorted(story.requeued) == sorted(story.crashed) == sorted(story.killed_mid_round)
    assert sorted(story.awaiting_retry) == sorted(story.killed_mid_round)
    for project in story.killed_mid_round:
        assert set(story.rerun_on[project]) == {story.survivor}

    assert story.resumed_elsewhere
    for project in story.resumed_elsewhere:
        assert story.resumed_on[project] == [story.survivor]
        assert story.resumed_cache_hits[project] == CLIP_COUNT
        assert story.resumed_generations[project] == CLIP_COUNT

    assert story.generations == 6 * CLIP_COUNT + 3 * 2
    assert story.keys_made_twice == []
    assert story.generations_per_project == {
        project: CLIP_COUNT + (2 if project in story.flagged else 0) for project in story.runs
    }
    assert set(story.statuses.values()) == {"audio_ready"}
