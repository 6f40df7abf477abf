"""Access requests: a user without a project asks; an operator approves or declines.

Approving creates the membership (``source = request``, so single sign-on never removes
it); the requester sees the outcome on the access page and in the API. A user has at most
one pending request at a time.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from aitestbed.portal import models, schemas
from aitestbed.portal.models import AccessRequestStatus, utcnow
from aitestbed.portal.seed import get_or_create_user


class AccessRequestError(Exception):
    """A request that cannot be made or decided; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def to_wire(row: models.AccessRequest) -> schemas.AccessRequestOut:
    return schemas.AccessRequestOut(
        id=row.id,
        user=row.user.name,
        project=row.project_slug,
        reason=row.reason,
        status=row.status.value,
        created_at=row.created_at,
        decided_at=row.decided_at,
        decided_by=row.decided_by,
        decision_note=row.decision_note,
        granted_project=row.granted_project.slug if row.granted_project else None,
        granted_role=row.granted_role.value if row.granted_role else None,
    )


def _query():
    return select(models.AccessRequest).options(
        selectinload(models.AccessRequest.user),
        selectinload(models.AccessRequest.granted_project),
    )


def create(session: Session, name: str, request: schemas.AccessRequestIn) -> models.AccessRequest:
    user = get_or_create_user(session, name)
    pending = session.scalar(
        select(models.AccessRequest.id).where(
            models.AccessRequest.user_id == user.id,
            models.AccessRequest.status == AccessRequestStatus.PENDING,
        )
    )
    if pending is not None:
        raise AccessRequestError(
            409, f"You already have a pending access request (#{pending}); wait for the decision."
        )
    row = models.AccessRequest(
        user=user,
        project_slug=request.project,
        reason=request.reason.strip(),
        status=AccessRequestStatus.PENDING,
        decision_note="",
    )
    session.add(row)
    session.flush()
    return row


def listing(
    session: Session,
    name: str,
    operator: bool,
    status: str | None = None,
    *,
    limit: int | None = None,
    before: int | None = None,
) -> list[models.AccessRequest]:
    """Operators see every request; a user sees their own. Newest first; ``limit``
    requests with an id below ``before`` (a page)."""
    query = _query().order_by(models.AccessRequest.id.desc()).limit(limit)
    if before is not None:
        query = query.where(models.AccessRequest.id < before)
    if not operator:
        query = query.join(models.User).where(models.User.name == name)
    if status is not None:
        query = query.where(models.AccessRequest.status == AccessRequestStatus(status))
    return list(session.scalars(query))


def get(session: Session, request_id: int, name: str, operator: bool) -> models.AccessRequest:
    row = session.scalar(_query().where(models.AccessRequest.id == request_id))
    if row is None or (not operator and row.user.name != name):
        raise AccessRequestError(404, f"No access request #{request_id} that you can see.")
    return row


def _pending(session: Session, request_id: int) -> models.AccessRequest:
    row = session.scalar(_query().where(models.AccessRequest.id == request_id))
    if row is None:
        raise AccessRequestError(404, f"No access request #{request_id}.")
    if row.status != AccessRequestStatus.PENDING:
        raise AccessRequestError(
            409, f"Access request #{request_id} was already {row.status.value}."
        )
    return row


def approve(
    session: Session, request_id: int, operator_name: str, decision: schemas.AccessApproval
) -> models.AccessRequest:
    """Grant the membership and close the request."""
    row = _pending(session, request_id)
    slug = decision.project or row.project_slug
    if not slug:
        raise AccessRequestError(
            422, "The request names no project: say which project to grant (field project)."
        )
    project = session.scalar(select(models.Project).where(models.Project.slug == slug))
    if project is None:
        raise AccessRequestError(422, f"No project {slug!r}: pick an existing project.")
    role = models.Role(decision.role)
    membership = session.scalar(
        select(models.Membership).where(
            models.Membership.user_id == row.user_id, models.Membership.project_id == project.id
        )
    )
    if membership is None:
        session.add(
            models.Membership(
                user_id=row.user_id,
                project_id=project.id,
                role=role,
                source=models.MembershipSource.REQUEST,
            )
        )
    row.status = AccessRequestStatus.APPROVED
    row.granted_project = project
    row.granted_role = role
    row.decided_by = operator_name
    row.decided_at = utcnow()
    row.decision_note = decision.note.strip()
    session.flush()
    return row


def decline(
    session: Session, request_id: int, operator_name: str, decision: schemas.AccessDecline
) -> models.AccessRequest:
    row = _pending(session, request_id)
    row.status = AccessRequestStatus.DECLINED
    row.decided_by = operator_name
    row.decided_at = utcnow()
    row.decision_note = decision.note.strip()
    session.flush()
    return row


def recently_decided(session: Session, limit: int = 20) -> list[models.AccessRequest]:
    """The last decided requests, newest decision first (the operator sees the results)."""
    query = (
        _query()
        .where(models.AccessRequest.status != AccessRequestStatus.PENDING)
        .order_by(models.AccessRequest.decided_at.desc(), models.AccessRequest.id.desc())
        .limit(limit)
    )
    return list(session.scalars(query))


def outcome(row: models.AccessRequest) -> str:
    """The decision in words, as the requester and the operator read it."""
    if row.status == AccessRequestStatus.APPROVED:
        granted = row.granted_project.slug if row.granted_project else "a removed project"
        role = row.granted_role.value if row.granted_role else "member"
        return f"approved: {row.user.name} is now {role} of {granted}"
    if row.status == AccessRequestStatus.DECLINED:
        return "declined"
    return "pending: an operator will decide"
