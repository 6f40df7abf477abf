"""Start storm: N simultaneous starts, the portal's queue against plain JupyterHub.

A class presses Start at 9:00. All N users (default 20) are logged in, then all start their
servers at the same moment. Variants, run one after the other in one invocation, all with
the same single-user command (``jupyterhub-singleuser``, JupyterLab, ``/lab``), arguments
and home folder scheme:

* ``plain-default``: plain JupyterHub, ``SimpleLocalProcessSpawner``, JupyterHub's default
  timeouts (``start_timeout`` 60 s, ``http_timeout`` 30 s).
* ``plain-raised``: the same with both timeouts raised to 300 s.
* ``portal``: the embedded default as shipped (``PortalLocalSpawner``: admission by the
  portal, start queue with one slot per CPU core, ``session_start_timeout_seconds`` 120 once
  a start has its slot); only the bench users, their membership of acme-vision and the
  cpu-small capacity (raised to N) differ from hub_config/settings.yaml.

``--slots 4,8`` adds variants ``portal-slots4``, ``portal-slots8``: the same embedded default
with ``PolicySpawnerMixin.start_slots`` set to that number instead of the CPU count (to see
how the queue's size changes the result; they run after ``--order``'s variants).

Usage: ``.venv/bin/python bench/storm_bench.py [--users 20] [--order ...] [--slots ...]``.
Results: a table on stdout and JSON in bench/results/storm-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import sys

from _common import Variant, common_arguments, parse_order, run_benchmark, running_plain
from _common import running_portal as portal_hub

RAISED_TIMEOUT = 300

VARIANTS = {
    "plain-default": Variant(
        "plain-default",
        "plain JupyterHub, SimpleLocalProcessSpawner, default timeouts (start 60 s, http 30 s)",
        lambda name, workdir, users: running_plain(name, workdir, users, None),
    ),
    "plain-raised": Variant(
        "plain-raised",
        f"plain JupyterHub, SimpleLocalProcessSpawner, start/http timeouts {RAISED_TIMEOUT} s",
        lambda name, workdir, users: running_plain(name, workdir, users, RAISED_TIMEOUT),
    ),
    "portal": Variant(
        "portal",
        "embedded default: PortalLocalSpawner, admission, start queue (slots = CPU cores)",
        portal_hub,
    ),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common_arguments(parser, users=20, order="plain-default,plain-raised,portal")
    parser.add_argument(
        "--slots",
        default="",
        help="comma separated start_slots values to try as extra portal variants (default none)",
    )
    args = parser.parse_args(argv)
    order = parse_order(parser, args, VARIANTS)
    variants = dict(VARIANTS)
    pairs = [("portal", "plain-raised"), ("portal", "plain-default")]
    for text in filter(None, (s.strip() for s in args.slots.split(","))):
        if not text.isdigit() or int(text) < 1:
            parser.error("--slots takes positive whole numbers, comma separated")
        key = f"portal-slots{text}"
        what = f"embedded default with start_slots = {text}"
        variants[key] = Variant(key, what, _slots(int(text)))
        order.append(key)
        pairs.append((key, "plain-raised"))
    return run_benchmark(
        "storm",
        variants,
        order,
        pairs,
        args,
        {"raised_timeout_s": RAISED_TIMEOUT, "variants": {k: v.what for k, v in variants.items()}},
    )


def _slots(slots: int):
    return lambda name, workdir, users: portal_hub(name, workdir, users, start_slots=slots)


if __name__ == "__main__":
    sys.exit(main())
