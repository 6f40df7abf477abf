"""The dataset catalog's REST API: browse, search, accept terms, list and preview files,
and (operators) manage the catalog, its grants and the audit log.

Every decision about a dataset goes through :mod:`aitestbed.policy.datasets` and is
written to the audit log in the same transaction as its effect. A dataset the caller may not
see is answered exactly like one that does not exist (404), so the names of other tenants'
datasets do not leak.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import Select, and_, func, select, true
from sqlalchemy.orm import Session, selectinload

from aitestbed import settings as site_settings
from aitestbed.policy.datasets import Viewer, can_see, use_decision
from aitestbed.portal import models, queries
from aitestbed.portal.datasets import files, grants
from aitestbed.portal.datasets.access import (
    audit,
    decide_and_audit,
    load_dataset,
    mount_path,
    rule_for,
    usable_in,
    viewer_of,
)
from aitestbed.portal.datasets.search import words_match
from aitestbed.portal.deps import CurrentUser, DbSession
from aitestbed.portal.export import (
    csv_chunks,
    csv_response,
    formatted,
    iso_utc,
    streamed_rows,
)
from aitestbed.portal.paging import link_next_page
from aitestbed.portal.seed import folder_size, get_or_create_user, storage_fields
from aitestbed.portal.usage import as_utc

DATASET_SLUG = r"^[a-z0-9]([a-z0-9-]{0,58}[a-z0-9])?$"
PROJECT_SLUG = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
TAG = r"^[a-z0-9][a-z0-9+._-]{0,39}$"
VERSION = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,31}$"
USERNAME = r"^[a-z0-9][a-z0-9._-]{0,63}$"
MAX_QUERY = 200
MAX_WORDS = 8
AuditAction = Literal[
    "list", "view", "files", "preview", "accept-terms", "mount", "job",
    "create", "update", "disable", "grant", "revoke",
]  # fmt: skip
AUDIT_COLUMNS = ["id", "at", "user", "dataset", "action", "allowed", "reason", "project", "detail"]

SlugPath = Annotated[str, PathParam(pattern=DATASET_SLUG, max_length=60)]
ProjectPath = Annotated[str, PathParam(pattern=PROJECT_SLUG, max_length=63)]
UserFilter = Annotated[str | None, Query(pattern=USERNAME)]
DatasetFilter = Annotated[str | None, Query(pattern=DATASET_SLUG)]
ActionFilter = AuditAction | None
FilePath = Annotated[
    str, Query(max_length=files.MAX_PATH_LENGTH, description="Path inside the dataset.")
]


class AccessOut(BaseModel):
    allowed: bool
    code: str = Field(description="ok, unknown, disabled, not-entitled or terms-not-accepted.")
    reason: str


class DatasetSummary(BaseModel):
    slug: str
    title: str
    description: str
    tags: list[str]
    license: str
    version: str
    visibility: str
    size_bytes: int | None
    file_count: int | None
    terms_version: str | None = Field(description="Current terms version; null: no terms.")
    terms_accepted: bool = Field(description="The caller accepted the current terms version.")
    usable: bool = Field(description="The caller may read, mount and use it in a job now.")
    access: AccessOut
    path: str = Field(description="Where sessions and jobs see it, read-only.")
    enabled: bool


class TagCount(BaseModel):
    tag: str
    count: int


class DatasetPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[DatasetSummary]
    tags: list[TagCount] = Field(description="Tags of all matching datasets, most used first.")


class DatasetDetail(DatasetSummary):
    terms_text: str
    accepted_at: datetime | None = Field(description="When the caller accepted these terms.")
    projects: list[str] = Field(description="Projects it is granted to that the caller knows.")
    storage_kind: str
    storage: dict[str, Any] | None = Field(None, description="Operators only.")
    cluster_path: str | None = Field(None, description="Operators only.")
    source: str | None = Field(None, description="Operators only: settings or api.")


class TermsIn(BaseModel):
    version: str = Field(pattern=VERSION, description="The terms version you read.")


class TermsAccepted(BaseModel):
    slug: str
    terms_version: str
    accepted_at: datetime


class FileEntryOut(BaseModel):
    name: str
    path: str
    type: str
    size: int | None


class FileListing(BaseModel):
    path: str
    entries: list[FileEntryOut]
    truncated: bool


class PreviewOut(BaseModel):
    path: str
    kind: str = Field(description="table, image or text.")
    media_type: str
    columns: list[str] = []
    rows: list[list[Any]] = []
    total_rows: int | None = None
    data_base64: str | None = None
    text: str | None = None


class GrantOut(BaseModel):
    dataset: str
    project: str
    source: str
    granted_by: str | None
    granted_at: datetime


class AuditEntryOut(BaseModel):
    id: int
    at: datetime
    user: str
    dataset: str | None
    action: str
    allowed: bool
    reason: str
    project: str | None
    detail: str


# -- helpers -------------------------------------------------------------------------------


def _refuse(status: int, code: str, message: str) -> HTTPException:
    return HTTPException(status, {"code": code, "message": message})


def _summary_fields(row: models.Dataset, viewer: Viewer) -> dict[str, Any]:
    decision = use_decision(rule_for(row), viewer)
    accepted = bool(row.terms_version) and viewer.has_accepted(row.slug, row.terms_version)
    return {
        "slug": row.slug,
        "title": row.title,
        "description": row.description,
        "tags": row.tags,
        "license": row.license,
        "version": row.version,
        "visibility": row.visibility,
        "size_bytes": row.size_bytes,
        "file_count": row.file_count,
        "terms_version": row.terms_version,
        "terms_accepted": accepted,
        "usable": decision.allowed,
        "access": AccessOut(allowed=decision.allowed, code=decision.code, reason=decision.reason),
        "path": mount_path(row.slug),
        "enabled": row.enabled,
    }


def _visible(viewer: Viewer):
    """SQL condition: datasets the viewer may see (the policy's ``can_see``)."""
    return true() if viewer.is_operator else usable_in(viewer.projects)


def _with_tag(condition):
    return models.Dataset.id.in_(select(models.DatasetTag.dataset_id).where(condition))


def _matches(session: Session, words: list[str], tag: str | None):
    conditions = [words_match(session, words)]
    if tag:
        conditions.append(_with_tag(models.DatasetTag.tag == tag))
    return and_(true(), *conditions)


def _tag_counts(session: Session, condition) -> list[TagCount]:
    """Tags of the datasets matching ``condition``, most used first."""
    matching = select(models.Dataset.id).where(condition)
    count = func.count().label("count")
    rows = session.execute(
        select(models.DatasetTag.tag, count)
        .where(models.DatasetTag.dataset_id.in_(matching))
        .group_by(models.DatasetTag.tag)
        .order_by(count.desc(), models.DatasetTag.tag)
    )
    return [TagCount(tag=tag, count=n) for tag, n in rows]


def _require_operator(session: Session, identity, what: str) -> None:
    if not queries.is_operator(session, identity):
        raise HTTPException(403, f"Only operators can {what}.")


def _visible_or_404(session: Session, viewer: Viewer, slug: str) -> models.Dataset:
    row = load_dataset(session, slug)
    if row is None or not can_see(rule_for(row), viewer):
        raise HTTPException(404, f"There is no dataset {slug!r} that you can see.")
    return row


def _accepted_at(session: Session, row: models.Dataset, user: str) -> datetime | None:
    if not row.terms_version:
        return None
    when = session.scalar(
        select(models.TermsAcceptance.accepted_at)
        .join(models.User, models.User.id == models.TermsAcceptance.user_id)
        .where(
            models.TermsAcceptance.dataset_id == row.id,
            models.TermsAcceptance.terms_version == row.terms_version,
            models.User.name == user,
        )
    )
    return as_utc(when) if when else None


def _detail(session: Session, row: models.Dataset, viewer: Viewer) -> DatasetDetail:
    granted = sorted(g.project.slug for g in row.grants)
    if not viewer.is_operator:
        granted = [p for p in granted if p in viewer.projects]
    operator_only = (
        {"storage": dict(row.storage), "cluster_path": row.cluster_path, "source": row.source}
        if viewer.is_operator
        else {}
    )
    return DatasetDetail(
        **_summary_fields(row, viewer),
        terms_text=row.terms_text,
        accepted_at=_accepted_at(session, row, viewer.name),
        projects=granted,
        storage_kind=row.storage.get("kind", ""),
        **operator_only,
    )


def _readable(
    session: Session, viewer: Viewer, slug: str, action: str, path: str
) -> models.Dataset:
    """Decide (and audit) a read of the dataset's files; raise the refusal. A malformed
    path is refused first, before any decision about the dataset."""
    try:
        files.clean_relative(path)
    except files.FileProblem as problem:
        raise _file_problem(problem) from None
    row, decision = decide_and_audit(session, viewer, slug, action, detail=f"path={path!r}")
    session.commit()
    if decision.code == "unknown":
        raise HTTPException(404, f"There is no dataset {slug!r} that you can see.")
    if not decision.allowed:
        raise _refuse(403, decision.code, decision.reason)
    return row


def _refused(refused: grants.GrantRefused) -> HTTPException:
    # A missing dataset or project keeps the plain 404 message the API always gave.
    if refused.status == 404:
        return HTTPException(404, str(refused))
    return _refuse(refused.status, refused.code, str(refused))


def _file_problem(problem: files.FileProblem) -> HTTPException:
    return _refuse(problem.status, problem.code, problem.message)


def _document(row: models.Dataset) -> dict[str, Any]:
    """A dataset row as the settings' dataset document (for a partial update)."""
    doc: dict[str, Any] = {
        "slug": row.slug,
        "title": row.title,
        "description": row.description,
        "tags": row.tags,
        "license": row.license,
        "version": row.version,
        "visibility": row.visibility,
        "storage": dict(row.storage),
    }
    if row.terms_version:
        doc["terms"] = {"version": row.terms_version, "text": row.terms_text}
    for name in ("cluster_path", "size_bytes", "file_count"):
        if getattr(row, name) is not None:
            doc[name] = getattr(row, name)
    return doc


def _validated(request: Request, session: Session, doc: Any) -> site_settings.Dataset:
    projects = set(session.scalars(select(models.Project.slug)))
    state_dir = request.app.state.state_dir or Path("/nonexistent-state-dir")
    try:
        return site_settings.dataset_from_document(doc, project_slugs=projects, state_dir=state_dir)
    except site_settings.DatasetInvalid as invalid:
        raise HTTPException(
            422, [{"field": where, "message": what} for where, what in invalid.problems]
        ) from None


def _apply(row: models.Dataset, spec: site_settings.Dataset) -> None:
    measured = folder_size(Path(spec.storage.path)) if spec.storage.kind == "local" else None
    row.title = spec.title
    row.description = spec.description
    row.tags = list(spec.tags)
    row.license = spec.license
    row.version = spec.version
    row.visibility = spec.visibility
    row.terms_version = spec.terms.version if spec.terms else None
    row.terms_text = spec.terms.text if spec.terms else ""
    row.storage = storage_fields(spec.storage)
    row.cluster_path = spec.cluster_path
    row.size_bytes = spec.size_bytes if spec.size_bytes is not None else measured and measured[0]
    row.file_count = spec.file_count if spec.file_count is not None else measured and measured[1]
    row.updated_at = models.utcnow()
    row.index_for_search()


def _audit_change(session: Session, identity, action: str, slug: str, **extra: str) -> None:
    """An operator's change to the catalog, in the audit log beside the access decisions."""
    audit(
        session, user=identity.name, action=action, allowed=True, dataset=slug, reason="ok", **extra
    )


def _grant_out(grant: models.DatasetGrant) -> GrantOut:
    return GrantOut(
        dataset=grant.dataset.slug,
        project=grant.project.slug,
        source=grant.source,
        granted_by=grant.granted_by,
        granted_at=grant.granted_at,
    )


async def audit_query(
    user: UserFilter = None,
    dataset: DatasetFilter = None,
    action: ActionFilter = None,
    allowed: bool | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
):
    """The audit entries the filters select, newest first (a FastAPI dependency)."""
    query = select(models.DatasetAuditEntry)
    if user:
        query = query.where(models.DatasetAuditEntry.user == user)
    if dataset:
        query = query.where(models.DatasetAuditEntry.dataset == dataset)
    if action:
        query = query.where(models.DatasetAuditEntry.action == action)
    if allowed is not None:
        query = query.where(models.DatasetAuditEntry.allowed == allowed)
    if since:
        query = query.where(models.DatasetAuditEntry.at >= since)
    if until:
        query = query.where(models.DatasetAuditEntry.at < until)
    return query.order_by(models.DatasetAuditEntry.id.desc())


AuditQuery = Annotated[Select, Depends(audit_query)]


def _audit_out(entry: models.DatasetAuditEntry) -> AuditEntryOut:
    out = AuditEntryOut.model_validate(entry, from_attributes=True)
    return out.model_copy(update={"at": as_utc(entry.at)})


def _audit_csv_response(sessions, query: Select) -> StreamingResponse:
    """The entries ``query`` selects as a streamed CSV: columns only, no ORM objects."""
    entry = models.DatasetAuditEntry
    columns = [getattr(entry, column) for column in AUDIT_COLUMNS]
    rows = streamed_rows(sessions, query.with_only_columns(*columns))
    at = AUDIT_COLUMNS.index("at")
    formatters = [iso_utc if i == at else None for i in range(len(AUDIT_COLUMNS))]
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return csv_response(
        csv_chunks(formatted(rows, *formatters), AUDIT_COLUMNS), f"dataset-audit-{stamp}.csv"
    )


# -- the router ----------------------------------------------------------------------------


def datasets_router() -> APIRouter:
    router = APIRouter(prefix="/api", tags=["datasets"])

    @router.get("/datasets", response_model=DatasetPage)
    def list_datasets(
        request: Request,
        response: Response,
        identity: CurrentUser,
        session: DbSession,
        q: Annotated[
            str,
            Query(
                max_length=MAX_QUERY,
                description="Words to find in slug, title, description or tags (all must match).",
            ),
        ] = "",
        tag: Annotated[str | None, Query(pattern=TAG)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
        after: Annotated[
            str | None,
            Query(
                pattern=DATASET_SLUG,
                description="Datasets after this slug only: the next page (see the Link header).",
            ),
        ] = None,
        include_disabled: Annotated[bool, Query(description="Operators only.")] = False,
    ) -> DatasetPage:
        """The datasets you may see, searched and filtered, by slug; the page and the tag
        counts of every match."""
        viewer = viewer_of(session, identity)
        words = [w for w in q.lower().split() if w][:MAX_WORDS]
        condition = and_(_visible(viewer), _matches(session, words, tag))
        if not (viewer.is_operator and include_disabled):
            condition = and_(condition, models.Dataset.enabled)
        total = session.scalar(select(func.count()).select_from(models.Dataset).where(condition))
        page_condition = (
            condition if after is None else and_(condition, models.Dataset.slug > after)
        )
        rows = session.scalars(
            select(models.Dataset)
            .where(page_condition)
            .order_by(models.Dataset.slug)
            .limit(limit)
            .offset(offset)
            .options(
                selectinload(models.Dataset.grants).selectinload(models.DatasetGrant.project),
                selectinload(models.Dataset.tag_rows),
            )
        ).all()
        page = DatasetPage(
            total=total or 0,
            limit=limit,
            offset=offset,
            items=[DatasetSummary(**_summary_fields(r, viewer)) for r in rows],
            tags=_tag_counts(session, condition),
        )
        audit(
            session,
            user=viewer.name,
            action="list",
            allowed=True,
            reason="ok",
            detail=f"q={q[:100]!r} tag={tag!r} offset={offset} results={page.total}",
        )
        session.commit()
        link_next_page(request, response, rows, limit, after=lambda r: r.slug)
        return page

    @router.get("/datasets/{slug}", response_model=DatasetDetail)
    def get_dataset(slug: SlugPath, identity: CurrentUser, session: DbSession) -> DatasetDetail:
        """One dataset with its terms and whether you may use it; 404 if you may not see it."""
        viewer = viewer_of(session, identity)
        row = load_dataset(session, slug)
        visible = row is not None and can_see(rule_for(row), viewer)
        detail = _detail(session, row, viewer) if visible else None
        audit(
            session,
            user=viewer.name,
            action="view",
            allowed=visible,
            dataset=slug,
            reason="ok" if visible else "unknown",
        )
        session.commit()
        if detail is None:
            raise HTTPException(404, f"There is no dataset {slug!r} that you can see.")
        return detail

    @router.post("/datasets/{slug}/terms", response_model=TermsAccepted)
    def accept_terms(
        slug: SlugPath, body: TermsIn, identity: CurrentUser, session: DbSession
    ) -> TermsAccepted:
        """Accept the dataset's current terms (give the version you read)."""
        viewer = viewer_of(session, identity)
        row = _visible_or_404(session, viewer, slug)
        if not row.terms_version:
            raise _refuse(400, "no-terms", f"The dataset {slug!r} has no terms to accept.")
        if body.version != row.terms_version:
            audit(
                session,
                user=viewer.name,
                action="accept-terms",
                allowed=False,
                dataset=slug,
                reason="terms-changed",
                detail=f"version={body.version!r}",
            )
            session.commit()
            raise _refuse(
                409,
                "terms-changed",
                f"The terms of {slug!r} are at version {row.terms_version}, not "
                f"{body.version}; read the current terms and accept that version.",
            )
        when = _accepted_at(session, row, viewer.name)
        if when is None:
            user = get_or_create_user(session, viewer.name)
            when = models.utcnow()
            session.add(
                models.TermsAcceptance(
                    dataset_id=row.id,
                    user_id=user.id,
                    terms_version=row.terms_version,
                    accepted_at=when,
                )
            )
        audit(
            session,
            user=viewer.name,
            action="accept-terms",
            allowed=True,
            dataset=slug,
            reason="ok",
            detail=f"version={row.terms_version}",
        )
        session.commit()
        return TermsAccepted(slug=slug, terms_version=row.terms_version, accepted_at=when)

    @router.get("/datasets/{slug}/files", response_model=FileListing)
    def list_files(
        slug: SlugPath, identity: CurrentUser, session: DbSession, path: FilePath = ""
    ) -> FileListing:
        """A folder of the dataset (you must be entitled and have accepted its terms)."""
        row = _readable(session, viewer_of(session, identity), slug, "files", path)
        try:
            shown, entries, truncated = files.list_folder(files.dataset_root(row.storage), path)
        except files.FileProblem as problem:
            raise _file_problem(problem) from None
        return FileListing(
            path=shown,
            entries=[FileEntryOut(**dataclasses.asdict(e)) for e in entries],
            truncated=truncated,
        )

    @router.get("/datasets/{slug}/preview", response_model=PreviewOut)
    def preview(
        slug: SlugPath,
        identity: CurrentUser,
        session: DbSession,
        path: Annotated[str, Query(min_length=1, max_length=files.MAX_PATH_LENGTH)],
        rows: Annotated[int, Query(ge=1, le=files.MAX_PREVIEW_ROWS)] = 20,
    ) -> PreviewOut:
        """The first rows of a CSV or Parquet file, an image, or the start of a text file."""
        row = _readable(session, viewer_of(session, identity), slug, "preview", path)
        try:
            result = files.preview_file(files.dataset_root(row.storage), path, rows)
        except files.FileProblem as problem:
            raise _file_problem(problem) from None
        return PreviewOut(**dataclasses.asdict(result))

    # -- operators -----------------------------------------------------------------------

    @router.post("/datasets", response_model=DatasetDetail, status_code=201)
    def create_dataset(
        request: Request,
        identity: CurrentUser,
        session: DbSession,
        doc: Annotated[
            dict[str, Any],
            Body(
                description="A dataset as in the settings file's datasets section "
                "(docs/settings.md); local paths must be absolute."
            ),
        ],
    ) -> DatasetDetail:
        """Add a dataset to the catalog (operators)."""
        _require_operator(session, identity, "add datasets")
        spec = _validated(request, session, doc)
        if load_dataset(session, spec.slug) is not None:
            raise _refuse(409, "exists", f"A dataset {spec.slug!r} exists already; PATCH it.")
        row = models.Dataset(slug=spec.slug, source="api", enabled=True, created_at=models.utcnow())
        _apply(row, spec)
        session.add(row)
        session.flush()
        projects = {p.slug: p for p in session.scalars(select(models.Project))}
        for slug in spec.projects:
            row.grants.append(
                models.DatasetGrant(
                    project_id=projects[slug].id, source="api", granted_by=identity.name
                )
            )
        _audit_change(
            session, identity, "create", spec.slug, detail=f"projects={list(spec.projects)}"
        )
        session.commit()
        return _detail(session, load_dataset(session, spec.slug), viewer_of(session, identity))

    @router.patch("/datasets/{slug}", response_model=DatasetDetail)
    def update_dataset(
        slug: SlugPath,
        request: Request,
        identity: CurrentUser,
        session: DbSession,
        changes: Annotated[dict[str, Any], Body(description="Fields to change.")],
    ) -> DatasetDetail:
        """Change a dataset the API created (operators). A new terms version needs a new
        acceptance by every user."""
        _require_operator(session, identity, "change datasets")
        row = load_dataset(session, slug)
        if row is None:
            raise HTTPException(404, f"There is no dataset {slug!r}.")
        if row.source == "settings":
            raise _refuse(
                409,
                "owned-by-settings",
                f"The dataset {slug!r} is defined in the site settings file; change it there.",
            )
        if "slug" in changes and changes["slug"] != slug:
            raise HTTPException(422, [{"field": "slug", "message": "cannot be changed."}])
        if "projects" in changes:
            raise HTTPException(
                422, [{"field": "projects", "message": "change grants with /grants/{project}."}]
            )
        doc = {**_document(row), **changes}
        spec = _validated(request, session, doc)
        _apply(row, spec)
        _audit_change(session, identity, "update", slug, detail=f"fields={sorted(changes)}")
        session.commit()
        return _detail(session, load_dataset(session, slug), viewer_of(session, identity))

    @router.delete("/datasets/{slug}", status_code=204)
    def disable_dataset(slug: SlugPath, identity: CurrentUser, session: DbSession) -> Response:
        """Withdraw a dataset the API created (operators): no new use, the records stay."""
        _require_operator(session, identity, "withdraw datasets")
        row = load_dataset(session, slug)
        if row is None:
            raise HTTPException(404, f"There is no dataset {slug!r}.")
        if row.source == "settings":
            raise _refuse(
                409,
                "owned-by-settings",
                f"The dataset {slug!r} is defined in the site settings file; remove it there.",
            )
        row.enabled = False
        row.updated_at = models.utcnow()
        _audit_change(session, identity, "disable", slug)
        session.commit()
        return Response(status_code=204)

    @router.get("/datasets/{slug}/grants", response_model=list[GrantOut])
    def list_grants(slug: SlugPath, identity: CurrentUser, session: DbSession) -> list[GrantOut]:
        """Projects the dataset is granted to (operators)."""
        _require_operator(session, identity, "see all grants")
        row = load_dataset(session, slug)
        if row is None:
            raise HTTPException(404, f"There is no dataset {slug!r}.")
        return [_grant_out(g) for g in sorted(row.grants, key=lambda g: g.project.slug)]

    @router.put("/datasets/{slug}/grants/{project}", response_model=GrantOut)
    def grant(
        slug: SlugPath, project: ProjectPath, identity: CurrentUser, session: DbSession
    ) -> GrantOut:
        """Grant a dataset to a project (operators; idempotent)."""
        _require_operator(session, identity, "grant datasets")
        try:
            made = grants.grant(session, identity.name, slug, project)
        except grants.GrantRefused as refused:
            raise _refused(refused) from None
        session.commit()
        return _grant_out(made)

    @router.delete("/datasets/{slug}/grants/{project}", status_code=204)
    def revoke(
        slug: SlugPath, project: ProjectPath, identity: CurrentUser, session: DbSession
    ) -> Response:
        """Take a grant back (operators). Running sessions keep their mount until they stop;
        new sessions and jobs no longer get it."""
        _require_operator(session, identity, "revoke grants")
        try:
            grants.revoke(session, identity.name, slug, project)
        except grants.GrantRefused as refused:
            raise _refused(refused) from None
        session.commit()
        return Response(status_code=204)

    @router.get("/dataset-audit", response_model=list[AuditEntryOut])
    def audit_log(
        request: Request,
        response: Response,
        identity: CurrentUser,
        session: DbSession,
        query: AuditQuery,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 500,
        offset: Annotated[int, Query(ge=0)] = 0,
        before: Annotated[
            int | None,
            Query(ge=1, description="Entries with a smaller id only: the next page's cursor."),
        ] = None,
    ) -> list[AuditEntryOut]:
        """Access decisions about datasets, newest first (operators). Page with ``before``
        (the Link header's next page): new entries never shift it."""
        _require_operator(session, identity, "read the dataset audit log")
        if before is not None:
            query = query.where(models.DatasetAuditEntry.id < before)
        entries = [_audit_out(e) for e in session.scalars(query.limit(limit).offset(offset))]
        link_next_page(request, response, entries, limit, before=lambda e: e.id)
        return entries

    @router.get(
        "/dataset-audit.csv",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/csv": {}}}},
    )
    def audit_csv(
        request: Request,
        identity: CurrentUser,
        session: DbSession,
        query: AuditQuery,
    ) -> StreamingResponse:
        """The audit log as CSV (operators), with the same filters; streamed, any size."""
        _require_operator(session, identity, "export the dataset audit log")
        return _audit_csv_response(request.app.state.sessions, query)

    return router
