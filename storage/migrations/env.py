"""Alembic environment. Storage.db hands us a live connection (`config.attributes["connection"]`)."""
from alembic import context

from storage.models import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `understudy migrate` (storage.db.Database.migrate)")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
