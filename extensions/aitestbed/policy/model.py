"""The plain data the policy decides on."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

# A100/H100 MIG: a GPU has 7 compute slices; "3g.40gb" uses 3 of them.
MIG_SLICES_PER_GPU = 7
_MIG = re.compile(r"^(?P<slices>[0-9]+)g\.[0-9]+gb$")


@dataclass(frozen=True)
class FlavorSpec:
    slug: str
    display_name: str
    cpu: float
    memory: str
    gpus: int = 0
    mig_profile: str | None = None
    gpu_product: str | None = None
    shm: str | None = None
    max_lifetime_hours: float | None = None
    description: str = ""
    enabled: bool = True

    @property
    def uses_gpu(self) -> bool:
        return self.gpus > 0 or self.mig_profile is not None

    @property
    def gpu_equivalent(self) -> float:
        """GPUs this flavor holds, counting a MIG slice as its share of one GPU."""
        if self.mig_profile:
            match = _MIG.match(self.mig_profile)
            slices = int(match.group("slices")) if match else MIG_SLICES_PER_GPU
            return slices / MIG_SLICES_PER_GPU
        return float(self.gpus)


@dataclass(frozen=True)
class ImageSpec:
    slug: str
    display_name: str
    image: str
    description: str = ""
    frameworks: tuple[str, ...] = ()
    cuda: str | None = None
    gpu_capable: bool = False
    enabled: bool = True


@dataclass(frozen=True)
class ProjectState:
    """A project as one member sees it at one moment: allocation and what is in use."""

    slug: str
    title: str
    valid_from: date
    valid_until: date
    gpu_hours_budget: float
    gpu_hours_used: float
    max_concurrent_gpus: int
    gpus_in_use: float
    allowed_flavors: tuple[str, ...] | None = None
    allowed_images: tuple[str, ...] | None = None
    role: str = "member"

    @property
    def gpu_hours_left(self) -> float:
        return max(self.gpu_hours_budget - self.gpu_hours_used, 0.0)

    @property
    def gpus_free(self) -> float:
        return max(self.max_concurrent_gpus - self.gpus_in_use, 0.0)


@dataclass(frozen=True)
class SpawnRequest:
    project: str
    flavor: str
    image: str
