"""Linkage approvals: an operator allows two pseudonymized datasets to meet in one
project's sessions and jobs (the rule is :func:`aitestbed.policy.safezone.linkage_decision`).

Every approval and withdrawal is in the dataset audit log; sessions and jobs read the
approvals of their project when they decide what to mount.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from aitestbed.policy.safezone import (
    PSEUDONYMIZED,
    SafeDecision,
    SafeMode,
    linkage_decision,
    linkage_pair,
    safe_mode,
    split_unlinked,
)
from aitestbed.portal import models
from aitestbed.portal.datasets.access import audit
from aitestbed.portal.datasets.grants import GrantRefused


def approved_pairs(session: Session, project: str) -> set[tuple[str, str]]:
    rows = session.execute(
        select(models.DatasetLinkage.dataset_a, models.DatasetLinkage.dataset_b)
        .join(models.Project, models.Project.id == models.DatasetLinkage.project_id)
        .where(models.Project.slug == project)
    )
    return {(a, b) for a, b in rows}


def classes_of(session: Session, slugs: Iterable[str]) -> dict[str, str]:
    rows = session.execute(
        select(models.Dataset.slug, models.Dataset.data_class).where(
            models.Dataset.slug.in_(sorted(set(slugs)))
        )
    )
    return dict(rows.all())


def leave_out_unlinked(
    session: Session, project: str, mounted: list[str]
) -> tuple[list[str], list[tuple[str, SafeDecision]]]:
    """The datasets a session of ``project`` keeps, and the pseudonymized ones it must
    leave out because their combination is not approved."""
    return split_unlinked(classes_of(session, mounted), approved_pairs(session, project))


def job_linkage(session: Session, project: str, slugs: Iterable[str]) -> SafeDecision:
    return linkage_decision(classes_of(session, slugs), approved_pairs(session, project))


def safe_mode_of(session: Session, slugs: Iterable[str]) -> SafeMode:
    return safe_mode(classes_of(session, slugs))


def approve(
    session: Session, operator: str, project: str, first: str, second: str, reason: str
) -> models.DatasetLinkage:
    """Approve combining two pseudonymized datasets in ``project`` (idempotent)."""
    target = session.scalar(select(models.Project).where(models.Project.slug == project))
    if target is None:
        raise GrantRefused(404, "unknown", f"There is no project {project!r}.")
    if first == second:
        raise GrantRefused(
            422, "same-dataset", "A linkage joins two different datasets.", [("datasets", "")]
        )
    classes = classes_of(session, [first, second])
    for slug in (first, second):
        if slug not in classes:
            raise GrantRefused(404, "unknown", f"There is no dataset {slug!r}.")
        if classes[slug] != PSEUDONYMIZED:
            raise GrantRefused(
                409,
                "not-pseudonymized",
                f"The dataset {slug!r} is not pseudonymized; it needs no linkage approval.",
            )
    a, b = linkage_pair(first, second)
    existing = session.scalar(
        select(models.DatasetLinkage).where(
            models.DatasetLinkage.project_id == target.id,
            models.DatasetLinkage.dataset_a == a,
            models.DatasetLinkage.dataset_b == b,
        )
    )
    if existing is not None:
        return existing
    row = models.DatasetLinkage(
        project_id=target.id,
        dataset_a=a,
        dataset_b=b,
        reason=reason,
        approved_by=operator,
        approved_at=models.utcnow(),
    )
    session.add(row)
    for slug in (a, b):
        audit(
            session,
            user=operator,
            action="linkage",
            allowed=True,
            dataset=slug,
            reason="ok",
            project=project,
            detail=f"{a}+{b}: {reason}",
        )
    session.flush()
    return row


def withdraw(session: Session, operator: str, linkage_id: int) -> None:
    row = session.get(models.DatasetLinkage, linkage_id)
    if row is None:
        raise GrantRefused(404, "unknown", f"There is no linkage approval {linkage_id}.")
    for slug in (row.dataset_a, row.dataset_b):
        audit(
            session,
            user=operator,
            action="linkage-withdrawn",
            allowed=True,
            dataset=slug,
            reason="ok",
            project=row.project.slug,
            detail=f"{row.dataset_a}+{row.dataset_b}",
        )
    session.delete(row)
    session.flush()
