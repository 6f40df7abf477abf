"""``aitestbed``: the portal from a terminal in your session.

aitestbed job submit --gpus 2 --time 120 -- python train.py --epochs 10
aitestbed job submit --notebook analysis.ipynb -p lr=0.01 --wait
aitestbed job list
aitestbed job logs 42 [--follow]
aitestbed job cancel 42
aitestbed dataset list [--tag images] [words ...]
aitestbed dataset info digits
aitestbed dataset accept digits [--yes]
aitestbed dataset path digits
aitestbed dataset files digits [images/3]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from aitestbed.notebook import datasets, jobs
from aitestbed.notebook.client import PortalClient, PortalError


def _parameter(text: str) -> tuple[str, object]:
    name, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r}: write name=value")
    try:
        return name, json.loads(value)
    except ValueError:
        return name, value


def add_job_options(parser: argparse.ArgumentParser) -> None:
    """The options of a job's shape, shared by ``aitestbed job submit`` and ``%%job``."""
    parser.add_argument("--project", help="project to charge (default: your only project)")
    parser.add_argument("--name")
    parser.add_argument("--gpus", type=int, default=0, help="GPUs per node")
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--cpus", type=int, default=1)
    parser.add_argument("--memory-mb", type=int)
    parser.add_argument("--time", type=int, default=60, help="time limit in minutes")
    parser.add_argument("--partition")
    parser.add_argument("--workdir", help="under your home or project folder")
    parser.add_argument("--image", help="curated image slug")
    parser.add_argument(
        "--dataset",
        action="append",
        default=[],
        metavar="SLUG",
        help="a catalog dataset the job reads at $AITESTBED_DATASETS_DIR/SLUG (repeatable)",
    )
    parser.add_argument("--torchrun", action="store_true", help="launch with torchrun")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")


def job_shape(args: argparse.Namespace) -> dict:
    """``jobs.submit`` keyword arguments from the options :func:`add_job_options` added."""
    return {
        "project": args.project,
        "name": args.name,
        "gpus": args.gpus,
        "nodes": args.nodes,
        "cpus": args.cpus,
        "memory_mb": args.memory_mb,
        "time_limit": args.time,
        "partition": args.partition,
        "working_dir": args.workdir,
        "environment": dict(item.partition("=")[::2] for item in args.env) or None,
        "image": args.image,
        "distributed": "torchrun" if args.torchrun else "none",
        "datasets": args.dataset,
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aitestbed", description="AI Testbed Portal CLI")
    commands = parser.add_subparsers(dest="area", required=True)
    job = commands.add_parser("job", help="batch jobs").add_subparsers(dest="action", required=True)

    submit = job.add_parser("submit", help="submit a command, script or notebook")
    add_job_options(submit)
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

    dataset = commands.add_parser("dataset", help="the dataset catalog").add_subparsers(
        dest="action", required=True
    )
    listing = dataset.add_parser("list", help="datasets you can see (all words must match)")
    listing.add_argument("--tag")
    listing.add_argument("words", nargs="*")
    for action, text in (
        ("info", "details, terms and whether you may use it"),
        ("accept", "show the current terms and accept them"),
        ("path", "where the dataset is in this session"),
        ("files", "a folder of the dataset"),
    ):
        sub = dataset.add_parser(action, help=text)
        sub.add_argument("slug")
        if action == "accept":
            sub.add_argument("--yes", action="store_true", help="accept without asking")
        if action == "files":
            sub.add_argument("path", nargs="?", default="")
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


DATASET_HEADER = f"{'DATASET':<28} {'USABLE':<6} {'TERMS':<9} {'SIZE':>10}  TITLE"


def _dataset_row(item: datasets.Dataset) -> str:
    terms = "-" if item.terms_version is None else ("accepted" if item.terms_accepted else "needed")
    size = "" if item.size_bytes is None else f"{item.size_bytes / 2**20:.1f} MiB"
    if item.size_state == "measuring":
        size = "measuring"
    usable = "yes" if item.usable else "no"
    return f"{item.slug[:28]:<28} {usable:<6} {terms:<9} {size:>10}  {item.title}"


def run_dataset(args: argparse.Namespace, client: PortalClient) -> int:
    if args.action == "list":
        print(DATASET_HEADER)
        found = datasets.search(" ".join(args.words), tag=args.tag, client=client)
        for item in found:
            print(_dataset_row(item))
        return 0
    if args.action == "path":
        print(datasets.path(args.slug, client=client))
        return 0
    if args.action == "files":
        for entry in datasets.files(args.slug, args.path, client=client):
            size = "" if entry.size is None else str(entry.size)
            print(f"{entry.type:<4} {size:>12}  {entry.path}")
        return 0
    details = datasets.info(args.slug, client=client)
    if args.action == "info":
        print(_dataset_row(details).split("  ", 1)[0])
        for label, value in (
            ("Title", details.title),
            ("License", details.license),
            ("Version", details.version),
            ("Tags", ", ".join(details.tags)),
            ("Path", details.path),
            ("Access", details.access.reason or "You may use it."),
        ):
            print(f"{label + ':':<9}{value}")
        if details.terms_version:
            print(f"\nTerms, version {details.terms_version}:\n{details.terms_text}")
        return 0
    # accept
    if details.terms_version is None:
        print(f"{args.slug} has no terms to accept: you may use it as it is.")
        return 0
    print(f"Terms of {details.title} ({args.slug}), version {details.terms_version}:\n")
    print(details.terms_text + "\n")
    if not args.yes:
        try:
            answer = input("Type 'yes' to accept these terms: ")
        except EOFError:  # no terminal to answer from
            answer = ""
        if answer.strip().lower() != "yes":
            print("Not accepted (answer 'yes', or pass --yes).")
            return 1
    datasets.accept_terms(args.slug, details.terms_version, quiet=False, client=client)
    return 0


def run(args: argparse.Namespace, client: PortalClient) -> int:
    if args.area == "dataset":
        return run_dataset(args, client)
    if args.action == "submit":
        command = [word for word in args.command if word != "--"] if args.command else []
        job = jobs.submit(
            command or None,
            script=args.script,
            args=command if args.script else (),
            notebook=args.notebook,
            parameters=dict(args.parameter),
            **job_shape(args),
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
