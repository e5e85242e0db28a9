"""Alembic's scripts for the users schema (run by `python -m users_data migrate` or at startup)."""
