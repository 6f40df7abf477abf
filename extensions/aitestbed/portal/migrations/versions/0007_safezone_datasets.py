"""dataset classes, grant purposes and expiries, linkage approvals (safe zone)

Revision ID: 0007_safezone_datasets
Revises: 0005
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_safezone_datasets"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.add_column(
            sa.Column("data_class", sa.String(length=16), nullable=False, server_default="licensed")
        )
    op.execute("UPDATE datasets SET data_class = 'open' WHERE visibility = 'public'")
    with op.batch_alter_table("dataset_grants") as batch:
        batch.add_column(sa.Column("purpose", sa.Text(), nullable=True))
        batch.add_column(sa.Column("expires_on", sa.Date(), nullable=True))
    op.create_table(
        "dataset_linkages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("dataset_a", sa.String(length=60), nullable=False),
        sa.Column("dataset_b", sa.String(length=60), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("approved_by", sa.String(length=64), nullable=False),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_dataset_linkages_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataset_linkages")),
        sa.UniqueConstraint(
            "project_id", "dataset_a", "dataset_b", name="uq_dataset_linkages_project_pair"
        ),
    )
    op.create_index(
        op.f("ix_dataset_linkages_project_id"), "dataset_linkages", ["project_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_dataset_linkages_project_id"), table_name="dataset_linkages")
    op.drop_table("dataset_linkages")
    with op.batch_alter_table("dataset_grants") as batch:
        batch.drop_column("expires_on")
        batch.drop_column("purpose")
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("data_class")
