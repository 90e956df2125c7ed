"""Two workers against one: 12 projects' first round on the cluster of tests/cluster_harness.py.

Every Kling task takes a fixed latency L; the global limit `clipgate-kling` allows C at a
time. Each worker runs at most N flow runs at once (`prefect worker start --limit N`, the
size of a machine), and a run makes its 18 clips at once (the flow's pool follows the
limit). C defaults to 2 x N x 18: two workers' runs can fill the limit, one worker's only
half, which is the case where a second machine should help. No schedule beats the ideal
ceil(12 x 18 / C) x L. Both clusters are built fresh, one after the other, on this machine.

Server work is counted from the Prefect server's access log: the requests that came from
the workers' addresses (the workers and the flow runs they started; with namespaces each
worker has its own address), divided by the project rounds in the window. Without
namespaces every process shares 127.0.0.1 and the count includes this bench's polling.

Run from the repository root (as root, for the namespaces):

    .venv/bin/python -m bench.cluster                    # L = 20 s, N = 2, C = 72
    .venv/bin/python -m bench.cluster --latency 60 --runs-per-worker 1
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from prefect.client.schemas.objects import FlowRun

from clipgate.models import CLIP_COUNT
from tests.cluster_harness import Cluster, ClusterSpec

PROJECTS = 12


@dataclass(frozen=True)
class Measured:
    workers: int
    wall_s: float
    peak_in_flight: int
    generations: int
    cpu_s: dict[str, float]
    requests_first_round: int
    requests_approval_round: int
    top_requests: list[tuple[str, int]]
    submitting_to_running_s: float


def first_round_s(runs: list[FlowRun]) -> float:
    """From the first run's creation to the last run's suspension, by the server's clock."""
    created = min(run.created for run in runs if run.created is not None)
    suspended = max(run.state.timestamp for run in runs if run.state is not None)
    return float((suspended - created).total_seconds())


def submitting_to_running_s(cluster: Cluster, runs: dict[str, str]) -> float:
    """The median over the runs of the time from Submitting (or Pending) to Running."""
    waits: list[float] = []
    for run in runs.values():
        states = cluster.states(run)
        # A worker sets Pending as it takes a run and Submitting just before it starts the
        # flow's process: the wait from there is the process starting up.
        pending = [state for state in states if state.is_pending()]
        submitting = next((state for state in pending if state.name == "Submitting"), pending[0])
        running = next(state for state in states if state.is_running())
        waits.append((running.timestamp - submitting.timestamp).total_seconds())
    return statistics.median(waits)


def measure(workers: int, spec: ClusterSpec, folder: Path, approve: bool) -> Measured:
    """Build a cluster of `workers`, start 12 projects at once, wait for every review."""
    with Cluster(spec, folder / f"workers-{workers}", out=sys.stdout) as cluster:
        clients = cluster.network.worker_addresses or None
        projects = cluster.make_projects(PROJECTS)
        before = cluster.api_requests(clients)
        cpu_before = cluster.cpu_seconds()
        runs = cluster.create_runs(projects)
        cluster.wait_for(lambda: cluster.waiting_on(runs, "review-1"), "every review", 3600)
        wall = first_round_s(cluster.flow_runs(runs))
        cpu_after = cluster.cpu_seconds()
        cpu = {part: cpu_after[part] - cpu_before.get(part, 0.0) for part in cpu_after}
        first = cluster.api_requests(clients) - before
        approval = 0
        if approve:
            cluster.review_all(dict.fromkeys(runs))
            cluster.wait_for(lambda: cluster.completed(runs), "every run to complete", 1800)
            approval = (cluster.api_requests(clients) - before - first).total()
        return Measured(
            workers=workers,
            wall_s=wall,
            cpu_s=cpu,
            peak_in_flight=cluster.kling.peak_in_flight,
            generations=len(cluster.kling.submissions),
            requests_first_round=first.total(),
            requests_approval_round=approval,
            top_requests=first.most_common(8),
            # Read last, so that these requests fall in neither round's count.
            submitting_to_running_s=submitting_to_running_s(cluster, runs),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--latency", type=float, default=20.0, help="seconds per Kling task (L)")
    parser.add_argument(
        "--runs-per-worker", type=int, default=2, help="flow runs one worker runs at once (N)"
    )
    parser.add_argument("--limit", type=int, help="the global generator limit C (2 x N x 18)")
    parser.add_argument(
        "--no-namespaces", action="store_true", help="run workers as plain processes"
    )
    arguments = parser.parse_args()
    runs_per_worker = arguments.runs_per_worker
    limit = arguments.limit or 2 * runs_per_worker * CLIP_COUNT
    spec = ClusterSpec(
        runs_per_worker=runs_per_worker,
        generator_limit=limit,
        task_seconds=arguments.latency,
        namespaces=not arguments.no_namespaces,
    )
    with tempfile.TemporaryDirectory(prefix="clipgate-bench-cluster-") as folder:
        one = measure(1, replace(spec, workers=1), Path(folder), approve=False)
        two = measure(2, replace(spec, workers=2), Path(folder), approve=True)

    ideal_waves = math.ceil(PROJECTS * CLIP_COUNT / limit)
    ideal = ideal_waves * arguments.latency
    waves_two = math.ceil(PROJECTS / (2 * runs_per_worker))
    print()
    print(
        f"{PROJECTS} projects, L = {arguments.latency:g} s, C = {limit}, "
        f"N = {runs_per_worker} runs per worker"
    )
    cores = os.cpu_count() or 1
    print(
        f"{'workers':>8} {'wall s':>8} {'/ ideal':>8} {'peak':>5} {'clips':>6} "
        f"{'CPU s':>7} {'CPU s/clip':>10} {f'busy of {cores} cores':>16}"
    )
    for measured in (one, two):
        cpu = sum(measured.cpu_s.values())
        print(
            f"{measured.workers:>8} {measured.wall_s:>8.1f} {measured.wall_s / ideal:>8.2f} "
            f"{measured.peak_in_flight:>5} {measured.generations:>6} {cpu:>7.0f} "
            f"{cpu / measured.generations:>10.2f} {cpu / (measured.wall_s * cores):>16.0%}"
        )
    speedup = one.wall_s / two.wall_s
    print(f"ideal ceil({PROJECTS} x {CLIP_COUNT} / {limit}) x L = {ideal:.1f} s")
    print(f"two workers are {speedup:.2f}x faster than one (goal at least 1.8x)")
    print(f"two workers take {two.wall_s / ideal:.2f}x the ideal (goal at most 1.15x)")
    # The wall is (L + overhead) per wave of runs, so 1.15x is met from L = overhead / 0.15,
    # only when no run waits for a slot and there are as many waves of runs as the ideal's.
    if limit >= 2 * runs_per_worker * CLIP_COUNT and waves_two == ideal_waves:
        overhead = (two.wall_s - ideal) / waves_two
        print(
            f"time beyond the ideal per wave of runs (start, publish, suspend): {overhead:.1f} s;"
            f" 1.15x is met from L = {overhead / 0.15:.0f} s"
        )
    for measured in (one, two):
        print(
            f"median s from Submitting to Running, {measured.workers} worker(s): "
            f"{measured.submitting_to_running_s:.1f}"
        )
    for measured in (one, two):
        per_round = measured.requests_first_round / PROJECTS
        print(
            f"API requests per project, first round, {measured.workers} worker(s): "
            f"{per_round:.0f} (goal under 300)"
        )
    print(f"API requests per project, approval round: {two.requests_approval_round / PROJECTS:.0f}")
    print("CPU seconds per clip, first round, two workers:")
    for part, seconds in sorted(two.cpu_s.items(), key=lambda item: -item[1]):
        print(f"  {seconds / two.generations:>6.2f}  {part}")
    print("most requested in the first round (two workers, whole window):")
    for request, count in two.top_requests:
        print(f"  {count / PROJECTS:>6.1f} per project  {request}")


if __name__ == "__main__":
    main()
