"""``aitestbed``: the portal from a terminal in your session.

aitestbed job submit --gpus 2 --time 120 -- python train.py --epochs 10
aitestbed job submit --notebook analysis.ipynb -p lr=0.01 --wait
aitestbed job list
aitestbed job logs 42 [--follow]
aitestbed job cancel 42
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from aitestbed.notebook import jobs
from aitestbed.notebook.client import PortalClient, PortalError


def _parameter(text: str) -> tuple[str, object]:
    name, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r}: write name=value")
    try:
        return name, json.loads(value)
    except ValueError:
        return name, value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aitestbed", description="AI Testbed Portal CLI")
    commands = parser.add_subparsers(dest="area", required=True)
    job = commands.add_parser("job", help="batch jobs").add_subparsers(dest="action", required=True)

    submit = job.add_parser("submit", help="submit a command, script or notebook")
    submit.add_argument("--project", help="project to charge (default: your only project)")
    submit.add_argument("--name")
    submit.add_argument("--gpus", type=int, default=0, help="GPUs per node")
    submit.add_argument("--nodes", type=int, default=1)
    submit.add_argument("--cpus", type=int, default=1)
    submit.add_argument("--memory-mb", type=int)
    submit.add_argument("--time", type=int, default=60, help="time limit in minutes")
    submit.add_argument("--partition")
    submit.add_argument("--workdir", help="under your home or project folder")
    submit.add_argument("--image", help="curated image slug")
    submit.add_argument(
        "--dataset",
        action="append",
        default=[],
        metavar="SLUG",
        help="a catalog dataset the job reads at $AITESTBED_DATASETS_DIR/SLUG (repeatable)",
    )
    submit.add_argument("--torchrun", action="store_true", help="launch with torchrun")
    submit.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    submit.add_argument("--script", help="a bash script to run (arguments follow)")
    submit.add_argument("--notebook", help="a notebook to run with papermill")
    submit.add_argument(
        "-p", "--parameter", action="append", type=_parameter, default=[], metavar="NAME=VALUE"
    )
    submit.add_argument("--wait", action="store_true", help="wait and show progress")
    submit.add_argument("command", nargs=argparse.REMAINDER, help="-- program and arguments")

    job.add_parser("list", help="your jobs")
    for action in ("status", "logs", "cancel"):
        sub = job.add_parser(action)
        sub.add_argument("job_id", type=int)
        if action == "logs":
            sub.add_argument("--follow", "-f", action="store_true")
    return parser


HEADER = f"{'ID':>6}  {'NAME':<20} {'PROJECT':<16} {'STATE':<10} {'EXIT':>4} {'GPUS':>4}  SUBMITTED"


def _row(data: dict) -> str:
    exit_code = "" if data["exit_code"] is None else str(data["exit_code"])
    gpus = data["nodes"] * data["gpus_per_node"]
    return (
        f"{data['id']:>6}  {data['name'][:20]:<20} {data['project'][:16]:<16} "
        f"{data['state']:<10} {exit_code:>4} {gpus:>4}  {data['submitted_at'][:19]}"
    )


def _follow(job: jobs.Job) -> int:
    shown = 0
    while True:
        text = job.logs(tail_bytes=1024 * 1024)
        if len(text) > shown:
            sys.stdout.write(text[shown:])
            sys.stdout.flush()
            shown = len(text)
        if job.status() in jobs.FINAL_STATES:
            return 0
        time.sleep(2)


def run(args: argparse.Namespace, client: PortalClient) -> int:
    if args.action == "submit":
        command = [word for word in args.command if word != "--"] if args.command else []
        env = dict(item.partition("=")[::2] for item in args.env)
        job = jobs.submit(
            command or None,
            script=args.script,
            args=command if args.script else (),
            notebook=args.notebook,
            parameters=dict(args.parameter),
            project=args.project,
            name=args.name,
            gpus=args.gpus,
            nodes=args.nodes,
            cpus=args.cpus,
            memory_mb=args.memory_mb,
            time_limit=args.time,
            partition=args.partition,
            working_dir=args.workdir,
            environment=env or None,
            image=args.image,
            distributed="torchrun" if args.torchrun else "none",
            datasets=args.dataset,
            client=client,
        )
        print(f"Submitted job {job.id} ({job.data['name']}) to {job.data['partition']}.")
        if args.wait:
            state = job.wait(interval=2)
            return 0 if state == "COMPLETED" else 1
        return 0
    if args.action == "list":
        print(HEADER)
        for job in jobs.list(client):
            print(_row(job.data))
        return 0
    job = jobs.get(args.job_id, client)
    if args.action == "status":
        print(_row(job.data))
    elif args.action == "logs":
        if args.follow:
            return _follow(job)
        sys.stdout.write(job.logs())
    elif args.action == "cancel":
        job.cancel()
        print(f"Cancel requested for job {job.id}.")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return run(args, PortalClient())
    except (PortalError, ValueError) as error:
        print(f"aitestbed: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
