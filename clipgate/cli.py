"""The `clipgate` command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from clipgate.errors import ClipgateError, ConfigurationError, FeedbackError
from clipgate.mp4_cli import add_mp4_commands

if TYPE_CHECKING:
    from clipgate.notion.gateway import NotionConfig

# Commands import what they need when they run: `clipgate mp4` and `parse-feedback`
# import nothing else, so they start in a fraction of the time the database, cloud and
# Prefect libraries take (tests/test_mp4_startup.py checks what they import).


def _demo(args: argparse.Namespace) -> int:
    from clipgate.feedback import parse_clip_numbers
    from deployments.demo import run_demo

    flags = parse_clip_numbers(args.flag) if args.flag.strip() else []
    if not flags:
        raise FeedbackError("--flag needs at least one clip number, e.g. --flag 5,12,17")
    return run_demo(Path(args.workdir), flags, args.interactive, args.json, sys.stdout)


def _notion_config() -> NotionConfig:
    from prefect_glue.run_settings import load_run_settings

    notion = load_run_settings().notion
    if notion is None:
        raise ConfigurationError(
            "Notion is not configured: set CLIPGATE_NOTION__TOKEN and "
            "CLIPGATE_NOTION__TASKS_DATABASE_ID (or CLIPGATE_NOTION_BLOCK to a saved block)"
        )
    return notion


def _notion_init(args: argparse.Namespace) -> int:
    from clipgate.notion.gateway import NotionGateway
    from clipgate.notion.schema import create_videos_database

    config = _notion_config()
    created = create_videos_database(NotionGateway(config), args.parent, config.tasks_database_id)
    videos = created.database_id
    print(f"created the Videos database {videos}, related both ways to Tasks")
    print(f"Notion named the relation on Tasks {created.tasks_relation_name!r}")
    print(f"set CLIPGATE_NOTION__VIDEOS_DATABASE_ID={videos} and run `clipgate setup` again")
    return 0


def _notion_doctor(_args: argparse.Namespace) -> int:
    from clipgate.notion.gateway import NotionGateway
    from clipgate.notion.schema import schema_problems

    config = _notion_config()
    problems, _workspace = schema_problems(
        NotionGateway(config), config.tasks_database_id, config.videos_database_id
    )
    for problem in problems:
        print(problem)
    if problems:
        return 1
    print("Tasks and Videos databases are ready for clipgate")
    return 0


def _setup(_args: argparse.Namespace) -> int:
    from clipgate.settings import load_settings
    from deployments.setup import (
        WORK_POOL,
        concurrency_limits,
        ensure_concurrency_limits,
        ensure_work_pool,
        save_blocks,
        upgrade_database,
    )

    settings = load_settings()
    print(upgrade_database(settings))
    for saved in save_blocks(settings):
        print(f"saved block {saved}")
    ensure_concurrency_limits(concurrency_limits(settings))
    print("global concurrency limits are in place")
    ensure_work_pool()
    print(f"process work pool {WORK_POOL!r} is in place")
    return 0


def _review(args: argparse.Namespace) -> int:
    from clipgate.feedback import parse_clip_numbers
    from clipgate.models import AnswerSource
    from clipgate.settings import load_settings
    from prefect_glue.answers import submit_answer

    answer: dict[str, object] = {"decision": "approve", "reviewer": args.reviewer}
    # Only --approve approves: a --flag that names no clip is an error, never approval.
    if args.flag is not None:
        clips = parse_clip_numbers(args.flag)
        answer = {
            "decision": "flag",
            "clips": clips,
            "notes": [{"clip": number, "note": args.flag} for number in clips],
            "reviewer": args.reviewer,
        }
    outcome = submit_answer(load_settings(), args.project, answer, AnswerSource.CLI)
    print(outcome.message)
    return 0 if outcome.accepted else 1


def _recover(args: argparse.Namespace) -> int:
    from clipgate.settings import load_settings
    from deployments.recover import recover_project

    return recover_project(load_settings(), args.project, sys.stdout)


def _start(args: argparse.Namespace) -> int:
    from clipgate.manifest import load_manifest
    from clipgate.settings import load_settings

    settings = load_settings()
    project = load_manifest(Path(args.manifest), settings)
    # Prefect takes seconds to import: a manifest with problems is told before that.
    from deployments.start import start_project

    return start_project(settings, project, args.deployment, args.local, sys.stdout)


def _status(args: argparse.Namespace) -> int:
    from clipgate.settings import load_settings
    from clipgate.status import detail_text, project_detail, project_statuses, status_table
    from clipgate.wiring import existing_store, store_description, unknown_project

    settings = load_settings()
    store = existing_store(settings)
    if args.project:
        row = store.project(args.project)
        if row is None:
            raise unknown_project(settings, args.project)
        detail = project_detail(store, row, settings.room_url)
        print(detail.model_dump_json() if args.json else detail_text(detail))
        return 0
    statuses = project_statuses(store)
    if args.json:
        print(json.dumps([line.model_dump(mode="json") for line in statuses]))
    elif statuses:
        print(status_table(statuses))
    else:
        print(f"no video projects in {store_description(settings)}")
    return 0


def _webhook(args: argparse.Namespace) -> int:
    import logging

    from deployments.webhook import receive_forever
    from prefect_glue.run_settings import load_run_settings

    logging.basicConfig(level=logging.INFO)
    receive_forever(load_run_settings(), args.host, args.port)
    return 0


def _serve(_args: argparse.Namespace) -> int:
    from deployments.serve import serve_deployments

    serve_deployments()
    return 0


def _room(args: argparse.Namespace) -> int:
    from prefect_glue.run_settings import load_run_settings
    from room.server import serve_room

    serve_room(load_run_settings(), args.host, args.port)
    return 0


def _audit(args: argparse.Namespace) -> int:
    from clipgate.gate import audit
    from clipgate.settings import load_settings
    from clipgate.wiring import store_with_project

    evidence = audit(store_with_project(load_settings(), args.project), args.project)
    print(evidence.model_dump_json() if args.json else evidence.markdown())
    return 0


def _costs(args: argparse.Namespace) -> int:
    from clipgate.gate import costs
    from clipgate.settings import load_settings
    from clipgate.wiring import store_with_project

    settings = load_settings()
    # Only prices given in the environment count as the account's own; a KlingAccount
    # block has no price field, so a block-configured account is priced from the list.
    prices_are_estimates = settings.kling is None or settings.kling.prices_are_estimates
    report = costs(
        store_with_project(settings, args.project),
        args.project,
        prices_are_estimates=prices_are_estimates,
    )
    if args.json:
        print(report.model_dump_json())
        return 0
    about = "about " if report.estimated else ""
    print(
        f"project {report.project_id}: {report.generations} generations, "
        f"spent {about}${report.spent_usd:.2f}"
    )
    print(
        f"remaking only flagged clips kept {report.clips_kept_by_reviews} clips, "
        f"saving {about}${report.saved_usd:.2f} against remaking all 18 each round"
    )
    if report.estimated:
        print(
            "estimated from Kling's published list prices: set CLIPGATE_KLING__PRICES_USD "
            "to your account's prices per clip for exact figures"
        )
    return 0


def _parse_feedback(args: argparse.Namespace) -> int:
    from clipgate.feedback import parse_clip_numbers

    print(json.dumps(parse_clip_numbers(args.text)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clipgate", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run the review gate on sample stills")
    demo.add_argument("--flag", default="5,12,17", help="clips the first review flags")
    demo.add_argument("--workdir", default="clipgate-demo", help="where the demo writes")
    demo.add_argument("--json", action="store_true", help="end with one JSON line of results")
    demo.add_argument(
        "--interactive", action="store_true", help="wait for a person to use the resume form"
    )
    demo.set_defaults(handler=_demo)

    feedback = commands.add_parser(
        "parse-feedback", help="print the clip numbers a reviewer's note names"
    )
    feedback.add_argument("text")
    feedback.set_defaults(handler=_parse_feedback)

    review = commands.add_parser("review", help="answer a project's waiting review")
    review.add_argument("project", help="the project id")
    decision = review.add_mutually_exclusive_group(required=True)
    decision.add_argument("--approve", action="store_true", help="approve every clip")
    decision.add_argument("--flag", help='the clips to make again, e.g. "clips 5-8, 12"')
    review.add_argument("--reviewer", default="", help="who is reviewing")
    review.set_defaults(handler=_review)

    recover = commands.add_parser(
        "recover", help="finish a project whose run lost its process (crash, kill, reboot)"
    )
    recover.add_argument("project", help="the project id")
    recover.set_defaults(handler=_recover)

    start = commands.add_parser(
        "start", help="check a project manifest (JSON or YAML) and start the gate on it"
    )
    start.add_argument("manifest", help="the manifest file: project_id, channel, 18 clips")
    start.add_argument(
        "--local", action="store_true", help="run the flow in this process, not on a deployment"
    )
    start.add_argument(
        "--deployment",
        help="the video-review deployment to run (default video-review, as `clipgate serve` "
        "and prefect.yaml name it)",
    )
    start.set_defaults(handler=_start)

    status = commands.add_parser("status", help="where every project stands, or one in detail")
    status.add_argument("project", nargs="?", help="the project id")
    status.add_argument(
        "--json", action="store_true", help="print JSON: a list, or one object with PROJECT"
    )
    status.set_defaults(handler=_status)

    serve = commands.add_parser("serve", help="serve the gate's deployments from this machine")
    serve.set_defaults(handler=_serve)

    room = commands.add_parser("room", help="serve the review room, the reviewer's web page")
    room.add_argument("--host", help="address to listen on (default CLIPGATE_ROOM_HOST, 127.0.0.1)")
    room.add_argument("--port", type=int, help="port (default CLIPGATE_ROOM_PORT, 8780)")
    room.set_defaults(handler=_room)

    evidence = commands.add_parser("audit", help="every review round of a project: the evidence")
    evidence.add_argument("project", help="the project id")
    evidence.add_argument("--json", action="store_true", help="print one JSON object")
    evidence.set_defaults(handler=_audit)

    webhook = commands.add_parser("webhook", help="receive Notion webhooks and resume runs")
    webhook.add_argument("--host", default="127.0.0.1", help="address to listen on")
    webhook.add_argument("--port", type=int, default=8787, help="port to listen on")
    webhook.set_defaults(handler=_webhook)

    spend = commands.add_parser("costs", help="what a project's clips cost and saved")
    spend.add_argument("project", help="the project id")
    spend.add_argument("--json", action="store_true", help="print one JSON object")
    spend.set_defaults(handler=_costs)

    notion = commands.add_parser("notion", help="set up and check the Notion databases")
    notion_commands = notion.add_subparsers(dest="notion_command", required=True)
    init = notion_commands.add_parser("init", help="create the Videos database")
    init.add_argument("--parent", required=True, help="id of the page to create it under")
    init.set_defaults(handler=_notion_init)
    doctor = notion_commands.add_parser("doctor", help="check both databases' properties")
    doctor.set_defaults(handler=_notion_doctor)

    setup = commands.add_parser(
        "setup", help="save Blocks from the environment, create concurrency limits and work pool"
    )
    setup.set_defaults(handler=_setup)
    add_mp4_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except ClipgateError as error:
        print(f"clipgate: {error}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
