"""Where a job finds its datasets (pure: no database, no files).

A job sees the same paths as a session: ``$AITESTBED_DATASETS_DIR/<slug>``, and
``AITESTBED_DATASETS`` lists the datasets it was given. The gateway has already decided
that the user may use each of them (:func:`aitestbed.portal.datasets.access.decide_and_audit`);
this module only places them:

* **Slurm in a container** (``container_launcher`` apptainer or pyxis, and the job names
  an image): each dataset's ``cluster_path`` is bound read-only at ``/datasets/<slug>``.
* **Slurm without a container**: the job reads the nodes' own ``jobs.datasets_dir``; a
  dataset must be at ``<datasets_dir>/<slug>`` there, anything else is an operator
  configuration problem and refused with a message saying so. Nothing makes the files
  read-only for the job but their permissions on the cluster's filesystem.
* **Local backend**: the backend links each dataset's folder into the job's own folder
  (:class:`aitestbed.portal.jobs.local.LocalBackend`).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from aitestbed.policy.mounts import MOUNT_ROOT, datasets_environment

# Bind specifications are "src:dst:ro" joined by commas: those two characters (and control
# characters) cannot be part of a path given to apptainer or pyxis.
UNBINDABLE = re.compile(r"[,:\x00-\x1f\x7f]")


class DatasetPlacementError(ValueError):
    """The site's configuration cannot give this dataset to a job (for the operators)."""


@dataclass(frozen=True)
class JobDataset:
    """A dataset a job may use: its slug and where its files are."""

    slug: str
    storage: Mapping[str, str] = field(default_factory=dict)
    cluster_path: str | None = None


def cluster_path(dataset: JobDataset, datasets_dir: str) -> str:
    """Where the cluster's nodes see the dataset: its own cluster_path, else
    ``<datasets_dir>/<slug>``."""
    return posixpath.normpath(dataset.cluster_path or posixpath.join(datasets_dir, dataset.slug))


def slurm_placement(
    datasets: Sequence[JobDataset], *, datasets_dir: str, in_container: bool
) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """``(binds, environment)`` of a Slurm job: ``binds`` are (cluster path, path in the
    container) pairs for the container launcher (empty without a container)."""
    slugs = [d.slug for d in datasets]
    if in_container:
        binds = []
        for dataset in datasets:
            source = cluster_path(dataset, datasets_dir)
            if not source.startswith("/") or UNBINDABLE.search(source):
                raise DatasetPlacementError(
                    f"The dataset {dataset.slug!r} is at {source!r} on the cluster, which "
                    "cannot be bound into a container (it must be an absolute path without "
                    "',' or ':'). Tell the operators to fix its cluster_path."
                )
            binds.append((source, f"{MOUNT_ROOT}/{dataset.slug}"))
        return binds, datasets_environment(MOUNT_ROOT, slugs)
    root = posixpath.normpath(datasets_dir)
    for dataset in datasets:
        where = cluster_path(dataset, datasets_dir)
        if where != posixpath.join(root, dataset.slug):
            raise DatasetPlacementError(
                f"The dataset {dataset.slug!r} is at {where} on the cluster, but jobs without a "
                f"container find datasets at {root}/<slug> (jobs.datasets_dir). Tell the "
                "operators: its cluster_path or jobs.datasets_dir must be fixed, or run the job "
                "in an image."
            )
    return [], datasets_environment(root, slugs)
