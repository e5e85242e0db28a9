"""Wires the service: settings -> engine -> unit of work, migrations, readiness check -> the app."""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI

from platform_contract.data_service import database_wiring
from users_data.adapters import database
from users_data.config import Settings
from users_data.entrypoints.api import create_app
from users_data.service_layer.unit_of_work import UnitOfWork


def build_app(settings: Settings) -> FastAPI:
    engine = database.create_engine(settings)  # connects lazily: building the app needs no database
    migrations = database.startup_migrations(engine) if settings.migrate_on_startup else None
    wiring = database_wiring(
        migrations, ping=partial(database.ping, engine, settings.ready_timeout_seconds), close=engine.dispose
    )
    return create_app(settings, unit_of_work=partial(UnitOfWork, engine), wiring=wiring)
