"""The datasets a session or job mounts, as the portal decided them (pure; hub and portal).

The portal answers an admitted start with the datasets the user may use in the session's
project (entitled, current terms accepted) and the ones it refused with the reason. The
spawners turn the first into read-only mounts (Kubernetes volumes, or links in the embedded
default) and show the second as progress messages.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

MOUNT_ROOT = "/datasets"
DATASETS_DIR_ENV = "AITESTBED_DATASETS_DIR"
DATASETS_ENV = "AITESTBED_DATASETS"
DATASET_SLUG = re.compile(r"^[a-z0-9]([a-z0-9-]{0,58}[a-z0-9])?$")


@dataclass(frozen=True)
class DatasetMount:
    slug: str
    storage: Mapping[str, str] = field(default_factory=dict)
    version: str = ""
    cluster_path: str | None = None

    @property
    def kind(self) -> str:
        return str(self.storage.get("kind", ""))

    @property
    def mount_path(self) -> str:
        return f"{MOUNT_ROOT}/{self.slug}"


def parse_mounts(items: Iterable[Mapping[str, Any]] | None) -> list[DatasetMount]:
    """The portal's ``datasets`` answer -> mounts; a malformed slug is a portal bug."""
    mounts = []
    for item in items or ():
        slug = str(item["slug"])
        if not DATASET_SLUG.match(slug):
            raise ValueError(f"The portal answered an invalid dataset slug {slug[:80]!r}.")
        mounts.append(
            DatasetMount(
                slug=slug,
                storage={str(k): str(v) for k, v in dict(item.get("storage") or {}).items()},
                version=str(item.get("version", "")),
                cluster_path=item.get("cluster_path"),
            )
        )
    return sorted(mounts, key=lambda m: m.slug)


def refusal_messages(items: Iterable[Mapping[str, Any]] | None) -> list[str]:
    """One line per refused dataset, e.g. "digits is not mounted: accept its terms first"."""
    hints = {
        "terms-not-accepted": "accept its terms first (aitestbed.datasets.accept_terms or "
        "the dataset browser), then restart the session",
        "not-entitled": "it is not granted to this project",
        "disabled": "it has been withdrawn",
    }
    return [
        f"{item['slug']} is not mounted: {hints.get(item.get('code', ''), item.get('reason', ''))}"
        for item in items or ()
    ]


def datasets_environment(datasets_dir: str, slugs: Iterable[str]) -> dict[str, str]:
    """What sessions and jobs are told: where datasets are, and which ones there are."""
    return {DATASETS_DIR_ENV: datasets_dir, DATASETS_ENV: ",".join(sorted(slugs))}
