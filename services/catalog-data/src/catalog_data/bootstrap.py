"""Wires the service: settings -> client -> repository, indexes, readiness check, metrics -> the app."""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI

from catalog_data.adapters import database
from catalog_data.adapters.repository import ItemRepository
from catalog_data.config import Settings
from catalog_data.entrypoints.api import create_app
from platform_contract.data_service import database_lifecycle
from platform_contract.telemetry.metrics import HttpMetrics, new_registry


def build_app(settings: Settings) -> FastAPI:
    client = database.create_client(settings)  # connects lazily: building the app needs no database
    db = database.database(client, settings)
    # A registry per app (not the global one), so that every app built in one process counts alone.
    registry = new_registry()
    indexes = database.StartupIndexes(db) if settings.migrate_on_startup else None
    ready, lifespan = database_lifecycle(
        indexes, ping=partial(database.ping, db, settings.ready_timeout_seconds), close=client.close
    )
    repository = ItemRepository(db)  # stateless over the client's pool: one for every request
    return create_app(
        settings,
        items=lambda: repository,
        ready_check=ready,
        metrics=HttpMetrics(registry),
        lifespan=lifespan,
    )
