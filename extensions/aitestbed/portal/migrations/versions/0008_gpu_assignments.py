"""GPU assignments: which device (GPU or MIG instance) each open session or job holds

Revision ID: 0008_gpu_assignments
Revises: 0002, 0004
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_gpu_assignments"
down_revision = ("0002", "0004")
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gpu_assignments",
        sa.Column("device_uuid", sa.String(length=96), nullable=False),
        sa.Column("session_record_id", sa.Integer(), nullable=True),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("simulated", sa.Boolean(), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_record_id"],
            ["session_records.id"],
            name=op.f("fk_gpu_assignments_session_record_id_session_records"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["jobs.id"],
            name=op.f("fk_gpu_assignments_job_id_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("device_uuid", name=op.f("pk_gpu_assignments")),
    )
    op.create_index(
        op.f("ix_gpu_assignments_session_record_id"), "gpu_assignments", ["session_record_id"]
    )
    op.create_index(op.f("ix_gpu_assignments_job_id"), "gpu_assignments", ["job_id"])


def downgrade() -> None:
    op.drop_table("gpu_assignments")
