"""Alembic environment: runs migrations on the engine handed over by ``db.migrate``."""

from aitestbed.portal.datasets.search import described_by_models
from aitestbed.portal.db import make_engine
from aitestbed.portal.models import Base
from alembic import context

config = context.config
target_metadata = Base.metadata

engine = config.attributes.get("engine") or make_engine(config.get_main_option("sqlalchemy.url"))
with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # A batch migration copies a table and drops the old one; with foreign keys
        # enforced, that drop would cascade to every row that refers to it (dropping the
        # old users table deleted all session records). The pragma only works outside a
        # transaction, hence the commit.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=sqlite,
        include_object=described_by_models,
    )
    with context.begin_transaction():
        context.run_migrations()
    if sqlite:
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")
        connection.commit()
