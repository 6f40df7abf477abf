"""Wire models of the portal API (what clients send and receive; also the OpenAPI)."""

from __future__ import annotations

from datetime import date, datetime
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
    kind: Literal["project", "course"] = Field(
        default="project", description="A course is a project with a term, slots and roles."
    )
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
    instructor: bool = Field(
        default=False, description="Set from single sign-on groups (settings: oidc mapping)."
    )
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


AccessRequestStatus = Literal["pending", "approved", "declined"]
SLUG = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"


class AccessRequestIn(BaseModel):
    project: str | None = Field(
        default=None,
        pattern=SLUG,
        max_length=63,
        description="The project to join, if known (its slug); else say what for in reason.",
    )
    reason: str = Field(
        min_length=1, max_length=2000, description="What the access is for, in a few words."
    )


class AccessRequestOut(BaseModel):
    id: int
    user: str
    project: str | None = Field(description="The project asked for (as typed).")
    reason: str
    status: AccessRequestStatus
    created_at: datetime
    decided_at: datetime | None
    decided_by: str | None
    decision_note: str
    granted_project: str | None = Field(description="Set when approved: the project joined.")
    granted_role: Literal["member", "manager"] | None


class AccessApproval(BaseModel):
    project: str | None = Field(
        default=None,
        pattern=SLUG,
        max_length=63,
        description="Project to grant; default: the one the request names.",
    )
    role: Literal["member", "manager"] = "member"
    note: str = Field(default="", max_length=2000, description="Shown to the requester.")


class AccessDecline(BaseModel):
    note: str = Field(default="", max_length=2000, description="Shown to the requester.")


class Problem(BaseModel):
    detail: str


JobStateName = Literal["PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"]


class JobSubmit(BaseModel):
    """A job request. Only ``project`` and what the kind needs are required."""

    name: str = Field("job", description="1-64 letters, digits, '.', '_' or '-'.")
    project: str = Field(description="Slug of the project to charge.")
    kind: Literal["command", "script", "notebook"] = "command"
    command: list[str] | None = Field(
        None, description="kind command: the program and its arguments, as a list."
    )
    script: str | None = Field(None, description="kind script: path of a bash script.")
    script_text: str | None = Field(None, description="kind script: the script's text instead.")
    args: list[str] | None = Field(None, description="Arguments of the script.")
    notebook: str | None = Field(None, description="kind notebook: path of the .ipynb to run.")
    parameters: dict[str, object] | None = Field(None, description="Notebook parameters.")
    working_dir: str | None = Field(
        None, description="Under your home or the project folder; default: your home."
    )
    partition: str | None = Field(None, description="Default: the site's default partition.")
    nodes: int = 1
    gpus_per_node: int = 0
    cpus_per_task: int = 1
    memory_mb: int | None = None
    time_limit_minutes: int = 60
    environment: dict[str, str] | None = None
    image: str | None = Field(None, description="Curated image slug (container launcher).")
    distributed: Literal["none", "torchrun"] = "none"
    datasets: list[str] | None = Field(
        None,
        description="Slugs of catalog datasets the job reads; each must be usable by you in "
        "the project (granted, terms accepted). The job finds them at "
        "$AITESTBED_DATASETS_DIR/<slug>.",
    )
    idempotency_key: str | None = Field(
        None, description="Same key, same job: a retried submission never makes a second one."
    )


class JobOut(BaseModel):
    id: int
    uid: str
    name: str
    owner: str
    project: str
    kind: str
    state: JobStateName
    reason: str
    exit_code: int | None
    partition: str
    nodes: int
    gpus_per_node: int
    time_limit_minutes: int
    working_dir: str
    output_path: str
    notebook_output: str | None
    backend: str
    backend_job_id: str | None
    submitted_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    gpu_hours_charged: float | None
    datasets: list[str] = Field(
        default_factory=list,
        description="Datasets the job reads, at $AITESTBED_DATASETS_DIR/<slug>.",
    )


class JobLogs(BaseModel):
    job_id: int
    path: str
    text: str
    truncated: bool


class JobProblem(BaseModel):
    detail: str
    field: str | None = None


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


class SessionRevocationOut(BaseModel):
    """One session whose project access ended (the audit log of revocations)."""

    user: str
    project: str
    server_name: str
    code: str = Field(description="membership-removed or allocation-ended")
    reason: str
    warned_at: datetime
    stop_at: datetime
    stopped_at: datetime | None
    rescinded_at: datetime | None
