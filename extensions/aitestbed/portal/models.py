"""The portal's domain tables (SQLAlchemy 2 declarative).

The portal owns everything JupyterHub does not: projects and their allocations, who belongs
to which project with which role, and the catalog of flavors and images. Later features add
their own tables beside these (courses, datasets, jobs, usage records); each table holds one
concern and refers to projects and users by key, so a new table never changes an old one.

Alembic migrations in ``migrations/`` are the source of the schema in a database; a test
checks that they and these models agree.
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Role(enum.StrEnum):
    """A user's role in one project."""

    MEMBER = "member"
    MANAGER = "manager"


class User(Base):
    """A person known to the portal (the JupyterHub user of the same name)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    is_operator: Mapped[bool] = mapped_column(Boolean, default=False)
    # Set at each single sign-on login from the provider's groups (settings: oidc mapping).
    is_instructor: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false(), nullable=False
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    memberships: Mapped[list[Membership]] = relationship(
        back_populates="user", cascade="all, delete-orphan"
    )


class Project(Base):
    """An allocated project: who may compute, how much, and until when."""

    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    # The allocation, kept on the project row: one project has exactly one at a time.
    gpu_hours_budget: Mapped[float] = mapped_column(Float, default=0.0)
    max_concurrent_gpus: Mapped[int] = mapped_column(Integer, default=0)
    storage_quota_gb: Mapped[int] = mapped_column(Integer, default=0)
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date] = mapped_column(Date)
    slurm_account: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Slugs of the flavors and images members may start; NULL means every one in the catalog.
    allowed_flavors: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    allowed_images: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # "project", or "course": a course is a project with a term, slots and roles of its own
    # (its row in ``courses``), so admission, quota, usage and dataset grants serve both.
    kind: Mapped[str] = mapped_column(String(16), default="project", server_default="project")
    # Who owns the row: "settings" (the settings file, synced at every start; read-only in
    # the portal) or "api" (an operator in the console or the API; the sync leaves it alone).
    source: Mapped[str] = mapped_column(String(16), default="settings", server_default="settings")

    memberships: Mapped[list[Membership]] = relationship(
        back_populates="project", cascade="all, delete-orphan"
    )
    course: Mapped[Course | None] = relationship(
        back_populates="project", cascade="all, delete-orphan", uselist=False
    )

    def is_active(self, today: date) -> bool:
        """Whether the allocation is valid on ``today`` (both ends inclusive)."""
        return self.valid_from <= today <= self.valid_until

    def status(self, today: date) -> str:
        if today < self.valid_from:
            return "not-yet-valid"
        if today > self.valid_until:
            return "expired"
        return "active"


class MembershipSource(enum.StrEnum):
    """Where a membership came from; single sign-on only ever changes its own ones."""

    SETTINGS = "settings"
    SSO = "sso"
    REQUEST = "request"
    OPERATOR = "operator"  # added by an operator in the console or the API


class Membership(Base):
    """A user's role in a project."""

    __tablename__ = "memberships"
    __table_args__ = (
        UniqueConstraint("user_id", "project_id", name="uq_memberships_user_project"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    role: Mapped[Role] = mapped_column(
        Enum(Role, name="membership_role", values_callable=lambda e: [m.value for m in e]),
        default=Role.MEMBER,
    )
    source: Mapped[MembershipSource] = mapped_column(
        Enum(
            MembershipSource,
            name="membership_source",
            values_callable=lambda e: [m.value for m in e],
            native_enum=False,
            length=16,
        ),
        default=MembershipSource.SETTINGS,
        server_default=MembershipSource.SETTINGS.value,
    )
    # In a course: instructor, assistant or student (``role`` is manager for the staff,
    # member for students, so project rules apply unchanged). None in a plain project.
    course_role: Mapped[str | None] = mapped_column(String(16), nullable=True)

    user: Mapped[User] = relationship(back_populates="memberships")
    project: Mapped[Project] = relationship(back_populates="memberships")


class Flavor(Base):
    """A hardware size a session or job can have."""

    __tablename__ = "flavors"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    cpu: Mapped[float] = mapped_column(Float)
    memory: Mapped[str] = mapped_column(String(32))
    gpus: Mapped[int] = mapped_column(Integer, default=0)
    gpu_product: Mapped[str | None] = mapped_column(String(100), nullable=True)
    mig_profile: Mapped[str | None] = mapped_column(String(32), nullable=True)
    shm: Mapped[str | None] = mapped_column(String(32), nullable=True)
    max_lifetime_hours: Mapped[float | None] = mapped_column(Float, nullable=True)
    # False once the settings no longer list it: kept for history, never offered again.
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class Image(Base):
    """A curated environment a session or job can run."""

    __tablename__ = "images"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    image: Mapped[str] = mapped_column(String(300))
    frameworks: Mapped[list[str]] = mapped_column(JSON, default=list)
    cuda: Mapped[str | None] = mapped_column(String(16), nullable=True)
    gpu_capable: Mapped[bool] = mapped_column(Boolean, default=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class Job(Base):
    """A batch job submitted through the portal, whichever backend runs it.

    The portal keeps its own record of every job: a backend forgets finished jobs (Slurm's
    MinJobAge), the portal never does. ``gpu_hours_charged`` is set once, when the job ends.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("owner", "idempotency_key", name="uq_jobs_owner_idempotency_key"),
        # A project's active jobs (what it holds now), found without its finished history.
        Index("ix_jobs_project_id_state", "project_id", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True)
    owner: Mapped[str] = mapped_column(String(64), index=True)
    unix_user: Mapped[str] = mapped_column(String(64))
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="RESTRICT"))
    account: Mapped[str | None] = mapped_column(String(64), nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(128), nullable=True)
    #: sha256 of the canonical request body: the same key with another body is refused
    request_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    spec: Mapped[dict] = mapped_column(JSON)
    backend: Mapped[str] = mapped_column(String(16))
    backend_job_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    partition: Mapped[str] = mapped_column(String(64))
    nodes: Mapped[int] = mapped_column(Integer)
    gpus_per_node: Mapped[int] = mapped_column(Integer)
    time_limit_minutes: Mapped[int] = mapped_column(Integer)
    working_dir: Mapped[str] = mapped_column(Text)
    output_path: Mapped[str] = mapped_column(Text)
    notebook_output: Mapped[str | None] = mapped_column(Text, nullable=True)
    submitted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    gpu_hours_charged: Mapped[float | None] = mapped_column(Float, nullable=True)

    project: Mapped[Project] = relationship(lazy="joined")

    @property
    def total_gpus(self) -> int:
        return self.nodes * self.gpus_per_node


class SessionRecord(Base):
    """One notebook session: who ran which flavor for which project, from when to when.

    GPU-hours are charged from these: ``gpus`` is the flavor's GPU equivalent (a MIG slice
    counts as its share of one GPU), ``gpu_hours`` is set when the session stops.
    """

    __tablename__ = "session_records"
    __table_args__ = (
        # Open records (stopped_at IS NULL) of a project, or of a flavor, without the history.
        Index("ix_session_records_project_id_stopped_at", "project_id", "stopped_at"),
        Index("ix_session_records_stopped_at_flavor", "stopped_at", "flavor"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    server_name: Mapped[str] = mapped_column(String(255), default="")
    flavor: Mapped[str] = mapped_column(String(63))
    image: Mapped[str] = mapped_column(String(63))
    gpus: Mapped[float] = mapped_column(Float, default=0.0)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    gpu_hours: Mapped[float | None] = mapped_column(Float, nullable=True)

    user: Mapped[User] = relationship()
    project: Mapped[Project] = relationship()


class ProjectLedger(Base):
    """Per project: the GPU-hours of its closed work (sessions stopped, jobs ended).

    A running total, added to in the same transaction that closes a record, exactly once
    (the close is a conditional update; see :mod:`aitestbed.portal.ledger`). GPU-hours used
    are this total plus what the project's open work has used so far, so reading them costs
    the same after a year as on day one. The row is also the project's admission lock: every
    admission updates ``admissions`` as its transaction's first statement
    (:mod:`aitestbed.portal.admission`).
    """

    __tablename__ = "project_ledger"

    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    closed_gpu_hours: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    admissions: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class GpuAssignment(Base):
    """A device of this machine (a GPU or a MIG instance, by UUID) given to one open session
    record or one active job (embedded default).

    The device's UUID is the key, so a device is held by at most one record, whatever races
    (the admission chooses under its lock, :mod:`aitestbed.portal.admission`; the key is the
    backstop). The row is deleted in the transaction that closes its record or ends its job
    (:mod:`aitestbed.portal.ledger`), so after a hub or portal restart the table still says
    exactly which devices are held.
    """

    __tablename__ = "gpu_assignments"

    device_uuid: Mapped[str] = mapped_column(String(96), primary_key=True)
    session_record_id: Mapped[int | None] = mapped_column(
        ForeignKey("session_records.id", ondelete="CASCADE"), nullable=True, index=True
    )
    job_id: Mapped[int | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), nullable=True, index=True
    )
    simulated: Mapped[bool] = mapped_column(Boolean, default=False)
    assigned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SessionRevocation(Base):
    """A running session whose project access ended: the warning, the stop, and why.

    One row per session record, written when the user is warned; ``stopped_at`` is set when
    the portal stopped the server, ``rescinded_at`` when access came back during the grace.
    Names, not keys, for the user and project: this is also the audit log of revocations
    and outlives them.
    """

    __tablename__ = "session_revocations"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("session_records.id", ondelete="CASCADE"), unique=True
    )
    user: Mapped[str] = mapped_column(String(64), index=True)
    project: Mapped[str] = mapped_column(String(63))
    server_name: Mapped[str] = mapped_column(String(255), default="")
    code: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    warned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    stop_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    rescinded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AccessRequestStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DECLINED = "declined"


class AccessRequest(Base):
    """A user's request to join a project (or to get one), decided by an operator."""

    __tablename__ = "access_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # The project asked for, as typed (it may not exist); the decision names the real one.
    project_slug: Mapped[str | None] = mapped_column(String(63), nullable=True)
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[AccessRequestStatus] = mapped_column(
        Enum(
            AccessRequestStatus,
            name="access_request_status",
            values_callable=lambda e: [m.value for m in e],
            native_enum=False,
            length=16,
        ),
        default=AccessRequestStatus.PENDING,
        index=True,
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    decision_note: Mapped[str] = mapped_column(Text, default="")
    granted_project_id: Mapped[int | None] = mapped_column(
        ForeignKey("projects.id", ondelete="SET NULL"), nullable=True
    )
    granted_role: Mapped[Role | None] = mapped_column(
        Enum(
            Role,
            name="access_request_role",
            values_callable=lambda e: [m.value for m in e],
            native_enum=False,
            length=16,
        ),
        nullable=True,
    )

    user: Mapped[User] = relationship()
    granted_project: Mapped[Project | None] = relationship()


class Dataset(Base):
    """A dataset in the catalog: what it is, who may use it, where its files are.

    ``storage`` holds the fields of :class:`aitestbed.settings.DatasetStorage` (kind, path,
    claim, sub_path, server). ``terms_version`` is None when the dataset has no terms.
    ``source`` says who owns the row: the settings file (synced at every start) or an
    operator through the API (never touched by the sync).
    """

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(60), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    license: Mapped[str] = mapped_column(String(100), default="")
    version: Mapped[str] = mapped_column(String(32), default="1")
    visibility: Mapped[str] = mapped_column(String(16), default="granted")
    # open | licensed | pseudonymized (aitestbed.policy.safezone): pseudonymized data needs
    # a purpose and an expiry on each grant and runs in safe mode.
    data_class: Mapped[str] = mapped_column(String(16), default="licensed")
    terms_version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    terms_text: Mapped[str] = mapped_column(Text, default="")
    storage: Mapped[dict] = mapped_column(JSON)
    cluster_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    file_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    source: Mapped[str] = mapped_column(String(16), default="settings")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Lower-cased slug, title, description and tags: one column for the catalog's word
    # search (see index_for_search).
    search_text: Mapped[str] = mapped_column(Text, default="")

    grants: Mapped[list[DatasetGrant]] = relationship(
        back_populates="dataset", cascade="all, delete-orphan"
    )
    tag_rows: Mapped[list[DatasetTag]] = relationship(
        cascade="all, delete-orphan", order_by="DatasetTag.position"
    )

    @property
    def tags(self) -> list[str]:
        """The tags in the order the operator gave them (one indexed row each, for search)."""
        return [row.tag for row in self.tag_rows]

    @tags.setter
    def tags(self, tags: list[str]) -> None:
        # Keep the rows of tags that stay (a tag is unique per dataset), add the new ones.
        kept = {row.tag: row for row in self.tag_rows if row.tag in tags}
        self.tag_rows = [kept.get(tag) or DatasetTag(tag=tag) for tag in tags]
        for position, row in enumerate(self.tag_rows):
            row.position = position

    def index_for_search(self) -> None:
        """Refresh ``search_text``; whoever changes the fields above calls this."""
        parts = (self.slug, self.title, self.description, " ".join(self.tags))
        self.search_text = "\n".join(part or "" for part in parts).lower()


class DatasetTag(Base):
    """One tag of a dataset: the catalog's tag filter and tag counts are indexed queries."""

    __tablename__ = "dataset_tags"

    dataset_id: Mapped[int] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(40), primary_key=True, index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)


class DatasetGrant(Base):
    """A dataset granted to a project: its members may use it (after accepting terms)."""

    __tablename__ = "dataset_grants"
    __table_args__ = (
        UniqueConstraint("dataset_id", "project_id", name="uq_dataset_grants_dataset_project"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    source: Mapped[str] = mapped_column(String(16), default="settings")
    granted_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    granted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # What the project uses the data for, and the last day the grant gives access (both
    # required for pseudonymized datasets, optional for the others).
    purpose: Mapped[str | None] = mapped_column(Text, nullable=True)
    expires_on: Mapped[date | None] = mapped_column(Date, nullable=True)

    dataset: Mapped[Dataset] = relationship(back_populates="grants")
    project: Mapped[Project] = relationship()


class DatasetLinkage(Base):
    """An operator's approval to combine two pseudonymized datasets in one project's
    sessions and jobs. Slugs, not keys, in a fixed order (``dataset_a`` < ``dataset_b``)."""

    __tablename__ = "dataset_linkages"
    __table_args__ = (
        UniqueConstraint(
            "project_id", "dataset_a", "dataset_b", name="uq_dataset_linkages_project_pair"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    dataset_a: Mapped[str] = mapped_column(String(60))
    dataset_b: Mapped[str] = mapped_column(String(60))
    reason: Mapped[str] = mapped_column(Text, default="")
    approved_by: Mapped[str] = mapped_column(String(64))
    approved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    project: Mapped[Project] = relationship()


class TermsAcceptance(Base):
    """A user accepted one version of a dataset's terms, at a time."""

    __tablename__ = "dataset_terms_acceptances"
    __table_args__ = (
        UniqueConstraint(
            "dataset_id", "user_id", "terms_version", name="uq_dataset_terms_acceptances_once"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    terms_version: Mapped[str] = mapped_column(String(32))
    accepted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DatasetAuditEntry(Base):
    """One access decision about datasets: who, what, allowed or refused, and why.

    Names, not keys: an entry outlives the dataset, user or project it mentions.
    ``dataset`` is None for a catalog listing or search (``detail`` holds the query).
    """

    __tablename__ = "dataset_audit"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    user: Mapped[str] = mapped_column(String(64), index=True)
    dataset: Mapped[str | None] = mapped_column(String(60), nullable=True, index=True)
    action: Mapped[str] = mapped_column(String(32))
    allowed: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(Text, default="")
    project: Mapped[str | None] = mapped_column(String(63), nullable=True)
    detail: Mapped[str] = mapped_column(Text, default="")


class Course(Base):
    """What makes a project a course: class slots, one environment, a per-student share,
    materials. Term dates and the course's allocation are the project's own fields."""

    __tablename__ = "courses"

    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    slots: Mapped[list[dict]] = mapped_column(JSON, default=list)
    outside_slots: Mapped[str] = mapped_column(String(16), default="none")
    image: Mapped[str] = mapped_column(String(63))
    flavor: Mapped[str] = mapped_column(String(63))
    cpu_flavor: Mapped[str | None] = mapped_column(String(63), nullable=True)
    student_gpu_hours: Mapped[float | None] = mapped_column(Float, nullable=True)
    materials_repo: Mapped[str | None] = mapped_column(Text, nullable=True)
    materials_branch: Mapped[str] = mapped_column(String(100), default="main")
    source: Mapped[str] = mapped_column(String(16), default="settings")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # The staff's message to the class (plain text; shown escaped), who wrote it and when.
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    message_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    message_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    project: Mapped[Project] = relationship(back_populates="course")


class JoinCode(Base):
    """A code that enrols whoever uses it as a student, until it expires, is used up or is
    revoked. ``uses`` only grows through one conditional UPDATE, so a burst of joins takes
    exactly ``max_uses`` places."""

    __tablename__ = "course_join_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    code: Mapped[str] = mapped_column(String(32), unique=True)
    max_uses: Mapped[int] = mapped_column(Integer)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ExportRequest(Base):
    """A user asks to take files out of a project's outbox (the airlock), with a reason.

    Names, not keys, for the people: the request outlives their accounts in the audit.
    """

    __tablename__ = "airlock_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    requester: Mapped[str] = mapped_column(String(64), index=True)
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    project: Mapped[Project] = relationship()
    files: Mapped[list[ExportFile]] = relationship(
        back_populates="request", cascade="all, delete-orphan", order_by="ExportFile.id"
    )


class ExportFile(Base):
    """One file of an export request: the copy taken when it was asked for (what the
    steward reviews is what leaves), the automatic checks' findings, the decision and the
    one download."""

    __tablename__ = "airlock_files"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("airlock_requests.id", ondelete="CASCADE"), index=True
    )
    path: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    findings: Mapped[list] = mapped_column(JSON, default=list)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    decided_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")
    downloaded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    request: Mapped[ExportRequest] = relationship(back_populates="files")
