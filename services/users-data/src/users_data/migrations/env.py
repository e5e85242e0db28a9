"""Alembic's environment: always runs on the connection users_data.adapters.database.migrate hands
over (inside its transaction and advisory lock), never on a DSN of its own."""

from __future__ import annotations

from alembic import context

from users_data.adapters.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise SystemExit("run the migrations with `python -m users_data migrate` (reads DATABASE_URL)")

context.configure(connection=connection, target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
