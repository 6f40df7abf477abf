"""Sessions: the hub asks the portal to admit a start and tells it when a session stops.

These endpoints are for the hub only. The hub authenticates with the portal service's own
API token (both get it from the hub configuration), never with a user's token: the user
must not be able to record or close sessions.
"""

from __future__ import annotations

import hmac
from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from aitestbed.policy.datasets import session_datasets
from aitestbed.policy.model import SpawnRequest
from aitestbed.portal import admission, ledger, models
from aitestbed.portal.admission import user_project_states
from aitestbed.portal.auth import token_from_header
from aitestbed.portal.datasets import access as dataset_access
from aitestbed.portal.deps import DbSession
from aitestbed.portal.usage import open_sessions_by_flavor

USERNAME = r"^[a-z0-9][a-z0-9._-]{0,63}$"
SLUG = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"


def require_hub(request: Request) -> None:
    expected = request.app.state.internal_token
    token = token_from_header(request)
    if not expected or not token or not hmac.compare_digest(token, expected):
        raise HTTPException(403, "Only the hub may call this endpoint.")


class ProjectStateOut(BaseModel):
    slug: str
    title: str
    role: str
    valid_from: date
    valid_until: date
    gpu_hours_budget: float
    gpu_hours_used: float
    max_concurrent_gpus: int
    gpus_in_use: float
    running_sessions: int
    allowed_flavors: list[str] | None
    allowed_images: list[str] | None


class FlavorState(BaseModel):
    slug: str
    display_name: str
    description: str
    cpu: float
    memory: str
    gpus: int
    mig_profile: str | None
    gpu_product: str | None
    shm: str | None
    max_lifetime_hours: float | None
    enabled: bool


class ImageState(BaseModel):
    slug: str
    display_name: str
    description: str
    image: str
    frameworks: list[str]
    cuda: str | None
    gpu_capable: bool
    enabled: bool


class RefusedDataset(BaseModel):
    """A dataset of the session's project that is not mounted, and why (for the user)."""

    slug: str
    code: str
    reason: str


class ProjectDatasets(BaseModel):
    """What a session of one project would mount (the spawn page shows it; nothing is
    decided or audited here: the start decides again)."""

    mounted: list[str]
    refused: list[RefusedDataset]


class SpawnContext(BaseModel):
    user: str
    projects: list[ProjectStateOut]
    datasets: dict[str, ProjectDatasets] = Field(
        default_factory=dict, description="Per project slug: its sessions' datasets."
    )
    flavors: list[FlavorState]
    images: list[ImageState]
    sessions_by_flavor: dict[str, int] = Field(
        description="Running sessions of all users per flavor (for capacity)."
    )


class SessionStart(BaseModel):
    user: str = Field(pattern=USERNAME)
    server_name: str = Field(default="", max_length=255)
    project: str = Field(pattern=SLUG, max_length=63)
    flavor: str = Field(pattern=SLUG, max_length=63)
    image: str = Field(pattern=SLUG, max_length=63)
    flavor_places: int | None = Field(
        default=None,
        ge=0,
        le=1_000_000,
        description="Sessions of this flavor the site can hold (the hub's count: "
        "flavor_capacity, or on Kubernetes the free places it read plus the open sessions). "
        "The start is refused (409) when that many sessions of the flavor are open. "
        "None: no known limit.",
    )


class DatasetMount(BaseModel):
    """A dataset the session sees read-only at ``mount_path``."""

    slug: str
    version: str
    mount_path: str
    storage: dict[str, str] = Field(
        description="Where the files are (kind and its fields: path, claim, sub_path, server)."
    )
    cluster_path: str | None = None


class SessionStarted(BaseModel):
    id: int
    gpus: float
    datasets: list[DatasetMount] = Field(default_factory=list)
    refused_datasets: list[RefusedDataset] = Field(default_factory=list)


class SessionStopped(BaseModel):
    id: int
    gpu_hours: float


def _now() -> datetime:
    return datetime.now(UTC)


def decide_session_datasets(
    session: Session, body: SessionStart, record_id: int, today: date
) -> tuple[list[DatasetMount], list[RefusedDataset]]:
    """The datasets an admitted session mounts (entitled in its project, terms accepted)
    and the refused ones it could otherwise use; one audit entry per decision."""
    viewer = dataset_access.viewer_named(session, body.user, today)
    candidates = dataset_access.candidate_datasets(session, [body.project])
    rows = {row.slug: row for row in candidates}
    mounted, refused = session_datasets(
        [dataset_access.rule_for(row) for row in rows.values()], viewer, body.project
    )
    detail = f"server={body.server_name or '(default)'} session={record_id}"
    mounts = []
    for slug in mounted:
        row = rows[slug]
        dataset_access.audit(
            session,
            user=body.user,
            action="mount",
            allowed=True,
            dataset=slug,
            reason="ok",
            project=body.project,
            detail=detail,
        )
        mounts.append(
            DatasetMount(
                slug=slug,
                version=row.version,
                mount_path=dataset_access.mount_path(slug),
                storage={k: str(v) for k, v in (row.storage or {}).items()},
                cluster_path=row.cluster_path,
            )
        )
    refusals = []
    for slug, decision in refused:
        dataset_access.audit(
            session,
            user=body.user,
            action="mount",
            allowed=False,
            dataset=slug,
            reason=f"{decision.code}: {decision.reason}",
            project=body.project,
            detail=detail,
        )
        refusals.append(RefusedDataset(slug=slug, code=decision.code, reason=decision.reason))
    return mounts, refusals


def sessions_router() -> APIRouter:
    router = APIRouter(prefix="/api/internal", tags=["hub"], dependencies=[Depends(require_hub)])

    @router.get("/spawn-context/{user}", response_model=SpawnContext)
    def spawn_context(
        user: Annotated[str, Path(pattern=USERNAME)], session: DbSession
    ) -> SpawnContext:
        """The user's projects with their usage, and the catalog, for the spawn page."""
        now = _now()
        states = user_project_states(session, user, now)
        flavors = session.scalars(select(models.Flavor).order_by(models.Flavor.id))
        images = session.scalars(select(models.Image).order_by(models.Image.id))
        viewer = dataset_access.viewer_named(session, user, now.date())
        candidates = dataset_access.candidate_datasets(session, [s.slug for s, _, _ in states])
        rules = [dataset_access.rule_for(row) for row in candidates]
        datasets = {}
        for state, _, _ in states:
            mounted, refused = session_datasets(rules, viewer, state.slug)
            datasets[state.slug] = ProjectDatasets(
                mounted=mounted,
                refused=[RefusedDataset(slug=s, code=d.code, reason=d.reason) for s, d in refused],
            )
        return SpawnContext(
            user=user,
            datasets=datasets,
            projects=[
                ProjectStateOut(
                    **{k: getattr(s, k) for k in ProjectStateOut.model_fields if hasattr(s, k)},
                    running_sessions=running,
                )
                for s, running, _ in states
            ],
            flavors=[FlavorState.model_validate(f, from_attributes=True) for f in flavors],
            images=[ImageState.model_validate(i, from_attributes=True) for i in images],
            sessions_by_flavor=open_sessions_by_flavor(session),
        )

    @router.post(
        "/sessions",
        response_model=SessionStarted,
        status_code=201,
        responses={403: {"description": "Refused by policy"}, 409: {"description": "No place"}},
    )
    def start_session(body: SessionStart, request: Request, session: DbSession) -> SessionStarted:
        """Admit a start and record it, or refuse with the reason (403 by the project's
        rules, 409 when the flavor's places are taken); see :mod:`aitestbed.portal.admission`."""
        with session.begin():
            now = _now()
            admitted = admission.admit_session(
                session,
                SpawnRequest(body.project, body.flavor, body.image),
                body.user,
                body.flavor_places,
                now,
                timezone=request.app.state.timezone,
            )
            decision = admitted.decision
            if not decision.allowed:
                status = 409 if decision.code == "no-capacity" else 403
                raise HTTPException(status, {"code": decision.code, "message": decision.reason})
            user_id = session.scalar(select(models.User.id).where(models.User.name == body.user))
            record = models.SessionRecord(
                user_id=user_id,
                project_id=admitted.project_id,
                server_name=body.server_name,
                flavor=body.flavor,
                image=body.image,
                gpus=admitted.flavor.gpu_equivalent,
                started_at=now,
            )
            session.add(record)
            session.flush()
            mounts, refused = decide_session_datasets(session, body, record.id, now.date())
            return SessionStarted(
                id=record.id, gpus=record.gpus, datasets=mounts, refused_datasets=refused
            )

    @router.post("/sessions/{record_id}/stop", response_model=SessionStopped)
    def stop_session(record_id: int, session: DbSession) -> SessionStopped:
        """Close a session record and charge its GPU-hours, exactly once (idempotent)."""
        with session.begin():
            if session.get(models.SessionRecord, record_id) is None:
                raise HTTPException(404, f"No session record {record_id}.")
            ledger.stop_session(session, record_id, _now())
            hours = session.scalar(
                select(models.SessionRecord.gpu_hours).where(models.SessionRecord.id == record_id)
            )
            return SessionStopped(id=record_id, gpu_hours=hours or 0.0)

    return router
