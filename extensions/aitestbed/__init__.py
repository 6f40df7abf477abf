"""AI Testbed Portal.

In a notebook session::

    import aitestbed
    aitestbed.quota_panel()            # your projects and allocations, as a widget
    aitestbed.PortalClient().me()      # the same, as data
    aitestbed.jobs.submit(["python", "train.py"], gpus=1)   # batch jobs (see aitestbed.jobs)
    aitestbed.job_launcher(); aitestbed.job_monitor()      # the same, as widgets
    aitestbed.datasets.list(); aitestbed.datasets.path("iris")  # datasets (aitestbed.datasets)
    aitestbed.datasets.browser()        # search, terms, previews, code to load, as a widget

Subpackages by where they run: ``aitestbed.notebook`` (in every user session),
``aitestbed.hub`` (inside JupyterHub), ``aitestbed.portal`` (the portal service),
``aitestbed.settings`` (site settings, read by hub and portal). Importing this package
imports none of them until a name below is used.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "PortalClient",
    "PortalError",
    "datasets",
    "job_launcher",
    "job_monitor",
    "jobs",
    "quota_panel",
]

_LAZY = {
    "PortalClient": "aitestbed.notebook.client",
    "PortalError": "aitestbed.notebook.client",
    "quota_panel": "aitestbed.notebook.widgets",
    "job_launcher": "aitestbed.notebook.job_widgets",
    "job_monitor": "aitestbed.notebook.job_widgets",
}
_MODULES = {"jobs": "aitestbed.notebook.jobs", "datasets": "aitestbed.notebook.datasets"}


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext aitestbed``: the ``%%job`` cell magic."""
    from aitestbed.notebook.magics import load_ipython_extension as load

    load(ipython)


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        import importlib

        return importlib.import_module(_MODULES[name])
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'aitestbed' has no attribute {name!r}")
