"""``%%job``: submit the cell as a batch script.

::

    %load_ext aitestbed.notebook.magics
    %%job --gpus 1 --time 30 --name train --dataset digits
    python train.py --epochs 3

The options are those of ``aitestbed job submit`` (``--project``, ``--gpus``, ``--nodes``,
``--time``, ``--dataset`` ...), plus ``--wait`` and ``--as NAME``.

The cell is your own bash script; it runs as your Unix user on the cluster. The magic
prints the job and stores it in ``_job`` (and in the variable named by ``--as``).
"""

from __future__ import annotations

import argparse
import shlex

from aitestbed.notebook import jobs
from aitestbed.notebook.cli import add_job_options, job_shape


class JobOptionError(ValueError):
    """A ``%%job`` line that cannot be read; IPython shows it as one line, no traceback."""

    # IPython prints exceptions of classes named UsageError without a traceback only for
    # its own class; _render_traceback_ is the documented hook for custom exceptions.
    def _render_traceback_(self) -> list[str]:
        return [str(self)]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        options = " ".join(sorted(o for a in self._actions for o in a.option_strings))
        raise JobOptionError(f"%%job: {message}. Options: {options}")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="%%job", add_help=False, exit_on_error=False)
    add_job_options(parser)
    parser.add_argument("--wait", action="store_true", help="wait until the job ends")
    parser.add_argument("--as", dest="variable", help="also store the job in this variable")
    return parser


def job_magic(line: str, cell: str, *, client=None, shell=None):
    try:
        words = shlex.split(line)
    except ValueError as error:  # an unclosed quote
        raise JobOptionError(f"%%job: {error}.") from None
    try:
        options = _parser().parse_args(words)
    except argparse.ArgumentError as error:
        raise JobOptionError(f"%%job: {error}.") from None
    shape = job_shape(options)
    shape["name"] = shape["name"] or "cell"
    job = jobs.submit(script_text=cell, **shape, client=client)
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
