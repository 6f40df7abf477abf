"""Wire models of the portal API (what clients send and receive; also the OpenAPI)."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, Field

ProjectStatus = Literal["active", "not-yet-valid", "expired"]


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: Literal["ok", "unreachable"]
    version: str


class Allocation(BaseModel):
    gpu_hours: float = Field(description="GPU-hour budget of the allocation.")
    max_concurrent_gpus: int = Field(description="GPUs the project may use at the same time.")
    storage_quota_gb: int = Field(description="Project storage quota in GB.")
    valid_from: date
    valid_until: date
    slurm_account: str | None = Field(description="Slurm account charged for batch jobs.")


class ProjectSummary(BaseModel):
    slug: str
    title: str
    status: ProjectStatus
    role: Literal["member", "manager"] | None = Field(
        description="The caller's role in the project; null when an operator views it."
    )
    allocation: Allocation


class ProjectMember(BaseModel):
    user: str
    role: Literal["member", "manager"]


class ProjectDetail(ProjectSummary):
    description: str
    allowed_flavors: list[str] | None = Field(description="Flavor slugs; null means all.")
    allowed_images: list[str] | None = Field(description="Image slugs; null means all.")
    members: list[ProjectMember]


class Me(BaseModel):
    name: str
    operator: bool
    projects: list[ProjectSummary]


class FlavorOut(BaseModel):
    slug: str
    display_name: str
    description: str
    cpu: float
    memory: str
    gpus: int
    gpu_product: str | None
    mig_profile: str | None
    shm: str | None
    max_lifetime_hours: float | None


class ImageOut(BaseModel):
    slug: str
    display_name: str
    description: str
    image: str
    frameworks: list[str]
    cuda: str | None
    gpu_capable: bool


class Problem(BaseModel):
    detail: str


class ProjectUsageOut(BaseModel):
    slug: str
    title: str
    gpu_hours_budget: float
    gpu_hours_used: float = Field(description="Charged so far, running sessions up to now.")
    max_concurrent_gpus: int
    gpus_in_use: float
    running_sessions: int
    valid_from: date
    valid_until: date
