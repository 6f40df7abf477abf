"""a job's request hash: binds its idempotency key to the request that made it

Revision ID: 0007_job_request_hash
Revises: 0004
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_job_request_hash"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Jobs recorded before this column have none: their keys still return them, unbound.
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("request_hash", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("request_hash")
