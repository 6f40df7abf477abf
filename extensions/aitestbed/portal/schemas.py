"""Wire models of the portal API (what clients send and receive; also the OpenAPI).

Conventions every router follows:

- Times in answers are :data:`UtcDateTime`: always with a UTC offset (SQLite hands back
  naive datetimes; every stored time is UTC), so each one is a valid RFC 3339 ``date-time``.
- Numbers in requests are strict (``true`` is not 1) and bounded in the schema itself, so the
  OpenAPI says what is accepted; ids, offsets and sizes stay within a database integer.
- Every error answer is a :class:`Problem` (declared on every route by :data:`ERRORS`).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, StrictInt, field_validator

from aitestbed.portal.jobs.spec import MAX_PARAMETER_DEPTH, json_depth
from aitestbed.portal.usage import as_utc

ProjectStatus = Literal["active", "not-yet-valid", "expired"]
# The largest value a database integer column holds (PostgreSQL BIGINT, SQLite INTEGER).
MAX_DB_INT = 2**63 - 1


UtcDateTime = Annotated[datetime, AfterValidator(as_utc)]
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def _date_time_text(value: Any) -> Any:
    """A time filter is written as a date and time (RFC 3339), never as a bare number
    (which pydantic would read as seconds since 1970)."""
    if isinstance(value, str) and not _DATE_TIME.match(value):
        raise ValueError("give a date and time like 2026-11-01T00:00:00Z")
    return value


def in_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a time without an offset is taken as UTC."""
    return as_utc(moment).astimezone(UTC)


# A time filter in a query: RFC 3339 text, compared in UTC whatever offset it was given in.
TimeFilter = Annotated[datetime, BeforeValidator(_date_time_text), AfterValidator(in_utc)]


class FieldProblem(BaseModel):
    field: str = Field(description="The request field, e.g. nodes or parameters.lr.")
    message: str


class CodedDetail(BaseModel):
    code: str = Field(description="A stable word for programs, e.g. not-entitled.")
    message: str = Field(description="The sentence for people.")


class Problem(BaseModel):
    """Every error answer of the portal.

    ``detail`` says what went wrong and what to do (dataset decisions give a code and the
    sentence). A 422 names the first field in ``field`` (and ``detail`` starts with it) and,
    for a request the schema refuses, lists every problem in ``errors``.
    """

    detail: str | CodedDetail
    field: str | None = None
    errors: list[FieldProblem] | None = None


ERROR_STATUSES = (400, 401, 403, 404, 409, 413, 415, 422, 503)
ERRORS: dict[int | str, dict[str, Any]] = {status: {"model": Problem} for status in ERROR_STATUSES}
# Routes whose success is a file (CSV): their errors are still JSON Problems.
FILE_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
    for status in ERROR_STATUSES
}


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
    created_at: UtcDateTime
    decided_at: UtcDateTime | None
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


# Bounds of a job request in the schema; each partition's own limits are checked after.
MAX_NODES = 10_000
MAX_GPUS_PER_NODE = 64
MAX_CPUS_PER_TASK = 4096
MAX_MEMORY_MB = 64 * 1024 * 1024  # 64 TB
MAX_TIME_LIMIT_MINUTES = 366 * 24 * 60

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
    nodes: StrictInt = Field(1, ge=1, le=MAX_NODES, description="The partition may allow fewer.")
    gpus_per_node: StrictInt = Field(
        0, ge=0, le=MAX_GPUS_PER_NODE, description="The partition may allow fewer."
    )
    cpus_per_task: StrictInt = Field(1, ge=1, le=MAX_CPUS_PER_TASK)
    memory_mb: StrictInt | None = Field(None, ge=1, le=MAX_MEMORY_MB)
    time_limit_minutes: StrictInt = Field(60, ge=1, le=MAX_TIME_LIMIT_MINUTES)
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
        None,
        min_length=1,
        max_length=128,
        description="Same key, same job: a retried submission never makes a second one.",
    )

    @field_validator("parameters")
    @classmethod
    def _shallow(cls, value: dict[str, object] | None) -> dict[str, object] | None:
        for key, item in (value or {}).items():
            if json_depth(item) > MAX_PARAMETER_DEPTH:
                raise ValueError(
                    f"{key} nests deeper than {MAX_PARAMETER_DEPTH} levels of lists and mappings"
                )
        return value


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
    submitted_at: UtcDateTime
    started_at: UtcDateTime | None
    ended_at: UtcDateTime | None
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
    warned_at: UtcDateTime
    stop_at: UtcDateTime
    stopped_at: UtcDateTime | None
    rescinded_at: UtcDateTime | None
