"""the airlock: export requests and their files

Revision ID: 0008_safezone_airlock
Revises: 0007_safezone_datasets
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_safezone_airlock"
down_revision = "0007_safezone_datasets"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "airlock_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("requester", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_airlock_requests_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_airlock_requests")),
    )
    op.create_index(
        op.f("ix_airlock_requests_project_id"), "airlock_requests", ["project_id"], unique=False
    )
    op.create_index(
        op.f("ix_airlock_requests_requester"), "airlock_requests", ["requester"], unique=False
    )
    op.create_table(
        "airlock_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("findings", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("downloaded_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["airlock_requests.id"],
            name=op.f("fk_airlock_files_request_id_airlock_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_airlock_files")),
    )
    op.create_index(
        op.f("ix_airlock_files_request_id"), "airlock_files", ["request_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_airlock_files_request_id"), table_name="airlock_files")
    op.drop_table("airlock_files")
    op.drop_index(op.f("ix_airlock_requests_requester"), table_name="airlock_requests")
    op.drop_index(op.f("ix_airlock_requests_project_id"), table_name="airlock_requests")
    op.drop_table("airlock_requests")
