"""``%%job``: submit the cell as a batch script.

::

    %load_ext aitestbed.notebook.magics
    %%job --gpus 1 --time 30 --name train
    python train.py --epochs 3

The cell is your own bash script; it runs as your Unix user on the cluster. The magic
prints the job and stores it in ``_job`` (and in the variable named by ``--as``).
"""

from __future__ import annotations

import argparse
import shlex

from aitestbed.notebook import jobs


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="%%job", add_help=False, exit_on_error=False)
    parser.add_argument("--project")
    parser.add_argument("--name")
    parser.add_argument("--gpus", type=int, default=0)
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--cpus", type=int, default=1)
    parser.add_argument("--time", type=int, default=60)
    parser.add_argument("--partition")
    parser.add_argument("--workdir")
    parser.add_argument("--wait", action="store_true")
    parser.add_argument("--as", dest="variable")
    return parser


def job_magic(line: str, cell: str, *, client=None, shell=None):
    try:
        options = _parser().parse_args(shlex.split(line))
    except (argparse.ArgumentError, SystemExit) as error:
        raise ValueError(f"%%job: {error}; options: {_parser().format_usage()}") from None
    job = jobs.submit(
        script_text=cell,
        project=options.project,
        name=options.name or "cell",
        gpus=options.gpus,
        nodes=options.nodes,
        cpus=options.cpus,
        time_limit=options.time,
        partition=options.partition,
        working_dir=options.workdir,
        client=client,
    )
    print(f"Submitted job {job.id} ({job.data['name']}): {job.state}")
    if shell is not None:
        shell.user_ns["_job"] = job
        if options.variable:
            shell.user_ns[options.variable] = job
    if options.wait:
        job.wait()
    return job


def load_ipython_extension(ipython) -> None:
    def magic(line, cell):
        job_magic(line, cell, shell=ipython)

    ipython.register_magic_function(magic, magic_kind="cell", magic_name="job")
