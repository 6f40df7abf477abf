"""Policy overhead: N concurrent starts with the policy layer and without it, in one run.

All N users (default 50) are logged in, then all start their servers at the same moment.
Variants, run one after the other, all with the same single-user command
(``jupyterhub-singleuser``, JupyterLab, ``/lab``), arguments, home folder scheme and start
timeouts of 300 s:

* ``bare``: plain JupyterHub with ``SimpleLocalProcessSpawner`` -- the local process
  spawner that ``PortalLocalSpawner`` builds on, without admission and without queue.
* ``admission``: the embedded default (``PortalLocalSpawner``) with the start queue opened
  to N slots, so every start pays for the policy layer (portal spawn context, policy
  decision, session record, project folder and environment) but nothing waits for a slot.
  This isolates what the policy layer itself costs.
* ``portal``: the embedded default as shipped: admission plus the start queue (one slot per
  CPU core).

Usage: ``.venv/bin/python bench/policy_bench.py [--users 50] [--order ...]``.
Results: a table on stdout and JSON in bench/results/policy-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import sys

from _common import Variant, common_arguments, parse_order, run_benchmark, running_plain
from _common import running_portal as portal_hub

TIMEOUT = 300


def _variants(users: int) -> dict[str, Variant]:
    return {
        "bare": Variant(
            "bare",
            f"plain JupyterHub, SimpleLocalProcessSpawner, start/http timeouts {TIMEOUT} s",
            lambda name, workdir, names: running_plain(name, workdir, names, TIMEOUT),
        ),
        "admission": Variant(
            "admission",
            f"PortalLocalSpawner, admission, start queue with {users} slots (no waiting)",
            lambda name, workdir, names: portal_hub(
                name, workdir, names, start_slots=users, session_start_timeout_seconds=TIMEOUT
            ),
        ),
        "portal": Variant(
            "portal",
            "PortalLocalSpawner as shipped: admission, start queue (slots = CPU cores)",
            lambda name, workdir, names: portal_hub(
                name, workdir, names, session_start_timeout_seconds=TIMEOUT
            ),
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common_arguments(parser, users=50, order="bare,admission,portal")
    args = parser.parse_args(argv)
    variants = _variants(args.users)
    order = parse_order(parser, args, variants)
    return run_benchmark(
        "policy",
        variants,
        order,
        [("admission", "bare"), ("portal", "bare")],
        args,
        {"timeout_s": TIMEOUT, "variants": {k: v.what for k, v in variants.items()}},
    )


if __name__ == "__main__":
    sys.exit(main())
