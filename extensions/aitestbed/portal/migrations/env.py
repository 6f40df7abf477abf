"""Alembic environment: runs migrations on the engine handed over by ``db.migrate``."""

from aitestbed.portal.datasets.search import described_by_models
from aitestbed.portal.db import make_engine
from aitestbed.portal.models import Base
from alembic import context

config = context.config
target_metadata = Base.metadata

engine = config.attributes.get("engine") or make_engine(config.get_main_option("sqlalchemy.url"))
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        include_object=described_by_models,
    )
    with context.begin_transaction():
        context.run_migrations()
