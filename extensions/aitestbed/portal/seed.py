"""Bring the portal database in line with the site settings (idempotent).

Flavors and images: the settings are the catalog; entries no longer listed are disabled,
never deleted, so history that names them stays readable. Projects listed in the settings
are created or updated; projects are never deleted here. Memberships listed are added or
their role updated; memberships made elsewhere (access requests, group sync) are kept.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from aitestbed import settings as site_settings
from aitestbed.portal import models


def get_or_create_user(session: Session, name: str) -> models.User:
    user = session.scalar(select(models.User).where(models.User.name == name))
    if user is None:
        user = models.User(name=name, is_operator=False)
        session.add(user)
        session.flush()
    return user


def _sync_catalog(session: Session, model, entries, fields) -> None:
    existing = {row.slug: row for row in session.scalars(select(model))}
    listed = set()
    for entry in entries:
        values = {name: getattr(entry, name) for name in fields}
        if "frameworks" in values:
            values["frameworks"] = list(values["frameworks"])
        row = existing.get(entry.slug)
        if row is None:
            row = model(slug=entry.slug)
            session.add(row)
        for name, value in values.items():
            setattr(row, name, value)
        row.enabled = True
        listed.add(entry.slug)
    for slug, row in existing.items():
        if slug not in listed:
            row.enabled = False


FLAVOR_FIELDS = (
    "display_name",
    "description",
    "cpu",
    "memory",
    "gpus",
    "gpu_product",
    "mig_profile",
    "shm",
    "max_lifetime_hours",
)
IMAGE_FIELDS = ("display_name", "description", "image", "frameworks", "cuda", "gpu_capable")


def apply_project(project: models.Project, spec: site_settings.Project) -> None:
    """Write a project document (settings or console) onto its row: title, allocation and
    the flavors and images its members may start."""
    allocation = spec.allocation
    project.title = spec.title
    project.description = spec.description
    project.gpu_hours_budget = allocation.gpu_hours
    project.max_concurrent_gpus = allocation.max_concurrent_gpus
    project.storage_quota_gb = allocation.storage_quota_gb
    project.valid_from = allocation.valid_from
    project.valid_until = allocation.valid_until
    project.slurm_account = allocation.slurm_account
    project.allowed_flavors = list(spec.flavors) if spec.flavors is not None else None
    project.allowed_images = list(spec.images) if spec.images is not None else None


def _sync_project(session: Session, spec: site_settings.Project) -> None:
    project = session.scalar(select(models.Project).where(models.Project.slug == spec.slug))
    if project is None:
        project = models.Project(slug=spec.slug)
        session.add(project)
    apply_project(project, spec)
    project.source = "settings"  # listed in the file: the file owns it from now on
    session.flush()
    by_user_id = {m.user_id: m for m in project.memberships}
    for member in spec.members:
        user = get_or_create_user(session, member.user)
        membership = by_user_id.get(user.id)
        if membership is None:
            project.memberships.append(models.Membership(user=user, role=member.role))
        else:
            membership.role = models.Role(member.role)
            # Listed in the settings: the settings own it now, single sign-on leaves it alone.
            membership.source = models.MembershipSource.SETTINGS


def folder_size(folder: Path) -> tuple[int, int] | None:
    """(bytes, files) under ``folder``, not following symlinks; None if it is not a folder."""
    if not folder.is_dir():
        return None
    size = count = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            path = Path(root, name)
            if path.is_file() and not path.is_symlink():
                size += path.stat().st_size
                count += 1
    return size, count


def storage_fields(storage: site_settings.DatasetStorage) -> dict[str, str]:
    """The storage as stored in the database: only the fields that are set."""
    return {k: v for k, v in dataclasses.asdict(storage).items() if v not in (None, "")}


def _sync_datasets(session: Session, datasets: tuple[site_settings.Dataset, ...]) -> None:
    existing = {row.slug: row for row in session.scalars(select(models.Dataset))}
    projects = {p.slug: p for p in session.scalars(select(models.Project))}
    now = models.utcnow()
    listed = set()
    for spec in datasets:
        row = existing.get(spec.slug)
        if row is None:
            row = models.Dataset(slug=spec.slug, created_at=now)
            session.add(row)
        measured = folder_size(Path(spec.storage.path)) if spec.storage.kind == "local" else None
        values = {
            "title": spec.title,
            "description": spec.description,
            "tags": list(spec.tags),
            "license": spec.license,
            "version": spec.version,
            "visibility": spec.visibility,
            "data_class": spec.data_class,
            "terms_version": spec.terms.version if spec.terms else None,
            "terms_text": spec.terms.text if spec.terms else "",
            "storage": storage_fields(spec.storage),
            "cluster_path": spec.cluster_path,
            "size_bytes": spec.size_bytes
            if spec.size_bytes is not None
            else measured and measured[0],
            "file_count": spec.file_count
            if spec.file_count is not None
            else measured and measured[1],
            "source": "settings",
            "enabled": True,
        }
        if any(getattr(row, k, None) != v for k, v in values.items()):
            for name, value in values.items():
                setattr(row, name, value)
            row.index_for_search()
            row.updated_at = now
        session.flush()
        listed.add(spec.slug)
        wanted = {projects[slug].id for slug in spec.projects if slug in projects}
        for grant in list(row.grants):
            if grant.source == "settings" and grant.project_id not in wanted:
                row.grants.remove(grant)
        have = {g.project_id for g in row.grants}
        for project_id in sorted(wanted - have):
            row.grants.append(models.DatasetGrant(project_id=project_id, source="settings"))
        slugs = {p.id: slug for slug, p in projects.items()}
        for grant in row.grants:
            terms = spec.purposes.get(slugs.get(grant.project_id, ""))
            if grant.source == "settings":
                grant.purpose = terms.purpose if terms else None
                grant.expires_on = terms.expires if terms else None
    for slug, row in existing.items():
        if slug not in listed and row.source == "settings" and row.enabled:
            row.enabled = False
            row.updated_at = now


def sync_settings(session: Session, settings: site_settings.Settings) -> None:
    """Write the settings' catalog, projects, members and operators into the database."""
    _sync_catalog(session, models.Flavor, settings.flavors, FLAVOR_FIELDS)
    _sync_catalog(session, models.Image, settings.images, IMAGE_FIELDS)
    for project in settings.projects:
        _sync_project(session, project)
    from aitestbed.portal.courses.store import save_course  # it builds on this module

    for course in settings.courses:
        save_course(session, course, timezone=settings.site.timezone, source="settings")
    session.flush()
    _sync_datasets(session, settings.datasets)
    operators = set(settings.site.operators)
    for name in operators:
        get_or_create_user(session, name)
    for user in session.scalars(select(models.User)):
        user.is_operator = user.name in operators
