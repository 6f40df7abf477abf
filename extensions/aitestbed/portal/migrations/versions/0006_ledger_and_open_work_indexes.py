"""project ledger (running total of closed GPU-hours, admission lock) and open-work indexes

Revision ID: 0006_ledger
Revises: 0002, 0004
Create Date: 2026-11-30

The ledger is backfilled from the history: closed session records and ended jobs.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_ledger"
down_revision = ("0002", "0004")
branch_labels = None
depends_on = None

BACKFILL = """
INSERT INTO project_ledger (project_id, closed_gpu_hours, admissions)
SELECT p.id,
       COALESCE((SELECT SUM(s.gpu_hours) FROM session_records s
                 WHERE s.project_id = p.id AND s.stopped_at IS NOT NULL), 0)
     + COALESCE((SELECT SUM(j.gpu_hours_charged) FROM jobs j
                 WHERE j.project_id = p.id AND j.state NOT IN ('PENDING', 'RUNNING')), 0),
       0
FROM projects p
"""


def upgrade() -> None:
    op.create_table(
        "project_ledger",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("closed_gpu_hours", sa.Float(), server_default="0", nullable=False),
        sa.Column("admissions", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_project_ledger_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", name=op.f("pk_project_ledger")),
    )
    op.execute(BACKFILL)
    op.create_index(
        "ix_session_records_project_id_stopped_at",
        "session_records",
        ["project_id", "stopped_at"],
        unique=False,
    )
    # Open first: the open sessions of every flavor (spawn page) are one range of it.
    op.create_index(
        "ix_session_records_stopped_at_flavor",
        "session_records",
        ["stopped_at", "flavor"],
        unique=False,
    )
    op.create_index("ix_jobs_project_id_state", "jobs", ["project_id", "state"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_jobs_project_id_state", table_name="jobs")
    op.drop_index("ix_session_records_stopped_at_flavor", table_name="session_records")
    op.drop_index("ix_session_records_project_id_stopped_at", table_name="session_records")
    op.drop_table("project_ledger")
