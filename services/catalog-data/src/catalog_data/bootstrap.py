"""Wires the service: settings -> client -> repository, indexes, readiness check -> the app."""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI

from catalog_data.adapters import database
from catalog_data.adapters.repository import ItemRepository
from catalog_data.config import Settings
from catalog_data.entrypoints.api import create_app
from platform_contract.data_service import database_wiring


def build_app(settings: Settings) -> FastAPI:
    client = database.create_client(settings)  # connects lazily: building the app needs no database
    db = database.database(client, settings)
    indexes = database.startup_indexes(db) if settings.migrate_on_startup else None
    wiring = database_wiring(
        indexes, ping=partial(database.ping, db, settings.ready_timeout_seconds), close=client.close
    )
    repository = ItemRepository(db)  # stateless over the client's pool: one for every request
    return create_app(settings, items=lambda: repository, wiring=wiring)
