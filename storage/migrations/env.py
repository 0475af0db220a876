"""Alembic environment. Storage.db hands us a live connection (`config.attributes["connection"]`)."""
from alembic import context

from storage.models import is_keyword_index, metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `understudy migrate` (storage.db.Database.migrate)")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    include_object=lambda obj, name, type_, reflected, compare_to: not (reflected and is_keyword_index(name)),
)
with context.begin_transaction():
    context.run_migrations()
