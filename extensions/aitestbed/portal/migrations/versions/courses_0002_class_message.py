"""courses: the staff's message to the class

Revision ID: courses_0002
Revises: courses_0001
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "courses_0002"
down_revision = "courses_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("courses") as batch:
        batch.add_column(sa.Column("message", sa.Text(), nullable=True))
        batch.add_column(sa.Column("message_by", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("message_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("courses") as batch:
        batch.drop_column("message_at")
        batch.drop_column("message_by")
        batch.drop_column("message")
