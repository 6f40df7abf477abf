"""courses: a project kind, course rows, course roles on memberships, join codes

Revision ID: courses_0001
Revises: 0001
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "courses_0001"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.add_column(
            sa.Column("kind", sa.String(length=16), server_default="project", nullable=False)
        )
    with op.batch_alter_table("memberships") as batch:
        batch.add_column(sa.Column("course_role", sa.String(length=16), nullable=True))
    op.create_table(
        "courses",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("slots", sa.JSON(), nullable=False),
        sa.Column("outside_slots", sa.String(length=16), nullable=False),
        sa.Column("image", sa.String(length=63), nullable=False),
        sa.Column("flavor", sa.String(length=63), nullable=False),
        sa.Column("cpu_flavor", sa.String(length=63), nullable=True),
        sa.Column("student_gpu_hours", sa.Float(), nullable=True),
        sa.Column("materials_repo", sa.Text(), nullable=True),
        sa.Column("materials_branch", sa.String(length=100), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name="fk_courses_project_id_projects",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", name="pk_courses"),
    )
    op.create_table(
        "course_join_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("max_uses", sa.Integer(), nullable=False),
        sa.Column("uses", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name="fk_course_join_codes_project_id_projects",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_course_join_codes"),
        sa.UniqueConstraint("code", name="uq_course_join_codes_code"),
    )
    op.create_index(
        "ix_course_join_codes_project_id", "course_join_codes", ["project_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_course_join_codes_project_id", table_name="course_join_codes")
    op.drop_table("course_join_codes")
    op.drop_table("courses")
    with op.batch_alter_table("memberships") as batch:
        batch.drop_column("course_role")
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("kind")
