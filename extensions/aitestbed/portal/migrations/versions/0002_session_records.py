"""session records

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "session_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("server_name", sa.String(length=255), nullable=False),
        sa.Column("flavor", sa.String(length=63), nullable=False),
        sa.Column("image", sa.String(length=63), nullable=False),
        sa.Column("gpus", sa.Float(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("gpu_hours", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_session_records_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_session_records_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_session_records")),
    )
    with op.batch_alter_table("session_records", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_session_records_project_id"), ["project_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_session_records_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("session_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_session_records_user_id"))
        batch_op.drop_index(batch_op.f("ix_session_records_project_id"))

    op.drop_table("session_records")
