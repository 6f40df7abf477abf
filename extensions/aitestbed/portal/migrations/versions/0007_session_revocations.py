"""session revocations: warnings and stops of sessions whose project access ended

Revision ID: 0007_session_revocations
Revises: 0002
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_session_revocations"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "session_revocations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("user", sa.String(length=64), nullable=False),
        sa.Column("project", sa.String(length=63), nullable=False),
        sa.Column("server_name", sa.String(length=255), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("warned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stop_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rescinded_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["session_records.id"],
            name=op.f("fk_session_revocations_session_id_session_records"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_session_revocations")),
        sa.UniqueConstraint("session_id", name=op.f("uq_session_revocations_session_id")),
    )
    op.create_index(
        op.f("ix_session_revocations_user"), "session_revocations", ["user"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_session_revocations_user"), table_name="session_revocations")
    op.drop_table("session_revocations")
